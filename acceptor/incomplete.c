/* Memory held for frames that are not complete yet. Flow control bounds what
 * one stream may send ahead (its window: 4 MiB with the default 1 MiB frame
 * limit; the connection's window gives half frames their credit back, see
 * credit_partial in streams.c), not what all of them hold together: a few
 * thousand connections that each start frames on many streams and never
 * finish them would pin tens of GiB.
 * Each acceptor counts the bytes its streams' decoders hold and keeps them
 * under its share of --max-incomplete-bytes: past it, the connection holding
 * the most is closed with CONNECTION_REFUSED (retry later; a real client
 * reconnects and resends what was not acknowledged). Ordinary clients hold a
 * few KiB each here, a frame split over packets; the largest holder is
 * whoever hoards. */
#include <stdio.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/metrics_page.h"

#define ACC_DEC_KEEP (64 * 1024) /* a stream keeps a decoder buffer up to this between frames */

static void count(struct acc_stream *s, size_t now)
{
	struct acc_conn *c = s->c;
	c->incomplete += now - s->dec_counted; /* unsigned wrap-around adds a negative delta */
	c->a->incomplete += now - s->dec_counted;
	s->dec_counted = now;
}

/* After the stream's decoder ran: between frames a large buffer is let go,
 * then the totals follow what the decoder holds. */
void acc_incomplete_count(struct acc_stream *s)
{
	qs_frame_decoder_trim(&s->dec, ACC_DEC_KEEP);
	count(s, qs_frame_decoder_buffered(&s->dec));
}

/* The stream's partial frame is given up (stream or connection going away). */
void acc_incomplete_release(struct acc_stream *s)
{
	qs_frame_decoder_free(&s->dec);
	count(s, 0);
}

static struct acc_conn *largest_holder(struct acc *a)
{
	struct acc_conn *max = NULL;
	for (struct acc_conn *c = a->conns; c; c = c->next)
		if (c->state == ACC_CONN_ACTIVE && c->incomplete && (!max || c->incomplete > max->incomplete))
			max = c;
	return max;
}

/* Called once per loop pass after packets were read (never inside ngtcp2's
 * callbacks: closing writes a packet). */
void acc_incomplete_shed(struct acc *a)
{
	struct acc_conn *c;
	while (a->incomplete > a->incomplete_cap && (c = largest_holder(a))) {
		uint64_t now = qs_now_ns();
		if (now - a->shed_log_mono >= 1000000000ull) { /* one line a second; the stats line counts all */
			char ip[64];
			unsigned port = 0;
			qs_addr_ip_string(ngtcp2_conn_get_path(c->qc)->remote.addr, ip, sizeof(ip), &port);
			char ports[8];
			snprintf(ports, sizeof(ports), "%u", port);
			qs_warn_kv(QS_KV({QS_LOG_PEER, ip}, {QS_LOG_PORT, ports}, {QS_LOG_CODE, "incomplete_frames"}),
				   "closing the connection from %s port %u: it holds %llu bytes of incomplete frames, "
				"and this acceptor's %llu of --max-incomplete-bytes are used up",
				ip, port, (unsigned long long)c->incomplete, (unsigned long long)a->incomplete_cap);
			a->shed_log_mono = now;
		}
		acc_conn_refuse(c, "server busy: too many incomplete frames held");
		for (struct acc_stream *s = c->streams; s; s = s->next)
			acc_incomplete_release(s);
		a->n_shed++;
		qs_mp_add(QS_M_CONN_HOARDING, 1);
	}
}

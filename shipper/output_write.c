/* The output's write loop: reads the spool after the cursor (or takes the
 * group just committed from memory, reader.h) and writes the records to the
 * socket, the TLS session or the file, up to a budget per loop pass, until
 * caught up, the peer's buffer is full, or a stop's limit is reached. */
#include "common/metrics_page.h"
#include "shipper/output_parts.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/clock.h"
#include "common/log.h"
#include "shipper/spool.h"
#include "shipper/tls_out.h"

#define WRITE_BUDGET (8u * 1024 * 1024) /* bytes per loop pass, so the loop stays responsive */
#define MAX_IOV 512

/* Records up to pos are fully written (n more bytes went out): a file has
 * taken them; a TCP peer has not yet (settle.h). */
void out_written(struct qs_output *o, size_t n, struct qs_pos pos)
{
	if (o->cfg->output_is_file) {
		out_file_wrote(o, n);
		out_advance(o, pos);
	} else
		qs_settle_wrote(&o->settle, n, pos);
}

static ssize_t write_iov(struct qs_output *o, struct iovec *iov, int n)
{
	if (o->cfg->output_is_file)
		return writev(o->fd, iov, n);
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	return sendmsg(o->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool out_past_limit(const struct qs_output *o)
{
	return (o->frozen || o->bounded) && !qs_pos_after(o->limit, qs_reader_done(&o->rd));
}

/* With a limit (a stop's freeze, a lane's batch), the records that start
 * before it: of the n offered, how many to write. */
static int before_limit(const struct qs_output *o, int n)
{
	if (!o->frozen && !o->bounded)
		return n;
	struct qs_pos at = qs_reader_done(&o->rd);
	int k = 0;
	for (size_t i = o->rd.idx; k < n && qs_pos_after(o->limit, at); i++, k++)
		at = (struct qs_pos){.seg = o->rd.pos.seg, .off = o->rd.recs[i].end};
	return k;
}

/* Nothing more to write for now: a lane's balancer may have its next batch. */
static void went_idle(struct qs_output *o)
{
	o->idle = true;
	if (o->parent)
		event_active(o->parent->run_ev, 0, 0);
}

/* Writes what the spool holds after the cursor until caught up, the socket
 * is full, or the budget for this pass is used. */
void out_run(struct qs_output *o)
{
	size_t done = 0;
	while (o->state == QS_OUT_UP && done < WRITE_BUDGET) {
		long avail = qs_reader_fill(&o->rd, o->spool);
		out_written(o, 0, qs_reader_done(&o->rd)); /* skipped damage and segment ends count too */
		if (avail < 0) {
			qs_err("output: cannot read the spool: %s", strerror(errno));
			return out_fail(o, "spool read error", errno);
		}
		if (avail == 0 || out_past_limit(o))
			return went_idle(o);
		o->idle = false;
		struct iovec iov[MAX_IOV];
		int n = before_limit(o, qs_reader_iov(&o->rd, iov, MAX_IOV));
		ssize_t w = o->tls ? out_tls_write(o, iov, n) : write_iov(o, iov, n);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			event_add(o->wev, NULL);
			return;
		}
		if (w < 0 && o->tls) {
			char why[160];
			snprintf(why, sizeof(why), "TLS write failed: %s", qs_tls_last_error(o->tls));
			return out_fail(o, why, 0);
		}
		if (w < 0)
			return out_fail(o, "write failed", errno);
		qs_reader_consume(&o->rd, (size_t)w);
		qs_mp_add(QS_M_OUT_BYTES, (uint64_t)w);
		qs_mp_add(QS_M_OUT_WRITES, 1);
		out_written(o, out_tls_on_wire(o, (size_t)w), qs_reader_done(&o->rd));
		o->last_write_ms = qs_now_ns() / 1000000;
		o->dirty = true;
		done += (size_t)w;
	}
	if (o->state == QS_OUT_UP)
		event_active(o->run_ev, 0, 0);
}

void out_on_run(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_output *o = arg;
	o->linger_bytes = 0;
	o->kind->run(o);
	out_tick_pace(o);
}

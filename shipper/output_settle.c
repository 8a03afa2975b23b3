/* When the output's cursor moves past bytes written to Logstash (settle.h):
 * once a tick, on the depth TCP acknowledged; and by a drain (our FIN, then
 * its FIN) when a stop, a filling spool or an idle tail needs the rest
 * proven read. A file needs none of this: what it took is taken. */
#include "shipper/output_parts.h"

#include <errno.h>
#include <event2/event.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "shipper/peer.h"
#include "shipper/spool.h"
#include "shipper/tls_out.h"

/* Moves the cursor to what the peer has evidently read: bytes acknowledged
 * deeper than it can hold unread (settle.h). One ioctl per tick. */
void out_settle(struct qs_output *o)
{
	int unacked = 0;
	if (o->cfg->output_is_file || o->state != QS_OUT_UP || ioctl(o->fd, SIOCOUTQ, &unacked) != 0)
		return;
	/* SIOCOUTQ counts every byte not acknowledged; with TLS also some that
	 * written does not: the part of a record GnuTLS put on the wire before
	 * EAGAIN (credited once the record is whole, after the written ones) and
	 * the handshake's last flight (before them). Either way written - unacked
	 * is at most what the peer acknowledged of written; below zero, nothing
	 * of it (the subtraction wrapped, and every record counted as read). */
	uint64_t q = unacked > 0 ? (uint64_t)unacked : 0;
	uint64_t acked = o->settle.written > q ? o->settle.written - q : 0;
	struct qs_pos pos;
	if (qs_settle_poll(&o->settle, acked, &pos))
		out_advance(o, pos);
}

void out_on_settle(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_output *o = arg;
	if (o->kind->tick)
		o->kind->tick(o);
	out_tick_pace(o);
}

void out_stream_tick(struct qs_output *o)
{
	out_settle(o);
	out_watch_peer(o);
	out_drain_tick(o);
}

/* The spool is short of room: what was written but not proven read must be
 * proven now, or the spool could fill with it for good (a segment retires
 * only once the cursor is past it, and nothing new is written to push the
 * cursor on). A disk that refused a write is short of room whatever
 * --spool-max-bytes says. */
static bool spool_pressed(const struct qs_output *o)
{
	return qs_spool_room(o->spool) < o->spool->max_bytes / 4 || o->spool->write_failed;
}

/* An unproven tail must not wait for depth that may never come: once nothing
 * was written for PROVE_IDLE_MS (a pause in the traffic), or the oldest
 * unproven byte is PROVE_MAX_MS old (a trickle that never pauses), it is
 * proven by a drain. Without this an idle output kept its last bytes
 * unproven for good: a crash resent them, and the segments holding them were
 * never retired. One reconnection per pause, or per minute at most. */
#define PROVE_IDLE_MS 2000
#define PROVE_MAX_MS 60000

static bool tail_stale(const struct qs_output *o, uint64_t now_ms)
{
	return now_ms - o->last_write_ms >= PROVE_IDLE_MS || now_ms - o->unproven_since_ms >= PROVE_MAX_MS;
}

/* All is written (up to the freeze) and a stop or a filling spool needs it
 * proven read: end our side (TLS close_notify, then our FIN) and wait for
 * Logstash's FIN (settle.h, "drain"). */
static void drain_start(struct qs_output *o)
{
	qs_tls_bye(o->tls);
	if (shutdown(o->fd, SHUT_WR) != 0)
		return out_fail(o, "shutdown", errno);
	if (o->wev)
		event_del(o->wev);
	o->state = QS_OUT_DRAINING;
	o->drain_since_ms = qs_now_ns() / 1000000;
}

void out_drain_tick(struct qs_output *o)
{
	/* bytes written on this connection, not only positions: a connection
	 * that wrote nothing needs no proof (and must not cycle) */
	uint64_t now_ms = qs_now_ns() / 1000000;
	if (!qs_settle_pending(&o->settle))
		o->unproven_since_ms = now_ms;
	if (o->state == QS_OUT_UP && o->idle && !o->tls_pending && o->settle.written > 0 &&
	    qs_settle_pending(&o->settle) && (o->frozen || spool_pressed(o) || tail_stale(o, now_ms)))
		return drain_start(o);
	if (o->state == QS_OUT_DRAINING && now_ms - o->drain_since_ms >= o->cfg->logstash_timeout_s * 1000ull)
		out_fail(o, "no close from Logstash after our end of data", ETIMEDOUT);
}

/* Logstash closed after reading everything sent: the cursor moves past it
 * all. Then connect again at once, unless a stop is coming. */
static void drained(struct qs_output *o)
{
	struct qs_pos pos;
	qs_settle_wrote(&o->settle, 0, qs_reader_done(&o->rd));
	if (qs_settle_drained(&o->settle, &pos))
		out_advance(o, pos);
	out_close(o);
	o->state = QS_OUT_DOWN;
	if (o->frozen) {
		o->drained = true;
		return;
	}
	o->redial = true;
	struct timeval now = {0, 0};
	evtimer_add(o->retry_ev, &now);
}

void out_drain_read(struct qs_output *o)
{
	int rc = qs_peer_drain_read(o->fd);
	if (rc == 0)
		drained(o);
	else if (rc < 0 && errno == EPIPE)
		out_fail(o, "closed before it acknowledged all we sent", 0);
	else if (rc < 0)
		out_fail(o, "connection lost while waiting for its close", errno);
}

/* The output's connection to Logstash: the socket and its events, connect
 * with a deadline, keepalives, "up" (shipping starts from the cursor), and
 * noticing that the peer closed, reset or vanished. What happens after a
 * failure is output_failover.c's; the TLS layer's, output_tls.c's. */
#include "common/metrics_page.h"
#include "shipper/output_parts.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "shipper/peer.h"
#include "shipper/spool.h"
#include "shipper/tls_out.h"

/* Closes the connection (TLS session, events, socket or file descriptor);
 * the caller says what state follows. */
void out_close(struct qs_output *o)
{
	qs_tls_conn_free(o->tls);
	o->tls = NULL;
	o->tls_pending = false;
	if (o->estab_ev)
		evtimer_del(o->estab_ev);
	if (o->wev) event_free(o->wev);
	if (o->rev) event_free(o->rev);
	o->wev = o->rev = NULL;
	if (o->kind && o->kind->close)
		o->kind->close(o);
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
}

/* Connected (after TLS's handshake, if any): ship from the cursor, with the
 * settle depth this peer's window allows. */
void out_up(struct qs_output *o)
{
	if (o->parent) /* a lane starts with nothing to write: its balancer gives it a batch */
		out_balance_lane_down(o->parent, o);
	o->state = QS_OUT_UP;
	qs_mp_add(QS_M_OUT_CONNECTS, 1);
	o->connects++;
	o->up_since_ms = qs_now_ns() / 1000000;
	uint64_t unread_max = o->cfg->output_is_file ? 0 : qs_peer_unread_max(o->fd);
	if (o->redial)
		qs_debug("output %s: connected again after the drain", o->name);
	else if (o->cfg->output_is_file && o->down_logged)
		qs_info("output %s: connected, shipping from the cursor", o->name);
	else if (!o->cfg->output_is_file)
		qs_info("output %s: connected%s, shipping from the cursor (it may hold up to %" PRIu64
			" MiB unread: bytes count as taken once acknowledged that deep, or when it closes after our end)",
			o->name, o->tls ? " (TLS, certificate verified)" : "", unread_max >> 20);
	o->redial = false;
	if (o->estab_ev)
		evtimer_del(o->estab_ev);
	o->wire_mark = o->tls ? qs_tls_wire_bytes(o->tls) : 0;
	o->unanswered_since_ms = 0;
	qs_settle_reset(&o->settle, unread_max);
	o->last_write_ms = o->unproven_since_ms = qs_now_ns() / 1000000;
	qs_reader_rewind(&o->rd, o->spool->cursor);
	event_add(o->rev, NULL);
	out_run(o);
}

/* TCP is up: ship, or first shake hands. */
static void logstash_connected(struct qs_output *o)
{
	if (!o->tls_creds)
		return out_up(o);
	out_tls_start(o);
}

void out_on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct qs_output *o = arg;
	if (o->state == QS_OUT_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt((int)fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			return out_fail(o, "connect failed", err);
		return o->kind->connected(o);
	}
	if (o->state == QS_OUT_HANDSHAKE)
		return out_tls_handshake(o);
	o->kind->run(o);
}

/* Connecting and the TLS handshake together must finish in --logstash-timeout. */
void out_on_establish_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_output *o = arg;
	if (o->state == QS_OUT_CONNECTING)
		out_fail(o, "connect timed out", ETIMEDOUT);
	else if (o->state == QS_OUT_HANDSHAKE)
		out_fail(o, "TLS handshake timed out", ETIMEDOUT);
}

void out_on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_output *o = arg;
	if (o->state == QS_OUT_DRAINING)
		return out_drain_read(o);
	if (o->state == QS_OUT_HANDSHAKE)
		return out_tls_handshake(o);
	if (o->kind->readable)
		o->kind->readable(o);
}

/* Logstash never sends anything: readable means closed, reset, or timed out
 * (keepalives unanswered). */
void out_tcp_readable(struct qs_output *o)
{
	if (o->tls)
		return out_tls_readable(o);
	char buf[512];
	ssize_t n = recv(o->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return;
	if (n == 0)
		return out_fail(o, "connection closed by peer", ECONNRESET);
	out_fail(o, "connection lost", errno);
}

/* A Logstash host that vanishes without a reset (power loss, a crashed VM, a
 * partition) would hold an idle connection for ever, and a busy one for the
 * kernel's ~15 min of retransmissions; a connect to it would take ~2 min of
 * SYN retries. Keepalives cover the idle connection (gone after twice the
 * timeout), watch_peer the busy one, out_start() the connect. Not TCP_USER_TIMEOUT:
 * it also cuts a live Logstash whose window stays closed that long (its
 * pipeline pushing back), and every reconnect would re-send the unsettled
 * tail. */
static void keepalive(struct qs_output *o)
{
	unsigned t = o->cfg->logstash_timeout_s;
	int on = 1, idle = (int)t, intvl = (int)(t / 3 ? t / 3 : 1), cnt = 3;
	if (setsockopt(o->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
	    setsockopt(o->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
	    setsockopt(o->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
	    setsockopt(o->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0)
		qs_warn("output %s: cannot set TCP keepalives: %s", o->name, strerror(errno));
}

/* Data or window probes retransmitted without an answer for the timeout: the
 * peer is gone. A live peer answers each probe within a round trip, however
 * long its window stays closed, so unanswered probes never last that long
 * with a slow Logstash. (Each probe goes out with the last ACK already old:
 * the age of the last ACK alone would condemn a live peer.) */
void out_watch_peer(struct qs_output *o)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	if (o->cfg->output_is_file || o->state != QS_OUT_UP ||
	    getsockopt(o->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return;
	uint64_t now = qs_now_ns() / 1000000, limit_ms = o->cfg->logstash_timeout_s * 1000ull;
	if (!ti.tcpi_retransmits && !ti.tcpi_probes) {
		o->unanswered_since_ms = 0;
		return;
	}
	if (!o->unanswered_since_ms)
		o->unanswered_since_ms = now;
	if (now - o->unanswered_since_ms >= limit_ms && ti.tcpi_last_ack_recv >= limit_ms) {
		char what[96];
		snprintf(what, sizeof(what), "nothing acknowledged for %u s", o->cfg->logstash_timeout_s);
		out_fail(o, what, ETIMEDOUT);
	}
}

/* Connects to the current --logstash-addr entry (or opens the file). */
void out_start(struct qs_output *o)
{
	o->kind->start(o);
}

/* A non-blocking connect to the current entry, bounded by --logstash-timeout
 * together with what the kind does next (TLS, a handshake). */
void out_tcp_connect(struct qs_output *o)
{
	const struct qs_addr *addr = &o->addrs[o->addr];
	const struct sockaddr *sa = (const struct sockaddr *)&addr->ss;
	snprintf(o->name, sizeof(o->name), "%s %s", o->kind->name, o->cfg->logstash_name[o->addr]);
	if (addr->len == 0) /* not resolved yet: out_fail() asks the supervisor */
		return out_fail(o, "the name does not resolve (yet)", 0);
	o->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (o->fd < 0)
		return out_fail(o, "socket", errno);
	o->wev = event_new(o->base, o->fd, EV_WRITE, out_on_writable, o);
	o->rev = event_new(o->base, o->fd, EV_READ | EV_PERSIST, out_on_readable, o);
	keepalive(o);
	o->state = QS_OUT_CONNECTING;
	struct timeval limit = {o->cfg->logstash_timeout_s, 0};
	evtimer_add(o->estab_ev, &limit);
	if (connect(o->fd, sa, addr->len) == 0)
		return o->kind->connected(o);
	if (errno != EINPROGRESS)
		return out_fail(o, "connect failed", errno);
	event_add(o->wev, NULL);
}

void out_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	out_start(arg);
}

const struct out_kind out_kind_logstash = {
	.name = "logstash",
	.start = out_tcp_connect,
	.connected = logstash_connected,
	.run = out_run,
	.readable = out_tcp_readable,
	.tick = out_stream_tick,
	.caught_up = out_stream_caught_up,
};

#include "shipper/output.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/log.h"
#include "ipc/ctl.h"
#include "ipc/child.h"
#include "shipper/peer.h"
#include "shipper/spool.h"
#include "shipper/tls_out.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WRITE_BUDGET (8u * 1024 * 1024) /* bytes per loop pass, so the loop stays responsive */
#define MAX_IOV 512
#define SETTLE_TICK_MS 100
#define TLS_CHUNK 16384 /* one TLS record of plaintext */
/* A connection that lasted this long was healthy: its end starts a new
 * outage (first failures logged, backoff from the minimum). One that fails
 * sooner (a Logstash that takes the connection and then refuses us, as when
 * it requires a client certificate) keeps backing off. */
#define HEALTHY_MS 2000

/* Records up to pos are fully written (n more bytes went out): a file has
 * taken them; a TCP peer has not yet (settle.h). */
static void written(struct qs_output *o, size_t n, struct qs_pos pos)
{
	if (o->cfg->output_is_file)
		qs_spool_advance(o->spool, pos);
	else
		qs_settle_wrote(&o->settle, n, pos);
}

/* Moves the cursor to what the peer has evidently read: bytes acknowledged
 * deeper than it can hold unread (settle.h). One ioctl per tick. */
static void settle(struct qs_output *o)
{
	int unacked = 0;
	if (o->cfg->output_is_file || o->state != QS_OUT_UP || ioctl(o->fd, SIOCOUTQ, &unacked) != 0)
		return;
	uint64_t acked = o->settle.written - (uint64_t)(unacked > 0 ? unacked : 0);
	struct qs_pos pos;
	if (qs_settle_poll(&o->settle, acked, &pos))
		qs_spool_advance(o->spool, pos);
}

static void watch_peer(struct qs_output *o);
static void drain_tick(struct qs_output *o);

static void on_settle(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	settle(arg);
	watch_peer(arg);
	drain_tick(arg);
}

static void start(struct qs_output *o);

static void close_fd(struct qs_output *o)
{
	qs_tls_conn_free(o->tls);
	o->tls = NULL;
	o->tls_pending = false;
	if (o->estab_ev)
		evtimer_del(o->estab_ev);
	if (o->wev) event_free(o->wev);
	if (o->rev) event_free(o->rev);
	o->wev = o->rev = NULL;
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
}

/* A Logstash behind a name may move (a load balancer's addresses change, DNS
 * fails over): before connecting to a named entry again, the output asks the
 * supervisor to look it up anew, since the chrooted shipper cannot read
 * /etc. The answer usually arrives within the backoff; until then the last
 * address is used. */
static void ask_resolve(struct qs_output *o, unsigned i)
{
	char host[256];
	if (o->ctl_fd < 0 || qs_addr_host(o->cfg->logstash_name[i], host, sizeof(host)) < 0 || qs_addr_is_ip(host))
		return;
	struct qs_ctl_msg m;
	memset(&m, 0, sizeof(m));
	m.type = QS_CTL_RESOLVE;
	m.role = QS_ROLE_SHIPPER;
	snprintf(m.text, sizeof(m.text), "%s", o->cfg->logstash_name[i]);
	(void)qs_ctl_send(o->ctl_fd, &m);
}

void qs_output_resolved(struct qs_output *o, const struct qs_ctl_msg *m)
{
	if (m->addr_len == 0 || m->addr_len > sizeof(m->addr))
		return; /* it did not resolve (the supervisor logged why): keep the last address */
	for (unsigned i = 0; i < o->cfg->logstash_count; i++) {
		struct qs_addr *a = &o->addrs[i];
		if (strcmp(o->cfg->logstash_name[i], m->text) != 0 ||
		    (a->len == m->addr_len && !memcmp(&a->ss, &m->addr, m->addr_len)))
			continue;
		char was[64], now[64];
		unsigned port;
		qs_addr_ip_string((const struct sockaddr *)&a->ss, was, sizeof(was), &port);
		qs_addr_ip_string((const struct sockaddr *)&m->addr, now, sizeof(now), &port);
		if (a->len)
			qs_info("output logstash %s: now resolves to %s (was %s)", m->text, now, was);
		else
			qs_info("output logstash %s: resolves to %s", m->text, now);
		memcpy(&a->ss, &m->addr, m->addr_len);
		a->len = m->addr_len;
	}
}

/* Gives up on the current connection or file and tries the next address of
 * the list: at once while this outage has not yet tried every one, else
 * after a backoff. Resends from the cursor (what was fully written before
 * stays shipped). Each address's first failure in an outage is logged. */
/* QS_LOG_PEER: the output's name without its kind ("logstash HOST:PORT", "file PATH"). */
static const char *log_peer(const struct qs_output *o)
{
	const char *sp = strchr(o->name, ' ');
	return sp ? sp + 1 : o->name;
}

static void fail(struct qs_output *o, const char *what, int err)
{
	const struct qs_config *cfg = o->cfg;
	unsigned n = cfg->output_is_file ? 1 : cfg->logstash_count, bit = 1u << o->addr;
	bool was_up = o->state >= QS_OUT_UP; /* up, or draining after our end of data */
	if (was_up && qs_now_ns() / 1000000 - o->up_since_ms >= HEALTHY_MS) {
		o->down_logged = 0;
		o->failures = 0;
		o->backoff_ms = BACKOFF_MIN_MS;
	}
	/* Losing a connection is always told (its "connected" was); failing to
	 * make one only the first time in an outage. */
	bool tell = !(o->down_logged & bit) || was_up;
	const char *sep = err ? ": " : "", *why = err ? strerror(err) : "";
	const struct qs_log_kv *kv = QS_KV({QS_LOG_PEER, log_peer(o)}, {QS_LOG_CODE, qs_log_errno_name(err)});
	if (tell && n > 1)
		qs_warn_kv(kv, "output %s: %s%s%s; trying %s next", o->name, what, sep, why,
			cfg->logstash_name[(o->addr + 1) % n]);
	else if (tell)
		qs_warn_kv(kv, "output %s: %s%s%s; retrying every %u..%u ms", o->name, what, sep, why, BACKOFF_MIN_MS,
			BACKOFF_MAX_MS);
	o->down_logged |= bit;
	close_fd(o);
	o->state = QS_OUT_DOWN;
	o->redial = false;
	/* Resend everything that had not settled: Logstash may never have read it. */
	qs_settle_reset(&o->settle, QS_PEER_UNREAD_UNKNOWN);
	qs_reader_rewind(&o->rd, o->spool->cursor);
	o->addr = (o->addr + 1) % n;
	if (!cfg->output_is_file)
		ask_resolve(o, o->addr);
	unsigned delay = BACKOFF_MIN_MS;
	if (++o->failures % n == 0) { /* every address failed once more */
		delay = o->backoff_ms;
		o->backoff_ms = o->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : o->backoff_ms * 2;
	}
	struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
	evtimer_add(o->retry_ev, &tv);
}

static ssize_t write_iov(struct qs_output *o, struct iovec *iov, int n)
{
	if (o->cfg->output_is_file)
		return writev(o->fd, iov, n);
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	return sendmsg(o->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* TLS: the records' plaintext is gathered into one buffer, which must be
 * offered again unchanged after EAGAIN (GnuTLS keeps the sealed record). */
static ssize_t write_tls(struct qs_output *o, const struct iovec *iov, int n)
{
	if (!o->tls_pending) {
		o->tls_len = 0;
		for (int i = 0; i < n && o->tls_len < TLS_CHUNK; i++) {
			size_t k = iov[i].iov_len < TLS_CHUNK - o->tls_len ? iov[i].iov_len : TLS_CHUNK - o->tls_len;
			memcpy(o->tls_buf + o->tls_len, iov[i].iov_base, k);
			o->tls_len += k;
		}
	}
	ssize_t w = qs_tls_send(o->tls, o->tls_buf, o->tls_len);
	o->tls_pending = w < 0 && errno == EAGAIN;
	return w;
}

/* Bytes put on the wire by the last write: what TCP will acknowledge. */
static size_t on_wire(struct qs_output *o, size_t w)
{
	if (!o->tls)
		return w;
	uint64_t now = qs_tls_wire_bytes(o->tls), d = now - o->wire_mark;
	o->wire_mark = now;
	return (size_t)d;
}

static bool past_limit(const struct qs_output *o)
{
	return o->frozen && !qs_pos_after(o->limit, qs_reader_done(&o->rd));
}

/* Writes what the spool holds after the cursor until caught up, the socket
 * is full, or the budget for this pass is used. */
static void run(struct qs_output *o)
{
	size_t done = 0;
	while (o->state == QS_OUT_UP && done < WRITE_BUDGET) {
		long avail = qs_reader_fill(&o->rd, o->spool);
		written(o, 0, qs_reader_done(&o->rd)); /* skipped damage and segment ends count too */
		if (avail < 0) {
			qs_err("output: cannot read the spool: %s", strerror(errno));
			return fail(o, "spool read error", errno);
		}
		if (avail == 0 || past_limit(o)) {
			o->idle = true;
			return;
		}
		o->idle = false;
		struct iovec iov[MAX_IOV];
		int n = qs_reader_iov(&o->rd, iov, MAX_IOV);
		ssize_t w = o->tls ? write_tls(o, iov, n) : write_iov(o, iov, n);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			event_add(o->wev, NULL);
			return;
		}
		if (w < 0 && o->tls) {
			char why[160];
			snprintf(why, sizeof(why), "TLS write failed: %s", qs_tls_last_error(o->tls));
			return fail(o, why, 0);
		}
		if (w < 0)
			return fail(o, "write failed", errno);
		qs_reader_consume(&o->rd, (size_t)w);
		written(o, on_wire(o, (size_t)w), qs_reader_done(&o->rd));
		o->last_write_ms = qs_now_ns() / 1000000;
		o->dirty = true;
		done += (size_t)w;
	}
	if (o->state == QS_OUT_UP)
		event_active(o->run_ev, 0, 0);
}

static void on_run(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run(arg);
}

static void up(struct qs_output *o)
{
	o->state = QS_OUT_UP;
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
	run(o);
}

static void handshake(struct qs_output *o)
{
	char err[512];
	int rc = qs_tls_handshake(o->tls, err, sizeof(err));
	if (rc < 0)
		return fail(o, err, 0);
	if (rc == 0)
		return up(o);
	if (qs_tls_wants_write(o->tls))
		event_add(o->wev, NULL);
}

/* TCP is up: ship, or first shake hands. */
static void connected(struct qs_output *o)
{
	if (!o->tls_creds)
		return up(o);
	char host[256], err[512];
	qs_addr_host(o->cfg->logstash_name[o->addr], host, sizeof(host)); /* well formed: parsed at start */
	o->tls = qs_tls_conn_new(o->tls_creds, o->fd, host, err, sizeof(err));
	if (!o->tls)
		return fail(o, err, 0);
	o->state = QS_OUT_HANDSHAKE;
	event_add(o->rev, NULL);
	handshake(o);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct qs_output *o = arg;
	if (o->state == QS_OUT_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt((int)fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			return fail(o, "connect failed", err);
		return connected(o);
	}
	if (o->state == QS_OUT_HANDSHAKE)
		return handshake(o);
	run(o);
}

/* Connecting and the TLS handshake together must finish in --logstash-timeout. */
static void on_establish_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_output *o = arg;
	if (o->state == QS_OUT_CONNECTING)
		fail(o, "connect timed out", ETIMEDOUT);
	else if (o->state == QS_OUT_HANDSHAKE)
		fail(o, "TLS handshake timed out", ETIMEDOUT);
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
		return fail(o, "shutdown", errno);
	if (o->wev)
		event_del(o->wev);
	o->state = QS_OUT_DRAINING;
	o->drain_since_ms = qs_now_ns() / 1000000;
}

static void drain_tick(struct qs_output *o)
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
		fail(o, "no close from Logstash after our end of data", ETIMEDOUT);
}

/* Logstash closed after reading everything sent: the cursor moves past it
 * all. Then connect again at once, unless a stop is coming. */
static void drained(struct qs_output *o)
{
	struct qs_pos pos;
	qs_settle_wrote(&o->settle, 0, qs_reader_done(&o->rd));
	if (qs_settle_drained(&o->settle, &pos))
		qs_spool_advance(o->spool, pos);
	close_fd(o);
	o->state = QS_OUT_DOWN;
	if (o->frozen) {
		o->drained = true;
		return;
	}
	o->redial = true;
	struct timeval now = {0, 0};
	evtimer_add(o->retry_ev, &now);
}

static void drain_read(struct qs_output *o)
{
	int rc = qs_peer_drain_read(o->fd);
	if (rc == 0)
		drained(o);
	else if (rc < 0 && errno == EPIPE)
		fail(o, "closed before it acknowledged all we sent", 0);
	else if (rc < 0)
		fail(o, "connection lost while waiting for its close", errno);
}

/* Logstash never sends anything: readable means closed, reset, or timed out
 * (keepalives unanswered). */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct qs_output *o = arg;
	if (o->state == QS_OUT_DRAINING)
		return drain_read(o);
	if (o->state == QS_OUT_HANDSHAKE)
		return handshake(o);
	if (o->tls) {
		int rc = qs_tls_drain(o->tls);
		if (rc == 0)
			fail(o, "connection closed by peer (TLS close)", 0);
		else if (rc < 0) {
			char why[160];
			snprintf(why, sizeof(why), "connection lost: TLS: %s", qs_tls_last_error(o->tls));
			fail(o, why, 0);
		}
		return;
	}
	char buf[512];
	ssize_t n = recv((int)fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return;
	if (n == 0)
		return fail(o, "connection closed by peer", ECONNRESET);
	fail(o, "connection lost", errno);
}

/* A Logstash host that vanishes without a reset (power loss, a crashed VM, a
 * partition) would hold an idle connection for ever, and a busy one for the
 * kernel's ~15 min of retransmissions; a connect to it would take ~2 min of
 * SYN retries. Keepalives cover the idle connection (gone after twice the
 * timeout), watch_peer the busy one, start() the connect. Not TCP_USER_TIMEOUT:
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
static void watch_peer(struct qs_output *o)
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
		fail(o, what, ETIMEDOUT);
	}
}

static void start(struct qs_output *o)
{
	if (o->cfg->output_is_file) {
		o->fd = fcntl(o->file_fd, F_DUPFD_CLOEXEC, 0);
		if (o->fd < 0)
			return fail(o, "cannot use", errno);
		o->wev = event_new(o->base, -1, 0, on_writable, o);
		o->rev = event_new(o->base, -1, 0, on_readable, o);
		return up(o);
	}
	const struct qs_addr *addr = &o->addrs[o->addr];
	const struct sockaddr *sa = (const struct sockaddr *)&addr->ss;
	snprintf(o->name, sizeof(o->name), "logstash %s", o->cfg->logstash_name[o->addr]);
	if (addr->len == 0) /* not resolved yet: fail() asks the supervisor */
		return fail(o, "the name does not resolve (yet)", 0);
	o->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (o->fd < 0)
		return fail(o, "socket", errno);
	o->wev = event_new(o->base, o->fd, EV_WRITE, on_writable, o);
	o->rev = event_new(o->base, o->fd, EV_READ | EV_PERSIST, on_readable, o);
	keepalive(o);
	o->state = QS_OUT_CONNECTING;
	struct timeval limit = {o->cfg->logstash_timeout_s, 0};
	evtimer_add(o->estab_ev, &limit);
	if (connect(o->fd, sa, addr->len) == 0)
		return connected(o);
	if (errno != EINPROGRESS)
		return fail(o, "connect failed", errno);
	event_add(o->wev, NULL);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start(arg);
}

int qs_output_open_file(const struct qs_config *cfg)
{
	if (!cfg->output_is_file)
		return -2;
	int fd = open(cfg->output_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		qs_err("output file %s: %s", cfg->output_path, strerror(errno));
	return fd;
}

struct qs_tls_creds *qs_output_tls_load(const struct qs_config *cfg)
{
	if (!cfg->logstash_tls)
		return NULL;
	char err[8400];
	struct qs_tls_creds *cr = qs_tls_creds_load(cfg, err, sizeof(err));
	if (!cr)
		qs_err("output: %s", err);
	return cr;
}

int qs_output_init(struct qs_output *o, const struct qs_config *cfg, struct event_base *base,
		   struct qs_spool *spool, int file_fd, struct qs_tls_creds *tls_creds)
{
	memset(o, 0, sizeof(*o));
	o->tls_creds = tls_creds;
	o->ctl_fd = -1;
	memcpy(o->addrs, cfg->logstash_addr, sizeof(o->addrs));
	o->file_fd = file_fd;
	o->cfg = cfg;
	o->base = base;
	o->spool = spool;
	o->fd = -1;
	o->backoff_ms = BACKOFF_MIN_MS;
	if (cfg->output_is_file)
		snprintf(o->name, sizeof(o->name), "file %s", cfg->output_path);
	else
		snprintf(o->name, sizeof(o->name), "logstash %s", cfg->logstash_name[0]);
	qs_reader_init(&o->rd, spool->cursor);
	o->retry_ev = evtimer_new(base, on_retry, o);
	o->run_ev = event_new(base, -1, 0, on_run, o);
	o->settle_ev = event_new(base, -1, EV_PERSIST, on_settle, o);
	o->estab_ev = evtimer_new(base, on_establish_timeout, o);
	o->tls_buf = tls_creds ? malloc(TLS_CHUNK) : NULL;
	if (!o->retry_ev || !o->run_ev || !o->settle_ev || !o->estab_ev || (tls_creds && !o->tls_buf))
		return -1;
	struct timeval tick = {0, SETTLE_TICK_MS * 1000};
	event_add(o->settle_ev, &tick);
	start(o);
	return 0;
}

void qs_output_kick(struct qs_output *o, struct qs_pos pos, const uint8_t *buf, size_t len)
{
	if (o->state != QS_OUT_UP)
		return;
	if (qs_reader_offer(&o->rd, pos.seg, pos.off, buf, len))
		o->offered++;
	event_active(o->run_ev, 0, 0);
}

void qs_output_freeze(struct qs_output *o)
{
	o->frozen = true;
	o->limit = qs_spool_end(o->spool);
}

bool qs_output_caught_up(struct qs_output *o)
{
	if (o->drained)
		return true;
	if (o->state != QS_OUT_UP)
		return false; /* DRAINING: until Logstash's close proves it read all */
	long avail = qs_reader_fill(&o->rd, o->spool);
	written(o, 0, qs_reader_done(&o->rd));
	settle(o);
	o->idle = avail == 0 || past_limit(o);
	if (!o->idle || !qs_settle_pending(&o->settle))
		return o->idle;
	drain_tick(o); /* frozen: prove it now rather than at the next tick */
	return false;
}

uint64_t qs_output_unsent(const struct qs_output *o)
{
	struct qs_pos from = o->spool->cursor;
	if (o->state >= QS_OUT_UP && qs_pos_after(qs_reader_done(&o->rd), from))
		from = qs_reader_done(&o->rd);
	return qs_spool_bytes_after(o->spool, from);
}

int qs_output_sync(struct qs_output *o)
{
	if (o->cfg->output_is_file && o->dirty && o->fd >= 0 && o->cfg->durability == QS_DURABILITY_FSYNC &&
	    fdatasync(o->fd) != 0) {
		qs_err_kv(QS_KV({QS_LOG_PEER, log_peer(o)}, {QS_LOG_CODE, qs_log_errno_name(errno)}),
			  "output %s: fdatasync: %s", o->name, strerror(errno));
		return -1;
	}
	o->dirty = false;
	return 0;
}

void qs_output_free(struct qs_output *o)
{
	if (o->state == QS_OUT_UP)
		qs_tls_bye(o->tls);
	close_fd(o);
	if (o->base && o->file_fd >= 0) /* only once qs_output_init owned it */
		close(o->file_fd);
	o->file_fd = -1;
	if (o->retry_ev) event_free(o->retry_ev);
	if (o->run_ev) event_free(o->run_ev);
	if (o->settle_ev) event_free(o->settle_ev);
	if (o->estab_ev) event_free(o->estab_ev);
	o->estab_ev = NULL;
	free(o->tls_buf);
	o->tls_buf = NULL;
	qs_tls_creds_free(o->tls_creds);
	o->tls_creds = NULL;
	qs_reader_free(&o->rd);
	o->retry_ev = o->run_ev = o->settle_ev = NULL;
}

#include "shipper/output.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "ipc/child.h"
#include "shipper/spool.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WRITE_BUDGET (8u * 1024 * 1024) /* bytes per loop pass, so the loop stays responsive */
#define MAX_IOV 512
#define SETTLE_TICK_MS 100

/* Records up to pos are fully written (n more bytes went out): a file has
 * taken them; a TCP peer has not yet (settle.h). */
static void written(struct qs_output *o, size_t n, struct qs_pos pos)
{
	if (o->cfg->output_is_file)
		qs_spool_advance(o->spool, pos);
	else
		qs_settle_wrote(&o->settle, n, pos);
}

/* Moves the cursor to what the peer has acknowledged and held long enough. */
static void settle(struct qs_output *o)
{
	int unacked = 0;
	if (o->cfg->output_is_file || o->state != QS_OUT_UP || ioctl(o->fd, SIOCOUTQ, &unacked) != 0)
		return;
	uint64_t acked = o->settle.written - (uint64_t)(unacked > 0 ? unacked : 0);
	struct qs_pos pos;
	if (qs_settle_poll(&o->settle, acked, qs_now_ns() / 1000000, &pos))
		qs_spool_advance(o->spool, pos);
}

static void watch_peer(struct qs_output *o);

static void on_settle(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	settle(arg);
	watch_peer(arg);
}

static void start(struct qs_output *o);

static void close_fd(struct qs_output *o)
{
	if (o->wev) event_free(o->wev);
	if (o->rev) event_free(o->rev);
	o->wev = o->rev = NULL;
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
}

/* Gives up on the current connection or file and tries the next address of
 * the list: at once while this outage has not yet tried every one, else
 * after a backoff. Resends from the cursor (what was fully written before
 * stays shipped). Each address's first failure in an outage is logged. */
static void fail(struct qs_output *o, const char *what, int err)
{
	const struct qs_config *cfg = o->cfg;
	unsigned n = cfg->output_is_file ? 1 : cfg->logstash_count, bit = 1u << o->addr;
	if (!(o->down_logged & bit) && n > 1)
		qs_warn("output %s: %s: %s; trying %s next", o->name, what, strerror(err),
			cfg->logstash_name[(o->addr + 1) % n]);
	else if (!(o->down_logged & bit))
		qs_warn("output %s: %s: %s; retrying every %u..%u ms", o->name, what, strerror(err),
			BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	o->down_logged |= bit;
	close_fd(o);
	o->state = QS_OUT_DOWN;
	/* Resend everything that had not settled: Logstash may never have read it. */
	qs_settle_reset(&o->settle);
	qs_reader_rewind(&o->rd, o->spool->cursor);
	o->addr = (o->addr + 1) % n;
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
		if (avail == 0 || past_limit(o))
			return;
		struct iovec iov[MAX_IOV];
		int n = qs_reader_iov(&o->rd, iov, MAX_IOV);
		ssize_t w = write_iov(o, iov, n);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			event_add(o->wev, NULL);
			return;
		}
		if (w < 0)
			return fail(o, "write failed", errno);
		qs_reader_consume(&o->rd, (size_t)w);
		written(o, (size_t)w, qs_reader_done(&o->rd));
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
	o->backoff_ms = BACKOFF_MIN_MS;
	if (o->down_logged || !o->cfg->output_is_file)
		qs_info("output %s: connected, shipping from the cursor", o->name);
	o->down_logged = 0;
	o->failures = 0;
	o->unanswered_since_ms = 0;
	qs_settle_reset(&o->settle);
	qs_reader_rewind(&o->rd, o->spool->cursor);
	event_add(o->rev, NULL);
	run(o);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct qs_output *o = arg;
	if (o->state == QS_OUT_CONNECTING) {
		if (what & EV_TIMEOUT)
			return fail(o, "connect timed out", ETIMEDOUT);
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt((int)fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			return fail(o, "connect failed", err);
		return up(o);
	}
	run(o);
}

/* Logstash never sends anything: readable means closed, reset, or timed out
 * (keepalives unanswered). */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct qs_output *o = arg;
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
	const struct qs_addr *addr = &o->cfg->logstash_addr[o->addr];
	const struct sockaddr *sa = (const struct sockaddr *)&addr->ss;
	snprintf(o->name, sizeof(o->name), "logstash %s", o->cfg->logstash_name[o->addr]);
	o->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (o->fd < 0)
		return fail(o, "socket", errno);
	o->wev = event_new(o->base, o->fd, EV_WRITE, on_writable, o);
	o->rev = event_new(o->base, o->fd, EV_READ | EV_PERSIST, on_readable, o);
	keepalive(o);
	o->state = QS_OUT_CONNECTING;
	if (connect(o->fd, sa, addr->len) == 0)
		return up(o);
	if (errno != EINPROGRESS)
		return fail(o, "connect failed", errno);
	struct timeval limit = {o->cfg->logstash_timeout_s, 0};
	event_add(o->wev, &limit);
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

int qs_output_init(struct qs_output *o, const struct qs_config *cfg, struct event_base *base,
		   struct qs_spool *spool, int file_fd)
{
	memset(o, 0, sizeof(*o));
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
	if (!o->retry_ev || !o->run_ev || !o->settle_ev)
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
	if (o->state != QS_OUT_UP)
		return false;
	long avail = qs_reader_fill(&o->rd, o->spool);
	written(o, 0, qs_reader_done(&o->rd));
	settle(o);
	return (avail == 0 || past_limit(o)) && !qs_settle_pending(&o->settle);
}

int qs_output_sync(struct qs_output *o)
{
	if (o->cfg->output_is_file && o->dirty && o->fd >= 0 && o->cfg->durability == QS_DURABILITY_FSYNC &&
	    fdatasync(o->fd) != 0) {
		qs_err("output %s: fdatasync: %s", o->name, strerror(errno));
		return -1;
	}
	o->dirty = false;
	return 0;
}

void qs_output_free(struct qs_output *o)
{
	close_fd(o);
	if (o->base && o->file_fd >= 0) /* only once qs_output_init owned it */
		close(o->file_fd);
	o->file_fd = -1;
	if (o->retry_ev) event_free(o->retry_ev);
	if (o->run_ev) event_free(o->run_ev);
	if (o->settle_ev) event_free(o->settle_ev);
	qs_reader_free(&o->rd);
	o->retry_ev = o->run_ev = o->settle_ev = NULL;
}

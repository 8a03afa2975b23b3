/* The client object: public API, connection lifecycle, reconnect with backoff. */
#include <gnutls/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000
/* When the server said it is busy (CONNECTION_REFUSED, a Retry on an attempt
 * that then failed, a handshake that timed out), the steps start larger and
 * grow further: after a crash or a network blip thousands of clients fail
 * together, and each round must spread them wider than the last, so that the
 * storm settles at the rate the server takes instead of coming back whole. */
#define BACKOFF_BUSY_FIRST_MS 500
#define BACKOFF_BUSY_MAX_MS 8000
/* A refusal that says "retry later" is a storm's: the server refuses while a
 * second's worth of handshakes is under way, so the condition clears within
 * about that. Its steps stop growing at 2 s: with 8 s, the clients refused as
 * the storm ended waited 4-8 s more on an idle server (a 10,000 storm came
 * up in 10.4-12.7 s, against 9.0-11.0 with 2 s; docs/PERFORMANCE.md round
 * 23), and no more attempts were refused. A server that is full ("connection
 * limit reached") stays full longer: those steps grow to 8 s. */
#define BACKOFF_BRIEF_MAX_MS 2000
#define HANDSHAKE_RETRIES 8
#define HANDSHAKE_RETRY_MS 30000

static void state(struct qs_client *c, enum qs_client_state st, const char *why)
{
	if (c->cb.on_state)
		c->cb.on_state(c->ud, st, why);
}

void qs_client_fail(struct qs_client *c, enum qs_fail_kind kind, const char *fmt, ...)
{
	if (c->fail)
		return; /* the first cause is the one worth reporting */
	c->fail = kind;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->fail_reason, sizeof(c->fail_reason), fmt, ap);
	va_end(ap);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_client *c = arg;
	if (c->closing || c->failed || c->conn)
		return;
	qs_conn_open(c);
	qs_client_after_io(c);
}

static void schedule_connect(struct qs_client *c, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(c->retry_ev, &tv);
}

/* Exponential backoff with "equal jitter": half the step fixed, half random,
 * so clients refused together do not come back together. */
static unsigned next_backoff(struct qs_client *c, bool busy, bool brief)
{
	unsigned first = busy ? BACKOFF_BUSY_FIRST_MS : BACKOFF_FIRST_MS;
	unsigned max = !busy ? BACKOFF_MAX_MS : brief ? BACKOFF_BRIEF_MAX_MS : BACKOFF_BUSY_MAX_MS;
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : first;
	if (c->backoff_ms < first)
		c->backoff_ms = first;
	if (c->backoff_ms > max)
		c->backoff_ms = max;
	uint32_t r = 0;
	(void)gnutls_rnd(GNUTLS_RND_NONCE, &r, sizeof(r));
	return c->backoff_ms / 2 + r % (c->backoff_ms / 2 + 1);
}

/* A TRANSIENT failure: whether the retry budget (count and time) allows another
 * try; the reason gets the count. */
static bool transient_retry(struct qs_client *c, char *why, size_t len)
{
	unsigned max = c->opts.handshake_retries ? c->opts.handshake_retries : HANDSHAKE_RETRIES;
	unsigned max_ms = c->opts.handshake_retry_ms ? c->opts.handshake_retry_ms : HANDSHAKE_RETRY_MS;
	uint64_t now = qs_now();
	if (c->transient_fails++ == 0)
		c->transient_since = now;
	if (max == QS_CLIENT_NO_RETRY)
		return false;
	size_t n = strlen(why);
	if (c->transient_fails > max || now - c->transient_since > (uint64_t)max_ms * 1000000u) {
		snprintf(why + n, len - n, " (gave up after %u attempts in %.1f s)", c->transient_fails,
			 (double)(now - c->transient_since) / 1e9);
		return false;
	}
	snprintf(why + n, len - n, " (retry %u of %u)", c->transient_fails, max);
	return true;
}

/* Tears the failed connection down and decides: retry, move on (goaway), or give up. */
static void handle_failure(struct qs_client *c)
{
	enum qs_fail_kind kind = c->fail;
	bool busy = kind == QS_FAIL_BUSY || c->busy_hint;
	bool brief = kind == QS_FAIL_BUSY && c->busy_brief;
	char why[sizeof(c->fail_reason) + 64];
	snprintf(why, sizeof(why), "%s", c->fail_reason);
	qs_conn_teardown(c, true);
	c->busy_hint = c->busy_brief = false;
	if (c->goaway_ev)
		event_del(c->goaway_ev);
	c->fail = QS_FAIL_NONE;
	bool retry = kind == QS_FAIL_BUSY || kind == QS_FAIL_GOAWAY || (kind == QS_FAIL_LOST && c->ever_connected) ||
		     (kind == QS_FAIL_TRANSIENT && !c->opts.raw && transient_retry(c, why, sizeof(why)));
	if (c->opts.raw || !retry) {
		c->failed = true;
		state(c, QS_CLIENT_FAILED, why);
	} else if (kind == QS_FAIL_GOAWAY) {
		state(c, QS_CLIENT_GOAWAY, why);
		schedule_connect(c, 0);
	} else {
		unsigned ms = next_backoff(c, busy, brief);
		size_t n = strlen(why);
		snprintf(why + n, sizeof(why) - n, "; again in %u ms", ms);
		state(c, QS_CLIENT_LOST, why);
		schedule_connect(c, ms);
	}
}

/* After 'G', the move waits until every frame written on this connection is answered. */
static bool goaway_drained(struct qs_client *c)
{
	for (struct qs_stream *s = c->streams; s; s = s->next)
		if (s->range && s->range->resolved < s->write_seq)
			return false;
	return true;
}

void qs_client_after_io(struct qs_client *c)
{
	if (c->fail) {
		handle_failure(c);
		return;
	}
	if (c->closing && !c->closed) {
		qs_conn_teardown(c, true);
		event_del(c->retry_ev);
		c->closed = true;
		state(c, QS_CLIENT_CLOSED, "closed");
		return;
	}
	qs_streams_release(c);
	if (c->conn && c->goaway && !c->opts.raw && goaway_drained(c)) {
		qs_client_fail(c, QS_FAIL_GOAWAY, "server going away");
		handle_failure(c);
	}
}

void qs_client_on_handshake(struct qs_client *c)
{
	c->handshake_done = c->ever_connected = true;
	c->transient_fails = 0;
	qs_tls_on_handshake(c);
	state(c, QS_CLIENT_CONNECTED, "connected");
	qs_io_schedule_write(c);
}

static void goaway_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_client *c = arg;
	if (c->conn && c->goaway) {
		qs_client_fail(c, QS_FAIL_GOAWAY, "server going away (answers still missing)");
		handle_failure(c);
	}
}

void qs_client_on_goaway(struct qs_client *c, uint32_t ms)
{
	if (c->opts.raw || c->goaway)
		return; /* raw mode only reports it */
	c->goaway = true;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(c->goaway_ev, &tv);
}

/* The host part of "host:port" / "[v6]:port": the default name to verify. */
static void host_part(const char *addr, char *out, size_t len)
{
	const char *b = addr, *e;
	if (*b == '[') {
		b++;
		e = strchr(b, ']');
	} else {
		e = strrchr(b, ':');
	}
	size_t n = e ? (size_t)(e - b) : strlen(b);
	snprintf(out, len, "%.*s", (int)n, b);
}

static int auth_message(struct qs_client *c, const void *token, size_t len, char *err, size_t errlen)
{
	if (!token)
		return 0;
	if (len == 0 || len > QS_AUTH_TOKEN_MAX) {
		snprintf(err, errlen, "token: expected 1 to %d bytes, got %zu", QS_AUTH_TOKEN_MAX, len);
		return -1;
	}
	if (!(c->auth_msg = malloc(QS_AUTH_HDR_LEN + len))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	qs_auth_header_encode(c->auth_msg, (uint16_t)len);
	memcpy(c->auth_msg + QS_AUTH_HDR_LEN, token, len);
	c->auth_len = QS_AUTH_HDR_LEN + len;
	return 0;
}

struct qs_client *qs_client_new(struct event_base *base, const struct qs_client_opts *opts,
				const struct qs_client_callbacks *cb, void *ud, char *err, size_t errlen)
{
	struct qs_client *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	c->opts = *opts;
	c->cb = *cb;
	c->ud = ud;
	c->fd = -1;
	c->opts.token = NULL; /* ours is c->auth_msg */
	if (qs_addr_parse(opts->server_addr, &c->remote, err, errlen) < 0 ||
	    qs_cred_get(&c->cred, opts, err, errlen) < 0 ||
	    auth_message(c, opts->token, opts->token_len, err, errlen) < 0) {
		qs_cred_put(c->cred);
		free(c);
		return NULL;
	}
	if (opts->server_name && *opts->server_name)
		snprintf(c->server_name, sizeof(c->server_name), "%s", opts->server_name);
	else
		host_part(opts->server_addr, c->server_name, sizeof(c->server_name));
	if (opts->have_session)
		memcpy(c->session, opts->session, QS_SESSION_ID_LEN);
	else /* the client's secret: whoever knows it can resend under its event ids */
		gnutls_rnd(GNUTLS_RND_RANDOM, c->session, QS_SESSION_ID_LEN);
	qs_window_init(&c->win, opts->first_seq, opts->streams ? opts->streams : 4, opts->range_events,
		       opts->range_bytes);
	c->retry_ev = evtimer_new(base, connect_cb, c);
	c->goaway_ev = evtimer_new(base, goaway_cb, c);
	schedule_connect(c, 0); /* connect from the loop, so callbacks never run inside _new */
	return c;
}

int64_t qs_client_send(struct qs_client *c, const void *data, uint32_t len, uint64_t tag)
{
	int64_t seq = qs_window_push(&c->win, data, len, tag);
	if (seq >= 0 && c->conn)
		qs_io_schedule_write(c);
	return seq;
}

void qs_client_flush(struct qs_client *c)
{
	qs_window_assign(&c->win);
	qs_window_close_open(&c->win);
	if (c->conn)
		qs_io_schedule_write(c);
}

int qs_client_send_raw(struct qs_client *c, const void *data, size_t len)
{
	if (!c->opts.raw || c->raw_given)
		return -1;
	c->raw = malloc(len ? len : 1);
	if (!c->raw)
		return -1;
	memcpy(c->raw, data, len);
	c->raw_len = len;
	c->raw_given = true;
	if (c->conn)
		qs_io_schedule_write(c);
	return 0;
}

size_t qs_client_buffered_bytes(const struct qs_client *c)
{
	return c->win.bytes;
}

uint64_t qs_client_unresolved(const struct qs_client *c)
{
	return c->win.unresolved;
}

uint64_t qs_client_sent(const struct qs_client *c)
{
	return c->sent_events;
}

void qs_client_reconnect(struct qs_client *c)
{
	if (!c->conn || c->closing || c->failed || c->fail != QS_FAIL_NONE)
		return;
	/* as after the server's 'G': close this connection, connect again at once */
	qs_client_fail(c, QS_FAIL_GOAWAY, "reconnecting (asked)");
	handle_failure(c);
}

uint64_t qs_client_resumed(const struct qs_client *c)
{
	return c->resumed;
}

const char *qs_client_held_at(const struct qs_client *c, uint64_t *notices)
{
	if (notices)
		*notices = c->notices;
	return c->notices ? c->held_at : NULL;
}

bool qs_client_connected(const struct qs_client *c)
{
	return c->handshake_done;
}

size_t qs_client_path_max_payload(const struct qs_client *c)
{
	return c->conn && c->handshake_done ? ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn) : 0;
}

void qs_client_session_hex(const struct qs_client *c, char out[2 * QS_SESSION_ID_LEN + 1])
{
	for (int i = 0; i < QS_SESSION_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", c->session[i]);
}

void qs_client_close(struct qs_client *c)
{
	if (c->closing)
		return;
	if (getenv("QS_DEBUG_CC") && c->conn) {
		ngtcp2_conn_info ci;
		ngtcp2_conn_get_conn_info(c->conn, &ci);
		fprintf(stderr, "CC: cwnd %llu srtt %.3f ms min_rtt %.3f ms latest %.3f rttvar %.3f inflight %llu lost? \n",
			(unsigned long long)ci.cwnd, ci.smoothed_rtt / 1e6, ci.min_rtt / 1e6, ci.latest_rtt / 1e6,
			ci.rttvar / 1e6, (unsigned long long)ci.bytes_in_flight);
	}
	c->closing = true;
	qs_io_schedule_write(c); /* never call ngtcp2 from inside its callbacks */
}

void qs_client_free(struct qs_client *c)
{
	if (!c)
		return;
	qs_conn_teardown(c, true);
	event_free(c->retry_ev);
	event_free(c->goaway_ev);
	if (c->write_ev)
		event_free(c->write_ev);
	qs_window_free(&c->win);
	qs_cred_put(c->cred);
	qs_tls_forget_ticket(c);
	if (c->auth_msg)
		gnutls_memset(c->auth_msg, 0, c->auth_len); /* the token must not linger in the heap */
	free(c->auth_msg);
	free(c->raw);
	free(c);
}

/* Unit tests for ipc/chan: framed messages over AF_UNIX stream sockets, both
 * ends in one process and one event loop. Order and byte-exactness, a
 * message larger than the socket buffers, the sender's limit and on_writable,
 * pausing the receiver (also from inside its callback, also for a sender that
 * connects while paused), a sender started before its receiver, a receiver
 * restarted under its senders, a receiver handing over to the next one, the max_msg cut-off, the stale socket file and
 * qs_chan_path. Every wait runs the loop against a deadline: nothing blocks. */
#include "tests/unit/check.h"
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipc/chan.h"
#include "tests/unit/pump.h"

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)

static char tmpdir[] = "/tmp/qs-test-chan-XXXXXX";

/* ---- message contents ---- */

/* Message number `seed`: a xorshift stream, so a lost, repeated, reordered,
 * shifted or corrupted byte shows, and so does a message in the wrong place. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 0x9e3779b9u;
	if (!x)
		x = 1;
	for (size_t j = 0; j < len; j++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[j] = (uint8_t)x;
	}
}

static bool matches(const void *msg, size_t len, uint32_t seed)
{
	uint8_t *want = malloc(len ? len : 1);
	if (!want)
		abort();
	fill(want, len, seed);
	bool ok = memcmp(msg, want, len) == 0;
	free(want);
	return ok;
}

/* Sizes of message i per test: 1 byte .. 64 KiB (both ends included). */
static size_t size_mixed(unsigned i)
{
	if (i == 0)
		return 1;
	if (i == 1)
		return 64 * KIB;
	return 1 + (size_t)(i * 7919u) % (64 * KIB);
}

static size_t size_big(unsigned i)
{
	return i == 0 ? 3 * MIB : 10; /* then a small one: the framing goes on after it */
}

static size_t size_64k(unsigned i)
{
	(void)i;
	return 64 * KIB;
}

static size_t size_tiny(unsigned i)
{
	return 8 + i % 8;
}

/* ---- the receiver's callback and the sender's on_writable ---- */

struct rx {
	struct qs_chan_in *in;
	size_t (*size_of)(unsigned i); /* set: message i must be size_of(i) bytes of fill(i) */
	unsigned pause_after;          /* set: the callback pauses `in` after this many messages */
	unsigned first;                /* with size_of: the number of the first message expected */
	unsigned n;                    /* messages delivered */
	unsigned bad;                  /* delivered, but not the one expected next */
	size_t max_len;                /* the longest message delivered */
	char last[64];                 /* the last message, as a string (short messages) */
};

static void on_msg(void *arg, const void *msg, size_t len)
{
	struct rx *r = arg;
	if (r->size_of) {
		size_t want = r->size_of(r->first + r->n);
		if (len != want || !matches(msg, len, r->first + r->n)) {
			if (r->bad++ < 3)
				fprintf(stderr, "  (%s: message %u: %zu bytes, want %zu, %s)\n",
					current_test, r->n, len, want,
					len == want ? "contents differ" : "length differs");
		}
	}
	if (len > r->max_len)
		r->max_len = len;
	size_t k = len < sizeof(r->last) - 1 ? len : sizeof(r->last) - 1;
	memcpy(r->last, msg, k);
	r->last[k] = '\0';
	r->n++;
	if (r->pause_after && r->n == r->pause_after)
		qs_chan_in_pause(r->in, true);
}

struct wr {
	unsigned calls;
};

static void on_writable(void *arg)
{
	((struct wr *)arg)->calls++;
}

/* ---- helpers ---- */

static void sock_path(char *p, size_t n, const char *name)
{
	if ((size_t)snprintf(p, n, "%s/%s", tmpdir, name) >= n)
		abort();
}

/* Sends messages first..first+count-1 (size_of(i) bytes of fill(i)) in
 * order; a "not now" is retried after a loop pass, for at most ms in all.
 * Returns how many were queued. */
static unsigned send_range(struct event_base *base, struct qs_chan_out *out, unsigned first,
			   unsigned count, size_t (*size_of)(unsigned), double ms)
{
	double dl = now_ms() + ms;
	unsigned sent = 0;
	uint8_t *buf = NULL;
	for (unsigned i = first; i < first + count; i++) {
		size_t len = size_of(i);
		buf = realloc(buf, len);
		if (!buf)
			abort();
		fill(buf, len, i);
		int rc;
		while ((rc = qs_chan_send(out, buf, len)) == 1 && now_ms() < dl)
			pump_once(base);
		if (rc != 0)
			break;
		sent++;
	}
	free(buf);
	return sent;
}

static int send_str(struct qs_chan_out *out, const char *s)
{
	return qs_chan_send(out, s, strlen(s));
}

/* Against a paused receiver: sends `len`-byte messages (fill(i), i from 0)
 * until refused twice in a row with 100 ms of loop in between (the first
 * refusal may only mean the kernel has not taken the bytes yet); bounded by
 * 10000 tries and 20 s. True if it was refused; *accepted = messages queued. */
static bool send_until_refused(struct event_base *base, struct qs_chan_out *out, size_t len,
			       unsigned *accepted)
{
	uint8_t *buf = malloc(len);
	if (!buf)
		abort();
	unsigned tries = 0;
	bool refused = false, full = false;
	double dl = now_ms() + 20000;
	*accepted = 0;
	while (!full && tries < 10000 && now_ms() < dl) {
		tries++;
		fill(buf, len, *accepted);
		if (qs_chan_send(out, buf, len) == 0) {
			(*accepted)++;
			refused = false;
			pump_once(base);
		} else if (refused) {
			full = true;
		} else {
			refused = true;
			pump_for(base, 100);
		}
	}
	free(buf);
	return full;
}

/* One receiver and one sender on tmpdir/name, waited for until the sender
 * is connected and the receiver has accepted it (both checked).
 * pause_first: the receiver is paused before the sender connects. false
 * when either end could not be made (then only pair_close is left to do). */
struct pair {
	struct event_base *base;
	struct qs_chan_in *in;
	struct qs_chan_out *out;
};

static bool pair_open(struct pair *pr, const char *name, size_t max_msg, size_t limit, struct rx *r,
		      struct wr *w, bool pause_first)
{
	char p[108];
	sock_path(p, sizeof(p), name);
	pr->base = event_base_new();
	pr->in = qs_chan_listen(pr->base, p, max_msg, on_msg, r);
	CHECK(pr->in != NULL);
	if (pr->in && pause_first)
		qs_chan_in_pause(pr->in, true);
	pr->out = qs_chan_connect(pr->base, p, limit, on_writable, w);
	CHECK(pr->out != NULL);
	if (!pr->in || !pr->out)
		return false;
	PUMP_UNTIL(pr->base, 2000, qs_chan_connected(pr->out) && qs_chan_in_peers(pr->in) == 1);
	CHECK(qs_chan_connected(pr->out));
	CHECK_EQ(qs_chan_in_peers(pr->in), 1);
	return true;
}

static void pair_close(struct pair *pr)
{
	qs_chan_out_free(pr->out);
	qs_chan_in_free(pr->in);
	event_base_free(pr->base);
}

/* ---- the tests ---- */

/* 1000 messages of 1 byte .. 64 KiB through a 1 MiB limit arrive all, in
 * order, each byte-exact. */
static void test_order_integrity(void)
{
	current_test = "order_integrity";
	struct rx r = {.size_of = size_mixed};
	struct wr w = {0};
	struct pair pr;
	if (pair_open(&pr, "order.sock", 64 * KIB, 1 * MIB, &r, &w, false)) {
		CHECK_EQ(send_range(pr.base, pr.out, 0, 1000, size_mixed, 20000), 1000);
		PUMP_UNTIL(pr.base, 20000, r.n >= 1000);
		CHECK_EQ(r.n, 1000);
		CHECK_EQ(r.bad, 0);
		CHECK_EQ(r.max_len, 64 * KIB); /* a message of exactly max_msg is delivered */
	}
	pair_close(&pr);
}

/* A 3 MiB message (far more than the kernel's socket buffers hold) arrives
 * whole and byte-exact, and the message after it too. */
static void test_big_message(void)
{
	current_test = "big_message";
	struct rx r = {.size_of = size_big};
	struct wr w = {0};
	struct pair pr;
	if (pair_open(&pr, "big.sock", 4 * MIB, 8 * MIB, &r, &w, false)) {
		CHECK_EQ(send_range(pr.base, pr.out, 0, 2, size_big, 5000), 2);
		PUMP_UNTIL(pr.base, 20000, r.n >= 2);
		CHECK_EQ(r.n, 2);
		CHECK_EQ(r.bad, 0);
		CHECK_EQ(r.max_len, 3 * MIB);
	}
	pair_close(&pr);
}

/* Backpressure: against a paused receiver the sender refuses ("not now")
 * once about `limit` bytes wait, so what it accepts is bounded (limit plus
 * what the sockets hold plus one message) and nothing is delivered; after
 * resuming, everything accepted arrives in order, on_writable is called once
 * the backlog drained, and sending succeeds again. */
static void test_backpressure(void)
{
	current_test = "backpressure";
	const size_t limit = 1 * MIB, len = 64 * KIB;
	struct rx r = {.size_of = size_64k};
	struct wr w = {0};
	struct pair pr;
	if (!pair_open(&pr, "bp.sock", 128 * KIB, limit, &r, &w, false))
		goto done;
	struct event_base *base = pr.base;
	struct qs_chan_in *in = pr.in;
	struct qs_chan_out *out = pr.out;
	qs_chan_in_pause(in, true);

	unsigned accepted = 0;
	CHECK(send_until_refused(base, out, len, &accepted));
	size_t bytes = (size_t)accepted * len;
	fprintf(stderr, "  (%s: %u messages, %zu KiB accepted before \"not now\")\n", current_test,
		accepted, bytes / KIB);
	CHECK(bytes < limit + 8 * MIB); /* bounded: no unlimited queue anywhere */
	CHECK(bytes + len > limit);     /* refused only once about `limit` bytes wait */
	CHECK_EQ(r.n, 0);               /* paused: nothing delivered */

	w.calls = 0;
	qs_chan_in_pause(in, false);
	PUMP_UNTIL(base, 10000, r.n >= accepted && w.calls > 0);
	CHECK_EQ(r.n, accepted);
	CHECK_EQ(r.bad, 0);
	CHECK(w.calls > 0); /* told that sending may succeed again */
	uint8_t *buf = malloc(len);
	if (!buf)
		abort();
	fill(buf, len, accepted);
	CHECK_EQ(qs_chan_send(out, buf, len), 0);
	PUMP_UNTIL(base, 2000, r.n >= accepted + 1);
	CHECK_EQ(r.n, accepted + 1);
	CHECK_EQ(r.bad, 0);
	free(buf);
done:
	pair_close(&pr);
}

/* Pausing from inside the callback stops delivery right there, even with
 * the rest of the burst already read; resuming delivers what waits without
 * any new input (on the next loop pass), in order. The burst is small
 * (40 messages, under 700 bytes) so that one read takes all of it: then
 * nothing but the resume itself can bring the rest. */
static void test_pause_in_callback(void)
{
	current_test = "pause_in_callback";
	struct rx r = {.size_of = size_tiny, .pause_after = 1};
	struct wr w = {0};
	struct pair pr;
	if (pair_open(&pr, "pause.sock", 4096, 1 * MIB, &r, &w, false)) {
		struct event_base *base = pr.base;
		struct qs_chan_in *in = pr.in;
		struct qs_chan_out *out = pr.out;
		r.in = in;
		/* all queued before the loop runs: one burst */
		CHECK_EQ(send_range(base, out, 0, 40, size_tiny, 0), 40);
		PUMP_UNTIL(base, 2000, r.n >= 1);
		CHECK_EQ(r.n, 1);
		pump_for(base, 200);
		CHECK_EQ(r.n, 1); /* paused: the rest waits */

		r.pause_after = 0;
		qs_chan_in_pause(in, false);
		for (int k = 0; k < 3 && r.n == 1; k++)
			event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		CHECK(r.n > 1); /* "resuming delivers it on the next loop pass" */
		PUMP_UNTIL(base, 2000, r.n >= 40);
		CHECK_EQ(r.n, 40);
		CHECK_EQ(r.bad, 0);
	}
	pair_close(&pr);
}

/* A pause holds for a sender that connects while the receiver is paused:
 * nothing is delivered and its socket is not read, so it sees "not now"
 * after a bounded amount; resuming delivers it all, in order. */
static void test_pause_new_sender(void)
{
	current_test = "pause_new_sender";
	const size_t limit = 1 * MIB, len = 64 * KIB;
	struct rx r = {.size_of = size_64k};
	struct wr w = {0};
	struct pair pr;
	if (pair_open(&pr, "pausenew.sock", 128 * KIB, limit, &r, &w, true)) {
		unsigned accepted = 0;
		CHECK(send_until_refused(pr.base, pr.out, len, &accepted));
		CHECK((size_t)accepted * len < limit + 8 * MIB);
		CHECK_EQ(r.n, 0);
		qs_chan_in_pause(pr.in, false);
		PUMP_UNTIL(pr.base, 10000, r.n >= accepted);
		CHECK_EQ(r.n, accepted);
		CHECK_EQ(r.bad, 0);
	}
	pair_close(&pr);
}

/* A sender started before its receiver: not connected, sending refused (and
 * not kept); once the receiver listens it connects within the retry delay
 * (at most 500 ms), calls on_writable, and a message then arrives. */
static void test_sender_first(void)
{
	current_test = "sender_first";
	struct event_base *base = event_base_new();
	char p[108];
	sock_path(p, sizeof(p), "late.sock");
	struct rx r = {0};
	struct wr w = {0};
	struct qs_chan_in *in = NULL;
	struct qs_chan_out *out = qs_chan_connect(base, p, 1 * MIB, on_writable, &w);
	CHECK(out != NULL);
	if (!out)
		goto done;
	CHECK(!qs_chan_connected(out));
	CHECK_EQ(send_str(out, "early"), 1);
	pump_for(base, 100); /* a few attempts fail */
	CHECK(!qs_chan_connected(out));
	CHECK_EQ(send_str(out, "early"), 1);

	in = qs_chan_listen(base, p, 4096, on_msg, &r);
	CHECK(in != NULL);
	if (!in)
		goto done;
	PUMP_UNTIL(base, 2000, qs_chan_connected(out) && w.calls > 0);
	CHECK(qs_chan_connected(out));
	CHECK(w.calls > 0);
	CHECK_EQ(send_str(out, "hello"), 0);
	PUMP_UNTIL(base, 2000, r.n >= 1);
	pump_for(base, 50);
	CHECK_EQ(r.n, 1); /* the refused "early" was not kept */
	CHECK(strcmp(r.last, "hello") == 0);
done:
	qs_chan_out_free(out);
	qs_chan_in_free(in);
	event_base_free(base);
}

/* A receiver restarted under two senders: both see the loss and refuse
 * meanwhile; what was queued on the broken connection is lost whole (no
 * stale bytes, no half message on the next connection); both reconnect to
 * the new listener at the same path, call on_writable, are counted, and are
 * heard; a sender that goes away is no longer counted. */
static void test_receiver_restart(void)
{
	current_test = "receiver_restart";
	struct event_base *base = event_base_new();
	char p[108];
	sock_path(p, sizeof(p), "restart.sock");
	struct rx r1 = {0}, r2 = {0};
	struct wr wa = {0}, wb = {0};
	struct qs_chan_in *in1 = qs_chan_listen(base, p, 128 * KIB, on_msg, &r1), *in2 = NULL;
	struct qs_chan_out *a = qs_chan_connect(base, p, 1 * MIB, on_writable, &wa);
	struct qs_chan_out *b = qs_chan_connect(base, p, 1 * MIB, on_writable, &wb);
	CHECK(in1 != NULL);
	CHECK(a != NULL && b != NULL);
	if (!in1 || !a || !b)
		goto done;
	PUMP_UNTIL(base, 2000,
		   qs_chan_connected(a) && qs_chan_connected(b) && qs_chan_in_peers(in1) == 2);
	CHECK(qs_chan_connected(a) && qs_chan_connected(b));
	CHECK_EQ(qs_chan_in_peers(in1), 2);
	CHECK_EQ(send_str(a, "a1"), 0);
	CHECK_EQ(send_str(b, "b1"), 0);
	PUMP_UNTIL(base, 2000, r1.n >= 2);
	CHECK_EQ(r1.n, 2);

	/* leave a with a backlog (most likely a message half written) */
	qs_chan_in_pause(in1, true);
	unsigned accepted = 0;
	CHECK(send_until_refused(base, a, 64 * KIB, &accepted));
	qs_chan_in_free(in1);
	in1 = NULL;
	PUMP_UNTIL(base, 2000, !qs_chan_connected(a) && !qs_chan_connected(b));
	CHECK(!qs_chan_connected(a));
	CHECK(!qs_chan_connected(b));
	CHECK_EQ(send_str(a, "lost"), 1);

	wa.calls = wb.calls = 0;
	in2 = qs_chan_listen(base, p, 128 * KIB, on_msg, &r2);
	CHECK(in2 != NULL);
	if (!in2)
		goto done;
	PUMP_UNTIL(base, 3000,
		   qs_chan_connected(a) && qs_chan_connected(b) && qs_chan_in_peers(in2) == 2 &&
			   wa.calls > 0 && wb.calls > 0);
	CHECK(qs_chan_connected(a) && qs_chan_connected(b));
	CHECK_EQ(qs_chan_in_peers(in2), 2);
	CHECK(wa.calls > 0 && wb.calls > 0); /* "after a (re)connection" */
	CHECK_EQ(send_str(a, "a2"), 0);
	PUMP_UNTIL(base, 2000, r2.n >= 1);
	pump_for(base, 50);
	CHECK_EQ(r2.n, 1);
	CHECK(strcmp(r2.last, "a2") == 0);
	CHECK_EQ(r2.max_len, 2);  /* nothing of the old backlog */
	CHECK_EQ(qs_chan_in_peers(in2), 2); /* and a was not cut off for it */
	CHECK_EQ(r1.n, 2); /* the freed receiver's callback is never called again */

	qs_chan_out_free(b);
	b = NULL;
	PUMP_UNTIL(base, 2000, qs_chan_in_peers(in2) == 1);
	CHECK_EQ(qs_chan_in_peers(in2), 1);
done:
	qs_chan_out_free(a);
	qs_chan_out_free(b);
	qs_chan_in_free(in1);
	qs_chan_in_free(in2);
	event_base_free(base);
}

/* The shipper's clean stop on a reload (issue 25): a sender that keeps what
 * it has not written wholly (qs_chan_out_keep) and a backlog (most likely a
 * message half written); the receiver finishes (qs_chan_in_finish): it
 * delivers what its socket held and ends the connection; a new receiver at
 * the path gets the rest. Every message arrives exactly once, in order,
 * byte-exact, across the two. */
static void test_handover(void)
{
	current_test = "handover";
	struct rx r1 = {.size_of = size_64k}, r2 = {.size_of = size_64k};
	struct wr w = {0};
	struct pair pr;
	struct qs_chan_in *in2 = NULL;
	if (!pair_open(&pr, "handover.sock", 128 * KIB, 1 * MIB, &r1, &w, false))
		goto done;
	qs_chan_out_keep(pr.out);
	qs_chan_in_pause(pr.in, true);
	unsigned accepted = 0;
	CHECK(send_until_refused(pr.base, pr.out, 64 * KIB, &accepted));
	CHECK(qs_chan_unsent(pr.out) > 0); /* a backlog the socket did not take */
	qs_chan_in_pause(pr.in, false);
	qs_chan_in_finish(pr.in);
	PUMP_UNTIL(pr.base, 3000, qs_chan_in_peers(pr.in) == 0 && !qs_chan_connected(pr.out));
	CHECK_EQ(qs_chan_in_peers(pr.in), 0);
	CHECK(!qs_chan_connected(pr.out));
	CHECK(r1.n > 0 && r1.n < accepted);
	char p[108];
	sock_path(p, sizeof(p), "handover.sock");
	r2.first = r1.n;
	in2 = qs_chan_listen(pr.base, p, 128 * KIB, on_msg, &r2);
	CHECK(in2 != NULL);
	if (!in2)
		goto done;
	PUMP_UNTIL(pr.base, 5000, r1.n + r2.n >= accepted);
	pump_for(pr.base, 50);
	CHECK_EQ(r1.n + r2.n, accepted);
	CHECK_EQ(r1.bad, 0);
	CHECK_EQ(r2.bad, 0);
	CHECK_EQ(qs_chan_unsent(pr.out), 0);
done:
	qs_chan_in_free(in2);
	pair_close(&pr);
}

/* max_msg = 1000: a 2000-byte message is never delivered and its sender is
 * cut off (then reconnects and is heard again); a second sender is not
 * disturbed, and a message of exactly 1000 bytes is delivered. */
static void test_oversized(void)
{
	current_test = "oversized";
	struct event_base *base = event_base_new();
	char p[108];
	sock_path(p, sizeof(p), "over.sock");
	struct rx r = {0};
	struct wr wa = {0}, wb = {0};
	struct qs_chan_in *in = qs_chan_listen(base, p, 1000, on_msg, &r);
	struct qs_chan_out *a = qs_chan_connect(base, p, 1 * MIB, on_writable, &wa);
	struct qs_chan_out *b = qs_chan_connect(base, p, 1 * MIB, on_writable, &wb);
	CHECK(in != NULL);
	CHECK(a != NULL && b != NULL);
	if (!in || !a || !b)
		goto done;
	PUMP_UNTIL(base, 2000,
		   qs_chan_connected(a) && qs_chan_connected(b) && qs_chan_in_peers(in) == 2);
	CHECK_EQ(qs_chan_in_peers(in), 2);

	char big[2000];
	memset(big, 'A', sizeof(big));
	CHECK_EQ(qs_chan_send(a, big, sizeof(big)), 0);
	bool cut = false;
	double dl = now_ms() + 2000;
	while (!cut && now_ms() < dl) {
		pump_once(base);
		cut = qs_chan_in_peers(in) < 2 || !qs_chan_connected(a);
	}
	CHECK(cut);

	char edge[1000];
	memset(edge, 'B', sizeof(edge));
	CHECK_EQ(qs_chan_send(b, edge, sizeof(edge)), 0);
	CHECK_EQ(send_str(b, "b-small"), 0);
	PUMP_UNTIL(base, 2000, r.n >= 2);
	CHECK_EQ(r.n, 2);
	CHECK_EQ(r.max_len, 1000); /* exactly max_msg passes, the 2000 bytes never did */
	CHECK(strcmp(r.last, "b-small") == 0);

	/* the cut-off sender comes back (the receiver closed first, so two
	 * peers again means a reconnected) and is heard */
	PUMP_UNTIL(base, 3000, qs_chan_in_peers(in) == 2 && qs_chan_connected(a));
	CHECK_EQ(qs_chan_in_peers(in), 2);
	CHECK(qs_chan_connected(a));
	CHECK_EQ(send_str(a, "a-small"), 0);
	PUMP_UNTIL(base, 2000, r.n >= 3);
	pump_for(base, 50);
	CHECK_EQ(r.n, 3);
	CHECK(strcmp(r.last, "a-small") == 0);
	CHECK_EQ(r.max_len, 1000);
done:
	qs_chan_out_free(a);
	qs_chan_out_free(b);
	qs_chan_in_free(in);
	event_base_free(base);
}

/* A stale socket file (left by a receiver that died) is replaced; listening
 * where it cannot (no such directory) returns NULL. */
static void test_stale_socket(void)
{
	current_test = "stale_socket";
	struct event_base *base = event_base_new();
	char p[108];
	sock_path(p, sizeof(p), "stale.sock");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, p, strlen(p) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	if (fd >= 0)
		close(fd); /* the file stays: nobody listens there */
	CHECK(access(p, F_OK) == 0);

	struct rx r = {0};
	struct wr w = {0};
	struct qs_chan_in *in = qs_chan_listen(base, p, 4096, on_msg, &r);
	CHECK(in != NULL);
	struct qs_chan_out *out = qs_chan_connect(base, p, 1 * MIB, on_writable, &w);
	CHECK(out != NULL);
	if (in && out) {
		PUMP_UNTIL(base, 2000, qs_chan_connected(out));
		CHECK(qs_chan_connected(out));
		CHECK_EQ(send_str(out, "fresh"), 0);
		PUMP_UNTIL(base, 2000, r.n >= 1);
		CHECK_EQ(r.n, 1);
		CHECK(strcmp(r.last, "fresh") == 0);
	}
	qs_chan_out_free(out);
	qs_chan_in_free(in);

	char nodir[108];
	sock_path(nodir, sizeof(nodir), "no-such-dir/x.sock");
	struct qs_chan_in *bad = qs_chan_listen(base, nodir, 4096, on_msg, &r);
	CHECK(bad == NULL);
	qs_chan_in_free(bad);
	event_base_free(base);
}

/* qs_chan_path builds "<dir>/<name>" with name = printf(fmt, slot); with
 * dir "" the endpoint is at the root ("/<name>"); -1 once the path does not
 * fit in sockaddr_un's sun_path (108 bytes with the NUL: 107 characters fit,
 * 108 do not), whatever room outlen gives. */
static void test_path(void)
{
	current_test = "path";
	char out[256];
	CHECK(qs_chan_path(out, sizeof(out), "/run/quicstash", "shipper-%u.sock", 3) >= 0);
	CHECK(strcmp(out, "/run/quicstash/shipper-3.sock") == 0);
	CHECK(qs_chan_path(out, sizeof(out), "", "parser-%u.sock", 12) >= 0);
	CHECK(strcmp(out, "/parser-12.sock") == 0);

	char dir[128];
	dir[0] = '/';
	memset(dir + 1, 'd', 102);
	dir[103] = '\0'; /* 103 + "/" + "s-7" = 107 characters */
	CHECK(qs_chan_path(out, sizeof(out), dir, "s-%u", 7) >= 0);
	CHECK_EQ(strlen(out), 107);
	dir[103] = 'd';
	dir[104] = '\0'; /* 108 characters */
	CHECK_EQ(qs_chan_path(out, sizeof(out), dir, "s-%u", 7), -1);
	dir[60] = '\0'; /* a short dir, the name makes it too long */
	CHECK_EQ(qs_chan_path(out, sizeof(out), dir,
			      "a-very-long-endpoint-name-that-goes-on-and-on-%u.sock", 4000000000u),
		 -1);
	CHECK(qs_chan_path(out, sizeof(out), dir, "n-%u", 4000000000u) >= 0);
	CHECK(strlen(out) == 61 + strlen("n-4000000000"));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as every quicstash process does (ipc/child.c) */
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_path();
	test_order_integrity();
	test_big_message();
	test_backpressure();
	test_pause_in_callback();
	test_pause_new_sender();
	test_sender_first();
	test_receiver_restart();
	test_handover();
	test_oversized();
	test_stale_socket();

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return check_report();
}

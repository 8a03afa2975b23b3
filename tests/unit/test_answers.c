/* Unit tests for ipc/answers: the fan-out of answers to the acceptors'
 * channels, against real AF_UNIX channels (ipc/chan.h) in one event loop.
 * Each answer reaches its own channel's receiver, in order, in ANSWERS
 * messages with the sender's id; a big burst is cut into messages near
 * QS_BATCH_SOFT_BYTES; a message for every channel (STATUS) reaches each,
 * and is never kept for one that cannot take it; a receiver that starts
 * late, or pauses, gets everything once it reads (within the stale age); a channel
 * that takes nothing has its answers dropped after 2 s, not before, and
 * never delivered late; an announced acceptor is connected at once and the
 * owner told of each new connection. Every wait runs the loop against a deadline. */
#include "tests/unit/check.h"
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/answers.h"
#include "ipc/chan.h"
#include "ipc/msg.h"
#include "ipc/zsock.h"
#include "tests/unit/pump.h"

#define NCHAN 3
#define SENDER 5
#define MAX_RECS 100000

static char tmpdir[] = "/tmp/qs-test-answers-XXXXXX";

/* ---- one acceptor's end: what reached it ---- */

struct rx {
	struct qs_chan_in *in;
	unsigned msgs, status, bad; /* messages; STATUS among them; malformed or from another sender */
	size_t max_len;
	unsigned n;                 /* answer records */
	uint64_t ticket[MAX_RECS];
	uint16_t code[MAX_RECS];
	char reason[4][64];         /* of the first four records */
};

static struct rx rx[NCHAN];

static void take_answers(struct rx *r, struct qs_batch_iter *it)
{
	struct qs_answer_rec ar;
	const uint8_t *reason;
	int rc;
	while ((rc = qs_batch_next(it, &ar, sizeof(ar), qs_answer_rec_payload, &reason)) == 1) {
		if (r->n < 4)
			snprintf(r->reason[r->n], sizeof(r->reason[0]), "%.*s", (int)ar.reason_len, reason);
		if (r->n < MAX_RECS) {
			r->ticket[r->n] = ar.ticket;
			r->code[r->n] = ar.code;
		}
		r->n++;
	}
	if (rc < 0)
		r->bad++;
}

static void on_msg(void *arg, const void *msg, size_t len)
{
	struct rx *r = arg;
	struct qs_batch_iter it;
	const char *why;
	r->msgs++;
	if (len > r->max_len)
		r->max_len = len;
	if (qs_batch_open(&it, msg, len, &why) != 0 || it.sender != SENDER) {
		r->bad++;
		return;
	}
	if (it.type == QS_MSG_STATUS)
		r->status++;
	else if (it.type == QS_MSG_ANSWERS)
		take_answers(r, &it);
	else
		r->bad++;
}

static bool listen_on(struct event_base *base, unsigned c)
{
	char p[108];
	memset(&rx[c], 0, sizeof(rx[c]));
	CHECK(qs_chan_path(p, sizeof(p), tmpdir, QS_EP_ACCEPTOR_ANSWERS, c) == 0);
	rx[c].in = qs_chan_listen(base, p, 4u << 20, on_msg, &rx[c]);
	CHECK(rx[c].in != NULL);
	return rx[c].in != NULL;
}

static void unlisten_all(void)
{
	for (unsigned c = 0; c < NCHAN; c++) {
		qs_chan_in_free(rx[c].in);
		rx[c].in = NULL;
	}
}

/* The fan-out connects to all NCHAN channels, of which those in `listening`
 * (a bit per channel) have a receiver; waits until those have their sender. */
static struct qs_answers *open_fanout(struct event_base *base, unsigned listening)
{
	for (unsigned c = 0; c < NCHAN; c++)
		if ((listening >> c & 1) && !listen_on(base, c))
			return NULL;
	struct qs_answers *a = qs_answers_new(base, tmpdir, NCHAN, SENDER);
	CHECK(a != NULL);
	if (!a)
		return NULL;
	bool all = false;
	double dl = now_ms() + 2000;
	while (!all && now_ms() < dl) {
		pump_once(base);
		all = true;
		for (unsigned c = 0; c < NCHAN; c++)
			if ((listening >> c & 1) && qs_chan_in_peers(rx[c].in) != 1)
				all = false;
	}
	CHECK(all);
	return a;
}

static void send_status(struct qs_answers *a)
{
	struct qs_batch b = {0};
	struct qs_status_rec st = {.accepting = 1};
	CHECK(qs_batch_begin(&b, QS_MSG_STATUS, SENDER) == 0 && qs_batch_add(&b, &st, sizeof(st), NULL, 0) == 0);
	qs_answers_send_all(a, b.buf, b.len);
	qs_batch_free(&b);
}

/* Tickets first..first+n-1, in order, each with code `code`. */
static bool in_order(const struct rx *r, unsigned n, uint64_t first, uint16_t code)
{
	if (r->n != n)
		return false;
	for (unsigned i = 0; i < n && i < MAX_RECS; i++)
		if (r->ticket[i] != first + i || r->code[i] != code)
			return false;
	return true;
}

/* ---- the tests ---- */

/* Answers for channels 0 and 2 reach exactly those, with their codes and
 * reasons, as one ANSWERS message each from SENDER; channel 1 gets nothing;
 * a channel beyond the last is refused. Then a STATUS reaches all three. */
static void test_routing(void)
{
	current_test = "routing";
	struct event_base *base = event_base_new();
	struct qs_answers *a = open_fanout(base, 07);
	if (!a)
		goto done;
	CHECK_EQ(qs_answers_add(a, 0, 100, 0, NULL), 0);
	CHECK_EQ(qs_answers_add(a, 2, 7, 3, "bad json"), 0);
	CHECK_EQ(qs_answers_add(a, 0, 101, 0, ""), 0);
	CHECK_EQ(qs_answers_add(a, NCHAN, 1, 0, NULL), -1);
	qs_answers_flush(a);
	PUMP_UNTIL(base, 2000, rx[0].n >= 2 && rx[2].n >= 1);
	pump_for(base, 50);
	CHECK_EQ(rx[0].msgs, 1);
	CHECK(in_order(&rx[0], 2, 100, 0));
	CHECK_STR(rx[0].reason[0], "");
	CHECK_EQ(rx[2].msgs, 1);
	CHECK(in_order(&rx[2], 1, 7, 3));
	CHECK_STR(rx[2].reason[0], "bad json");
	CHECK_EQ(rx[1].msgs, 0);
	CHECK(!qs_answers_pending(a));

	send_status(a);
	PUMP_UNTIL(base, 2000, rx[0].status && rx[1].status && rx[2].status);
	for (unsigned c = 0; c < NCHAN; c++) {
		CHECK_EQ(rx[c].status, 1);
		CHECK_EQ(rx[c].bad, 0);
	}
	CHECK_EQ(rx[1].n, 0);
	CHECK_EQ_U64(qs_answers_dropped(a), 0);
done:
	qs_answers_free(a);
	unlisten_all();
	event_base_free(base);
}

/* 30,000 answers with a 40-byte reason (~1.7 MB) in one go: cut into several
 * messages, none much over QS_BATCH_SOFT_BYTES, all records in order. */
static void test_big_burst(void)
{
	current_test = "big_burst";
	const unsigned n = 30000;
	struct event_base *base = event_base_new();
	struct qs_answers *a = open_fanout(base, 02);
	if (!a)
		goto done;
	for (unsigned i = 0; i < n; i++)
		qs_answers_add(a, 1, 1000 + i, 2, "a reason of exactly forty bytes, padded.");
	qs_answers_flush(a);
	PUMP_UNTIL(base, 5000, rx[1].n >= n);
	CHECK(in_order(&rx[1], n, 1000, 2));
	CHECK(rx[1].msgs > 1);
	CHECK(rx[1].max_len <= QS_BATCH_SOFT_BYTES + 64);
	CHECK_STR(rx[1].reason[3], "a reason of exactly forty bytes, padded.");
	CHECK_EQ(rx[1].bad, 0);
done:
	qs_answers_free(a);
	unlisten_all();
	event_base_free(base);
}

/* A receiver that stops reading: its answers wait (the channel refuses once
 * 1 MiB and the socket buffers are full), a STATUS offered meanwhile reaches
 * the others but is not kept for it, and once it reads again (within 2 s)
 * every answer arrives in order and no STATUS is mixed in. A receiver that starts late gets its answers
 * too (the fan-out connects and flushes on its own). */
static void test_slow_and_late(void)
{
	current_test = "slow_and_late";
	const unsigned n = 80000; /* ~4.5 MB */
	struct event_base *base = event_base_new();
	struct qs_answers *a = open_fanout(base, 03);
	if (!a)
		goto done;
	qs_chan_in_pause(rx[0].in, true);
	for (unsigned i = 0; i < n; i++) {
		qs_answers_add(a, 0, i, 1, "a reason of exactly forty bytes, padded.");
		if (i % 1000 == 999) {
			qs_answers_flush(a);
			pump_once(base);
		}
	}
	CHECK_EQ(qs_answers_add(a, 2, 42, 0, NULL), 0); /* nobody listens on 2 yet */
	qs_answers_flush(a);
	CHECK(qs_answers_pending(a));
	send_status(a);
	pump_for(base, 100);
	CHECK_EQ(rx[1].status, 1);

	qs_chan_in_pause(rx[0].in, false);
	CHECK(listen_on(base, 2));
	PUMP_UNTIL(base, 1500, rx[0].n >= n && rx[2].n >= 1);
	CHECK(in_order(&rx[0], n, 0, 1));
	CHECK_EQ(rx[0].status, 0);
	CHECK(in_order(&rx[2], 1, 42, 0));
	PUMP_UNTIL(base, 500, !qs_answers_pending(a));
	CHECK(!qs_answers_pending(a));
	CHECK_EQ_U64(qs_answers_dropped(a), 0);
done:
	qs_answers_free(a);
	unlisten_all();
	event_base_free(base);
}

static unsigned ups[NCHAN];

static void count_up(void *arg, unsigned chan)
{
	(void)arg;
	if (chan < NCHAN)
		ups[chan]++;
}

/* An announced acceptor (QS_CTL_ACCEPTOR) is connected at once, though its
 * channel's retries have backed off (to 1 s: docs/ARCHITECTURE.md "Idle"),
 * and the owner is told of every new connection: the ones there at start,
 * an announced one, one found by the backstop retry alone, and the same
 * channel again after its acceptor went and another came. */
static void test_announced(void)
{
	current_test = "announced";
	memset(ups, 0, sizeof(ups));
	struct event_base *base = event_base_new();
	struct qs_answers *a = open_fanout(base, 01);
	if (!a)
		goto done;
	qs_answers_on_up(a, count_up, NULL);
	CHECK_EQ(ups[0], 1);
	CHECK_EQ(ups[1] + ups[2], 0);
	pump_for(base, 1300); /* 10 ms doubling: the next retries are ~1 s apart now */
	CHECK(listen_on(base, 2));
	CHECK(!qs_answers_connected(a, 2));
	qs_answers_retry(a, 2);
	CHECK(qs_answers_connected(a, 2)); /* at once, not at the next retry */
	CHECK_EQ(ups[2], 1);
	CHECK(listen_on(base, 1)); /* not announced: the backstop finds it */
	PUMP_UNTIL(base, 1500, qs_answers_connected(a, 1));
	CHECK(qs_answers_connected(a, 1));
	CHECK_EQ(ups[1], 1);
	qs_chan_in_free(rx[2].in); /* its acceptor goes ... */
	rx[2].in = NULL;
	PUMP_UNTIL(base, 1000, !qs_answers_connected(a, 2));
	CHECK(!qs_answers_connected(a, 2));
	CHECK(listen_on(base, 2)); /* ... and another comes, announced */
	qs_answers_retry(a, 2);
	CHECK(qs_answers_connected(a, 2));
	CHECK_EQ(ups[2], 2);
	CHECK_EQ(ups[0], 1);
done:
	qs_answers_free(a);
	unlisten_all();
	event_base_free(base);
}

/* Nobody takes channel 1: its answer waits, still after 1.5 s, and is
 * dropped once it waited 2 s (counted), while channel 0 is served
 * throughout; a receiver that comes afterwards never gets the dropped answer,
 * only what is sent after it came. */
static void test_stale(void)
{
	current_test = "stale";
	struct event_base *base = event_base_new();
	struct qs_answers *a = open_fanout(base, 01);
	if (!a)
		goto done;
	CHECK_EQ(qs_answers_add(a, 1, 9, 0, NULL), 0);
	qs_answers_flush(a);
	double t0 = now_ms();
	CHECK(qs_answers_pending(a));
	pump_for(base, 1500);
	CHECK(qs_answers_pending(a));
	CHECK_EQ_U64(qs_answers_dropped(a), 0);
	CHECK_EQ(qs_answers_add(a, 0, 1, 0, NULL), 0);
	qs_answers_flush(a);
	PUMP_UNTIL(base, 1000, rx[0].n >= 1);
	CHECK(in_order(&rx[0], 1, 1, 0));

	PUMP_UNTIL(base, 2000, !qs_answers_pending(a));
	double waited = now_ms() - t0;
	CHECK(!qs_answers_pending(a));
	CHECK(waited >= 2000 && waited < 2500);
	CHECK_EQ_U64(qs_answers_dropped(a), 1);

	CHECK(listen_on(base, 1));
	PUMP_UNTIL(base, 2000, qs_chan_in_peers(rx[1].in) == 1);
	pump_for(base, 100);
	CHECK_EQ(rx[1].msgs, 0);
	CHECK_EQ(qs_answers_add(a, 1, 10, 0, NULL), 0);
	qs_answers_flush(a);
	PUMP_UNTIL(base, 2000, rx[1].n >= 1);
	pump_for(base, 50);
	CHECK(in_order(&rx[1], 1, 10, 0));
done:
	qs_answers_free(a);
	unlisten_all();
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as every quicstash process does (ipc/child.c) */
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_routing();
	test_big_burst();
	test_slow_and_late();
	test_stale();
	test_announced();

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return check_report();
}

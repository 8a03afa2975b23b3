/* shipper/settle.c: when the cursor may move past bytes written to Logstash. */
#include <stdlib.h>

#include "check.h"
#include "shipper/settle.h"

static struct qs_pos P(uint64_t off)
{
	return (struct qs_pos){.seg = 1, .off = off};
}

/* qs_settle_poll, expecting "moved to off" (off > 0) or "not moved" (off == 0). */
static void poll_expect(struct qs_settle *s, uint64_t acked, uint64_t now_ms, uint64_t off, int line)
{
	struct qs_pos pos = {0, 0};
	bool moved = qs_settle_poll(s, acked, now_ms, &pos);
	if (moved != (off > 0) || (off && pos.off != off)) {
		failed++;
		fprintf(stderr, "FAIL line %d: poll(acked %llu, t %llu): moved %d to %llu, expected %s %llu (in %s)\n", line,
			(unsigned long long)acked, (unsigned long long)now_ms, moved, (unsigned long long)pos.off,
			off ? "moved to" : "not moved", (unsigned long long)off, current_test);
	} else {
		passed++;
	}
}
#define POLL(s, acked, now, off) poll_expect(s, acked, now, off, __LINE__)

static void test_settles_after_acked_and_held(void)
{
	current_test = "settles_after_acked_and_held";
	struct qs_settle *s = calloc(1, sizeof(*s));
	qs_settle_reset(s);
	qs_settle_wrote(s, 100, P(110));
	qs_settle_wrote(s, 100, P(220));
	POLL(s, 50, 10000, 0);       /* nothing whole acknowledged */
	POLL(s, 150, 10000, 0);      /* the first 100 bytes acknowledged now: the clock starts */
	POLL(s, 150, 10999, 0);      /* held 999 ms */
	POLL(s, 150, 11000, 110);    /* held 1 s: the first checkpoint settles */
	CHECK(qs_settle_pending(s)); /* the second waits for its bytes */
	POLL(s, 200, 11500, 0);
	POLL(s, 200, 12500, 220);
	CHECK(!qs_settle_pending(s));
	free(s);
}

/* The shipper's stop asks the output every 50 ms whether it has caught up, and
 * each time the output records where its reader is (no new bytes). That must
 * not restart the clock of the bytes before, or the output never catches up
 * (it always hit the 2 s deadline, holding every acknowledgement meanwhile). */
static void test_repeated_position_does_not_restart_the_clock(void)
{
	current_test = "repeated_position_does_not_restart_the_clock";
	struct qs_settle *s = calloc(1, sizeof(*s));
	qs_settle_reset(s);
	qs_settle_wrote(s, 300, P(330));
	uint64_t t = 20000;
	POLL(s, 300, t, 0); /* acknowledged at 20000 */
	for (t = 20050; t < 21000; t += 50) {
		qs_settle_wrote(s, 0, P(330));
		POLL(s, 300, t, 0);
	}
	qs_settle_wrote(s, 0, P(340)); /* a segment's end after the last record: a later position, same bytes */
	POLL(s, 300, 21000, 340);
	CHECK(!qs_settle_pending(s));
	free(s);
}

/* With everything settled, a position reached without writing (skipped damage,
 * a segment's end) settles at once: no bytes wait for the peer. */
static void test_position_without_bytes_after_settling(void)
{
	current_test = "position_without_bytes_after_settling";
	struct qs_settle *s = calloc(1, sizeof(*s));
	qs_settle_reset(s);
	qs_settle_wrote(s, 10, P(20));
	POLL(s, 10, 30000, 0);
	POLL(s, 10, 31000, 20);
	CHECK(!qs_settle_pending(s));
	qs_settle_wrote(s, 0, P(64));
	CHECK(qs_settle_pending(s));
	POLL(s, 10, 31001, 64);
	CHECK(!qs_settle_pending(s));
	/* and new bytes after it wait their second as before */
	qs_settle_wrote(s, 5, P(70));
	POLL(s, 15, 31002, 0);
	POLL(s, 15, 32001, 0);
	POLL(s, 15, 32002, 70);
	free(s);
}

/* A full ring folds new bytes into its newest checkpoint, which must then wait
 * for them, even if it had been a position without bytes of its own. */
static void test_full_ring_waits_for_new_bytes(void)
{
	current_test = "full_ring_waits_for_new_bytes";
	struct qs_settle *s = calloc(1, sizeof(*s));
	qs_settle_reset(s);
	qs_settle_wrote(s, 0, P(1)); /* settles at once... */
	for (uint64_t i = 1; i < QS_SETTLE_MAX; i++)
		qs_settle_wrote(s, 1, P(1 + i));
	qs_settle_wrote(s, 1, P(5000)); /* the ring is full: folded into the newest */
	POLL(s, QS_SETTLE_MAX - 1, 40000, 1);                /* only what needed no bytes */
	POLL(s, QS_SETTLE_MAX - 1, 41000, QS_SETTLE_MAX - 1); /* all but the folded one */
	CHECK(qs_settle_pending(s));
	POLL(s, QS_SETTLE_MAX, 41001, 0); /* its last byte acknowledged only now */
	POLL(s, QS_SETTLE_MAX, 42001, 5000);
	free(s);
}

int main(void)
{
	test_settles_after_acked_and_held();
	test_repeated_position_does_not_restart_the_clock();
	test_position_without_bytes_after_settling();
	test_full_ring_waits_for_new_bytes();
	return check_report();
}

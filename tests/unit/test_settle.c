/* shipper/settle.c: when the cursor may move past bytes written to Logstash. */
#include <stdlib.h>

#include "check.h"
#include "shipper/settle.h"

static struct qs_pos P(uint64_t off)
{
	return (struct qs_pos){.seg = 1, .off = off};
}

/* qs_settle_poll, expecting "moved to off" (off > 0) or "not moved" (off == 0). */
static void poll_expect(struct qs_settle *s, uint64_t acked, uint64_t off, int line)
{
	struct qs_pos pos = {0, 0};
	bool moved = qs_settle_poll(s, acked, &pos);
	if (moved != (off > 0) || (off && pos.off != off)) {
		failed++;
		fprintf(stderr, "FAIL line %d: poll(acked %llu): moved %d to %llu, expected %s %llu (in %s)\n", line,
			(unsigned long long)acked, moved, (unsigned long long)pos.off, off ? "moved to" : "not moved",
			(unsigned long long)off, current_test);
	} else {
		passed++;
	}
}
#define POLL(s, acked, off) poll_expect(s, acked, off, __LINE__)

static struct qs_settle *new_settle(uint64_t unread_max)
{
	struct qs_settle *s = calloc(1, sizeof(*s));
	qs_settle_reset(s, unread_max);
	return s;
}

/* Acknowledged is not read: a Logstash that stopped reading holds up to
 * unread_max acknowledged bytes in its socket, however long ago they were
 * acknowledged (issue 26: a 1 s hold lost them when it then died). Only bytes
 * acknowledged that deep count. */
static void test_settles_only_when_acked_deeper_than_unread_max(void)
{
	current_test = "settles_only_when_acked_deeper_than_unread_max";
	struct qs_settle *s = new_settle(1000);
	qs_settle_wrote(s, 100, P(110));
	qs_settle_wrote(s, 100, P(220));
	POLL(s, 100, 0); /* acknowledged, maybe unread */
	POLL(s, 200, 0); /* both acknowledged: still maybe unread */
	qs_settle_wrote(s, 1000, P(1300));
	POLL(s, 1099, 0);
	POLL(s, 1100, 110); /* 1000 bytes acknowledged after the first checkpoint: it was read */
	CHECK(qs_settle_pending(s));
	POLL(s, 1200, 220);
	POLL(s, 2199, 0);
	POLL(s, 2200, 1300);
	CHECK(!qs_settle_pending(s));
	free(s);
}

/* The shipper's stop asks the output every 50 ms whether it has caught up,
 * and each time the output records where its reader is (no new bytes): that
 * updates the last checkpoint instead of filling the ring. */
static void test_repeated_position_updates_the_last_checkpoint(void)
{
	current_test = "repeated_position_updates_the_last_checkpoint";
	struct qs_settle *s = new_settle(10);
	qs_settle_wrote(s, 300, P(330));
	for (int i = 0; i < 2 * QS_SETTLE_MAX; i++)
		qs_settle_wrote(s, 0, P(330));
	qs_settle_wrote(s, 0, P(340)); /* a segment's end after the last record: a later position, same bytes */
	CHECK(s->count == 1);
	POLL(s, 309, 0);
	POLL(s, 310, 340);
	CHECK(!qs_settle_pending(s));
	free(s);
}

/* With everything settled, a position reached without writing (skipped damage,
 * a segment's end) settles at once: no bytes wait for the peer. */
static void test_position_without_bytes_after_settling(void)
{
	current_test = "position_without_bytes_after_settling";
	struct qs_settle *s = new_settle(0);
	qs_settle_wrote(s, 10, P(20));
	POLL(s, 9, 0);
	POLL(s, 10, 20);
	CHECK(!qs_settle_pending(s));
	qs_settle_wrote(s, 0, P(64));
	CHECK(qs_settle_pending(s));
	POLL(s, 10, 64);
	CHECK(!qs_settle_pending(s));
	qs_settle_wrote(s, 5, P(70)); /* new bytes after it wait for theirs */
	POLL(s, 14, 0);
	POLL(s, 15, 70);
	free(s);
}

/* A full ring folds new bytes into its newest checkpoint, which must then wait
 * for them, even if it had been a position without bytes of its own. */
static void test_full_ring_waits_for_new_bytes(void)
{
	current_test = "full_ring_waits_for_new_bytes";
	struct qs_settle *s = new_settle(100);
	qs_settle_wrote(s, 0, P(1)); /* settles at once... */
	for (uint64_t i = 1; i < QS_SETTLE_MAX; i++)
		qs_settle_wrote(s, 1, P(1 + i));
	qs_settle_wrote(s, 1, P(5000)); /* the ring is full: folded into the newest */
	POLL(s, 0, 1);                                      /* only what needed no bytes */
	POLL(s, QS_SETTLE_MAX - 1 + 100, QS_SETTLE_MAX - 1); /* all but the folded one */
	CHECK(qs_settle_pending(s));
	POLL(s, QS_SETTLE_MAX + 99, 0); /* its last byte only now that deep */
	POLL(s, QS_SETTLE_MAX + 100, 5000);
	free(s);
}

/* Logstash closed after our FIN: it read all, whatever was acknowledged. */
static void test_drained_settles_everything(void)
{
	current_test = "drained_settles_everything";
	struct qs_settle *s = new_settle(1u << 20);
	struct qs_pos pos = {0, 0};
	CHECK(!qs_settle_drained(s, &pos)); /* nothing written: nothing to move */
	qs_settle_wrote(s, 100, P(110));
	qs_settle_wrote(s, 100, P(220));
	qs_settle_wrote(s, 0, P(230));
	POLL(s, 200, 0);
	CHECK(qs_settle_drained(s, &pos) && pos.off == 230);
	CHECK(!qs_settle_pending(s));
	free(s);
}

/* No window scale from the peer: the bound is huge, and the sum must not wrap. */
static void test_huge_bound_does_not_wrap(void)
{
	current_test = "huge_bound_does_not_wrap";
	struct qs_settle *s = new_settle(UINT64_MAX);
	qs_settle_wrote(s, 100, P(110));
	POLL(s, 100, 0);
	POLL(s, UINT64_MAX - 1, 0);
	free(s);
}

int main(void)
{
	test_settles_only_when_acked_deeper_than_unread_max();
	test_repeated_position_updates_the_last_checkpoint();
	test_position_without_bytes_after_settling();
	test_full_ring_waits_for_new_bytes();
	test_drained_settles_everything();
	test_huge_bound_does_not_wrap();
	return check_report();
}

/* Unit tests for client/lib/window.c: ranges, acks, rejections, what is kept
 * for resending and when bytes are released. */
#include "tests/unit/check.h"
#include <stdio.h>
#include <string.h>

#include "client/lib/window.h"


static uint64_t acked[64];
static int nacked;

static void on_ack(void *ud, uint64_t seq, uint64_t tag)
{
	(void)ud;
	CHECK(tag == seq * 10);
	acked[nacked++] = seq;
}

static bool never_fin(void *s)
{
	(void)s;
	return false;
}

static void push_n(struct qs_window *w, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t seq = w->next;
		CHECK(qs_window_push(w, "{}", 2, seq * 10) == (int64_t)seq);
	}
}

static void test_ranges_and_acks(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 2, 4, 1 << 20);
	push_n(&w, 10);
	CHECK(w.bytes == 60 && w.unresolved == 10);
	qs_window_assign(&w);
	/* two ranges of 4, both full (closed); 8 and 9 wait for a free range */
	CHECK(w.assigned == 8);
	struct qs_range *r0 = &w.ranges[0], *r1 = &w.ranges[1];
	CHECK(r0->first == 0 && r0->end == 4 && r0->closed);
	CHECK(r1->first == 4 && r1->end == 8 && r1->closed);

	CHECK(qs_window_reject(&w, r1, 5));
	CHECK(!qs_window_reject(&w, r1, 5)); /* a second rejection (after a resend) is ignored */
	CHECK(!qs_window_reject(&w, r1, 2)); /* not this range's frame */
	qs_window_ack(&w, r1, 8, on_ack, NULL);
	CHECK(nacked == 3 && acked[0] == 4 && acked[1] == 6 && acked[2] == 7);
	qs_window_ack(&w, r0, 2, on_ack, NULL);
	qs_window_ack(&w, r0, 1, on_ack, NULL); /* never backwards */
	CHECK(nacked == 5 && r0->resolved == 2);
	CHECK(w.unresolved == 2 + 2); /* 2,3 of r0 and the unassigned 8,9 */

	qs_window_release(&w, never_fin);
	CHECK(!r1->used);    /* done: closed, resolved, no stream */
	CHECK(w.base == 2);  /* 0,1 dropped from the front */
	qs_window_assign(&w);
	CHECK(w.assigned == 10 && !w.ranges[1].closed); /* 8,9 in the freed slot, still open */
	qs_window_close_open(&w);
	CHECK(w.ranges[1].closed && w.ranges[1].first == 8 && w.ranges[1].end == 10);
	qs_window_ack(&w, r0, 4, on_ack, NULL);
	qs_window_ack(&w, &w.ranges[1], 99, on_ack, NULL); /* clamped to the range */
	CHECK(w.ranges[1].resolved == 10 && w.unresolved == 0 && nacked == 9);
	qs_window_release(&w, never_fin);
	CHECK(w.count == 0 && w.bytes == 0 && w.base == 10);
	qs_window_free(&w);
}

static void test_in_flight_kept(void)
{
	struct qs_window w;
	qs_window_init(&w, 100, 1, 4096, 1 << 20);
	push_n(&w, 3);
	qs_window_assign(&w);
	struct qs_range *r = &w.ranges[0];
	CHECK(r->first == 100 && !r->closed);
	/* ngtcp2 still references event 100 (not QUIC-acked): its bytes stay */
	qs_window_get(&w, 100)->in_flight = true;
	nacked = 0;
	qs_window_ack(&w, r, 103, NULL, NULL);
	CHECK(w.unresolved == 0);
	CHECK(qs_window_get(&w, 100)->buf != NULL && w.bytes == 6);
	qs_window_release(&w, never_fin);
	CHECK(w.count == 3); /* the front is pinned */
	qs_window_unref(&w, qs_window_get(&w, 100));
	qs_window_release(&w, never_fin);
	CHECK(w.count == 0 && w.bytes == 0);
	qs_window_free(&w);
}

static void test_flush_waiting_events(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 1, 2, 1 << 20);
	push_n(&w, 3);
	qs_window_assign(&w); /* [0,2) closed by size; 2 waits */
	qs_window_close_open(&w); /* end of input while 2 is unassigned */
	qs_window_ack(&w, &w.ranges[0], 2, NULL, NULL);
	qs_window_release(&w, never_fin);
	qs_window_assign(&w);
	CHECK(w.ranges[0].used && w.ranges[0].first == 2 && w.ranges[0].end == 3);
	CHECK(w.ranges[0].closed); /* the flush point closes it: the stream gets its FIN */
	qs_window_free(&w);
}

static void test_byte_limit_and_conn_lost(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 4, 4096, 10); /* a range closes at 10 bytes: two 6-byte frames */
	push_n(&w, 3);
	qs_window_assign(&w);
	CHECK(w.ranges[0].end == 2 && w.ranges[0].closed && w.ranges[1].first == 2);
	int dummy;
	w.ranges[0].stream = &dummy;
	qs_window_get(&w, 0)->in_flight = true;
	qs_window_conn_lost(&w);
	CHECK(w.ranges[0].stream == NULL && !qs_window_get(&w, 0)->in_flight);
	CHECK(w.ranges[0].resolved == 0); /* a new stream resumes here */
	qs_window_free(&w);
}

int main(void)
{
	test_ranges_and_acks();
	test_in_flight_kept();
	test_flush_waiting_events();
	test_byte_limit_and_conn_lost();
	return check_report();
}

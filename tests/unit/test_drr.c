/* common/drr.c: deficit round robin by bytes. Two backlogged flows share
 * bytes equally whatever their item sizes and counts; each flow keeps FIFO
 * order; a flow alone passes straight through; a new flow waits at most one
 * round; an idle flow keeps no credit; flows come and go many times. */
#include <stdlib.h>

#include "check.h"
#include "common/drr.h"

static uintptr_t tag(uint64_t flow, size_t i) { return (uintptr_t)(flow << 32 | i) + 1; }

static void push_n(struct qs_drr *d, uint64_t id, size_t n, size_t bytes, size_t first)
{
	for (size_t i = 0; i < n; i++)
		CHECK(qs_drr_push(d, id, (void *)tag(id, first + i), bytes) == 0);
}

/* A: 4000 items of 100 bytes, B: 200 of 1000 (B queued later, fewer, bigger):
 * while both have items, each gets half of the bytes (within a quantum). */
static void test_equal_bytes(void)
{
	current_test = "equal bytes";
	struct qs_drr d;
	qs_drr_init(&d, 4096);
	push_n(&d, 1, 4000, 100, 0);
	push_n(&d, 2, 200, 1000, 0);
	size_t got[3] = {0}, next[3] = {0};
	struct qs_drr_item it;
	uint64_t id;
	bool order_ok = true;
	while (got[2] < 200 * 1000 && qs_drr_pop(&d, &it, &id)) {
		got[id] += it.bytes;
		order_ok &= (uintptr_t)it.p == tag(id, next[id]++);
	}
	CHECK(order_ok);
	CHECK_EQ(got[2], 200 * 1000);
	long diff = (long)got[1] - (long)got[2];
	CHECK(diff < 4096 + 1000 && diff > -(4096 + 1000));
	/* the rest is A's alone */
	while (qs_drr_pop(&d, &it, &id)) {
		CHECK_EQ(id, 1);
		order_ok &= (uintptr_t)it.p == tag(id, next[id]++);
	}
	CHECK(order_ok);
	CHECK_EQ(next[1], 4000);
	CHECK(qs_drr_empty(&d));
	CHECK_EQ(d.bytes, 0);
	qs_drr_free(&d);
}

/* One flow: items come out in order, even one far larger than the quantum. */
static void test_alone(void)
{
	current_test = "alone";
	struct qs_drr d;
	qs_drr_init(&d, 64);
	CHECK(qs_drr_push(&d, 7, (void *)1, 1 << 20) == 0);
	CHECK(qs_drr_push(&d, 7, (void *)2, 10) == 0);
	struct qs_drr_item it;
	uint64_t id;
	CHECK(qs_drr_pop(&d, &it, &id) && it.p == (void *)1 && id == 7 && it.bytes == 1 << 20);
	CHECK(qs_drr_pop(&d, &it, &id) && it.p == (void *)2);
	CHECK(!qs_drr_pop(&d, &it, &id));
	qs_drr_free(&d);
}

/* One item of a new flow behind a backlogged one: a flow that arrives
 * waits for one round at most, not for the backlog. */
static void test_newcomer(void)
{
	current_test = "newcomer";
	struct qs_drr d;
	qs_drr_init(&d, 1000);
	push_n(&d, 1, 10000, 100, 0);
	struct qs_drr_item it;
	uint64_t id;
	for (int i = 0; i < 5; i++)
		qs_drr_pop(&d, &it, &id);
	push_n(&d, 2, 1, 100, 0);
	size_t before = 0;
	while (qs_drr_pop(&d, &it, &id) && id != 2)
		before++;
	CHECK_EQ(id, 2);
	CHECK(before <= 10); /* at most the rest of A's turn: 1000 bytes */
	qs_drr_free(&d);
}

/* A flow that runs empty loses its deficit: coming back it gets a quantum,
 * not what it saved. */
static void test_no_saving(void)
{
	current_test = "no saving";
	struct qs_drr d;
	qs_drr_init(&d, 1000);
	push_n(&d, 1, 1, 10, 0);
	struct qs_drr_item it;
	uint64_t id;
	CHECK(qs_drr_pop(&d, &it, &id));
	push_n(&d, 1, 100, 100, 1);
	push_n(&d, 2, 100, 100, 0);
	size_t run = 0;
	uint64_t first;
	CHECK(qs_drr_pop(&d, &it, &first));
	run = 1;
	while (qs_drr_pop(&d, &it, &id) && id == first)
		run++;
	CHECK(run <= 10); /* one quantum of 100-byte items, no more */
	qs_drr_free(&d);
}

/* Many flows coming and going (ids over 200, more than the flows kept):
 * every item comes out exactly once, per flow in order. */
static void test_churn(void)
{
	current_test = "churn";
	struct qs_drr d;
	qs_drr_init(&d, 300);
	srand(1);
	enum { IDS = 200 };
	static size_t pushed[IDS], popped[IDS];
	size_t out_total = 0, in_total = 0;
	bool ok = true;
	for (int round = 0; round < 20000; round++) {
		uint64_t id = (uint64_t)(rand() % IDS);
		size_t bytes = 1 + (size_t)(rand() % 700);
		if (rand() % 3) {
			CHECK(qs_drr_push(&d, id, (void *)tag(id, pushed[id]++), bytes) == 0);
			in_total++;
		} else {
			struct qs_drr_item it;
			uint64_t got;
			if (qs_drr_pop(&d, &it, &got)) {
				ok &= (uintptr_t)it.p == tag(got, popped[got]++);
				out_total++;
			}
		}
	}
	struct qs_drr_item it;
	uint64_t got;
	while (qs_drr_pop(&d, &it, &got)) {
		ok &= (uintptr_t)it.p == tag(got, popped[got]++);
		out_total++;
	}
	CHECK(ok);
	CHECK_EQ(in_total, out_total);
	for (int i = 0; i < IDS; i++)
		ok &= pushed[i] == popped[i];
	CHECK(ok);
	CHECK(d.n <= 64 + IDS);
	qs_drr_free(&d);
}

int main(void)
{
	test_equal_bytes();
	test_alone();
	test_newcomer();
	test_no_saving();
	test_churn();
	return check_report();
}

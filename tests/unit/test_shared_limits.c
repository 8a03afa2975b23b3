/* The tenants' limit state shared by the acceptors (common/shared_limits.h):
 * the seals, one row per tenant id, buckets refilled to a burst and into debt
 * by a frame, connection counts summed over columns with a cleared column
 * giving its places back, and values a compromised writer could leave (a
 * refill time in the future, an endless debt) bounded. Two processes share
 * one mapping: their admissions never pass the limit together. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/shared_limits.h"

#define SEC 1000000000ull

static struct qs_sl_region *fresh(void)
{
	int fd = qs_sl_create();
	CHECK(fd >= 0);
	struct qs_sl_region *r = qs_sl_map(fd);
	CHECK(r != NULL);
	CHECK(ftruncate(fd, 100) != 0 && errno == EPERM); /* cannot shrink under a mapper */
	close(fd);
	return r;
}

static void rows(void)
{
	current_test = "rows by id";
	struct qs_sl_region *r = fresh();
	struct qs_sl_row *a = qs_sl_row(r, 7), *b = qs_sl_row(r, 9);
	CHECK(a && b && a != b && qs_sl_row(r, 7) == a && qs_sl_row(r, 0) == NULL);
	for (uint64_t id = 100; id < 100 + QS_SL_ROWS - 2; id++)
		CHECK(qs_sl_row(r, id) != NULL);
	CHECK(qs_sl_row(r, 5000) == NULL && qs_sl_row(r, 9) == b); /* full: known ids still found */
	int plain = memfd_create("plain", MFD_CLOEXEC); /* unsealed: refused */
	CHECK(plain >= 0 && ftruncate(plain, (off_t)QS_SL_SIZE) == 0 && qs_sl_map(plain) == NULL);
	close(plain);
	munmap(r, QS_SL_SIZE);
}

static void buckets(void)
{
	current_test = "buckets";
	struct qs_sl_region *r = fresh();
	struct qs_sl_row *t = qs_sl_row(r, 1);
	const double rate[QS_SL_BUCKETS] = {1000, 0};
	uint64_t now = 50 * SEC;
	qs_sl_refill(t, rate, now); /* never refilled: a full burst, a fifth of a second */
	CHECK_EQ(t->tokens[QS_SL_EVENTS], 200LL * QS_SL_ONE);
	CHECK_EQ(t->tokens[QS_SL_BYTES], 0); /* no limit: untouched */
	int fine = 0;
	for (int i = 0; i < 200; i++) {
		fine += !qs_sl_in_debt(t, QS_SL_EVENTS);
		qs_sl_take(t, QS_SL_EVENTS, 1);
	}
	CHECK_EQ(fine, 200);
	qs_sl_take(t, QS_SL_EVENTS, 1);
	CHECK(qs_sl_in_debt(t, QS_SL_EVENTS));
	qs_sl_refill(t, rate, now + SEC / 2000); /* under a millisecond: not yet */
	CHECK(qs_sl_in_debt(t, QS_SL_EVENTS));
	qs_sl_refill(t, rate, now + SEC / 100); /* 10 ms: 10 tokens, less the one owed */
	CHECK_EQ(t->tokens[QS_SL_EVENTS], 9LL * QS_SL_ONE);
	qs_sl_refill(t, rate, now + 10 * SEC); /* capped at the burst */
	CHECK_EQ(t->tokens[QS_SL_EVENTS], 200LL * QS_SL_ONE);
	/* a time from the future (a writer's garbage): started again, not stuck */
	t->refill_ns = UINT64_MAX / 2;
	qs_sl_take(t, QS_SL_EVENTS, 1000);
	qs_sl_refill(t, rate, now + 11 * SEC);
	CHECK_EQ(t->tokens[QS_SL_EVENTS], 200LL * QS_SL_ONE);
	/* an endless debt: paid from a minute of the rate and a frame at most */
	t->tokens[QS_SL_EVENTS] = INT64_MIN + 5;
	qs_sl_refill(t, rate, now + 12 * SEC);
	CHECK(t->tokens[QS_SL_EVENTS] > -(61LL * 1000 + 128LL * 1024 * 1024) * QS_SL_ONE);
	munmap(r, QS_SL_SIZE);
}

static void connections(void)
{
	current_test = "connections";
	struct qs_sl_region *r = fresh();
	struct qs_sl_row *t = qs_sl_row(r, 1);
	CHECK(qs_sl_admit(t, 0, 3) && qs_sl_admit(t, 0, 3) && qs_sl_admit(t, 65, 3));
	CHECK(!qs_sl_admit(t, 1, 3) && !qs_sl_admit(t, 0, 3)); /* the fourth, on any column */
	CHECK(!qs_sl_admit(t, QS_SL_COLUMNS, 0));             /* no such column */
	qs_sl_leave(t, 65);
	CHECK(qs_sl_admit(t, 1, 3));
	qs_sl_clear_column(r, 0); /* its acceptor died: its two places come back */
	CHECK(qs_sl_admit(t, 64, 3) && qs_sl_admit(t, 64, 3) && !qs_sl_admit(t, 64, 3));
	qs_sl_leave(t, 0); /* a column at 0 stays at 0 */
	CHECK_EQ(t->open[0], 0);
	CHECK(qs_sl_admit(t, 5, 0)); /* no limit: counted all the same */
	munmap(r, QS_SL_SIZE);
}

/* Two processes admit into one row at once, around the limit: the
 * connections admitted and not yet gone (counted on the side, after each
 * admission and before each leave) never pass max together. */
static void racing(void)
{
	current_test = "two processes";
	struct qs_sl_region *r = fresh();
	struct qs_sl_row *t = qs_sl_row(r, 1);
	_Atomic int *held = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(held != MAP_FAILED);
	enum { MAX = 50, TRIES = 200000 };
	pid_t kid[2];
	for (int k = 0; k < 2; k++)
		if ((kid[k] = fork()) == 0) {
			int bad = 0, mine = 0;
			for (int i = 0; i < TRIES; i++) {
				if (mine && i % 4 == 3) { /* leave one: the rest races at the limit */
					atomic_fetch_sub(held, 1);
					qs_sl_leave(t, (unsigned)k);
					mine--;
				} else if (qs_sl_admit(t, (unsigned)k, MAX)) {
					bad += atomic_fetch_add(held, 1) + 1 > MAX;
					mine++;
				}
			}
			_exit(bad ? 1 : 0);
		}
	for (int k = 0; k < 2; k++) {
		int st;
		CHECK(waitpid(kid[k], &st, 0) == kid[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	CHECK(t->open[0] + t->open[1] == (uint32_t)*held && *held <= MAX);
	munmap(held, sizeof(int));
	munmap(r, QS_SL_SIZE);
}

int main(void)
{
	rows();
	buckets();
	connections();
	racing();
	return check_report();
}

/* The tenants' limit state shared by the acceptors (shared_limits.h). */
#include "common/shared_limits.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIN_REFILL_NS 1000000ull   /* refill at most once a millisecond: few CAS races, no rounding drift */
#define MAX_DT_NS 1000000000ull    /* a second refills any burst (a fifth of one) */
#define CAS_TRIES 64               /* a bounded loop: a lost refill only holds a little longer */
#define DEBT_SECONDS 60            /* a debt below a minute of the rate (plus a frame) is not one we made */
#define DEBT_FRAME (128.0 * 1024 * 1024) /* more than the largest frame's bytes (QS_MAX_MESSAGE_LIMIT) */
#define LIMIT_UNITS 4611686018427387904.0 /* 2^62: every value stays far from int64's ends */

int qs_sl_create(void)
{
	int fd = memfd_create("quicstash-limits", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)QS_SL_SIZE) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

struct qs_sl_region *qs_sl_map(int fd)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) != 0 || (size_t)st.st_size != QS_SL_SIZE || seals < 0 || !(seals & F_SEAL_SHRINK))
		return NULL;
	void *p = mmap(NULL, QS_SL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

struct qs_sl_row *qs_sl_row(struct qs_sl_region *r, uint64_t id)
{
	if (!id)
		return NULL;
	/* Rows are claimed in order and never given back, so two acceptors
	 * claiming the same id race for the same first free row: one row per id. */
	for (unsigned i = 0; i < QS_SL_ROWS; i++) {
		uint64_t has = atomic_load(&r->row[i].id);
		if (!has && atomic_compare_exchange_strong(&r->row[i].id, &has, id))
			return &r->row[i];
		if (has == id)
			return &r->row[i];
	}
	return NULL;
}

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void add(_Atomic int64_t *tok, double rate, uint64_t dt_ns)
{
	double one = rate * QS_SL_ONE; /* a second of the rate */
	double burst = clamp(one / QS_SL_BURST_DIV, 0, LIMIT_UNITS);
	double floor = clamp(-(one * DEBT_SECONDS) - DEBT_FRAME * QS_SL_ONE, -LIMIT_UNITS, 0);
	double more = one * (double)dt_ns / 1e9;
	int64_t t = atomic_load_explicit(tok, memory_order_relaxed);
	for (int i = 0; i < CAS_TRIES; i++) {
		double v = clamp(clamp((double)t, floor, LIMIT_UNITS) + more, floor, burst);
		if (atomic_compare_exchange_weak_explicit(tok, &t, (int64_t)v, memory_order_relaxed,
							  memory_order_relaxed))
			return;
	}
}

void qs_sl_refill(struct qs_sl_row *row, const double rate[QS_SL_BUCKETS], uint64_t now_ns)
{
	uint64_t seen = atomic_load_explicit(&row->refill_ns, memory_order_relaxed), last = seen;
	if (last > now_ns) {
		if (last - now_ns < MAX_DT_NS)
			return; /* another acceptor read the clock just after us and refilled */
		last = 0;       /* from the future: no acceptor read that; start again */
	}
	if (now_ns - last < MIN_REFILL_NS)
		return;
	/* Whoever moves the time refills what it covers: no interval twice. */
	if (!atomic_compare_exchange_strong_explicit(&row->refill_ns, &seen, now_ns, memory_order_relaxed,
						     memory_order_relaxed))
		return;
	uint64_t dt = now_ns - last > MAX_DT_NS ? MAX_DT_NS : now_ns - last;
	for (int b = 0; b < QS_SL_BUCKETS; b++)
		if (rate[b] > 0)
			add(&row->tokens[b], rate[b], dt);
}

bool qs_sl_admit(struct qs_sl_row *row, unsigned col, uint64_t max)
{
	if (col >= QS_SL_COLUMNS)
		return false;
	/* Count first, then sum (sequentially consistent): of two acceptors
	 * admitting the last place at once, at least one sees both, so the sum
	 * never passes max (both may refuse: only when they ask for the last place at
	 * the same instant). */
	atomic_fetch_add(&row->open[col], 1);
	if (!max)
		return true;
	uint64_t sum = 0;
	for (unsigned i = 0; i < QS_SL_COLUMNS; i++)
		sum += atomic_load(&row->open[i]);
	if (sum <= max)
		return true;
	atomic_fetch_sub(&row->open[col], 1);
	return false;
}

void qs_sl_leave(struct qs_sl_row *row, unsigned col)
{
	/* only this column's acceptor writes it while it runs */
	if (col < QS_SL_COLUMNS && atomic_load(&row->open[col]))
		atomic_fetch_sub(&row->open[col], 1);
}

void qs_sl_clear_column(struct qs_sl_region *r, unsigned col)
{
	for (unsigned i = 0; col < QS_SL_COLUMNS && i < QS_SL_ROWS; i++)
		atomic_store(&r->row[i].open[col], 0);
}

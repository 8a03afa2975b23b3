/* The tenants' limit state shared by every acceptor (docs/ARCHITECTURE.md,
 * "Tenant limits"): a sealed memfd the supervisor makes once and hands to
 * each acceptor (QS_FD_LIMITS in the role table, QS_CHILD_LIMITS_FD), so
 * that a tenant's events/s, bytes/s and connections are limited for the whole
 * server, whichever acceptors its connections land on.
 *
 * One row per tenant, keyed by the tenant's id (the hash of its name,
 * common/tenants.h), claimed by the first acceptor that needs it and kept
 * while the supervisor lives, so a reload (in place or a new generation)
 * and a restarted acceptor find the same row. A row holds two token buckets
 * (events, bytes) in millionths of a token with the time of their last refill,
 * all changed by C11 atomics only, and one open-connection count per column:
 * a column is an acceptor's steering key (0..127: slot and bank), written by
 * that acceptor alone, and zeroed by the supervisor when the process ends
 * (and by its successor when it starts), so a crash leaks nothing. The
 * connection limit compares the sum of the columns.
 *
 * Every acceptor can write all of it: the values are limit state, never
 * trusted for anything else. Readers bound what they read (a refill time in
 * the future, a debt beyond a minute) and loop a fixed number of times.
 * Knows no role. */
#ifndef QS_SHARED_LIMITS_H
#define QS_SHARED_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define QS_SL_ROWS 1024   /* tenants over the supervisor's life; beyond, a private row */
#define QS_SL_COLUMNS 128 /* steering keys: 2 banks of 64 (ipc/zsock.h QS_ACCEPTOR_CHANNELS_MAX) */
#define QS_SL_ONE 1000000 /* a token, in the buckets' unit */
#define QS_SL_BURST_DIV 5 /* the burst: a fifth of a second of the rate */

enum qs_sl_bucket { QS_SL_EVENTS, QS_SL_BYTES, QS_SL_BUCKETS };

struct qs_sl_row {
	_Atomic uint64_t id;        /* the tenant's id; 0: free */
	_Atomic uint64_t refill_ns; /* CLOCK_MONOTONIC of the last refill; 0: never (a full burst) */
	_Atomic int64_t tokens[QS_SL_BUCKETS]; /* below 0: in debt, held */
	_Atomic uint32_t open[QS_SL_COLUMNS];  /* connections open, per acceptor steering key */
};

struct qs_sl_region {
	struct qs_sl_row row[QS_SL_ROWS];
};

#define QS_SL_SIZE sizeof(struct qs_sl_region)

/* A zeroed memfd of QS_SL_SIZE, sealed against growing and shrinking (no one
 * can make a mapper fault); -1 with errno. */
int qs_sl_create(void);
/* Maps it read-write shared; NULL unless it has that size and those seals. */
struct qs_sl_region *qs_sl_map(int fd);

/* The tenant's row (found, else the first free one claimed); NULL: full. */
struct qs_sl_row *qs_sl_row(struct qs_sl_region *r, uint64_t id);

/* Refills both buckets at rate[b] tokens a second (0: no limit, untouched),
 * to at most a burst, once a millisecond at most, whoever calls first. */
void qs_sl_refill(struct qs_sl_row *row, const double rate[QS_SL_BUCKETS], uint64_t now_ns);
/* Takes n tokens (the bucket may go into debt by them). */
static inline void qs_sl_take(struct qs_sl_row *row, enum qs_sl_bucket b, double n)
{
	atomic_fetch_sub_explicit(&row->tokens[b], (int64_t)(n * QS_SL_ONE), memory_order_relaxed);
}
static inline bool qs_sl_in_debt(const struct qs_sl_row *row, enum qs_sl_bucket b)
{
	return atomic_load_explicit(&row->tokens[b], memory_order_relaxed) < 0;
}

/* A new connection on column col: counted, unless the sum of all columns
 * would then pass max (0: no limit); false: refused, nothing counted. */
bool qs_sl_admit(struct qs_sl_row *row, unsigned col, uint64_t max);
void qs_sl_leave(struct qs_sl_row *row, unsigned col);
/* The process of column col is gone (or starts): none of its connections is open. */
void qs_sl_clear_column(struct qs_sl_region *r, unsigned col);

#endif

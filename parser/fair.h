/* The parser's fair share between tenants (issue 21, item 5; docs/TENANTS.md,
 * "Fair share"): a bounded look-ahead of FRAMES messages whose frames are
 * served by deficit round robin over their tenants (common/drr.h), so a
 * tenant with many connections cannot take the parser (nor, since the parser
 * serves only what the shipper takes, the shipper) in proportion to its
 * frames.
 *
 * A message goes through the look-ahead only while two tenants or more were
 * seen in the last second: a single tenant's messages are handled straight
 * from ZeroMQ's buffer as before, with no copy and no wait. In the look-ahead
 * a message is copied once and its frames queued per tenant; they are served
 * right after each read, a budget at a time. */
#ifndef QS_PARSER_FAIR_H
#define QS_PARSER_FAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qs_batch_iter;
struct qs_frame_rec;
struct qs_fair;

/* Quantum (bytes a tenant is served per turn) and the look-ahead's bound. */
#define QS_FAIR_QUANTUM (64u * 1024)
#define QS_FAIR_LOOKAHEAD (32u * 1024 * 1024)

typedef void (*qs_fair_serve_fn)(void *arg, const struct qs_frame_rec *fr, const uint8_t *payload);

/* off: every message is handed back (the test-only FIFO switch). NULL: out of memory. */
struct qs_fair *qs_fair_new(bool off);
/* Drops whatever is still queued (its frames are resent by the acceptors). */
void qs_fair_free(struct qs_fair *f);
/* A FRAMES message with frames (it: as opened on msg, before its first
 * record). 0: the caller handles it now, as it is; 1: taken (queued, or
 * dropped as malformed, logged). */
int qs_fair_take(struct qs_fair *f, const struct qs_batch_iter *it, const void *msg, size_t len);
/* Serves queued frames by deficit round robin until about budget bytes went
 * (whole frames); returns whether frames are still queued. */
bool qs_fair_serve(struct qs_fair *f, size_t budget, qs_fair_serve_fn fn, void *arg);
bool qs_fair_empty(const struct qs_fair *f);
/* Whether to read more messages now: the look-ahead is empty, or below its
 * bound while tenants share the parser. */
bool qs_fair_room(const struct qs_fair *f);

#endif

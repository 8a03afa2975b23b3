/* Per-tenant spool quota (docs/TENANTS.md, "Limits"): the bytes of each
 * tenant's events in the spool that the output has not yet taken, and the
 * tenants over their spool-quota, which the STATUS message names to the
 * acceptors (they hold those tenants back by flow control). */
#ifndef QS_SHIPPER_TENANT_QUOTA_H
#define QS_SHIPPER_TENANT_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shipper/cursor.h"

struct qs_tenants;
struct qs_staged;

/* Consecutive records of one tenant in one segment, up to end (an offset in
 * its segment). One per change of tenant: with many tenants trickling while
 * Logstash is down, about one per record, so it is kept small (8 bytes; it
 * was 32, a sixth of a backlog of 190-byte events in memory). */
struct qs_tquota_run {
	uint32_t tenant; /* index in the tenants table */
	uint32_t end;
};

/* The segment of the runs that follow: where its first run still counted starts. */
struct qs_tquota_seg {
	uint64_t id, from;
	size_t runs;
};

struct qs_tquota {
	const struct qs_tenants *ts;
	uint64_t *bytes; /* per tenant: unshipped bytes */
	struct qs_tquota_run *ring;
	size_t head, len, cap;
	struct qs_tquota_seg *segs; /* a ring too, one per segment with runs */
	size_t shead, slen, scap;
	uint64_t *over; /* ids of the tenants over their quota, as last computed */
	size_t nover;
};

/* No tenant with a spool-quota: nothing is counted. 0, or -1 (out of memory). */
int qs_tquota_init(struct qs_tquota *q, const struct qs_tenants *ts);
void qs_tquota_free(struct qs_tquota *q);
/* Counts bytes for tenant idx (its index in the table) up to end. 0, or -1 out of memory. */
int qs_tquota_add(struct qs_tquota *q, uint32_t idx, uint64_t bytes, struct qs_pos end);
/* The first k staged records were committed at start (one segment). */
void qs_tquota_committed(struct qs_tquota *q, const struct qs_staged *t, size_t k, struct qs_pos start);
/* The output took everything before cursor. Returns whether the set of
 * tenants over their quota changed (q->over, q->nover). */
bool qs_tquota_shipped(struct qs_tquota *q, struct qs_pos cursor);

#endif

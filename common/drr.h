/* Deficit round robin (Shreedhar and Varghese, 1995) by bytes: items queue
 * per flow, a flow named by a u64 id, in FIFO order; qs_drr_pop hands them
 * out so that the flows with items share bytes equally, whatever the sizes
 * and numbers of their items. Each turn adds `quantum` bytes to the flow's
 * deficit and serves its items while they fit; a flow that runs empty loses
 * what was left (an idle flow saves no credit). Used by the parser to share
 * its work between tenants (parser/fair.c); knows no role.
 *
 * Items are the caller's: a pointer and a size; the scheduler never touches
 * what they point at. Work per pop is O(1) amortised plus a pass over the
 * flows known (a few per tenant with frames in the look-ahead). */
#ifndef QS_COMMON_DRR_H
#define QS_COMMON_DRR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qs_drr_item {
	void *p;
	size_t bytes;
};

struct qs_drr_flow {
	uint64_t id;
	size_t deficit;
	bool turn; /* its turn started: the quantum was added */
	struct qs_drr_item *q;
	size_t head, len, cap;
	size_t bytes; /* of its items */
};

struct qs_drr {
	size_t quantum;
	struct qs_drr_flow *f;
	size_t n, fcap;
	size_t cur;    /* the flow whose turn it is */
	size_t active; /* flows with items */
	size_t items, bytes;
	size_t last;   /* the flow last pushed to: consecutive items are often one flow's */
};

void qs_drr_init(struct qs_drr *d, size_t quantum);
void qs_drr_free(struct qs_drr *d);
/* Queues an item at the tail of flow id's queue; 0, or -1 out of memory. */
int qs_drr_push(struct qs_drr *d, uint64_t id, void *p, size_t bytes);
/* The next item by deficit round robin; false when nothing is queued. */
bool qs_drr_pop(struct qs_drr *d, struct qs_drr_item *out, uint64_t *id);
static inline bool qs_drr_empty(const struct qs_drr *d) { return d->items == 0; }

#endif

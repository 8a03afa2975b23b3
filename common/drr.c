#include "common/drr.h"

#include <stdlib.h>
#include <string.h>

/* Flows without items are forgotten once there are this many (a flow
 * entry keeps its queue's memory while it is known). */
#define KEEP_FLOWS 64

void qs_drr_init(struct qs_drr *d, size_t quantum)
{
	memset(d, 0, sizeof(*d));
	d->quantum = quantum ? quantum : 1;
}

void qs_drr_free(struct qs_drr *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->f[i].q);
	free(d->f);
	memset(d, 0, sizeof(*d));
}

/* Drops the flows without items, keeping the order of the others. */
static void forget_idle(struct qs_drr *d)
{
	size_t k = 0, cur = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (!d->f[i].len) {
			free(d->f[i].q);
			continue;
		}
		if (i < d->cur)
			cur++; /* the turn stays with the next flow kept */
		d->f[k++] = d->f[i];
	}
	d->n = k;
	d->cur = cur < k ? cur : 0;
	d->last = 0;
}

static struct qs_drr_flow *flow(struct qs_drr *d, uint64_t id)
{
	if (d->last < d->n && d->f[d->last].id == id)
		return &d->f[d->last];
	for (size_t i = 0; i < d->n; i++)
		if (d->f[i].id == id) {
			d->last = i;
			return &d->f[i];
		}
	if (d->n >= KEEP_FLOWS && d->active < d->n)
		forget_idle(d);
	if (d->n == d->fcap) {
		size_t cap = d->fcap ? d->fcap * 2 : 8;
		struct qs_drr_flow *nf = realloc(d->f, cap * sizeof(*nf));
		if (!nf)
			return NULL;
		d->f = nf;
		d->fcap = cap;
	}
	/* A new flow joins just before the current one: its first turn comes
	 * after every flow already waiting has had one. */
	size_t at = d->n ? d->cur : 0;
	memmove(d->f + at + 1, d->f + at, (d->n - at) * sizeof(*d->f));
	d->f[at] = (struct qs_drr_flow){.id = id};
	d->n++;
	if (d->n > 1)
		d->cur++;
	d->last = at;
	return &d->f[at];
}

int qs_drr_push(struct qs_drr *d, uint64_t id, void *p, size_t bytes)
{
	struct qs_drr_flow *f = flow(d, id);
	if (!f)
		return -1;
	if (f->len == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct qs_drr_item *q = malloc(cap * sizeof(*q));
		if (!q)
			return -1;
		for (size_t i = 0; i < f->len; i++) /* unroll the ring */
			q[i] = f->q[(f->head + i) % f->cap];
		free(f->q);
		f->q = q;
		f->cap = cap;
		f->head = 0;
	}
	f->q[(f->head + f->len++) % f->cap] = (struct qs_drr_item){.p = p, .bytes = bytes};
	if (f->len == 1)
		d->active++;
	f->bytes += bytes;
	d->items++;
	d->bytes += bytes;
	return 0;
}

static void next_turn(struct qs_drr *d, struct qs_drr_flow *f)
{
	f->turn = false;
	if (!f->len)
		f->deficit = 0;
	d->cur = (d->cur + 1) % d->n;
}

bool qs_drr_pop(struct qs_drr *d, struct qs_drr_item *out, uint64_t *id)
{
	if (!d->items)
		return false;
	for (;;) {
		struct qs_drr_flow *f = &d->f[d->cur];
		if (!f->len) {
			next_turn(d, f);
			continue;
		}
		if (!f->turn) {
			f->turn = true;
			f->deficit += d->quantum;
		}
		struct qs_drr_item *it = &f->q[f->head];
		/* Alone, a flow need not wait for its deficit to grow turn by turn. */
		if (it->bytes > f->deficit && d->active == 1)
			f->deficit = it->bytes;
		if (it->bytes > f->deficit) {
			next_turn(d, f);
			continue;
		}
		*out = *it;
		if (id)
			*id = f->id;
		f->deficit -= it->bytes;
		f->bytes -= it->bytes;
		f->head = (f->head + 1) % f->cap;
		d->items--;
		d->bytes -= it->bytes;
		if (--f->len == 0) {
			d->active--;
			next_turn(d, f);
		}
		return true;
	}
}

/* Per-tenant unshipped bytes: a FIFO of runs in spool order, appended at each
 * commit and popped as the output's cursor passes their end. What an earlier
 * shipper left unshipped is counted at start by quota_scan.c. */
#include "shipper/tenant_quota.h"

#include <stdlib.h>
#include <string.h>

#include "common/tenants.h"
#include "shipper/stage.h"

#include "ipc/msg.h"

#define OVER_MAX QS_STATUS_OVER_MAX /* tenants named in one STATUS */

static bool any_quota(const struct qs_tenants *ts)
{
	for (size_t i = 0; ts && i < ts->n; i++)
		if (ts->t[i].lim.spool_quota)
			return true;
	return false;
}

int qs_tquota_init(struct qs_tquota *q, const struct qs_tenants *ts)
{
	memset(q, 0, sizeof(*q));
	if (!any_quota(ts))
		return 0;
	q->ts = ts;
	q->bytes = calloc(ts->n, sizeof(*q->bytes));
	q->over = calloc(OVER_MAX, sizeof(*q->over));
	return q->bytes && q->over ? 0 : -1;
}

void qs_tquota_free(struct qs_tquota *q)
{
	free(q->bytes);
	free(q->ring);
	free(q->segs);
	free(q->over);
	memset(q, 0, sizeof(*q));
}

/* Doubles a ring of elem-sized entries, unrolling it to start at 0. */
static int ring_grow(void **ring, size_t *head, size_t len, size_t *cap, size_t elem)
{
	size_t ncap = *cap ? *cap * 2 : 1024;
	uint8_t *r = malloc(ncap * elem), *old = *ring;
	if (!r)
		return -1;
	size_t first = *cap - *head < len ? *cap - *head : len;
	if (len) {
		memcpy(r, old + *head * elem, first * elem);
		memcpy(r + first * elem, old, (len - first) * elem);
	}
	free(old);
	*ring = r;
	*cap = ncap;
	*head = 0;
	return 0;
}

#define NO_TENANT UINT32_MAX /* a run of bytes counted for nobody (records skipped) */

static struct qs_tquota_seg *last_seg(struct qs_tquota *q)
{
	return q->slen ? &q->segs[(q->shead + q->slen - 1) % q->scap] : NULL;
}

static void append(struct qs_tquota *q, struct qs_tquota_seg *g, uint32_t tenant, uint32_t end)
{
	q->ring[(q->head + q->len++) % q->cap] = (struct qs_tquota_run){.tenant = tenant, .end = end};
	g->runs++;
}

/* A run's bytes are its end less the one before it in its segment, so a gap
 * (records counted for no tenant) is a run of its own, for nobody. */
static int push(struct qs_tquota *q, uint32_t tenant, uint64_t bytes, struct qs_pos end)
{
	if (end.off > UINT32_MAX || bytes > end.off)
		return -1; /* no segment is that large: uncounted (looser, never stricter) */
	uint32_t start = (uint32_t)(end.off - bytes);
	struct qs_tquota_seg *g = last_seg(q);
	struct qs_tquota_run *last = q->len ? &q->ring[(q->head + q->len - 1) % q->cap] : NULL;
	bool same_seg = g && g->id == end.seg; /* then last is its last run (a segment has one at least) */
	uint32_t last_end = same_seg ? last->end : 0;
	if (g && (end.seg < g->id || start < last_end))
		return -1; /* out of spool order: never happens */
	if (same_seg && start == last_end && last->tenant == tenant) {
		last->end = (uint32_t)end.off;
		return 0;
	}
	while (q->cap - q->len < 2)
		if (ring_grow((void **)&q->ring, &q->head, q->len, &q->cap, sizeof(*q->ring)))
			return -1;
	if (!same_seg) {
		if (q->slen == q->scap && ring_grow((void **)&q->segs, &q->shead, q->slen, &q->scap, sizeof(*q->segs)))
			return -1;
		q->segs[(q->shead + q->slen++) % q->scap] = (struct qs_tquota_seg){.id = end.seg, .from = start};
		g = last_seg(q);
	} else if (start > last_end) {
		append(q, g, NO_TENANT, start);
	}
	append(q, g, tenant, (uint32_t)end.off);
	return 0;
}

int qs_tquota_add(struct qs_tquota *q, uint32_t idx, uint64_t bytes, struct qs_pos end)
{
	if (push(q, idx, bytes, end))
		return -1;
	q->bytes[idx] += bytes;
	return 0;
}

void qs_tquota_committed(struct qs_tquota *q, const struct qs_staged *t, size_t k, struct qs_pos start)
{
	if (!q->ts)
		return;
	size_t prev = 0;
	for (size_t i = 0; i < k; i++) {
		const struct qs_tenant *tn = t[i].tenant ? qs_tenants_by_id(q->ts, t[i].tenant) : NULL;
		uint64_t bytes = t[i].end - prev;
		prev = t[i].end;
		if (!tn)
			continue;
		uint32_t idx = (uint32_t)(tn - q->ts->t);
		/* out of memory: the bytes go uncounted (the quota is then looser, never stricter) */
		qs_tquota_add(q, idx, bytes, (struct qs_pos){.seg = start.seg, .off = start.off + t[i].end});
	}
}

bool qs_tquota_shipped(struct qs_tquota *q, struct qs_pos cursor)
{
	if (!q->ts)
		return false;
	while (q->len) {
		struct qs_tquota_run *r = &q->ring[q->head];
		struct qs_tquota_seg *g = &q->segs[q->shead];
		if (qs_pos_after((struct qs_pos){.seg = g->id, .off = r->end}, cursor))
			break;
		if (r->tenant != NO_TENANT)
			q->bytes[r->tenant] -= r->end - g->from;
		g->from = r->end;
		q->head = (q->head + 1) % q->cap;
		q->len--;
		if (--g->runs == 0) {
			q->shead = (q->shead + 1) % q->scap;
			q->slen--;
		}
	}
	uint64_t over[OVER_MAX];
	size_t n = 0;
	for (size_t i = 0; i < q->ts->n && n < OVER_MAX; i++) {
		uint64_t quota = q->ts->t[i].lim.spool_quota;
		if (quota && q->bytes[i] > quota)
			over[n++] = q->ts->t[i].id;
	}
	bool changed = n != q->nover || memcmp(over, q->over, n * sizeof(*over)) != 0;
	memcpy(q->over, over, n * sizeof(*over));
	q->nover = n;
	return changed;
}

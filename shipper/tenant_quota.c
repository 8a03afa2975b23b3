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
	free(q->over);
	memset(q, 0, sizeof(*q));
}

static int push(struct qs_tquota *q, uint32_t tenant, uint64_t bytes, struct qs_pos end)
{
	if (q->len) {
		struct qs_tquota_run *last = &q->ring[(q->head + q->len - 1) % q->cap];
		if (last->tenant == tenant && last->end.seg == end.seg) {
			last->bytes += bytes;
			last->end = end;
			return 0;
		}
	}
	if (q->len == q->cap) { /* grow, unrolling the ring */
		size_t cap = q->cap ? q->cap * 2 : 1024;
		struct qs_tquota_run *r = malloc(cap * sizeof(*r));
		if (!r)
			return -1;
		for (size_t i = 0; i < q->len; i++)
			r[i] = q->ring[(q->head + i) % q->cap];
		free(q->ring);
		q->ring = r;
		q->cap = cap;
		q->head = 0;
	}
	q->ring[(q->head + q->len++) % q->cap] = (struct qs_tquota_run){.end = end, .bytes = bytes, .tenant = tenant};
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
	while (q->len && !qs_pos_after(q->ring[q->head].end, cursor)) {
		struct qs_tquota_run *r = &q->ring[q->head];
		q->bytes[r->tenant] -= r->bytes;
		q->head = (q->head + 1) % q->cap;
		q->len--;
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

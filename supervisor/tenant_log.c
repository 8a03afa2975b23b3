/* Every --stats-interval, one log line per tenant whose counters moved,
 * summed over every acceptor from their metrics pages (the same sums the
 * metrics process exposes: common/metrics_page.h), with the tenant as the
 * journal field. Reading the pages costs the acceptors nothing. */
#include "supervisor/tenant_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics_page.h"

/* What was last logged of each tenant, by id (the "other" row: id 0). */
static struct {
	uint64_t id, v[QS_TM_COUNT];
} logged[QS_TENANT_SUMS_MAX + 1];
static size_t nlogged;

static uint64_t *last_of(uint64_t id)
{
	for (size_t i = 0; i < nlogged; i++)
		if (logged[i].id == id)
			return logged[i].v;
	if (nlogged == sizeof(logged) / sizeof(logged[0]))
		return NULL; /* tenants renamed past the table over many reloads: logged every time */
	logged[nlogged].id = id;
	return logged[nlogged++].v;
}

static void log_one(const struct qs_tenant_sum *t, uint64_t id)
{
	uint64_t *last = last_of(id);
	if (last && !memcmp(last, t->v, sizeof(t->v)))
		return;
	if (last)
		memcpy(last, t->v, sizeof(t->v));
	uint64_t rej = 0;
	char by[256] = "";
	size_t off = 0;
	for (unsigned m = QS_TM_REJ_INVALID_JSON; m <= QS_TM_REJ_INTERNAL; m++) {
		rej += t->v[m];
		if (t->v[m] && off < sizeof(by))
			off += (size_t)snprintf(by + off, sizeof(by) - off, "%s%.*s %" PRIu64, off ? ", " : " (",
						(int)(strlen(qs_tmetric_defs[m].label) - 7), qs_tmetric_defs[m].label + 6,
						t->v[m]);
	}
	if (off && off < sizeof(by) - 1)
		strcat(by, ")");
	const uint64_t *v = t->v;
	qs_info_kv(QS_KV({QS_LOG_TENANT, t->name}),
		   "tenant %s: connections %" PRIu64 " (open %" PRIu64 "), events acknowledged %" PRIu64
		   ", rejected %" PRIu64 "%s, bytes %" PRIu64 ", throttled %" PRIu64 ".%03" PRIu64 " s",
		   t->name, v[QS_TM_CONNS], v[QS_TM_OPEN], v[QS_TM_ACKED], rej, by, v[QS_TM_BYTES],
		   v[QS_TM_THROTTLED] / 1000000000u, v[QS_TM_THROTTLED] / 1000000u % 1000u);
}

void qs_sup_tenant_log(const struct qs_procs *p)
{
	const struct qs_mpage *pages[2 * QS_MP_DIR_MAX];
	size_t n = 0;
	for (unsigned i = 0; i < p->n && n + 2 <= sizeof(pages) / sizeof(pages[0]); i++)
		for (unsigned lane = 0; lane < 2; lane++)
			if (p->proc[i].role == QS_ROLE_ACCEPTOR && p->proc[i].page[lane])
				pages[n++] = p->proc[i].page[lane];
	static struct qs_tenant_sum sums[QS_TENANT_SUMS_MAX];
	struct qs_tenant_sum other;
	size_t k = qs_mp_tenant_sums(pages, n, sums, &other);
	for (size_t i = 0; i < k; i++)
		log_one(&sums[i], sums[i].id);
	uint64_t any = 0;
	for (unsigned m = 0; m < QS_TM_COUNT; m++)
		any |= other.v[m];
	if (any)
		log_one(&other, 0);
}

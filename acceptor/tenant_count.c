/* Per-tenant counters of one acceptor (docs/TENANTS.md, "Counters"):
 * connections authenticated and open, events acknowledged and rejected, bytes
 * forwarded. One line per tenant whose counters moved, every --stats-interval
 * seconds, with the tenant as a journal field. Indexed like the acceptor's
 * tenants table, which never changes during its life (a reload replaces it). */
#include <inttypes.h>
#include <stdlib.h>

#include "acceptor/acc.h"
#include "common/log.h"
#include "common/tenants.h"

struct acc_tenant_count {
	uint64_t conns, open, acked, rejected, bytes;
	uint64_t throttled_ns; /* held by flow control at a rate limit (tenant_limit.c) */
	uint64_t logged_conns, logged_open, logged_acked, logged_rejected, logged_throttled;
};

int acc_tenant_count_init(struct acc *a)
{
	size_t n = a->cfg->tenants ? a->cfg->tenants->n : 0;
	if (!n)
		return 0;
	a->tcount = calloc(n, sizeof(*a->tcount));
	if (!a->tcount)
		qs_err("out of memory for the tenants' counters");
	return a->tcount ? 0 : -1;
}

void acc_tenant_count_free(struct acc *a)
{
	free(a->tcount);
	a->tcount = NULL;
}

static struct acc_tenant_count *of(const struct acc_conn *c)
{
	const struct acc *a = c->a;
	return c->tenant && a->tcount ? &a->tcount[c->tenant - a->cfg->tenants->t] : NULL;
}

void acc_tenant_count_conn(const struct acc_conn *c, int delta)
{
	struct acc_tenant_count *t = of(c);
	if (!t)
		return;
	if (delta > 0)
		t->conns++;
	t->open += (uint64_t)(int64_t)delta;
}

void acc_tenant_count_frame(const struct acc_conn *c, uint16_t code, uint32_t bytes)
{
	struct acc_tenant_count *t = of(c);
	if (!t)
		return;
	t->bytes += bytes;
	if (code)
		t->rejected++;
	else
		t->acked++;
}

void acc_tenant_count_throttled(struct acc *a, size_t tenant, uint64_t ns)
{
	if (a->tcount)
		a->tcount[tenant].throttled_ns += ns;
}

void acc_tenant_count_log(struct acc *a)
{
	unsigned every = a->cfg->stats_interval_s;
	uint64_t now = qs_now_ns();
	if (!a->tcount || !every || now - a->tcount_log_mono < every * 1000000000ull)
		return;
	a->tcount_log_mono = now;
	for (size_t i = 0; i < a->cfg->tenants->n; i++) {
		struct acc_tenant_count *t = &a->tcount[i];
		if (t->conns == t->logged_conns && t->open == t->logged_open && t->acked == t->logged_acked &&
		    t->rejected == t->logged_rejected && t->throttled_ns == t->logged_throttled)
			continue;
		const char *name = a->cfg->tenants->t[i].name;
		qs_info_kv(QS_KV({QS_LOG_TENANT, name}),
			   "slot %u tenant %s: connections %" PRIu64 " (open %" PRIu64 "), events acknowledged %" PRIu64
			   ", rejected %" PRIu64 ", bytes %" PRIu64 ", throttled %.1f s",
			   a->cfg->slot, name, t->conns, t->open, t->acked, t->rejected, t->bytes, (double)t->throttled_ns / 1e9);
		t->logged_conns = t->conns;
		t->logged_open = t->open;
		t->logged_acked = t->acked;
		t->logged_rejected = t->rejected;
		t->logged_throttled = t->throttled_ns;
	}
}

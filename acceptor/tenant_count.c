/* Per-tenant counters of one acceptor (docs/TENANTS.md, "Counters";
 * docs/METRICS.md, "Per tenant"): connections authenticated and open, frames
 * acknowledged and rejected by code, bytes, time throttled. They live in the
 * tenant's row of the acceptor's metrics page (common/metrics_page.h), found
 * by the tenant's id, so a restarted or reloaded acceptor continues the
 * counts its slot had, whatever order the tenants file now has. The metrics
 * process exposes them and the supervisor logs them, summed over acceptors.
 * Indexed like the acceptor's tenants table, which never changes during its
 * life (a reload replaces it). */
#include <stdlib.h>

#include "acceptor/acc.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "common/tenants.h"

int acc_tenant_count_init(struct acc *a)
{
	size_t n = a->cfg->tenants ? a->cfg->tenants->n : 0;
	if (!n)
		return 0;
	a->tcount = calloc(n, sizeof(*a->tcount));
	if (!a->tcount) {
		qs_err("out of memory for the tenants' counters");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		a->tcount[i] = qs_mp_tenant_row(a->cfg->tenants->t[i].id, a->cfg->tenants->t[i].name);
	return 0;
}

void acc_tenant_count_free(struct acc *a)
{
	free(a->tcount);
	a->tcount = NULL;
}

static struct qs_mp_tenant *of(const struct acc_conn *c)
{
	const struct acc *a = c->a;
	return c->tenant && a->tcount ? a->tcount[c->tenant - a->cfg->tenants->t] : NULL;
}

void acc_tenant_count_conn(const struct acc_conn *c, int delta)
{
	struct qs_mp_tenant *t = of(c);
	if (!t)
		return;
	if (delta > 0)
		qs_mp_tadd(t, QS_TM_CONNS, 1);
	qs_mp_tadd(t, QS_TM_OPEN, (uint64_t)(int64_t)delta);
}

void acc_tenant_count_frame(const struct acc_conn *c, uint16_t code, uint32_t bytes)
{
	struct qs_mp_tenant *t = of(c);
	if (!t)
		return;
	qs_mp_tadd(t, QS_TM_BYTES, bytes);
	/* the rejection rows follow QS_REJ_* (1..9) as the page's do (qs_m_rejected) */
	qs_mp_tadd(t, code ? (enum qs_tmetric)(QS_TM_REJ_INVALID_JSON + qs_m_rejected(code) - QS_M_REJ_INVALID_JSON)
			   : QS_TM_ACKED, 1);
}

void acc_tenant_count_throttled(const struct acc_conn *c, uint64_t ns)
{
	struct qs_mp_tenant *t = of(c);
	if (t)
		qs_mp_tadd(t, QS_TM_THROTTLED, ns);
}

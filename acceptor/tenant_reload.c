/* A reload whose only change is the tenants file, applied in place
 * (QS_CTL_TENANTS; docs/ARCHITECTURE.md, "Tenants reloaded in place"): the
 * acceptor keeps its connections. Its per-tenant counters and limit state are
 * rebuilt for the new table and carried over by tenant id (the buckets and
 * open counts are the tenant's shared row, found by id; never by
 * position: a reload may add, remove or reorder tenants). A connection whose
 * tenant is gone, or whose credential its tenant no longer lists, is revoked:
 * it decodes nothing more and closes with unauthenticated once every frame it
 * sent is answered (auth.c). Every other connection goes on untouched. */
#include <stdlib.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "common/tenants.h"

void acc_tenants_reload(struct acc *a, struct qs_tenants *old)
{
	const struct qs_tenants *ts = a->cfg->tenants;
	struct qs_mp_tenant **old_count = a->tcount;
	struct acc_tenant_limit *old_lim = a->tlimit;
	a->tcount = NULL;
	a->tlimit = NULL;
	if (acc_tenant_count_init(a) || acc_limit_init(a)) {
		/* out of memory: the tenants apply, their counters and limits are off */
		acc_tenant_count_free(a);
		acc_limit_free(a);
	}
	acc_limit_carry(a, old_lim, old);
	unsigned kept = 0, revoked = 0;
	for (struct acc_conn *c = a->conns; c; c = c->next) {
		if (!c->tenant)
			continue;
		const struct qs_tenant *t = qs_tenants_by_id(ts, c->tenant->id);
		if (!t || !qs_tenant_has_credential(t, c->credential)) {
			acc_auth_revoke(c); /* logs with the old name, still valid here */
			acc_conn_mark_dirty(c); /* an idle one too: its next write pass closes it once answered */
			revoked++;
		} else {
			kept++;
		}
		if (!t && old_count) /* its tenant is gone: no longer open in its row */
			qs_mp_tadd(old_count[c->tenant - old->t], QS_TM_OPEN, (uint64_t)(int64_t)-1);
		c->tenant = t;
	}
	free(old_count);
	free(old_lim);
	qs_tenants_free(old);
	qs_info("tenants applied in place: %zu tenant(s); %u connection(s) kept, %u revoked", ts->n, kept, revoked);
}

/* Per-tenant limits (docs/TENANTS.md, "Limits"): events and bytes per second
 * as token buckets with a burst, connections, message size.
 *
 * Whole server: the buckets and the open-connection counts live in the
 * tenant's row of the region all acceptors share (common/shared_limits.h),
 * so a tenant gets its limit wherever its connections land. A tenant over a
 * rate with on-limit = throttle is not refused anything: its connections
 * stop decoding (the bytes wait in the stream's pending buffer, pending.c),
 * so their frames are not answered and their flow-control credit is not
 * extended; the client, out of credit, stops sending. The buckets go into
 * debt by a whole frame, so a frame larger than the burst still passes, and
 * the debt is paid before the next. What is this acceptor's alone: when it
 * last found a tenant held (its throttled time), the limit it names to its
 * clients, and the shipper's word on spool quotas. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/shared_limits.h"
#include "common/tenants.h"

struct acc_tenant_limit {
	struct qs_sl_row *row;        /* its buckets and counts; NULL: none to be had, no limit */
	double rate[QS_SL_BUCKETS];   /* tokens a second (the whole server's); 0: no limit */
	uint64_t held_since;          /* when it was last found held; 0: not held */
	bool over_quota;              /* the shipper says: over its spool-quota */
	const char *held_at;          /* the limit it is held at */
};

/* The shared region, mapped once (before the sandbox) and kept for the
 * process's life: rows outlive any tenants table. This acceptor's column
 * starts at 0 (a predecessor's connections died with it). */
static void attach(struct acc *a)
{
	a->limits_tried = true;
	a->limits = qs_sl_map(QS_CHILD_LIMITS_FD);
	close(QS_CHILD_LIMITS_FD);
	if (a->limits)
		qs_sl_clear_column(a->limits, a->cfg->steer_key);
	else if (a->cfg->tenants && a->cfg->tenants->n)
		qs_warn("no shared limit state from the supervisor: tenants are limited per acceptor");
}

/* The tenant's row: the shared one, else one of this acceptor's own. */
static struct qs_sl_row *row_of(struct acc *a, const struct qs_tenant *t)
{
	struct qs_sl_row *r = a->limits ? qs_sl_row(a->limits, t->id) : NULL;
	if (r)
		return r;
	if (!a->limits_own && !(a->limits_own = calloc(1, sizeof(*a->limits_own))))
		return NULL;
	if (a->limits)
		qs_warn("tenant %s: the shared limit state is full (%d tenants since start): limited per acceptor",
			t->name, QS_SL_ROWS);
	return qs_sl_row(a->limits_own, t->id);
}

int acc_limit_init(struct acc *a)
{
	if (!a->limits_tried)
		attach(a);
	size_t n = a->cfg->tenants ? a->cfg->tenants->n : 0;
	if (!n)
		return 0;
	a->tlimit = calloc(n, sizeof(*a->tlimit));
	if (!a->tlimit) {
		qs_err("out of memory for the tenants' limits");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct qs_tenant *t = &a->cfg->tenants->t[i];
		a->tlimit[i].row = row_of(a, t);
		a->tlimit[i].rate[QS_SL_EVENTS] = (double)t->lim.events_per_second;
		a->tlimit[i].rate[QS_SL_BYTES] = (double)t->lim.bytes_per_second;
	}
	return 0;
}

void acc_limit_carry(struct acc *a, const struct acc_tenant_limit *old, const struct qs_tenants *old_ts)
{
	const struct qs_tenants *ts = a->cfg->tenants;
	for (size_t i = 0; old && old_ts && a->tlimit && i < ts->n; i++) {
		const struct qs_tenant *o = qs_tenants_by_id(old_ts, ts->t[i].id);
		if (!o)
			continue; /* added */
		const struct acc_tenant_limit *f = &old[o - old_ts->t];
		struct acc_tenant_limit *t = &a->tlimit[i];
		t->held_since = f->held_since;
		t->over_quota = f->over_quota;
		t->held_at = f->held_at;
	}
}

void acc_limit_free(struct acc *a)
{
	free(a->tlimit);
	a->tlimit = NULL;
}

static struct acc_tenant_limit *of(const struct acc_conn *c)
{
	return c->tenant && c->a->tlimit ? &c->a->tlimit[c->tenant - c->a->cfg->tenants->t] : NULL;
}

/* Whether it has a rate to keep: else its frames need no clock and no
 * bucket (a clock read per frame was most of what tenants cost the acceptor
 * at full load: PERFORMANCE round 16). */
static bool rated(const struct acc_tenant_limit *t)
{
	return t->row && (t->rate[QS_SL_EVENTS] > 0 || t->rate[QS_SL_BYTES] > 0);
}

static void refill(struct acc_tenant_limit *t, uint64_t now)
{
	if (rated(t))
		qs_sl_refill(t->row, t->rate, now);
}

/* The limit the tenant is over, or NULL. */
static const char *over(const struct acc_tenant_limit *t)
{
	if (t->over_quota)
		return "spool-quota";
	if (t->row && t->rate[QS_SL_EVENTS] > 0 && qs_sl_in_debt(t->row, QS_SL_EVENTS))
		return "events-per-second";
	if (t->row && t->rate[QS_SL_BYTES] > 0 && qs_sl_in_debt(t->row, QS_SL_BYTES))
		return "bytes-per-second";
	return NULL;
}

const char *acc_limit_admit(struct acc_conn *c, const struct qs_tenant *tenant)
{
	struct acc *a = c->a;
	acc_limit_gone(c); /* never counted twice */
	if (!tenant || !a->tlimit)
		return NULL;
	struct qs_sl_row *row = a->tlimit[tenant - a->cfg->tenants->t].row;
	/* counted even without a limit: a reload may set one */
	if (row && !qs_sl_admit(row, a->cfg->steer_key, tenant->lim.max_connections))
		return "tenant over its max-connections";
	c->lim_row = row;
	return NULL;
}

void acc_limit_gone(struct acc_conn *c)
{
	/* the row it was counted in, whatever the tenants table is now */
	if (c->lim_row)
		qs_sl_leave(c->lim_row, c->a->cfg->steer_key);
	c->lim_row = NULL;
}

uint16_t acc_limit_frame(struct acc_conn *c, uint32_t len, char *why, size_t whylen)
{
	struct acc_tenant_limit *t = of(c);
	if (!t)
		return 0;
	const struct qs_tenant_limits *l = &c->tenant->lim;
	if (l->max_message_size && len > l->max_message_size) {
		/* the same words as the server's own limit: a client learns the limit from them */
		snprintf(why, whylen, "frame of %u bytes exceeds the limit of %" PRIu64 " bytes", len, l->max_message_size);
		return QS_REJ_TOO_LARGE;
	}
	if (rated(t))
		refill(t, qs_now_ns());
	const char *limit = over(t);
	if (limit && !t->over_quota && l->on_limit == QS_ON_LIMIT_REJECT) {
		snprintf(why, whylen, "rate limited: tenant over its %s", limit);
		return QS_REJ_RATE_LIMITED;
	}
	if (t->row && t->rate[QS_SL_EVENTS] > 0)
		qs_sl_take(t->row, QS_SL_EVENTS, 1);
	if (t->row && t->rate[QS_SL_BYTES] > 0)
		qs_sl_take(t->row, QS_SL_BYTES, 4.0 + len);
	return 0;
}

bool acc_limit_may_hold(const struct acc_conn *c)
{
	const struct acc_tenant_limit *t = of(c);
	return t && (rated(t) || t->over_quota || t->held_since);
}

bool acc_limit_held(struct acc_conn *c)
{
	if (!acc_limit_may_hold(c))
		return false;
	struct acc_tenant_limit *t = of(c);
	uint64_t now = qs_now_ns();
	refill(t, now);
	/* a spool quota always holds; a rate only with on-limit = throttle */
	const char *limit = over(t);
	if (limit && !t->over_quota && c->tenant->lim.on_limit == QS_ON_LIMIT_REJECT)
		limit = NULL;
	if (limit) {
		t->held_at = limit;
		if (!t->held_since)
			t->held_since = now;
		return true;
	}
	if (t->held_since) {
		acc_tenant_count_throttled(c, now - t->held_since);
		t->held_since = 0;
	}
	return false;
}

const char *acc_limit_held_at(const struct acc_conn *c)
{
	const struct acc_tenant_limit *t = of(c);
	return t ? t->held_at : NULL;
}

void acc_limit_quota(struct acc *a, const uint8_t *ids, uint32_t n)
{
	if (!a->tlimit)
		return;
	const struct qs_tenants *ts = a->cfg->tenants;
	for (size_t i = 0; i < ts->n; i++)
		a->tlimit[i].over_quota = false;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t id;
		memcpy(&id, ids + 8 * (size_t)k, 8);
		const struct qs_tenant *t = qs_tenants_by_id(ts, id);
		if (t)
			a->tlimit[t - ts->t].over_quota = true;
	}
}

/* Every tick: connections held back decode again once their tenant has
 * tokens (nothing else wakes them: their clients are out of credit). */
void acc_limit_tick(struct acc *a)
{
	if (!a->tlimit)
		return;
	for (struct acc_conn *c = a->conns; c; c = c->next)
		if (c->pending && c->tenant && !acc_limit_held(c))
			acc_conn_mark_dirty(c);
}

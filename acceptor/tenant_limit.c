/* Per-tenant limits (docs/TENANTS.md, "Limits"): events and bytes per second
 * as token buckets with a burst, connections, message size.
 *
 * Whole server: each acceptor enforces its share of a tenant's rate and
 * connections (qs_config_acceptor_share: BPF steering spreads connections
 * evenly, as for -m). A tenant over a rate with on-limit = throttle is not
 * refused anything: its connections stop decoding (the bytes wait in the
 * stream's pending buffer, pending.c), so their frames are not answered and
 * their flow-control credit is not extended; the client, out of credit,
 * stops sending. The buckets go into debt by a whole frame, so a frame larger
 * than the burst still passes, and the debt is paid before the next. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/tenants.h"

#define BURST_DIV 5 /* the burst: a fifth of a second of the rate */

struct acc_tenant_limit {
	double ev, by;           /* tokens; below 0: in debt, held */
	double ev_rate, by_rate; /* this acceptor's share a second; 0: no limit */
	uint64_t refill_mono;
	uint64_t open;           /* its connections here */
	uint64_t held_since;     /* when it was last found held; 0: not held */
	bool over_quota;         /* the shipper says: over its spool-quota */
	const char *held_at;     /* the limit it is held at */
};

int acc_limit_init(struct acc *a)
{
	size_t n = a->cfg->tenants ? a->cfg->tenants->n : 0;
	if (!n)
		return 0;
	a->tlimit = calloc(n, sizeof(*a->tlimit));
	if (!a->tlimit) {
		qs_err("out of memory for the tenants' limits");
		return -1;
	}
	uint64_t now = qs_now_ns();
	for (size_t i = 0; i < n; i++) {
		const struct qs_tenant_limits *l = &a->cfg->tenants->t[i].lim;
		struct acc_tenant_limit *t = &a->tlimit[i];
		t->ev_rate = (double)qs_config_acceptor_share(a->cfg, l->events_per_second);
		t->by_rate = (double)qs_config_acceptor_share(a->cfg, l->bytes_per_second);
		t->ev = t->ev_rate / BURST_DIV;
		t->by = t->by_rate / BURST_DIV;
		t->refill_mono = now;
	}
	return 0;
}

/* Tokens carried to a new rate: no more than its burst; a debt stays owed.
 * From no limit to one: a full burst, as at start. */
static double carried(double tokens, double old_rate, double rate)
{
	double burst = rate / BURST_DIV;
	return old_rate > 0 && tokens < burst ? tokens : burst;
}

void acc_limit_carry(struct acc *a, const struct acc_tenant_limit *old, const struct qs_tenants *old_ts)
{
	const struct qs_tenants *ts = a->cfg->tenants;
	for (size_t i = 0; old && old_ts && a->tlimit && i < ts->n; i++) {
		const struct qs_tenant *o = qs_tenants_by_id(old_ts, ts->t[i].id);
		if (!o)
			continue; /* added: as at start */
		const struct acc_tenant_limit *f = &old[o - old_ts->t];
		struct acc_tenant_limit *t = &a->tlimit[i];
		t->ev = carried(f->ev, f->ev_rate, t->ev_rate);
		t->by = carried(f->by, f->by_rate, t->by_rate);
		t->refill_mono = f->refill_mono;
		t->open = f->open;
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

static size_t idx_of(const struct acc_conn *c)
{
	return (size_t)(c->tenant - c->a->cfg->tenants->t);
}

static struct acc_tenant_limit *of(const struct acc_conn *c)
{
	return c->tenant && c->a->tlimit ? &c->a->tlimit[idx_of(c)] : NULL;
}

static double refill_one(double tokens, double rate, double dt)
{
	double burst = rate / BURST_DIV;
	tokens += rate * dt;
	return tokens > burst ? burst : tokens;
}

static void refill(struct acc_tenant_limit *t)
{
	uint64_t now = qs_now_ns();
	double dt = (double)(now - t->refill_mono) / 1e9;
	t->refill_mono = now;
	if (t->ev_rate > 0)
		t->ev = refill_one(t->ev, t->ev_rate, dt);
	if (t->by_rate > 0)
		t->by = refill_one(t->by, t->by_rate, dt);
}

/* The limit the tenant is over, or NULL. */
static const char *over(const struct acc_tenant_limit *t)
{
	if (t->over_quota)
		return "spool-quota";
	if (t->ev_rate > 0 && t->ev < 0)
		return "events-per-second";
	if (t->by_rate > 0 && t->by < 0)
		return "bytes-per-second";
	return NULL;
}

const char *acc_limit_admit(const struct acc_conn *c, const struct qs_tenant *tenant)
{
	const struct acc *a = c->a;
	if (!tenant || !a->tlimit || !tenant->lim.max_connections)
		return NULL;
	uint64_t share = qs_config_acceptor_share(a->cfg, tenant->lim.max_connections);
	if (a->tlimit[tenant - a->cfg->tenants->t].open < share)
		return NULL;
	return "tenant over its max-connections";
}

void acc_limit_conn(const struct acc_conn *c, int delta)
{
	struct acc_tenant_limit *t = of(c);
	if (t)
		t->open += (uint64_t)(int64_t)delta;
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
	refill(t);
	const char *limit = over(t);
	if (limit && !t->over_quota && l->on_limit == QS_ON_LIMIT_REJECT) {
		snprintf(why, whylen, "rate limited: tenant over its %s", limit);
		return QS_REJ_RATE_LIMITED;
	}
	t->ev -= 1;
	t->by -= 4.0 + len;
	return 0;
}

bool acc_limit_held(struct acc_conn *c)
{
	struct acc_tenant_limit *t = of(c);
	if (!t)
		return false;
	refill(t);
	/* a spool quota always holds; a rate only with on-limit = throttle */
	const char *limit = over(t);
	if (limit && !t->over_quota && c->tenant->lim.on_limit == QS_ON_LIMIT_REJECT)
		limit = NULL;
	uint64_t now = t->refill_mono;
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

#include "ipc/fair.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/drr.h"
#include "common/log.h"
#include "ipc/msg.h"

#define MIXED_NS 1000000000ull /* two tenants seen within this: messages go through the look-ahead */

/* One message kept in the look-ahead: its entries, then its bytes. */
struct held {
	size_t refs; /* its records not yet served */
	size_t size; /* what it counts against the look-ahead */
};

struct entry {
	const uint8_t *rec, *payload;
	struct held *h;
};

#define REC_MAX 128 /* the largest record a kind may have */

struct qs_fair {
	struct qs_drr drr;
	struct qs_fair_kind kind;
	size_t bytes;      /* of the held messages */
	uint64_t solo;     /* the tenant of the last message */
	bool solo_set;
	uint64_t mixed_ns; /* when two tenants were last seen together */
	bool off;
};

struct qs_fair *qs_fair_new(bool off, const struct qs_fair_kind *kind)
{
	if (kind->rec_len > REC_MAX || kind->tenant_off + 8 > kind->rec_len)
		return NULL;
	struct qs_fair *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->kind = *kind;
#ifdef QS_TEST_HOOKS
	/* QS_TEST_FAIR_FIFO=1: records in arrival order (test_tenant_fair shows the difference) */
	const char *v = getenv("QS_TEST_FAIR_FIFO");
	off = off || (v && *v == '1');
#endif
	qs_drr_init(&f->drr, QS_FAIR_QUANTUM);
	f->off = off;
	return f;
}

static void release(struct qs_fair *f, struct held *h)
{
	if (--h->refs)
		return;
	f->bytes -= h->size;
	free(h);
}

void qs_fair_free(struct qs_fair *f)
{
	if (!f)
		return;
	struct qs_drr_item it;
	while (qs_drr_pop(&f->drr, &it, NULL))
		release(f, ((struct entry *)it.p)->h);
	qs_drr_free(&f->drr);
	free(f);
}

bool qs_fair_empty(const struct qs_fair *f)
{
	return qs_drr_empty(&f->drr);
}

static bool mixed(const struct qs_fair *f)
{
	return f->mixed_ns && qs_now_ns() - f->mixed_ns < MIXED_NS;
}

bool qs_fair_room(const struct qs_fair *f)
{
	return qs_fair_empty(f) || (f->bytes < QS_FAIR_LOOKAHEAD && mixed(f));
}

/* Counts the message's valid records; *several: more than one tenant among
 * them, or one other than the last message's. */
static uint64_t tenant_of(const struct qs_fair *f, const void *rec)
{
	uint64_t t;
	memcpy(&t, (const uint8_t *)rec + f->kind.tenant_off, sizeof(t));
	return t;
}

static size_t scan(struct qs_fair *f, const struct qs_batch_iter *it0, bool *several, uint64_t *tenant, int *rc)
{
	struct qs_batch_iter it = *it0;
	uint8_t rec[REC_MAX];
	const uint8_t *payload;
	size_t n = 0;
	*several = false;
	while ((*rc = qs_batch_next(&it, rec, f->kind.rec_len, f->kind.payload_len, &payload)) == 1) {
		uint64_t t = tenant_of(f, rec);
		if (!n)
			*tenant = t;
		else if (t != *tenant)
			*several = true;
		n++;
	}
	if (n && f->solo_set && *tenant != f->solo)
		*several = true;
	return n;
}

/* Copies the message and queues its n records per tenant. */
static int hold(struct qs_fair *f, const struct qs_batch_iter *it0, const void *msg, size_t len, size_t n)
{
	size_t size = sizeof(struct held) + n * sizeof(struct entry) + len;
	struct held *h = malloc(size);
	if (!h)
		return -1;
	struct entry *e = (struct entry *)(h + 1);
	uint8_t *copy = (uint8_t *)(e + n);
	memcpy(copy, msg, len);
	struct qs_batch_iter it = *it0;
	it.p = copy + (it0->p - (const uint8_t *)msg);
	*h = (struct held){.refs = n, .size = size};
	f->bytes += size;
	uint8_t rec[REC_MAX];
	for (size_t i = 0; i < n; i++) {
		e[i].rec = it.p;
		qs_batch_next(&it, rec, f->kind.rec_len, f->kind.payload_len, &e[i].payload);
		e[i].h = h;
		size_t bytes = f->kind.rec_len + f->kind.payload_len(rec);
		if (qs_drr_push(&f->drr, tenant_of(f, rec), &e[i], bytes)) {
			qs_err("out of memory queueing records: %zu dropped (the acceptor will resend)", n - i);
			h->refs -= n - i - 1;
			release(f, h);
			break;
		}
	}
	return 0;
}

int qs_fair_take(struct qs_fair *f, const struct qs_batch_iter *it, const void *msg, size_t len)
{
	if (f->off)
		return 0;
	bool several;
	uint64_t tenant = 0;
	int rc;
	size_t n = scan(f, it, &several, &tenant, &rc);
	if (n) {
		f->solo = tenant;
		f->solo_set = true;
	}
	if (several)
		f->mixed_ns = qs_now_ns();
	if (n && !several && !mixed(f) && qs_fair_empty(f))
		return 0; /* one tenant alone: straight through */
	if (rc < 0)
		qs_warn("malformed message from %u: its rest dropped", it->sender);
	if (n && hold(f, it, msg, len, n))
		return 0; /* out of memory: handled now, unfairly but not lost */
	if (f->drr.active > 1)
		f->mixed_ns = qs_now_ns();
	return 1;
}

bool qs_fair_serve(struct qs_fair *f, size_t budget, qs_fair_serve_fn fn, void *arg)
{
	size_t served = 0;
	struct qs_drr_item it;
	while (served < budget && qs_drr_pop(&f->drr, &it, NULL)) {
		struct entry *e = it.p;
		fn(arg, e->rec, e->payload);
		served += it.bytes;
		release(f, e->h);
	}
	return !qs_fair_empty(f);
}

bool qs_fair_serve_pass(struct qs_fair *f, bool (*go)(void *arg), qs_fair_serve_fn fn, void *arg)
{
	uint64_t t0 = qs_now_ns();
	bool more;
	while ((more = qs_fair_serve(f, QS_FAIR_QUANTUM, fn, arg)) && go(arg) && qs_now_ns() - t0 < QS_FAIR_PASS_NS)
		;
	return more;
}

void qs_fair_later(struct event *ev)
{
	static const struct timeval now = {0, 0};
	if (!evtimer_pending(ev, NULL))
		evtimer_add(ev, &now);
}

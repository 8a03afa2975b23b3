#include "ipc/fair.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/drr.h"
#include "common/evbase.h"
#include "common/log.h"
#include "ipc/msg.h"

/* Round robin costs: a message copied, its records queued one by one, and
 * answers out of arrival order, which every process downstream and the
 * acceptor pay for (PERFORMANCE.md, "Round 18"). It changes nothing when the
 * tenants' shares are equal already, as with equal clients at full load; so
 * the look-ahead turns on only when they are not, and off when they are again.
 *
 * On: at the first record of a tenant not seen lately beside others that
 * send, the rest of its message handed over at once (qs_fair_count;
 * NEWCOMER_BESIDE: it may be light, and its records should not wait behind
 * their backlog; tenants starting together need nothing); else
 * judged on what arrives, per epoch (EPOCH_BYTES or EPOCH_NS, whichever
 * first), each tenant's bytes averaged over the last epochs (halved each
 * epoch: a burst of one connection does not count as a share, a tenant seen
 * once in the last FORGET_EPOCHS still does). Unequal: the largest over BALANCE
 * times the smallest, or more tenants than an epoch tracks.
 * Off: judged on what the look-ahead holds, since while it serves by round
 * robin every tenant arrives at about the same rate: equal backlogs (or none
 * to speak of) mean arrival order would serve the same shares; a tenant with
 * more connections has more waiting, and one that trickles nothing. */
#define EPOCH_BYTES (16u << 20)
#define EPOCH_NS 100000000ull
#define EPOCH_TENANTS 16
#define BALANCE 1.5
#define FORGET_EPOCHS 10 /* a tenant not seen for this many epochs has gone */
#define NEWCOMER_BESIDE (256u << 10) /* bytes of the others, this epoch or on average */
#define HOLD_NS 100000000ull          /* on for at least this long */
#define SMALL_BACKLOG (4 * QS_FAIR_QUANTUM) /* under this, nobody waits behind anyone */

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
	size_t bytes; /* of the held messages */
	bool off;
	bool shared;  /* serving by round robin */
	uint64_t shared_since;
	uint64_t turns, shared_ns; /* how often, how long it was on: logged at the end */
	struct { /* what arrived by tenant: this epoch's bytes, and the average */
		uint64_t tenant[EPOCH_TENANTS], bytes[EPOCH_TENANTS], avg[EPOCH_TENANTS], total, start_ns;
		uint8_t idle[EPOCH_TENANTS]; /* epochs in a row without its bytes */
		unsigned n, last;
		bool more;     /* a tenant beyond EPOCH_TENANTS */
		bool newcomer; /* a tenant not seen lately beside others */
		uint64_t hi;   /* the largest average at the last epoch's end */
	} ep;
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

static void share(struct qs_fair *f, bool on, uint64_t now)
{
	if (on) {
		f->turns++;
		f->shared_since = now;
	} else {
		f->shared_ns += now - f->shared_since;
	}
	f->shared = on;
}

void qs_fair_free(struct qs_fair *f)
{
	if (!f)
		return;
	if (f->shared)
		share(f, false, qs_now_ns());
	if (f->turns)
		qs_info("tenants' fair share: round robin turned on %llu time(s), %.1f s in all",
			(unsigned long long)f->turns, (double)f->shared_ns / 1e9);
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

bool qs_fair_room(const struct qs_fair *f)
{
	return qs_fair_empty(f) || (f->bytes < QS_FAIR_LOOKAHEAD && f->shared);
}

static uint64_t flow_id(const struct qs_fair *f, uint64_t tenant)
{
	return !tenant || !f->kind.known || f->kind.known(f->kind.known_arg, tenant) ? tenant : 0;
}

static uint64_t tenant_of(const struct qs_fair *f, const void *rec)
{
	uint64_t t;
	memcpy(&t, (const uint8_t *)rec + f->kind.tenant_off, sizeof(t));
	return flow_id(f, t);
}

static void epoch_count(struct qs_fair *f, uint64_t tenant, size_t bytes)
{
	f->ep.total += bytes;
	unsigned i = f->ep.last;
	if (i >= f->ep.n || f->ep.tenant[i] != tenant)
		for (i = 0; i < f->ep.n && f->ep.tenant[i] != tenant; i++)
			;
	if (i == f->ep.n) {
		if (i == EPOCH_TENANTS) {
			f->ep.more = true;
			return;
		}
		/* beside others that send enough to be waited behind */
		f->ep.newcomer |= f->ep.n > 0 && (f->ep.total >= NEWCOMER_BESIDE || f->ep.hi >= NEWCOMER_BESIDE);
		f->ep.tenant[f->ep.n++] = tenant;
		f->ep.bytes[i] = f->ep.avg[i] = 0;
		f->ep.idle[i] = 0;
	}
	f->ep.bytes[i] += bytes;
	f->ep.last = i;
}

bool qs_fair_count(struct qs_fair *f, uint64_t tenant, size_t bytes)
{
	if (f->off)
		return false;
	epoch_count(f, flow_id(f, tenant), bytes);
	if (!f->ep.newcomer || f->shared)
		return false;
	/* the rest of this message is to be served by round robin already */
	f->ep.newcomer = false;
	share(f, true, qs_now_ns());
	return true;
}

static bool within(uint64_t lo, uint64_t hi)
{
	return (double)hi <= BALANCE * (double)lo;
}

/* Ends the epoch: each tenant's average takes its bytes, the tenants gone
 * from it are forgotten; whether the averages are within BALANCE. */
static bool arrivals_equal(struct qs_fair *f)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	unsigned k = 0;
	for (unsigned i = 0; i < f->ep.n; i++) {
		uint64_t avg = f->ep.avg[i] / 2 + f->ep.bytes[i];
		unsigned idle = f->ep.bytes[i] ? 0 : f->ep.idle[i] + 1u;
		if (idle > FORGET_EPOCHS)
			continue;
		f->ep.tenant[k] = f->ep.tenant[i];
		f->ep.avg[k] = avg;
		f->ep.idle[k] = (uint8_t)idle;
		f->ep.bytes[k++] = 0;
		lo = avg < lo ? avg : lo;
		hi = avg > hi ? avg : hi;
	}
	f->ep.n = k;
	f->ep.last = 0;
	f->ep.hi = hi;
	return !f->ep.more && (k < 2 || within(lo, hi));
}

/* Whether the tenants seen lately have about as much waiting each. */
static bool backlogs_equal(const struct qs_fair *f)
{
	if (f->drr.bytes < SMALL_BACKLOG)
		return true;
	if (f->ep.more)
		return false; /* more tenants than tracked: their backlogs are not all known */
	uint64_t lo = UINT64_MAX, hi = 0;
	for (unsigned i = 0; i < f->ep.n; i++) {
		uint64_t b = 0;
		for (size_t j = 0; j < f->drr.n; j++)
			if (f->drr.f[j].id == f->ep.tenant[i])
				b = f->drr.f[j].bytes;
		lo = b < lo ? b : lo;
		hi = b > hi ? b : hi;
	}
	return within(lo, hi);
}

static void epoch_judge(struct qs_fair *f)
{
	uint64_t now = qs_now_ns();
	if (!f->ep.start_ns)
		f->ep.start_ns = now;
	if (f->ep.newcomer && !f->shared)
		share(f, true, now); /* its first records need not wait behind the others' backlog */
	f->ep.newcomer = false;
	if (f->ep.total < EPOCH_BYTES && now - f->ep.start_ns < EPOCH_NS)
		return;
	bool equal = arrivals_equal(f);
	if (!f->shared && !equal)
		share(f, true, now);
	else if (f->shared && now - f->shared_since >= HOLD_NS && backlogs_equal(f))
		share(f, false, now);
	f->ep.more = false;
	f->ep.total = 0;
	f->ep.start_ns = now;
}

/* Copies the message and queues its records per tenant, counting them as
 * arrived: those before a malformed one or before memory ran out. -1: no
 * memory for the copy. */
static int hold(struct qs_fair *f, const struct qs_batch_iter *it0, const void *msg, size_t len)
{
	/* as many entries as whole records can fit, whatever the count claims */
	size_t n = it0->left / (((f->kind.rec_len + 7) & ~(size_t)7));
	n = it0->remaining < n ? it0->remaining : n;
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
	size_t k = 0;
	int rc = 1;
	while (k < n) {
		e[k].rec = it.p;
		if ((rc = qs_batch_next(&it, rec, f->kind.rec_len, f->kind.payload_len, &e[k].payload)) != 1)
			break;
		e[k].h = h;
		size_t bytes = f->kind.rec_len + f->kind.payload_len(rec);
		epoch_count(f, tenant_of(f, rec), bytes);
		if (qs_drr_push(&f->drr, tenant_of(f, rec), &e[k], bytes)) {
			qs_err("out of memory queueing records: %zu dropped (the acceptor will resend)", n - k);
			break;
		}
		k++;
	}
	if (k == n && (it.remaining || it.left))
		rc = -1; /* more claimed than fits, or bytes after the last record */
	if (rc < 0)
		qs_warn("malformed message from %u: its rest dropped", it0->sender);
	if (k == 0) {
		f->bytes -= size;
		free(h);
	} else {
		h->refs = k;
	}
	return 0;
}

int qs_fair_take(struct qs_fair *f, const struct qs_batch_iter *it, const void *msg, size_t len)
{
	if (f->off)
		return 0;
	/* judged on what arrived before this message: its own records are
	 * counted by whoever handles them (qs_fair_count, or hold) */
	epoch_judge(f);
	/* in arrival order once what was held is served: a tenant keeps its order */
	if (!f->shared && qs_fair_empty(f))
		return 0;
	/* out of memory: handled now, unfairly but not lost */
	return hold(f, it, msg, len) < 0 ? 0 : 1;
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
	qs_event_later(ev);
}

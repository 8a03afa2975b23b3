/* Per-source limits on new connections: --max-connections-per-source
 * (connections open at once) and --max-handshakes-per-source (new
 * connections a second, a GCRA token bucket with a burst of twice the rate),
 * so one host cannot take the whole -m.
 *
 * A source is an IPv4 address or an IPv6 /64 (one host, or one LAN, owns a
 * whole /64 and can pick any address in it); IPv4-mapped IPv6 addresses count
 * as their IPv4 address. Each acceptor keeps its own table and enforces its
 * share of both limits (ceil(limit / --acceptors)): steering spreads a
 * source's new connections over the acceptors.
 *
 * The table is bounded: one entry per source with a live connection (at most
 * this acceptor's share of -m) plus ACC_SRC_IDLE entries that remember only
 * the handshake rate of sources without connections; when it is full the
 * source idle the longest is forgotten. Entries are allocated once, at start
 * (pages touched as they are first used); nothing is allocated per packet. */
#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/log.h"
#include "common/metrics_page.h"

#define ACC_SRC_IDLE 4096
#define ACC_SRC_LOG_NS (10ull * 1000000000)
#define ACC_SRC_LOG_LINES 16 /* lines about single sources per ACC_SRC_LOG_NS, all sources together */

struct acc_src {
	uint64_t tat;      /* GCRA: when the bucket is full again (CLOCK_MONOTONIC ns); past: full */
	uint64_t log_mono; /* last log line about this source */
	uint32_t conns;    /* live connections from it */
	uint32_t refused;  /* refusals not logged yet */
	uint32_t hnext;    /* hash chain: next index + 1, 0 at the end */
	int32_t prev, next; /* idle list (conns == 0), oldest first */
	uint8_t key[QS_SRC_KEYLEN];
};

static uint64_t conn_cap(const struct acc *a)
{
	return qs_config_acceptor_share(a->cfg, a->cfg->max_conns_per_source);
}

/* The source of an address: family byte, then 4 (IPv4) or 8 (IPv6 /64) bytes. */
static void src_key(const struct sockaddr *from, uint8_t key[QS_SRC_KEYLEN])
{
	memset(key, 0, QS_SRC_KEYLEN);
	if (from->sa_family == AF_INET6) {
		const struct in6_addr *v6 = &((const struct sockaddr_in6 *)from)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(v6)) {
			key[0] = 4;
			memcpy(key + 1, v6->s6_addr + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, v6->s6_addr, 8);
		}
	} else if (from->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)from)->sin_addr, 4);
	}
}

/* Keyed with a random seed, so sources cannot be chosen to share one chain. */
static uint32_t src_hash(const struct acc_srctab *t, const uint8_t key[QS_SRC_KEYLEN])
{
	uint64_t h = acc_hash_mix(t->seed, key, QS_SRC_KEYLEN);
	return (uint32_t)(h ^ (h >> 32)) & (t->nbuckets - 1);
}

int acc_src_init(struct acc *a)
{
	struct acc_srctab *t = &a->src;
	t->idle_head = t->idle_tail = ACC_NONE;
	t->cap_conns = (uint32_t)conn_cap(a);
	uint64_t rate = qs_config_acceptor_share(a->cfg, a->cfg->max_handshakes_per_source);
	if (!t->cap_conns && !rate)
		return 0; /* no limits: no table */
	t->rate = (uint32_t)rate;
	if (rate) {
		t->interval = (1000000000ull + rate - 1) / rate;
		t->tolerance = (2 * rate - 1) * t->interval; /* a burst of 2 x rate */
	}
	t->cap = (uint32_t)qs_config_acceptor_share(a->cfg, a->cfg->max_connections) + ACC_SRC_IDLE;
	for (t->nbuckets = 1024; t->nbuckets < t->cap; t->nbuckets *= 2)
		;
	/* calloc: the pages of entries never used are never touched */
	t->e = calloc(t->cap, sizeof(*t->e));
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->e || !t->buckets)
		return -1;
	return gnutls_rnd(GNUTLS_RND_NONCE, &t->seed, sizeof(t->seed));
}

void acc_src_free(struct acc *a)
{
	free(a->src.e);
	free(a->src.buckets);
	memset(&a->src, 0, sizeof(a->src));
}

static void idle_unlink(struct acc_srctab *t, int32_t i)
{
	struct acc_src *e = &t->e[i];
	if (e->prev != ACC_NONE)
		t->e[e->prev].next = e->next;
	else
		t->idle_head = e->next;
	if (e->next != ACC_NONE)
		t->e[e->next].prev = e->prev;
	else
		t->idle_tail = e->prev;
}

static void idle_append(struct acc_srctab *t, int32_t i)
{
	struct acc_src *e = &t->e[i];
	e->next = ACC_NONE;
	e->prev = t->idle_tail;
	if (t->idle_tail != ACC_NONE)
		t->e[t->idle_tail].next = i;
	else
		t->idle_head = i;
	t->idle_tail = i;
}

/* Buckets and chains hold index + 1 (0: none), so calloc'd memory needs no setup. */
static int32_t find(const struct acc_srctab *t, const uint8_t key[QS_SRC_KEYLEN], uint32_t h)
{
	for (uint32_t n = t->buckets[h]; n; n = t->e[n - 1].hnext)
		if (!memcmp(t->e[n - 1].key, key, QS_SRC_KEYLEN))
			return (int32_t)(n - 1);
	return ACC_NONE;
}

static void unhash(struct acc_srctab *t, int32_t i)
{
	uint32_t *pp = &t->buckets[src_hash(t, t->e[i].key)];
	while (*pp != (uint32_t)i + 1)
		pp = &t->e[*pp - 1].hnext;
	*pp = t->e[i].hnext;
}

/* A free entry: never used yet, else the source idle the longest (its
 * connection count is 0; only its handshake rate is forgotten). */
static int32_t take_entry(struct acc_srctab *t)
{
	if (t->used < t->cap)
		return (int32_t)t->used++;
	int32_t i = t->idle_head;
	if (i == ACC_NONE)
		return ACC_NONE; /* cannot happen: entries with connections <= -m's share < cap */
	idle_unlink(t, i);
	unhash(t, i);
	return i;
}

static int32_t lookup(const struct acc *a, const struct sockaddr *from, uint8_t key[QS_SRC_KEYLEN], uint32_t *h)
{
	src_key(from, key);
	*h = src_hash(&a->src, key);
	return find(&a->src, key, *h);
}

const char *acc_src_check(struct acc *a, const struct sockaddr *from, int32_t *idx)
{
	struct acc_srctab *t = &a->src;
	uint8_t key[QS_SRC_KEYLEN];
	uint32_t h;
	*idx = ACC_NONE;
	if (!t->e || (*idx = lookup(a, from, key, &h)) == ACC_NONE)
		return NULL;
	struct acc_src *e = &t->e[*idx];
	if (t->cap_conns && e->conns >= t->cap_conns)
		return "busy: too many connections from this address";
	if (t->interval && e->tat > qs_now_ns() + t->tolerance)
		return "busy: too many new connections from this address, retry later";
	return NULL;
}

int32_t acc_src_admit(struct acc *a, const struct sockaddr *from)
{
	struct acc_srctab *t = &a->src;
	uint8_t key[QS_SRC_KEYLEN];
	uint32_t h;
	if (!t->e)
		return ACC_NONE;
	int32_t i = lookup(a, from, key, &h);
	if (i == ACC_NONE) {
		if ((i = take_entry(t)) == ACC_NONE)
			return ACC_NONE;
		struct acc_src *e = &t->e[i];
		memset(e, 0, sizeof(*e));
		memcpy(e->key, key, QS_SRC_KEYLEN);
		e->hnext = t->buckets[h];
		t->buckets[h] = (uint32_t)i + 1;
	} else if (!t->e[i].conns) {
		idle_unlink(t, i);
	}
	struct acc_src *e = &t->e[i];
	uint64_t now = qs_now_ns();
	if (t->interval)
		e->tat = (e->tat > now ? e->tat : now) + t->interval;
	e->conns++;
	return i;
}

void acc_src_release(struct acc *a, int32_t idx)
{
	struct acc_srctab *t = &a->src;
	if (idx == ACC_NONE || !t->e || !t->e[idx].conns)
		return;
	if (--t->e[idx].conns == 0)
		idle_append(t, idx);
}

static void format_source(const uint8_t key[QS_SRC_KEYLEN], char *out, size_t len)
{
	if (key[0] == 6) {
		uint8_t v6[16] = {0};
		memcpy(v6, key + 1, 8);
		if (inet_ntop(AF_INET6, v6, out, (socklen_t)len))
			strncat(out, "/64", len - strlen(out) - 1);
	} else if (!inet_ntop(AF_INET, key + 1, out, (socklen_t)len)) {
		snprintf(out, len, "?");
	}
}

/* One line per source per ACC_SRC_LOG_NS at most, and ACC_SRC_LOG_LINES
 * lines for all sources together; each line counts the refusals it covers. */
void acc_src_refused(struct acc *a, int32_t idx, const char *why)
{
	struct acc_srctab *t = &a->src;
	struct acc_src *e = &t->e[idx];
	uint64_t now = qs_now_ns();
	e->refused++;
	a->n_src_refused++;
	qs_mp_add(strstr(why, "new connections") ? QS_M_REFUSED_RATE : QS_M_REFUSED_SOURCE, 1);
	if (e->log_mono && now - e->log_mono < ACC_SRC_LOG_NS)
		return;
	if (now - t->lines_mono >= ACC_SRC_LOG_NS) {
		t->lines_mono = now;
		t->lines = 0;
	}
	if (t->lines >= ACC_SRC_LOG_LINES)
		return;
	t->lines++;
	char src[INET6_ADDRSTRLEN + 4];
	format_source(e->key, src, sizeof(src));
	qs_info_kv(QS_KV({QS_LOG_PEER, src}, {QS_LOG_CODE, "source_limit"}),
		   "refused %u new connection(s) from %s: %s (%u open; per source and acceptor: %u connections, "
		"%u new a second; 0: no limit)", e->refused, src, why, e->conns, t->cap_conns, t->rate);
	e->refused = 0;
	e->log_mono = now;
}

/* What each recent new attempt was answered, so that its copies get the same
 * answer (connection storms, docs/ARCHITECTURE.md).
 *
 * A client that hears nothing for its first PTO (~1 s) sends its Initial
 * again. In a storm the first copy waits in our socket's queue, and the
 * answer behind the client's own busy loop, so copies of one attempt reach us
 * apart, and each was answered as if it were new. A copy of a refused attempt
 * got a Retry nobody answers (it held a place under the cap for up to a
 * second); a copy of a refused Retry token got a connection after its client
 * had given the attempt up: a half-open connection holding a handshake place
 * and a place under -m until its 10 s handshake timeout (measured: 19-775 in
 * a 10,000 storm; with -m 10,000 the last clients were then refused as
 * "connection limit reached" for seconds after the storm, and each waited its
 * longest backoff). A copy of an attempt sent a Retry that came after the
 * load fell was let in the same way.
 *
 * So each answer is remembered for ACC_ATTEMPT_MEMORY_NS by the attempt's
 * DCID and the client's address and port together (a 64-bit hash keyed with
 * a random seed: the DCID is the client's random choice, so nobody else can
 * aim at its entry), and a copy is answered again alike: refused with the
 * same reason, or sent a Retry that is not counted as one more waiting for
 * its answer. The table is fixed (calloc: its pages are touched only when
 * attempts are refused or sent a Retry); a key is probed in ACC_ATTEMPT_PROBE
 * slots, and when all hold live entries the oldest is forgotten: a forgotten
 * attempt's copy is answered as new, as before. */
#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "acceptor/acc.h"

#define ACC_ATTEMPTS (1u << 16) /* ~5 s of a 10,000 storm's answers, at most a quarter full */
#define ACC_ATTEMPT_PROBE 8
#define ACC_ATTEMPT_MEMORY_MS 5000 /* past a client's second PTO (1 s, then 2 s more) and its delays */

struct acc_attempt_slot {
	uint64_t key;       /* 0: empty */
	const char *reason; /* a refusal's reason (static text); NULL: a Retry */
	uint32_t ms;        /* when answered (CLOCK_MONOTONIC ms, wraps) */
};

int acc_attempts_init(struct acc *a)
{
	a->attempts.slot = calloc(ACC_ATTEMPTS, sizeof(*a->attempts.slot));
	if (!a->attempts.slot)
		return -1;
	a->attempts.memory_ms = ACC_ATTEMPT_MEMORY_MS;
	return gnutls_rnd(GNUTLS_RND_NONCE, &a->attempts.seed, sizeof(a->attempts.seed));
}

void acc_attempts_free(struct acc *a)
{
	free(a->attempts.slot);
	a->attempts.slot = NULL;
}

static uint64_t attempt_key(const struct acc *a, const ngtcp2_pkt_hd *hd, const struct sockaddr *from)
{
	uint64_t h = acc_hash_mix(a->attempts.seed, hd->dcid.data, hd->dcid.datalen);
	if (from->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)from;
		h = acc_hash_mix(h, (const uint8_t *)&s->sin6_port, sizeof(s->sin6_port));
		h = acc_hash_mix(h, s->sin6_addr.s6_addr, sizeof(s->sin6_addr.s6_addr));
	} else {
		const struct sockaddr_in *s = (const struct sockaddr_in *)from;
		h = acc_hash_mix(h, (const uint8_t *)&s->sin_port, sizeof(s->sin_port));
		h = acc_hash_mix(h, (const uint8_t *)&s->sin_addr, sizeof(s->sin_addr));
	}
	h ^= h >> 32;
	return h ? h : 1;
}

static uint32_t now_ms(void)
{
	return (uint32_t)(qs_now_ns() / 1000000);
}

static bool live(const struct acc_attempts *t, const struct acc_attempt_slot *s, uint32_t now)
{
	return s->key && now - s->ms < t->memory_ms;
}

const struct acc_attempt_slot *acc_attempt_seen(const struct acc *a, const ngtcp2_pkt_hd *hd,
						const struct sockaddr *from)
{
	uint64_t key = attempt_key(a, hd, from);
	uint32_t now = now_ms();
	for (unsigned i = 0; i < ACC_ATTEMPT_PROBE; i++) {
		const struct acc_attempt_slot *s = &a->attempts.slot[(key + i) & (ACC_ATTEMPTS - 1)];
		if (s->key == key && live(&a->attempts, s, now))
			return s;
	}
	return NULL;
}

const char *acc_attempt_reason(const struct acc_attempt_slot *s)
{
	return s->reason;
}

void acc_attempt_note(struct acc *a, const ngtcp2_pkt_hd *hd, const struct sockaddr *from, const char *reason)
{
	uint64_t key = attempt_key(a, hd, from);
	uint32_t now = now_ms();
	struct acc_attempt_slot *take = NULL;
	for (unsigned i = 0; i < ACC_ATTEMPT_PROBE; i++) {
		struct acc_attempt_slot *s = &a->attempts.slot[(key + i) & (ACC_ATTEMPTS - 1)];
		if (s->key == key) { /* answered again: the newest answer counts */
			take = s;
			break;
		}
		if (!take || (live(&a->attempts, take, now) &&
			      (!live(&a->attempts, s, now) || now - s->ms > now - take->ms)))
			take = s; /* a free slot, else the oldest */
	}
	take->key = key;
	take->reason = reason;
	take->ms = now;
}

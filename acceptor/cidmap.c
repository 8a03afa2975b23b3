/* Connection ID -> connection. Chained hash table keyed by the raw CID bytes;
 * a connection has several CIDs (its own server CIDs plus the client's first
 * DCID, so a retransmitted Initial finds the connection it created). */
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "acceptor/acc.h"

struct acc_cidmap_node {
	struct acc_cidmap_node *next;
	ngtcp2_cid cid;
	struct acc_conn *c;
};

/* Keyed with a random seed: a client chooses its first DCID, which is in the
 * map while its connection lives, and every datagram's lookup walks the chain
 * of its DCID. Unkeyed (plain FNV-1a, until 2026-12), DCIDs found offline to
 * share one chain made each junk Initial walk thousands of entries. */
static size_t cid_hash(const struct acc_cidmap *m, const uint8_t *p, size_t len)
{
	return (size_t)acc_hash_mix(m->seed, p, len);
}

int acc_cidmap_init(struct acc_cidmap *m)
{
	memset(m, 0, sizeof(*m));
	return gnutls_rnd(GNUTLS_RND_NONCE, &m->seed, sizeof(m->seed)) == 0 ? 0 : -1;
}

static int grow(struct acc_cidmap *m)
{
	size_t n = m->nslots ? m->nslots * 2 : 1024;
	struct acc_cidmap_node **slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < m->nslots; i++) {
		struct acc_cidmap_node *e = m->slots[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t h = cid_hash(m, e->cid.data, e->cid.datalen) & (n - 1);
			e->next = slots[h];
			slots[h] = e;
		}
	}
	free(m->slots);
	m->slots = slots;
	m->nslots = n;
	return 0;
}

int acc_cidmap_put(struct acc_cidmap *m, const ngtcp2_cid *cid, struct acc_conn *c)
{
	if (m->count >= m->nslots && grow(m))
		return -1;
	struct acc_cidmap_node *e = malloc(sizeof(*e));
	if (!e)
		return -1;
	size_t h = cid_hash(m, cid->data, cid->datalen) & (m->nslots - 1);
	e->cid = *cid;
	e->c = c;
	e->next = m->slots[h];
	m->slots[h] = e;
	m->count++;
	return 0;
}

struct acc_conn *acc_cidmap_get(const struct acc_cidmap *m, const uint8_t *cid, size_t len)
{
	if (!m->nslots)
		return NULL;
	size_t h = cid_hash(m, cid, len) & (m->nslots - 1);
	for (struct acc_cidmap_node *e = m->slots[h]; e; e = e->next)
		if (e->cid.datalen == len && !memcmp(e->cid.data, cid, len))
			return e->c;
	return NULL;
}

void acc_cidmap_del(struct acc_cidmap *m, const ngtcp2_cid *cid)
{
	if (!m->nslots)
		return;
	size_t h = cid_hash(m, cid->data, cid->datalen) & (m->nslots - 1);
	for (struct acc_cidmap_node **pp = &m->slots[h]; *pp; pp = &(*pp)->next) {
		struct acc_cidmap_node *e = *pp;
		if (ngtcp2_cid_eq(&e->cid, cid)) {
			*pp = e->next;
			free(e);
			m->count--;
			return;
		}
	}
}

void acc_cidmap_free(struct acc_cidmap *m)
{
	for (size_t i = 0; i < m->nslots; i++) {
		struct acc_cidmap_node *e = m->slots[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->slots);
	m->slots = NULL;
	m->nslots = m->count = 0;
}

size_t acc_cidmap_longest(const struct acc_cidmap *m)
{
	size_t longest = 0;
	for (size_t i = 0; i < m->nslots; i++) {
		size_t n = 0;
		for (const struct acc_cidmap_node *e = m->slots[i]; e; e = e->next)
			n++;
		longest = n > longest ? n : longest;
	}
	return longest;
}

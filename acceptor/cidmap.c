/* Connection ID -> connection. Chained hash table keyed by the raw CID bytes;
 * a connection has several CIDs (its own server CIDs plus the client's first
 * DCID, so a retransmitted Initial finds the connection it created). */
#include <stdlib.h>
#include <string.h>

#include "acceptor/acc.h"

struct acc_cidmap_node {
	struct acc_cidmap_node *next;
	ngtcp2_cid cid;
	struct acc_conn *c;
};

/* FNV-1a; CIDs are random, so a simple hash spreads well. */
static size_t cid_hash(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return (size_t)h;
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
			size_t h = cid_hash(e->cid.data, e->cid.datalen) & (n - 1);
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
	size_t h = cid_hash(cid->data, cid->datalen) & (m->nslots - 1);
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
	size_t h = cid_hash(cid, len) & (m->nslots - 1);
	for (struct acc_cidmap_node *e = m->slots[h]; e; e = e->next)
		if (e->cid.datalen == len && !memcmp(e->cid.data, cid, len))
			return e->c;
	return NULL;
}

void acc_cidmap_del(struct acc_cidmap *m, const ngtcp2_cid *cid)
{
	if (!m->nslots)
		return;
	size_t h = cid_hash(cid->data, cid->datalen) & (m->nslots - 1);
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
	memset(m, 0, sizeof(*m));
}

/* The acceptor's connection-ID map (acceptor/cidmap.c): what is put is found
 * until it is deleted, and DCIDs a client chose to share one chain of an
 * unkeyed hash (found offline, as an attacker would) spread over the table:
 * every datagram's lookup walks the chain of its DCID, so one long chain made
 * each junk Initial aimed at it cost thousands of comparisons. */
#include <stdlib.h>

#include "acceptor/acc.h"
#include "check.h"

#define CHOSEN 1500   /* the map then has 2,048 slots (it doubles at a load of 1) */
#define SLOTS 2048
#define CID_LEN 18

/* The map's hash before it was keyed: FNV-1a from its usual offset basis. */
static uint64_t plain_fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* CHOSEN CIDs whose plain hash lands in slot 0 of a SLOTS table. */
static ngtcp2_cid *chosen_cids(void)
{
	ngtcp2_cid *cids = calloc(CHOSEN, sizeof(*cids));
	uint64_t n = 0;
	for (size_t found = 0; cids && found < CHOSEN; n++) {
		ngtcp2_cid c = {.datalen = CID_LEN};
		for (size_t i = 0; i < CID_LEN; i++)
			c.data[i] = (uint8_t)(n >> (8 * (i % 8)));
		if ((plain_fnv1a(c.data, c.datalen) & (SLOTS - 1)) == 0)
			cids[found++] = c;
	}
	return cids;
}

static void test_chosen_collisions(void)
{
	current_test = "DCIDs chosen to share a chain of the unkeyed hash spread out";
	ngtcp2_cid *cids = chosen_cids();
	CHECK(cids != NULL);
	if (!cids)
		return;
	struct acc_cidmap m;
	CHECK_EQ(acc_cidmap_init(&m), 0);
	struct acc_conn *conn = (struct acc_conn *)&m; /* only compared, never used */
	for (size_t i = 0; i < CHOSEN; i++)
		CHECK_EQ(acc_cidmap_put(&m, &cids[i], conn), 0);
	CHECK_EQ(m.nslots, SLOTS);
	/* 1,500 keys in 2,048 slots: the longest chain of a good hash is about 6 */
	size_t longest = acc_cidmap_longest(&m);
	CHECK(longest <= 16);
	if (longest > 16)
		fprintf(stderr, "  longest chain %zu of %d chosen CIDs\n", longest, CHOSEN);
	size_t found = 0;
	for (size_t i = 0; i < CHOSEN; i++)
		found += acc_cidmap_get(&m, cids[i].data, cids[i].datalen) == conn;
	CHECK_EQ(found, CHOSEN);
	acc_cidmap_free(&m);
	free(cids);
}

static void test_put_get_del(void)
{
	current_test = "put, get, delete";
	struct acc_cidmap m;
	CHECK_EQ(acc_cidmap_init(&m), 0);
	struct acc_conn *one = (struct acc_conn *)&m, *two = (struct acc_conn *)&one;
	ngtcp2_cid a = {.datalen = 8, .data = {1, 2, 3, 4, 5, 6, 7, 8}};
	ngtcp2_cid b = {.datalen = 18, .data = {1, 2, 3, 4, 5, 6, 7, 8}}; /* a's bytes, longer */
	CHECK(acc_cidmap_get(&m, a.data, a.datalen) == NULL);
	CHECK_EQ(acc_cidmap_put(&m, &a, one), 0);
	CHECK_EQ(acc_cidmap_put(&m, &b, two), 0);
	CHECK(acc_cidmap_get(&m, a.data, a.datalen) == one);
	CHECK(acc_cidmap_get(&m, b.data, b.datalen) == two);
	acc_cidmap_del(&m, &a);
	CHECK(acc_cidmap_get(&m, a.data, a.datalen) == NULL);
	CHECK(acc_cidmap_get(&m, b.data, b.datalen) == two);
	acc_cidmap_del(&m, &b);
	CHECK_EQ(m.count, 0);
	acc_cidmap_free(&m);
}

int main(void)
{
	test_put_get_del();
	test_chosen_collisions();
	return check_report();
}

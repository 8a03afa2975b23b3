/* The shipper's per-tenant unshipped bytes (shipper/tenant_quota.c): against
 * a model that keeps every record, over random commits (tenants interleaved,
 * records counted for nobody, new segments) and random cursor moves; and the
 * run list stays small when every record changes tenant (8 bytes a run). */
#include <stdlib.h>

#include "check.h"
#include "common/tenants.h"
#include "shipper/tenant_quota.h"

#define TENANTS 4
#define RECORDS 20000

struct rec {
	int tenant; /* -1: counted for nobody */
	struct qs_pos end;
	uint64_t bytes;
};

static struct qs_tenants *four_tenants(void)
{
	static const char text[] = "[tenant a]\nspool-quota = 1M\n[tenant b]\nspool-quota = 1M\n"
				   "[tenant c]\nspool-quota = 1M\n[tenant d]\nspool-quota = 1M\n";
	unsigned errors = 0;
	return qs_tenants_parse(text, sizeof(text) - 1, "t", "", false, &errors);
}

/* The model: what each tenant has after the cursor. Consecutive records of
 * one tenant in one segment are one run, taken once the cursor passes the
 * run's end (the last of them as committed so far). */
static void model(const struct rec *r, size_t n, struct qs_pos cursor, uint64_t *want)
{
	memset(want, 0, TENANTS * sizeof(*want));
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && r[i].tenant >= 0 && r[j].tenant == r[i].tenant && r[j].end.seg == r[i].end.seg)
			j++;
		for (size_t k = i; k < j; k++)
			if (r[k].tenant >= 0 && qs_pos_after(r[j - 1].end, cursor))
				want[r[k].tenant] += r[k].bytes;
		i = j;
	}
}

static void test_against_model(void)
{
	current_test = "unshipped bytes per tenant against every record";
	struct qs_tenants *ts = four_tenants();
	CHECK(ts != NULL);
	struct qs_tquota q;
	CHECK_EQ(qs_tquota_init(&q, ts), 0);
	struct rec *r = calloc(RECORDS, sizeof(*r));
	srand(7);
	struct qs_pos pos = {.seg = 1, .off = 64}, cursor = {.seg = 1, .off = 64};
	size_t mismatches = 0, checks = 0;
	for (size_t i = 0; i < RECORDS; i++) {
		if (rand() % 500 == 0) { /* a new segment */
			pos.seg++;
			pos.off = 64;
		}
		r[i].tenant = rand() % 10 == 0 ? -1 : rand() % 3 == 0 ? (int)(i / 7 % TENANTS) : rand() % TENANTS;
		r[i].bytes = 40 + (uint64_t)(rand() % 400);
		pos.off += r[i].bytes;
		r[i].end = pos;
		if (r[i].tenant >= 0)
			CHECK_EQ(qs_tquota_add(&q, (uint32_t)r[i].tenant, r[i].bytes, pos), 0);
		if (rand() % 50 == 0) { /* the output takes some: up to a record's end, or inside one */
			size_t k = i - (size_t)(rand() % 60 > (int)i ? (int)i : rand() % 60);
			struct qs_pos to = r[k].end;
			if (rand() % 2 && to.off > 10)
				to.off -= 10;
			if (qs_pos_after(to, cursor)) /* a cursor never goes back */
				cursor = to;
			qs_tquota_shipped(&q, cursor);
			uint64_t want[TENANTS];
			model(r, i + 1, cursor, want);
			for (int t = 0; t < TENANTS; t++)
				if (q.bytes[t] != want[t] && mismatches++ < 3) fprintf(stderr, "i %zu cursor %lu/%lu t %d got %lu want %lu\n", i, (unsigned long)cursor.seg, (unsigned long)cursor.off, t, (unsigned long)q.bytes[t], (unsigned long)want[t]);
			checks++;
		}
	}
	CHECK(checks > 100);
	CHECK_EQ(mismatches, 0);
	qs_tquota_shipped(&q, pos);
	for (int t = 0; t < TENANTS; t++)
		CHECK_EQ_U64(q.bytes[t], 0);
	CHECK_EQ(q.len, 0);
	CHECK_EQ(q.slen, 0);
	free(r);
	qs_tquota_free(&q);
	qs_tenants_free(ts);
}

static void test_small_runs(void)
{
	current_test = "a run list of a tenant change per record stays small";
	struct qs_tenants *ts = four_tenants();
	struct qs_tquota q;
	CHECK_EQ(qs_tquota_init(&q, ts), 0);
	struct qs_pos pos = {.seg = 1, .off = 0};
	size_t n = 100000;
	for (size_t i = 0; i < n; i++) {
		pos.off += 190;
		CHECK_EQ(qs_tquota_add(&q, (uint32_t)(i % TENANTS), 190, pos), 0);
	}
	CHECK_EQ(q.len, n);
	/* 100,000 runs: 131,072 slots of 8 bytes (32 before: 4 MiB) */
	CHECK(q.cap * sizeof(*q.ring) <= 1024 * 1024);
	CHECK_EQ_U64(q.bytes[0] + q.bytes[1] + q.bytes[2] + q.bytes[3], 190 * n);
	qs_tquota_free(&q);
	qs_tenants_free(ts);
}

int main(void)
{
	test_against_model();
	test_small_runs();
	return check_report();
}

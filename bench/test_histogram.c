/* Unit test of bench/histogram.c: layout, precision, percentiles, merge. */
#include "histogram.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond, ...)                                                                 \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                    \
			fprintf(stderr, "\n");                                           \
			failures++;                                                      \
		}                                                                        \
	} while (0)

/* |got - want| <= 1% of want (and got never below want's bucket) */
static void near(const char *what, uint64_t got, double want)
{
	double err = fabs((double)got - want);
	CHECK(err <= want * 0.01 + 1.0, "%s: got %llu want %.1f", what, (unsigned long long)got, want);
}

static void test_layout(void)
{
	/* every bucket is contiguous with the next, and indexes its own bounds */
	for (unsigned i = 0; i + 1 < QS_HIST_BUCKETS; i++) {
		uint64_t lo = qs_hist_bucket_low(i), hi = qs_hist_bucket_high(i);
		CHECK(lo <= hi, "bucket %u: %llu > %llu", i, (unsigned long long)lo, (unsigned long long)hi);
		CHECK(qs_hist_index(lo) == i, "index(low(%u))", i);
		CHECK(qs_hist_index(hi) == i, "index(high(%u))", i);
		CHECK(qs_hist_bucket_low(i + 1) == hi + 1, "gap after bucket %u", i);
		/* relative width: below 1/128 of the bucket's low value */
		if (lo >= QS_HIST_LINEAR)
			CHECK((double)(hi - lo + 1) / (double)lo <= 1.0 / 128 + 1e-12, "bucket %u too wide", i);
	}
	CHECK(qs_hist_index(UINT64_MAX) == QS_HIST_BUCKETS - 1, "top bucket");
	CHECK(qs_hist_bucket_high(QS_HIST_BUCKETS - 1) == UINT64_MAX, "top bound");
	for (uint64_t v = 0; v < 256; v++)
		CHECK(qs_hist_index(v) == v, "linear %llu", (unsigned long long)v);
}

static void test_empty(struct qs_hist *h)
{
	qs_hist_init(h);
	CHECK(qs_hist_percentile(h, 50) == 0, "empty p50");
	CHECK(qs_hist_mean(h) == 0.0, "empty mean");
}

static void test_uniform(struct qs_hist *h)
{
	/* 1 us .. 1 s in 1 us steps, recorded in nanoseconds */
	qs_hist_init(h);
	for (uint64_t us = 1; us <= 1000000; us++)
		qs_hist_record(h, us * 1000);
	CHECK(h->count == 1000000, "count");
	CHECK(h->min == 1000 && h->max == 1000000000ull, "min/max");
	near("p50", qs_hist_percentile(h, 50), 500e6);
	near("p90", qs_hist_percentile(h, 90), 900e6);
	near("p99", qs_hist_percentile(h, 99), 990e6);
	near("p99.9", qs_hist_percentile(h, 99.9), 999e6);
	near("p0.1", qs_hist_percentile(h, 0.1), 1e6);
	CHECK(qs_hist_percentile(h, 100) == h->max, "p100");
	CHECK(qs_hist_percentile(h, 0) == h->min, "p0");
	near("mean", (uint64_t)qs_hist_mean(h), 500000.5e3);
	/* never under-reports: the value returned is >= the exact percentile */
	CHECK(qs_hist_percentile(h, 50) >= 500000000ull, "p50 below exact");
}

static void test_wide_range(struct qs_hist *h)
{
	/* a tail of minutes next to microseconds */
	qs_hist_init(h);
	qs_hist_record_n(h, 2000, 990);               /* 2 us */
	qs_hist_record_n(h, 5000000, 9);              /* 5 ms */
	qs_hist_record(h, 3ull * 60 * 1000000000ull); /* 3 minutes */
	CHECK(h->count == 1000, "count");
	near("p50", qs_hist_percentile(h, 50), 2000);
	near("p99", qs_hist_percentile(h, 99), 2000);
	near("p99.5", qs_hist_percentile(h, 99.5), 5e6);
	near("p99.95", qs_hist_percentile(h, 99.95), 180e9);
	CHECK(qs_hist_percentile(h, 99.95) == 180000000000ull, "clamped to max");
}

static void test_merge(struct qs_hist *a, struct qs_hist *b)
{
	qs_hist_init(a);
	qs_hist_init(b);
	for (uint64_t v = 1; v <= 5000; v++)
		qs_hist_record(a, v * 100);
	for (uint64_t v = 5001; v <= 10000; v++)
		qs_hist_record(b, v * 100);
	qs_hist_merge(a, b);
	CHECK(a->count == 10000, "merged count");
	CHECK(a->min == 100 && a->max == 1000000, "merged min/max");
	near("merged p50", qs_hist_percentile(a, 50), 500000);
	near("merged p99", qs_hist_percentile(a, 99), 990000);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return (a > b) - (a < b);
}

static void test_random(struct qs_hist *h)
{
	/* exponential latencies: compare against the sorted truth */
	enum { N = 200000 };
	uint64_t *vals = malloc(N * sizeof(*vals));
	if (!vals) {
		failures++;
		return;
	}
	srand(12345);
	qs_hist_init(h);
	for (int i = 0; i < N; i++) {
		double u = (rand() + 1.0) / ((double)RAND_MAX + 2.0);
		vals[i] = (uint64_t)(-log(u) * 250000.0) + 1000; /* mean 251 us, ns */
		qs_hist_record(h, vals[i]);
	}
	qsort(vals, N, sizeof(*vals), cmp_u64);
	const double ps[] = {50, 90, 99, 99.9};
	for (unsigned k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		size_t rank = (size_t)ceil(ps[k] / 100.0 * N);
		char what[32];
		snprintf(what, sizeof(what), "exp p%g", ps[k]);
		near(what, qs_hist_percentile(h, ps[k]), (double)vals[rank - 1]);
	}
	free(vals);
}

int main(void)
{
	static struct qs_hist h1, h2;
	test_layout();
	test_empty(&h1);
	test_uniform(&h1);
	test_wide_range(&h1);
	test_merge(&h1, &h2);
	test_random(&h1);
	if (failures) {
		fprintf(stderr, "test_histogram: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_histogram: ok\n");
	return 0;
}

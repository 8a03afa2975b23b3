/* A small log-linear latency histogram (HdrHistogram-like, fixed layout).
 *
 * Values are unsigned 64-bit integers in any unit (quicstash-bench records
 * nanoseconds). Values below 256 are counted exactly; above, each power of two
 * [2^e, 2^(e+1)) is split into 128 equal sub-buckets, so a bucket is at most
 * 1/128 (0.78%) of its values wide. A query returns the highest value of the
 * bucket (never under-reports), clamped to the largest value recorded, so the
 * error is below 0.8% from nanoseconds to centuries. 7,552 buckets, 60 KiB.
 * Not thread-safe: give each thread its own and merge them. */
#ifndef QS_BENCH_HISTOGRAM_H
#define QS_BENCH_HISTOGRAM_H

#include <stdint.h>

#define QS_HIST_LINEAR 256u /* values 0..255 exact */
#define QS_HIST_SUB_BITS 7u /* 128 sub-buckets per power of two */
#define QS_HIST_SUB (1u << QS_HIST_SUB_BITS)
#define QS_HIST_BUCKETS (QS_HIST_LINEAR + (64u - 8u) * QS_HIST_SUB)

struct qs_hist {
	uint64_t count;
	uint64_t min, max;
	long double sum;
	uint64_t buckets[QS_HIST_BUCKETS];
};

void qs_hist_init(struct qs_hist *h);
void qs_hist_record(struct qs_hist *h, uint64_t v);
void qs_hist_record_n(struct qs_hist *h, uint64_t v, uint64_t n);
/* Adds every count of src into dst. */
void qs_hist_merge(struct qs_hist *dst, const struct qs_hist *src);
/* Smallest recorded value v such that at least p percent of the values are
 * <= v (within the bucket precision). p in [0, 100]; 0 when empty. */
uint64_t qs_hist_percentile(const struct qs_hist *h, double p);
double qs_hist_mean(const struct qs_hist *h);

/* Bucket layout, exposed for the unit test. */
unsigned qs_hist_index(uint64_t v);
uint64_t qs_hist_bucket_low(unsigned idx);
uint64_t qs_hist_bucket_high(unsigned idx);

#endif

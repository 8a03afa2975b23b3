#include "histogram.h"

#include <math.h>
#include <string.h>

void qs_hist_init(struct qs_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned qs_hist_index(uint64_t v)
{
	if (v < QS_HIST_LINEAR)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 8..63 */
	unsigned sub = (unsigned)(v >> (e - QS_HIST_SUB_BITS)) & (QS_HIST_SUB - 1u);
	return QS_HIST_LINEAR + (e - 8u) * QS_HIST_SUB + sub;
}

uint64_t qs_hist_bucket_low(unsigned idx)
{
	if (idx < QS_HIST_LINEAR)
		return idx;
	unsigned e = (idx - QS_HIST_LINEAR) / QS_HIST_SUB + 8u;
	uint64_t sub = (idx - QS_HIST_LINEAR) % QS_HIST_SUB;
	return (1ull << e) + (sub << (e - QS_HIST_SUB_BITS));
}

uint64_t qs_hist_bucket_high(unsigned idx)
{
	if (idx < QS_HIST_LINEAR)
		return idx;
	unsigned e = (idx - QS_HIST_LINEAR) / QS_HIST_SUB + 8u;
	return qs_hist_bucket_low(idx) + ((1ull << (e - QS_HIST_SUB_BITS)) - 1u);
}

void qs_hist_record_n(struct qs_hist *h, uint64_t v, uint64_t n)
{
	if (n == 0)
		return;
	h->buckets[qs_hist_index(v)] += n;
	h->count += n;
	h->sum += (long double)v * (long double)n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void qs_hist_record(struct qs_hist *h, uint64_t v) { qs_hist_record_n(h, v, 1); }

void qs_hist_merge(struct qs_hist *dst, const struct qs_hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < QS_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t qs_hist_percentile(const struct qs_hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (!(p > 0.0))
		return h->min;
	if (p >= 100.0)
		return h->max;
	/* rank: the smallest number of values that covers p percent */
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < QS_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = qs_hist_bucket_high(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double qs_hist_mean(const struct qs_hist *h)
{
	return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}

#include "top/view.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 64

struct bucket {
	double le, count;
};

/* Adds sign * the samples of every bucket into b (summed over other labels). */
static size_t gather(const struct expo *e, const char *name, double sign, struct bucket *b, size_t n)
{
	char le[64];
	for (size_t i = 0; e && i < e->n; i++) {
		if (strcmp(e->s[i].name, name) || !expo_label(&e->s[i], "le", le, sizeof(le)))
			continue;
		char *stop;
		double bound = strtod(le, &stop);
		if (*stop || isnan(bound))
			continue;
		size_t k = 0;
		while (k < n && b[k].le != bound)
			k++;
		if (k == n) {
			if (n == MAX_BUCKETS)
				continue;
			b[n++] = (struct bucket){bound, 0};
		}
		b[k].count += sign * e->s[i].value;
	}
	return n;
}

static int by_le(const void *a, const void *b)
{
	double x = ((const struct bucket *)a)->le, y = ((const struct bucket *)b)->le;
	return x < y ? -1 : x > y;
}

double view_quantile(const struct expo *prev, const struct expo *cur, const char *bucket_name, double q)
{
	struct bucket b[MAX_BUCKETS];
	size_t n = gather(cur, bucket_name, 1, b, 0);
	/* a bucket only in prev (a restart between scrapes) is ignored */
	size_t m = gather(prev, bucket_name, -1, b, n);
	if (n == 0)
		return -1;
	(void)m;
	qsort(b, n, sizeof(*b), by_le);
	double total = b[n - 1].count;
	if (!(total > 0))
		return -1;
	double rank = q * total, lower = 0, below = 0;
	for (size_t i = 0; i < n; i++) {
		/* cumulative counts; a reset can make one smaller than the previous */
		double c = b[i].count < below ? below : b[i].count;
		if (c >= rank) {
			if (isinf(b[i].le))
				return i > 0 ? INFINITY : -1;
			if (c == below)
				return b[i].le;
			return lower + (b[i].le - lower) * (rank - below) / (c - below);
		}
		lower = b[i].le;
		below = c;
	}
	return INFINITY;
}

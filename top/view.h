/* quicstash-top's screen: what two scrapes dt seconds apart say, as text. */
#ifndef QS_TOP_VIEW_H
#define QS_TOP_VIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "top/expo.h"

struct view_in {
	const struct expo *prev, *cur; /* prev NULL: no rates yet */
	double dt;                     /* seconds between the two scrapes */
	const char *addr;              /* what was scraped, for the title */
	const char *error;             /* the last scrape failed: why (NULL: it did not) */
	int width, height;             /* lines are cut to width; tenants fill the height */
};

/* Writes the screen into buf, one line per '\n'; returns its length. Text from
 * the scrape (tenant names) is shown with anything but printable ASCII as '?'. */
size_t view_render(const struct view_in *in, char *buf, size_t len);

/* The q-quantile (0..1) of the observations between two cumulative histogram
 * scrapes (prev may be NULL: since the start), interpolated in its bucket as
 * Prometheus's histogram_quantile does; -1 with no observation, +inf when it
 * falls in the +Inf bucket. */
double view_quantile(const struct expo *prev, const struct expo *cur, const char *bucket_name, double q);

#endif

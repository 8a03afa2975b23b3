/* The pieces quicstash-top's screen is made of (view.c, view_tenants.c). */
#ifndef QS_TOP_VIEW_FMT_H
#define QS_TOP_VIEW_FMT_H

#include <stddef.h>

#include "top/view.h"

#define M(x) "quicstash_" x

struct out {
	char *buf;
	size_t len, used;
	int width, lines, height;
};

/* One line, cut to the width; nothing once the height is full. */
void view_line(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A counter's increase between two scrapes (a smaller value: the server restarted). */
double view_counter_delta(double prev, double cur);
/* Per second over the interval, summed over label sets; NAN without a previous
 * scrape or the series. */
double view_rate(const struct view_in *in, const char *name);
/* The sum of a series now; NAN when absent. */
double view_gauge(const struct view_in *in, const char *name);
/* 1234567 -> "1.23M", bytes -> "1.2 MiB"; NAN -> "-". b has 16 bytes. */
const char *view_num(char *b, double v);
const char *view_bytes(char *b, double v);

void view_tenants(struct out *o, const struct view_in *in);

#endif

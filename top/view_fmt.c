#include "top/view_fmt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One line, cut to the width; nothing once the height is full. */
void view_line(struct out *o, const char *fmt, ...)
{
	char l[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l, sizeof(l), fmt, ap);
	va_end(ap);
	if (n < 0 || o->lines >= o->height)
		return;
	size_t k = (size_t)n < sizeof(l) ? (size_t)n : sizeof(l) - 1;
	if (o->width > 0 && k > (size_t)o->width)
		k = (size_t)o->width;
	if (o->used + k + 2 > o->len)
		return;
	memcpy(o->buf + o->used, l, k);
	o->used += k;
	o->buf[o->used++] = '\n';
	o->buf[o->used] = '\0';
	o->lines++;
}

double view_counter_delta(double prev, double cur)
{
	return cur >= prev ? cur - prev : cur; /* smaller: the server restarted */
}

/* Per second over the interval; NAN without a previous scrape or the series. */
double view_rate(const struct view_in *in, const char *name)
{
	bool found;
	double cur = expo_sum(in->cur, name, &found);
	if (!in->prev || !found || !(in->dt > 0))
		return NAN;
	return view_counter_delta(expo_sum(in->prev, name, NULL), cur) / in->dt;
}

double view_gauge(const struct view_in *in, const char *name)
{
	bool found;
	double v = expo_sum(in->cur, name, &found);
	return found ? v : NAN;
}

/* 1234567 -> "1.23M"; NAN -> "-". */
const char *view_num(char *b, double v)
{
	static const char units[] = " kMGTP";
	int u = 0;
	if (isnan(v))
		return "-";
	while (fabs(v) >= 1000 && u < 5) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(b, 16, v == floor(v) ? "%.0f" : "%.1f", v);
	else
		snprintf(b, 16, "%.3g%c", v, units[u]);
	return b;
}

const char *view_bytes(char *b, double v)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	int u = 0;
	if (isnan(v))
		return "-";
	while (fabs(v) >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(b, 16, u ? "%.1f %s" : "%.0f %s", v, units[u]);
	return b;
}


/* The "top tenants by rate" part of quicstash-top's screen: shown only when
 * the scrape has series with a tenant label (docs/METRICS.md, "Per tenant"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "top/view_fmt.h"

#define MAX_TENANTS 256 /* distinct names looked at; the rest are counted */
#define SHOWN_UNBOUNDED 20 /* rows shown without a terminal height (--once) */

struct tenant {
	char name[40];
	double acked, rejected, bytes, conns, throttled;
};

static double t_sum(const struct expo *e, const char *name, const char *tenant)
{
	return e ? expo_sum_where(e, name, "tenant", tenant) : NAN;
}

static double t_rate(const struct view_in *in, const char *name, const char *tenant)
{
	if (!in->prev || !(in->dt > 0))
		return NAN;
	return view_counter_delta(t_sum(in->prev, name, tenant), t_sum(in->cur, name, tenant)) / in->dt;
}

/* Printable ASCII only: a name from the network never moves the cursor. */
static void clean(char *dst, size_t len, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < len; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

static int by_rate(const void *a, const void *b)
{
	const struct tenant *x = a, *y = b;
	double rx = (isnan(x->acked) ? 0 : x->acked) + (isnan(x->rejected) ? 0 : x->rejected);
	double ry = (isnan(y->acked) ? 0 : y->acked) + (isnan(y->rejected) ? 0 : y->rejected);
	return rx < ry ? 1 : rx > ry ? -1 : strcmp(x->name, y->name);
}

/* The distinct tenant label values of the current scrape. */
static size_t collect(const struct expo *e, struct tenant *t, size_t *more)
{
	size_t n = 0;
	char v[EXPO_LABELS_MAX];
	*more = 0;
	for (size_t i = 0; i < e->n; i++) {
		if (!expo_label(&e->s[i], "tenant", v, sizeof(v)))
			continue;
		size_t k = 0;
		while (k < n && strcmp(t[k].name, v))
			k++;
		if (k < n)
			continue;
		if (n == MAX_TENANTS || strlen(v) >= sizeof(t->name)) {
			(*more)++; /* may count a name twice: only said as "more" */
			continue;
		}
		memset(&t[n], 0, sizeof(t[n]));
		strcpy(t[n++].name, v);
	}
	return n;
}

void view_tenants(struct out *o, const struct view_in *in)
{
	static struct tenant t[MAX_TENANTS];
	size_t more, n = collect(in->cur, t, &more);
	if (n == 0 && more == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		t[i].acked = t_rate(in, M("tenant_frames_acknowledged_total"), t[i].name);
		t[i].rejected = t_rate(in, M("tenant_frames_rejected_total"), t[i].name);
		t[i].bytes = t_rate(in, M("tenant_received_bytes_total"), t[i].name);
		t[i].throttled = t_rate(in, M("tenant_throttled_seconds_total"), t[i].name);
		t[i].conns = t_sum(in->cur, M("tenant_connections_open"), t[i].name);
	}
	qsort(t, n, sizeof(*t), by_rate);
	char a[16], b[16], c[16], d[16], nm[40];
	view_line(o, "%s", "");
	view_line(o, "%-24s %10s %10s %12s %6s %10s", "Tenant", "acked/s", "rejected/s", "bytes/s", "conns", "throttled");
	for (size_t i = 0; i < n; i++) {
		bool last_row = o->lines + 1 >= o->height || (o->height == 1 << 30 && i == SHOWN_UNBOUNDED);
		if (last_row && i + 1 < n) {
			view_line(o, "... and %zu more", n - i + more);
			return;
		}
		clean(nm, 25, t[i].name);
		view_line(o, "%-24s %10s %10s %12s %6s %9.0f%%", nm, view_num(a, t[i].acked), view_num(b, t[i].rejected),
			  view_bytes(c, t[i].bytes), view_num(d, t[i].conns), isnan(t[i].throttled) ? 0 : t[i].throttled * 100);
	}
	if (more)
		view_line(o, "... and %zu more", more);
}

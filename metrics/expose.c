/* The exposition: every row of the catalog (QS_METRICS), summed over the
 * pages, in Prometheus's text format 0.0.4 or OpenMetrics 1.0. A family's
 * HELP and TYPE lines come before its first row; a histogram's per-bucket
 * counts become cumulative buckets, its count the last of them, so a scrape
 * is consistent in itself whatever moved while it read. */
#include <event2/buffer.h>
#include <string.h>

#include "metrics/metrics.h"

unsigned long long qs_mview_sum(const struct qs_mview *v, unsigned m)
{
	unsigned long long s = qs_mp_get(v->sup, m);
	for (unsigned i = 0; i < v->n; i++)
		s += qs_mp_get(v->page[i], m);
	return s;
}

static const char *type_name(enum qs_metric_type t)
{
	return t == QS_MT_C ? "counter" : t == QS_MT_G ? "gauge" : "histogram";
}

/* The family's name: OpenMetrics names a counter family without _total. */
static void family(struct evbuffer *out, const struct qs_metric_def *d, bool om)
{
	size_t n = strlen(d->name);
	if (om && d->type == QS_MT_C && n > 6 && !strcmp(d->name + n - 6, "_total"))
		n -= 6;
	evbuffer_add_printf(out, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)n, d->name, d->help, (int)n, d->name,
			    type_name(d->type));
}

static void histogram(const struct qs_mview *v, struct evbuffer *out, unsigned first)
{
	const char *name = qs_metric_defs[first].name;
	unsigned long long cum = 0;
	for (unsigned b = 0; b < QS_ACKLAT_BUCKETS; b++) {
		cum += qs_mview_sum(v, first + b);
		evbuffer_add_printf(out, "%s_bucket{%s} %llu\n", name, qs_metric_defs[first + b].label, cum);
	}
	unsigned long long ns = qs_mview_sum(v, QS_M_ACKLAT_SUM);
	evbuffer_add_printf(out, "%s_sum %llu.%09llu\n%s_count %llu\n", name, ns / 1000000000ull,
			    ns % 1000000000ull, name, cum);
}

void qs_expose(const struct qs_mview *v, struct evbuffer *out, bool om)
{
	const char *prev = "";
	for (unsigned m = 0; m < QS_M_COUNT; m++) {
		const struct qs_metric_def *d = &qs_metric_defs[m];
		if (d->type == QS_MT_S || (d->type == QS_MT_H && m != QS_M_ACKLAT_0))
			continue; /* written with its histogram's first bucket */
		if (strcmp(prev, d->name))
			family(out, d, om);
		prev = d->name;
		if (d->type == QS_MT_H) {
			histogram(v, out, m);
			continue;
		}
		evbuffer_add_printf(out, "%s%s%s%s %llu\n", d->name, *d->label ? "{" : "", d->label,
				    *d->label ? "}" : "", qs_mview_sum(v, m));
	}
	if (om)
		evbuffer_add_printf(out, "# EOF\n");
}

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
	return t == QS_MT_C || t == QS_MT_T ? "counter" : t == QS_MT_G ? "gauge" : "histogram";
}

/* The family's name: OpenMetrics names a counter family without _total. */
static void family(struct evbuffer *out, const struct qs_metric_def *d, bool om)
{
	size_t n = strlen(d->name);
	if (om && (d->type == QS_MT_C || d->type == QS_MT_T) && n > 6 && !strcmp(d->name + n - 6, "_total"))
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

/* A label value as the exposition formats want it: backslash, double
 * quote and newline escaped (a tenant's name is checked printable already). */
static void label_value(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(out, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

static void tenant_row(struct evbuffer *out, const struct qs_metric_def *d, const struct qs_tenant_sum *t,
		       uint64_t val)
{
	evbuffer_add_printf(out, "%s{tenant=\"", d->name);
	label_value(out, t->name);
	evbuffer_add_printf(out, "\"%s%s}", *d->label ? "," : "", d->label);
	if (d->type == QS_MT_T)
		evbuffer_add_printf(out, " %llu.%09llu\n", (unsigned long long)(val / 1000000000u),
				    (unsigned long long)(val % 1000000000u));
	else
		evbuffer_add_printf(out, " %llu\n", (unsigned long long)val);
}

/* The tenants' families (QS_TMETRICS), each row once per tenant summed over
 * the pages by the tenant's id, then the "other" row's when it counted any. */
static void tenants(const struct qs_mview *v, struct evbuffer *out, bool om)
{
	static struct qs_tenant_sum sums[QS_TENANT_SUMS_MAX];
	struct qs_tenant_sum other;
	size_t k = qs_mp_tenant_sums(v->page, v->n, sums, &other);
	bool any_other = false;
	for (unsigned m = 0; m < QS_TM_COUNT; m++)
		any_other |= other.v[m] != 0;
	if (!k && !any_other)
		return;
	for (unsigned first = 0; first < QS_TM_COUNT;) {
		unsigned end = first + 1;
		while (end < QS_TM_COUNT && !strcmp(qs_tmetric_defs[end].name, qs_tmetric_defs[first].name))
			end++;
		family(out, &qs_tmetric_defs[first], om);
		for (size_t i = 0; i <= k; i++) {
			const struct qs_tenant_sum *t = i < k ? &sums[i] : &other;
			if (i == k && !any_other)
				break;
			for (unsigned m = first; m < end; m++)
				tenant_row(out, &qs_tmetric_defs[m], t, t->v[m]);
		}
		first = end;
	}
}

/* What waits between processes, per hop (common/metrics_page.h "Queues
 * between processes"): below 0 reads as 0 (the supervisor raises it within
 * a second: what it wrote off arrived after all). */
static void queues(const struct qs_mview *v, struct evbuffer *out, bool om)
{
	for (unsigned k = 0; k < 2; k++) {
		family(out, &qs_queue_defs[k], om);
		for (unsigned line = 0; line < QS_QL_COUNT; line++) {
			if (line < QS_QL_EVENTS && line >= v->want_parsers)
				continue;
			struct qs_queue_depth d = qs_mp_queue_depth(v->sup, v->page, v->n, line);
			long long x = k ? d.bytes : d.n;
			evbuffer_add_printf(out, "%s{hop=\"%s\"", qs_queue_defs[k].name, qs_mp_queue_hop(line));
			if (line < QS_QL_EVENTS)
				evbuffer_add_printf(out, ",parser=\"%u\"", line - QS_QL_FRAMES);
			evbuffer_add_printf(out, "} %lld\n", x < 0 ? 0 : x);
		}
	}
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
	queues(v, out, om);
	tenants(v, out, om);
	if (om)
		evbuffer_add_printf(out, "# EOF\n");
}

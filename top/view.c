#include "top/view.h"
#include "top/view_fmt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A whole count in full ("-" when absent): 12345, not 12.3k. */
static const char *exact(char *b, double v)
{
	if (isnan(v))
		return "-";
	snprintf(b, 16, "%.0f", v);
	return b;
}

static const char *seconds(char *b, double s)
{
	if (s < 0)
		return "-";
	if (isinf(s))
		return "over the top bucket";
	if (s < 1)
		snprintf(b, 16, "%.2f ms", s * 1000);
	else
		snprintf(b, 16, "%.2f s", s);
	return b;
}

static void traffic(struct out *o, const struct view_in *in)
{
	char a[16], b[16], c[16], d[16], e[16];
	view_line(o, "Events/s   in %-8s acked %-8s rejected %-6s spooled %-8s out %s", view_num(a, view_rate(in, M("frames_received_total"))),
	     view_num(b, view_rate(in, M("frames_acknowledged_total"))), view_num(c, view_rate(in, M("frames_rejected_total"))),
	     view_num(d, view_rate(in, M("spool_events_written_total"))), view_num(e, view_rate(in, M("output_events_shipped_total"))));
	/* totals exact: a script compares them with what it sent */
	view_line(o, "  total    in %-8s acked %-8s rejected %-6s spooled %-8s out %s",
		  exact(a, view_gauge(in, M("frames_received_total"))), exact(b, view_gauge(in, M("frames_acknowledged_total"))),
		  exact(c, view_gauge(in, M("frames_rejected_total"))), exact(d, view_gauge(in, M("spool_events_written_total"))),
		  exact(e, view_gauge(in, M("output_events_shipped_total"))));
	const char *h = M("ack_latency_seconds_bucket");
	double p50 = view_quantile(in->prev, in->cur, h, 0.5), p99 = view_quantile(in->prev, in->cur, h, 0.99);
	view_line(o, "Ack latency p50 %-10s p99 %-10s %s", seconds(a, p50), seconds(b, p99),
	     in->prev ? "(this interval)" : "(since the start)");
	view_line(o, "Bytes/s    UDP in %-10s UDP out %-10s to Logstash %s", view_bytes(a, view_rate(in, M("udp_received_bytes_total"))),
	     view_bytes(b, view_rate(in, M("udp_sent_bytes_total"))), view_bytes(c, view_rate(in, M("output_sent_bytes_total"))));
}

static void spool(struct out *o, const struct view_in *in)
{
	char a[16], b[16], c[16], d[16], e[16], f[16];
	double acc = view_gauge(in, M("spool_accepting")), full = expo_sum_where(in->cur, M("spool_refusing"), "reason", "full");
	double werr = expo_sum_where(in->cur, M("spool_refusing"), "reason", "write_error");
	double age = view_gauge(in, M("spool_oldest_unshipped_age_seconds"));
	view_line(o, "Spool      backlog %-10s oldest %-6s on disk %s of %s in %s segments", view_bytes(a, view_gauge(in, M("spool_unshipped_bytes"))),
	     isnan(age) ? "-" : (snprintf(e, sizeof(e), "%.0f s", age), e),
	     view_bytes(b, view_gauge(in, M("spool_bytes"))), view_bytes(c, view_gauge(in, M("spool_limit_bytes"))),
	     view_num(d, view_gauge(in, M("spool_segments"))));
	view_line(o, "           %s   in flight: frames %s, held %s, staged %s",
	     isnan(acc) ? "accepting: -" : acc > 0 ? "accepting" : full > 0 ? "REFUSING: spool full" : werr > 0 ? "REFUSING: write error" : "REFUSING",
	     view_num(a, view_gauge(in, M("acceptor_frames_unresolved"))), view_bytes(b, view_gauge(in, M("acceptor_held_bytes"))),
	     view_num(c, view_gauge(in, M("shipper_staged_events"))));
	/* where they wait, in the order they travel (docs/METRICS.md, quicstash_hop_waiting) */
	const char *w = M("hop_waiting");
	view_line(o, "Waiting    in acceptors %s  to parsers %s  to shipper %s  staged %s  answers %s  rejections %s",
		  view_num(a, view_gauge(in, M("acceptor_frames_queued"))),
		  view_num(b, expo_sum_where(in->cur, w, "hop", "acceptor_to_parser")),
		  view_num(c, expo_sum_where(in->cur, w, "hop", "parser_to_shipper")),
		  view_num(d, view_gauge(in, M("shipper_staged_events"))),
		  view_num(e, expo_sum_where(in->cur, w, "hop", "shipper_to_acceptor")),
		  view_num(f, expo_sum_where(in->cur, w, "hop", "parser_to_acceptor")));
}

static void peers(struct out *o, const struct view_in *in)
{
	char a[16], b[16], c[16], d[16];
	view_line(o, "Connections open %-8s new/s %-8s refused/s %-8s handshakes/s %s", view_num(a, view_gauge(in, M("connections_open"))),
	     view_num(b, view_rate(in, M("connections_accepted_total"))), view_num(c, view_rate(in, M("connections_refused_total"))),
	     view_num(d, view_rate(in, M("handshakes_completed_total"))));
	double up = view_gauge(in, M("output_up"));
	view_line(o, "Logstash   %-8s connects %s", isnan(up) ? "-" : up > 0 ? "up" : "DOWN", view_num(a, view_gauge(in, M("output_connects_total"))));
	static const char *roles[] = {"keyholder", "shipper", "parser", "acceptor", "metrics"};
	char l[256];
	size_t k = 0;
	for (size_t i = 0; i < sizeof(roles) / sizeof(*roles); i++)
		k += (size_t)snprintf(l + k, sizeof(l) - k, "%s%s %s", i ? "  " : "", roles[i],
				      view_num(a, expo_sum_where(in->cur, M("children_ready"), "role", roles[i])));
	view_line(o, "Ready      %s", l);
	view_line(o, "Restarts   %s   reloads %s (refused %s)", view_num(a, view_gauge(in, M("child_restarts_total"))),
	     view_num(b, view_gauge(in, M("reloads_total"))), view_num(c, view_gauge(in, M("reloads_refused_total"))));
}

size_t view_render(const struct view_in *in, char *buf, size_t len)
{
	struct out o = {buf, len, 0, in->width, 0, in->height > 0 ? in->height : 1 << 30};
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&now, &tm));
	buf[0] = '\0';
	view_line(&o, "quicstash-top  %s  %s  %s", in->addr, when,
	     in->error ? "NO ANSWER" : in->prev ? "" : "(rates from the next scrape)");
	if (in->error)
		view_line(&o, "  %s", in->error);
	if (!in->cur) {
		if (!in->error)
			view_line(&o, "  waiting for the first answer");
		return o.used;
	}
	view_line(&o, "%s", "");
	traffic(&o, in);
	spool(&o, in);
	peers(&o, in);
	view_tenants(&o, in);
	if (in->cur->skipped || in->cur->dropped)
		view_line(&o, "(scrape: %zu lines not understood, %zu samples over the limit)", in->cur->skipped, in->cur->dropped);
	return o.used;
}

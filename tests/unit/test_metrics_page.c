/* Metrics pages (common/metrics_page.h) and what the metrics process makes of
 * them (metrics/expose.c, metrics/health.c): the seals a reader relies on, a
 * read-only copy that cannot write, counters kept and gauges cleared when a
 * writer is gone, the exposition summed over pages, /readyz's reasons, and
 * docs/METRICS.md's list of metrics (`test_metrics_page --print` prints it). */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "common/metrics_page.h"
#include "common/tenants.h"
#include "common/wire.h"
#include "metrics/metrics.h"

#define BEGIN_MARK "<!-- metrics-list begin"
#define END_MARK "<!-- metrics-list end -->"

static int ro_copy(int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static void seals(void)
{
	current_test = "seals and read-only copies";
	int fd = qs_mp_create();
	CHECK(fd >= 0);
	struct qs_mpage *w = qs_mp_map(fd, true);
	CHECK(w != NULL);
	CHECK(ftruncate(fd, 100) != 0 && errno == EPERM);              /* cannot shrink under a reader */
	CHECK(ftruncate(fd, 2 * QS_MP_SIZE) != 0 && errno == EPERM);   /* nor grow */
	int ro = ro_copy(fd);
	CHECK(mmap(NULL, QS_MP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED);
	const struct qs_mpage *r = qs_mp_map(ro, false);
	CHECK(r != NULL);
	struct qs_mpage *saved = qs_mp;
	qs_mp = w;
	qs_mp_add(QS_M_FRAMES_ACKED, 5);
	qs_mp_set(QS_M_CONN_OPEN, 3);
	CHECK_EQ(qs_mp_get(r, QS_M_FRAMES_ACKED), 5);
	qs_mp_clear_gauges(w); /* its writer is gone: counters stay, gauges go */
	CHECK_EQ(qs_mp_get(r, QS_M_FRAMES_ACKED), 5);
	CHECK_EQ(qs_mp_get(r, QS_M_CONN_OPEN), 0);
	qs_mp = saved;
	/* an unsealed memfd is refused: it could shrink under the reader */
	int plain = memfd_create("plain", MFD_CLOEXEC);
	CHECK(plain >= 0 && ftruncate(plain, QS_MP_SIZE) == 0 && qs_mp_map(plain, false) == NULL);
	close(plain);
	close(ro);
	close(fd);
}

static struct qs_mpage pages[3]; /* supervisor, two lanes of one slot */

static char *text(const struct qs_mview *v, bool om)
{
	struct evbuffer *b = evbuffer_new();
	qs_expose(v, b, om);
	size_t n = evbuffer_get_length(b);
	char *s = calloc(1, n + 1);
	evbuffer_remove(b, s, n);
	evbuffer_free(b);
	return s;
}

static void exposition(void)
{
	current_test = "exposition";
	const struct qs_mpage *pp[2] = {&pages[1], &pages[2]};
	struct qs_mview v = {.sup = &pages[0], .page = pp, .n = 2, .want_parsers = 2, .want_acceptors = 1};
	struct qs_mpage *saved = qs_mp;
	qs_mp = &pages[1];
	qs_mp_add(QS_M_FRAMES_ACKED, 7);
	qs_mp_observe_ack_ns(400000);   /* 0.4 ms */
	qs_mp_observe_ack_ns(3000000);  /* 3 ms */
	qs_mp = &pages[2];
	qs_mp_add(QS_M_FRAMES_ACKED, 4); /* the other lane (a reload's overlap) adds up */
	qs_mp_add(QS_M_REJ_TRUNCATED, 2);
	qs_mp_observe_ack_ns(20000000000ull); /* 20 s: only +Inf */
	qs_mp = &pages[0];
	qs_mp_add(QS_M_RESTART_PARSER, 1);
	qs_mp = saved;
	char *s = text(&v, false);
	CHECK(strstr(s, "\nquicstash_frames_acknowledged_total 11\n"));
	CHECK(strstr(s, "# TYPE quicstash_frames_acknowledged_total counter\n"));
	CHECK(strstr(s, "quicstash_frames_rejected_total{code=\"truncated\"} 2\n"));
	CHECK(strstr(s, "quicstash_child_restarts_total{role=\"parser\"} 1\n"));
	CHECK(strstr(s, "quicstash_ack_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
	CHECK(strstr(s, "quicstash_ack_latency_seconds_bucket{le=\"0.005\"} 2\n"));
	CHECK(strstr(s, "quicstash_ack_latency_seconds_bucket{le=\"10\"} 2\n"));
	CHECK(strstr(s, "quicstash_ack_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
	CHECK(strstr(s, "quicstash_ack_latency_seconds_sum 20.003400000\n"));
	CHECK(strstr(s, "quicstash_ack_latency_seconds_count 3\n"));
	CHECK(!strstr(s, "# EOF"));
	free(s);
	s = text(&v, true);
	CHECK(strstr(s, "# TYPE quicstash_frames_acknowledged counter\nquicstash_frames_acknowledged_total 11\n"));
	size_t n = strlen(s);
	CHECK(n > 6 && !strcmp(s + n - 6, "# EOF\n"));
	free(s);
}

/* Each rejection code's row is labelled with the code's name (common/wire.c). */
static void reject_rows(void)
{
	current_test = "rejection rows";
	for (unsigned c = QS_REJ_INVALID_JSON; c <= QS_REJ_INTERNAL; c++) {
		char want[64];
		snprintf(want, sizeof(want), "code=\"%s\"", qs_reject_name((uint16_t)c));
		CHECK(!strcmp(qs_metric_defs[qs_m_rejected(c)].label, want));
		CHECK(!strcmp(qs_tmetric_defs[QS_TM_REJ_INVALID_JSON + c - QS_REJ_INVALID_JSON].label, want));
	}
	CHECK_EQ(qs_m_rejected(99), QS_M_REJ_INTERNAL);
}

static void health(void)
{
	current_test = "health";
	memset(pages, 0, sizeof(pages));
	const struct qs_mpage *pp[2] = {&pages[1], &pages[2]};
	struct qs_mview v = {.sup = &pages[0], .page = pp, .n = 2, .want_parsers = 2, .want_acceptors = 1};
	char why[256];
	CHECK(qs_health(&v, false, why, sizeof(why)) < 0 && strstr(why, "keyholder: 0 of 1"));
	struct qs_mpage *saved = qs_mp;
	qs_mp = &pages[0];
	qs_mp_set(QS_M_READY_KEYHOLDER, 1);
	qs_mp_set(QS_M_READY_SHIPPER, 1);
	qs_mp_set(QS_M_READY_PARSER, 1);
	qs_mp_set(QS_M_READY_ACCEPTOR, 1);
	qs_mp = &pages[1];
	qs_mp_set(QS_M_SPOOL_ACCEPTING, 1);
	CHECK(qs_health(&v, false, why, sizeof(why)) < 0 && strstr(why, "parser: 1 of 2"));
	CHECK(qs_health(&v, true, why, sizeof(why)) == 0); /* one parser is enough to be ready */
	qs_mp_set(QS_M_SPOOL_ACCEPTING, 0);
	qs_mp_set(QS_M_SPOOL_FULL, 1);
	qs_mp_set(QS_M_SPOOL_BYTES, 2000);
	qs_mp_set(QS_M_SPOOL_LIMIT, 2048);
	CHECK(qs_health(&v, true, why, sizeof(why)) < 0 && strstr(why, "spool full (2000 of 2048 bytes)"));
	qs_mp_set(QS_M_SPOOL_FULL, 0);
	qs_mp_set(QS_M_SPOOL_ERROR, 1);
	CHECK(qs_health(&v, true, why, sizeof(why)) < 0 && strstr(why, "spool write error"));
	qs_mp = &pages[0];
	qs_mp_set(QS_M_READY_PARSER, 0);
	CHECK(qs_health(&v, true, why, sizeof(why)) < 0 && strstr(why, "parser: 0 of 1"));
	qs_mp = saved;
}

/* ----- docs/METRICS.md's list ----- */

static const char *type_name(enum qs_metric_type t)
{
	return t == QS_MT_C || t == QS_MT_T ? "counter" : t == QS_MT_G ? "gauge" : "histogram";
}

static char *render(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *prev = "";
	fprintf(f, "| name | type | labels | meaning |\n|---|---|---|---|\n");
	for (unsigned m = 0; m < QS_M_COUNT; m++) {
		const struct qs_metric_def *d = &qs_metric_defs[m];
		if (d->type == QS_MT_S || (d->type == QS_MT_H && m != QS_M_ACKLAT_0))
			continue;
		if (!strcmp(prev, d->name)) {
			fprintf(f, "| | | `%s` | %s |\n", d->label, d->help);
			continue;
		}
		prev = d->name;
		if (d->type == QS_MT_H)
			fprintf(f, "| `%s` | histogram | `le` 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 "
				   "10 +Inf | %s |\n", d->name, d->help);
		else
			fprintf(f, "| `%s` | %s | %s%s%s | %s |\n", d->name, type_name(d->type), *d->label ? "`" : "",
				d->label, *d->label ? "`" : "", d->help);
	}
	/* the tenants' families: each row once per tenant, labelled tenant="NAME" first */
	prev = "";
	for (unsigned m = 0; m < QS_TM_COUNT; m++) {
		const struct qs_metric_def *d = &qs_tmetric_defs[m];
		const char *sep = *d->label ? ", `" : "", *end = *d->label ? "`" : "";
		if (!strcmp(prev, d->name))
			fprintf(f, "| | | `tenant`%s%s%s | %s |\n", sep, d->label, end, d->help);
		else
			fprintf(f, "| `%s` | %s | `tenant`%s%s%s | %s |\n", d->name, type_name(d->type), sep, d->label,
				end, d->help);
		prev = d->name;
	}
	/* the queues between processes: a row per hop (and parser slot) */
	for (unsigned k = 0; k < 2; k++)
		fprintf(f, "| `%s` | gauge | `hop`, `parser` | %s |\n", qs_queue_defs[k].name, qs_queue_defs[k].help);
	fclose(f);
	return buf;
}

static void docs_agree(void)
{
	current_test = "docs/METRICS.md lists every metric";
	const char *path = QS_SOURCE_DIR "/docs/METRICS.md";
	FILE *f = fopen(path, "r");
	char *doc = NULL, *want = render();
	size_t cap = 0;
	CHECK(f && getdelim(&doc, &cap, '\0', f) > 0);
	if (f)
		fclose(f);
	char *b = doc ? strstr(doc, BEGIN_MARK) : NULL, *e = doc ? strstr(doc, END_MARK) : NULL;
	char *nl = b ? strchr(b, '\n') : NULL;
	CHECK(nl && e && nl < e);
	if (nl && e && nl < e) {
		*e = 0;
		bool same = !strcmp(nl + 1, want);
		if (!same)
			fprintf(stderr, "%s: the list differs from common/metrics_page.h; it should read:\n%s\n"
					"(tests/test_metrics_page --print prints it)\n", path, want);
		CHECK(same);
	}
	free(doc);
	free(want);
}

static bool has(const char *s, const char *want)
{
	if (!strstr(s, want))
		fprintf(stderr, "missing from the exposition: %s", want);
	return strstr(s, want) != NULL;
}

/* The queues between processes: sent minus taken over the pages, per hop
 * and parser slot; what a process that ended held written off (the
 * supervisor's page), raised back to 0 when some of it arrives after all;
 * never exposed below 0. */
static void queue_depths(void)
{
	current_test = "queues between processes";
	static struct qs_mpage qp[4]; /* supervisor, acceptor, parser 1, shipper */
	memset(qp, 0, sizeof(qp));
	const struct qs_mpage *pp[3] = {&qp[1], &qp[2], &qp[3]};
	struct qs_mview v = {.sup = &qp[0], .page = pp, .n = 3, .want_parsers = 2, .want_acceptors = 1};
	struct qs_mpage *saved = qs_mp;
	qs_mp = &qp[1];
	qs_mp_queue_sent(QS_QL_FRAMES + 1, 100, 10000); /* two batches towards parser 1 */
	qs_mp_queue_sent(QS_QL_FRAMES + 1, 50, 5000);
	qs_mp_queue_recv(QS_QL_ANSWERS, 30, 600);
	qs_mp = &qp[2];
	qs_mp_queue_recv(QS_QL_FRAMES + 1, 100, 10000); /* it took the first */
	qs_mp_queue_sent(QS_QL_EVENTS, 90, 40000);
	qs_mp_queue_sent(QS_QL_REJECTIONS, 10, 500);
	qs_mp = &qp[3];
	qs_mp_queue_recv(QS_QL_EVENTS, 90, 40000);
	qs_mp_queue_sent(QS_QL_ANSWERS, 90, 1800);
	qs_mp = saved;
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_FRAMES + 1).n, 50);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_ANSWERS).bytes, 1200);
	char *s = text(&v, false);
	CHECK(has(s, "# TYPE quicstash_hop_waiting gauge\n"));
	CHECK(has(s, "\nquicstash_hop_waiting{hop=\"acceptor_to_parser\",parser=\"0\"} 0\n"));
	CHECK(has(s, "\nquicstash_hop_waiting{hop=\"acceptor_to_parser\",parser=\"1\"} 50\n"));
	CHECK(has(s, "\nquicstash_hop_waiting_bytes{hop=\"acceptor_to_parser\",parser=\"1\"} 5000\n"));
	CHECK(has(s, "\nquicstash_hop_waiting{hop=\"parser_to_shipper\"} 0\n"));
	CHECK(has(s, "\nquicstash_hop_waiting{hop=\"shipper_to_acceptor\"} 60\n"));
	CHECK(has(s, "\nquicstash_hop_waiting{hop=\"parser_to_acceptor\"} 10\n"));
	CHECK(!strstr(s, "parser=\"2\"")); /* only the slots that run */
	free(s);
	/* parser 1 is killed: the 50 on their way to it are lost (the acceptor
	 * resends them), and so is what it had handed on, for all anyone knows */
	qs_mp = &qp[0];
	qs_mp_queue_settle(&qp[0], pp, 3, QS_QL_FRAMES + 1, true);
	qs_mp_queue_settle(&qp[0], pp, 3, QS_QL_REJECTIONS, true);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_FRAMES + 1).n, 0);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_FRAMES + 1).bytes, 0);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_ANSWERS).n, 60); /* not its hop */
	/* its successor takes the resent 50; its rejections arrived after all */
	qs_mp = &qp[1];
	qs_mp_queue_sent(QS_QL_FRAMES + 1, 50, 5000);
	qs_mp_queue_recv(QS_QL_REJECTIONS, 10, 500);
	qs_mp = &qp[2];
	qs_mp_queue_recv(QS_QL_FRAMES + 1, 20, 2000);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_FRAMES + 1).n, 30);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_REJECTIONS).n, -10);
	s = text(&v, false);
	CHECK(has(s, "\nquicstash_hop_waiting{hop=\"parser_to_acceptor\"} 0\n")); /* never below 0 */
	free(s);
	qs_mp = &qp[0]; /* the supervisor's tick: only what reads below 0 moves */
	for (unsigned line = 0; line < QS_QL_COUNT; line++)
		qs_mp_queue_settle(&qp[0], pp, 3, line, false);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_REJECTIONS).n, 0);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_REJECTIONS).bytes, 0);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_FRAMES + 1).n, 30);
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_ANSWERS).n, 60);
	qs_mp = &qp[2];
	qs_mp_queue_sent(QS_QL_REJECTIONS, 4, 200); /* and counts from there */
	CHECK_EQ(qs_mp_queue_depth(v.sup, pp, 3, QS_QL_REJECTIONS).n, 4);
	qs_mp = saved;
}

/* A tenant's row found by its id in a page that already has rows (a
 * restarted or reloaded acceptor), the sums by id over pages whose rows are
 * in different orders, "other" beyond the rows, a forged row skipped. */
static void tenant_rows(void)
{
	current_test = "tenant rows";
	static struct qs_mpage tp[3];
	memset(tp, 0, sizeof(tp));
	struct qs_mpage *saved = qs_mp;
	qs_mp = &tp[1];
	struct qs_mp_tenant *a = qs_mp_tenant_row(qs_tenant_id("acme"), "acme");
	struct qs_mp_tenant *g = qs_mp_tenant_row(qs_tenant_id("globex"), "globex");
	qs_mp_tadd(a, QS_TM_ACKED, 10);
	qs_mp_tadd(g, QS_TM_ACKED, 3);
	qs_mp_tadd(g, QS_TM_OPEN, 2);
	/* a reload's tenants file: globex first, acme gone, initech new; the same rows */
	CHECK(qs_mp_tenant_row(qs_tenant_id("globex"), "globex") == g);
	struct qs_mp_tenant *i = qs_mp_tenant_row(qs_tenant_id("initech"), "initech");
	CHECK(i != a && i != g);
	qs_mp_tadd(i, QS_TM_REJ_TRUNCATED, 1);
	qs_mp_tadd(i, QS_TM_THROTTLED, 1500000000);
	qs_mp = &tp[2]; /* the other lane, in another order */
	qs_mp_tadd(qs_mp_tenant_row(qs_tenant_id("initech"), "initech"), QS_TM_ACKED, 5);
	qs_mp_tadd(qs_mp_tenant_row(qs_tenant_id("acme"), "acme"), QS_TM_ACKED, 1);
	char name[16];
	for (int k = 0; k < QS_MP_TENANTS; k++) { /* fills the lane's rows: the rest count as other */
		snprintf(name, sizeof(name), "t%03d", k);
		qs_mp_tenant_row(qs_tenant_id(name), name);
	}
	struct qs_mp_tenant *o = qs_mp_tenant_row(qs_tenant_id("late"), "late");
	CHECK(o == &tp[2].other);
	qs_mp_tadd(o, QS_TM_ACKED, 7);
	qs_mp = &tp[1];
	struct qs_mp_tenant *forged = qs_mp_tenant_row(77, "mallory\"}"); /* its id is not its name's */
	qs_mp_tadd(forged, QS_TM_ACKED, 1000);
	/* a name no tenants file allows, but whose id is its hash (a compromised acceptor): escaped */
	qs_mp_tadd(qs_mp_tenant_row(qs_tenant_id("q\"u\\x"), "q\"u\\x"), QS_TM_ACKED, 2);
	qs_mp = saved;
	const struct qs_mpage *pp[2] = {&tp[1], &tp[2]};
	struct qs_mview v = {.sup = &tp[0], .page = pp, .n = 2, .want_parsers = 1, .want_acceptors = 1};
	static const char *const want[] = {
		"\nquicstash_tenant_frames_acknowledged_total{tenant=\"acme\"} 11\n",
		"\nquicstash_tenant_frames_acknowledged_total{tenant=\"globex\"} 3\n",
		"\nquicstash_tenant_frames_acknowledged_total{tenant=\"initech\"} 5\n",
		"\nquicstash_tenant_frames_acknowledged_total{tenant=\"~other\"} 7\n",
		"\nquicstash_tenant_frames_rejected_total{tenant=\"initech\",code=\"truncated\"} 1\n",
		"\nquicstash_tenant_throttled_seconds_total{tenant=\"initech\"} 1.500000000\n",
		"\nquicstash_tenant_connections_open{tenant=\"globex\"} 2\n",
		"# TYPE quicstash_tenant_connections_total counter\n",
		"\nquicstash_tenant_frames_acknowledged_total{tenant=\"q\\\"u\\\\x\"} 2\n",
	};
	char *s = text(&v, false);
	for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		if (!strstr(s, want[k]))
			fprintf(stderr, "missing from the exposition: %s", want[k]);
		CHECK(strstr(s, want[k]));
	}
	CHECK(!strstr(s, "mallory"));
	free(s);
	s = text(&v, true);
	CHECK(strstr(s, "# TYPE quicstash_tenant_throttled_seconds counter\n"));
	free(s);
	qs_mp_clear_gauges(&tp[1]); /* its acceptor is gone: no connection is open */
	CHECK_EQ(atomic_load(&g->v[QS_TM_OPEN]), 0);
	CHECK_EQ(atomic_load(&g->v[QS_TM_ACKED]), 3);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--print")) {
		char *s = render();
		fputs(s, stdout);
		free(s);
		return 0;
	}
	seals();
	exposition();
	reject_rows();
	health();
	tenant_rows();
	queue_depths();
	docs_agree();
	return check_report();
}

/* quicstash-top's reading of the text format (top/expo.c) and its latency
 * quantiles (top/view_hist.c): samples and labels as Prometheus writes them
 * (escapes, timestamps, +Inf), hostile lines skipped and counted, the sample
 * cap, and p50/p99 interpolated in the bucket deltas between two scrapes as
 * histogram_quantile does. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "top/expo.h"
#include "top/view.h"

static struct expo parse(const char *text)
{
	struct expo e = {calloc(EXPO_MAX_SAMPLES, sizeof(struct expo_sample)), 0, 0, 0};
	expo_parse(&e, text, strlen(text));
	return e;
}

static void test_samples(void)
{
	current_test = "samples";
	struct expo e = parse("# HELP quicstash_a_total A\n# TYPE quicstash_a_total counter\n"
			      "quicstash_a_total 12\r\n"
			      "quicstash_b{code=\"x\",role=\"parser\"} 3 1700000000000\n"
			      "quicstash_b{code=\"y\"} 4.5e1\n"
			      "quicstash_c{tenant=\"a\\\"b\\\\c\\nd\"} +Inf\n\n");
	CHECK_EQ(e.n, 4);
	CHECK_EQ(e.skipped, 0);
	bool found;
	CHECK(expo_sum(&e, "quicstash_a_total", &found) == 12 && found);
	CHECK(expo_sum(&e, "quicstash_b", NULL) == 48);
	CHECK(expo_sum_where(&e, "quicstash_b", "role", "parser") == 3);
	expo_sum(&e, "quicstash_none", &found);
	CHECK(!found);
	char v[64];
	CHECK(expo_label(&e.s[3], "tenant", v, sizeof(v)));
	CHECK_STR(v, "a\"b\\c?d"); /* the newline is a control character: '?' */
	CHECK(isinf(e.s[3].value));
	CHECK(!expo_label(&e.s[0], "tenant", v, sizeof(v)));
	free(e.s);
}

static void test_hostile(void)
{
	current_test = "hostile";
	char *big = malloc(200000);
	strcpy(big, "quicstash_ok 1\nquicstash_long{a=\"");
	size_t k = strlen(big);
	memset(big + k, 'x', 100000);
	strcpy(big + k + 100000, "\"} 1\ngarbage\n{} 1\n9bad 1\nquicstash_x{a=\"open} 1\nquicstash_nan NaN\n"
				 "quicstash_y{a=b} 1\nquicstash_z 1x\nquicstash_w{a=\"\033[2J\"} 2\nquicstash_v");
	struct expo e = parse(big);
	CHECK_EQ(e.n, 2); /* quicstash_ok and quicstash_w */
	CHECK_EQ(e.skipped, 9);
	char v[16];
	CHECK(expo_label(&e.s[1], "a", v, sizeof(v)) && v[0] == '?' && !strchr(v, '\033'));
	free(e.s);
	/* the cap: samples beyond it are counted, not stored */
	size_t n = EXPO_MAX_SAMPLES + 10, len = 0;
	char *many = malloc(n * 32);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(many + len, "quicstash_m{i=\"%zu\"} 1\n", i);
	e = (struct expo){calloc(EXPO_MAX_SAMPLES, sizeof(struct expo_sample)), 0, 0, 0};
	expo_parse(&e, many, len);
	CHECK_EQ(e.n, EXPO_MAX_SAMPLES);
	CHECK_EQ(e.dropped, 10);
	free(e.s);
	free(many);
	free(big);
}

static void test_quantile(void)
{
	current_test = "quantile";
	const char *b = "quicstash_ack_latency_seconds_bucket";
	struct expo prev = parse("quicstash_ack_latency_seconds_bucket{le=\"0.001\"} 100\n"
				 "quicstash_ack_latency_seconds_bucket{le=\"0.01\"} 100\n"
				 "quicstash_ack_latency_seconds_bucket{le=\"+Inf\"} 100\n");
	/* in the interval: 100 answers at most 1 ms (the two label sets summed) */
	struct expo cur = parse("quicstash_ack_latency_seconds_bucket{le=\"+Inf\"} 250\n"
				"quicstash_ack_latency_seconds_bucket{le=\"0.001\",x=\"1\"} 150\n"
				"quicstash_ack_latency_seconds_bucket{le=\"0.001\",x=\"2\"} 50\n"
				"quicstash_ack_latency_seconds_bucket{le=\"0.01\"} 300\n");
	/* cur's 0.01 bucket (300) exceeds +Inf (250): hostile or torn, clamped, no crash */
	double p50 = view_quantile(&prev, &cur, b, 0.5);
	CHECK(fabs(p50 - 0.00075) < 1e-9); /* rank 75 of the +Inf bucket's 150: 75% into 0..1 ms */
	free(cur.s);
	cur = parse("quicstash_ack_latency_seconds_bucket{le=\"0.001\"} 200\n"
		    "quicstash_ack_latency_seconds_bucket{le=\"0.01\"} 300\n"
		    "quicstash_ack_latency_seconds_bucket{le=\"+Inf\"} 300\n");
	p50 = view_quantile(&prev, &cur, b, 0.5);
	double p99 = view_quantile(&prev, &cur, b, 0.99);
	CHECK(fabs(p50 - 0.001) < 1e-9);                        /* rank 100: the top of the first bucket */
	CHECK(fabs(p99 - (0.001 + 0.009 * 0.98)) < 1e-9);       /* rank 198: 98% into 1..10 ms */
	CHECK(view_quantile(&cur, &cur, b, 0.5) == -1);          /* nothing in the interval */
	CHECK(view_quantile(&prev, &cur, "quicstash_none", 0.5) == -1);
	free(cur.s);
	cur = parse("quicstash_ack_latency_seconds_bucket{le=\"0.001\"} 100\n"
		    "quicstash_ack_latency_seconds_bucket{le=\"0.01\"} 100\n"
		    "quicstash_ack_latency_seconds_bucket{le=\"+Inf\"} 200\n");
	CHECK(isinf(view_quantile(&prev, &cur, b, 0.5))); /* all above the top bucket */
	free(cur.s);
	free(prev.s);
}

int main(void)
{
	test_samples();
	test_hostile();
	test_quantile();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

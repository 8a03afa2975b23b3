/* qs-parse-bench: the parser's per-event CPU on one core, without the rest
 * of the pipeline around it. Over a newline-delimited JSON corpus it times
 *   1. cJSON alone: cJSON_ParseWithLengthOpts into the parser's arena
 *      (what validation costs at the least),
 *   2. qs_enrich: validation plus enrichment, as the parser runs it,
 * and prints nanoseconds per event for each, the share cJSON takes of the
 * whole, and how many events took each output path. bench/run calls it so
 * that RESULTS.md says where the parser's wall is.
 * With --frame FILE it times qs_enrich on the file's first line as one frame
 * (hostile frames from bench/hostile_frames.py: docs/PERFORMANCE.md). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/cli.h"
#include "parser/arena.h"
#include "parser/enrich.h"

struct line {
	const char *p;
	size_t len;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The corpus's lines (newline excluded); the file stays in *buf. */
static struct line *load(const char *path, size_t max, size_t *n, char **buf)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 20, len = 0;
	*buf = malloc(cap);
	size_t got;
	while (*buf && (got = fread(*buf + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len == cap)
			*buf = realloc(*buf, cap *= 2);
	}
	fclose(f);
	if (!*buf)
		return NULL;
	size_t lcap = 1024;
	struct line *l = malloc(lcap * sizeof(*l));
	*n = 0;
	for (char *p = *buf, *end = *buf + len; l && p < end && *n < max;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (ll) {
			if (*n == lcap)
				l = realloc(l, (lcap *= 2) * sizeof(*l));
			if (l)
				l[(*n)++] = (struct line){p, ll};
		}
		p += ll + 1;
	}
	return l;
}

struct result {
	double ns_per_event;
	size_t events, fast, rejected;
};

/* Passes over the corpus until `seconds` have gone (at least one pass). */
static struct result run(const struct line *l, size_t n, double seconds, bool enrich, const char *tenant)
{
	struct qs_enrich_buf out = {0};
	struct qs_enrich_result res;
	struct qs_enrich_meta m = {.recv_time_ns = 1764000000000000000ull, .port = 40000, .tenant = tenant};
	m.ip[10] = m.ip[11] = 0xff, m.ip[12] = 192, m.ip[15] = 7;
	struct result r = {0};
	uint64_t start = now_ns(), stop = start + (uint64_t)(seconds * 1e9), end;
	do {
		bool first = r.events == 0; /* counts are of the corpus's events, from the first pass */
		for (size_t i = 0; i < n; i++) {
			bool ok, fast = false;
			if (enrich) {
				/* as the parser sees them: runs of 4 frames (about a packet)
				 * from one of 16 streams on 4 connections */
				m.seq = i;
				m.session[0] = (uint8_t)(i / 4 % 16);
				m.ip[15] = (uint8_t)(i / 4 % 4);
				m.port = (uint16_t)(40000 + i / 4 % 4);
				ok = qs_enrich(l[i].p, l[i].len, &m, &out, &res) == 0;
				fast = ok && res.fast;
			} else {
				ok = cJSON_ParseWithLengthOpts(l[i].p, l[i].len, NULL, 0) != NULL;
			}
			qs_json_arena_reset();
			if (first) {
				r.rejected += !ok;
				r.fast += fast;
			}
		}
		r.events += n;
	} while ((end = now_ns()) < stop);
	r.ns_per_event = (double)(end - start) / (double)r.events;
	qs_enrich_buf_free(&out);
	return r;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: qs-parse-bench --corpus FILE [--count N] [--seconds S] [--tenant NAME] [--json]\n"
		   "       qs-parse-bench --frame FILE [--seconds S] [--json]\n"
		   "  times cJSON's parse alone and qs_enrich (validate + enrich) per event, one core;\n"
		   "  --tenant: every event tagged organization.id NAME, as with --auth\n"
		   "  --frame: qs_enrich on one frame (the file's first line), at least once\n");
}

/* --frame: repeats qs_enrich on one frame until `seconds` have gone (at least
 * once), as the parser runs it; prints the time per frame and per byte. */
static int time_frame(const struct line *l, double seconds, bool json)
{
	struct qs_enrich_buf out = {0};
	struct qs_enrich_result res;
	struct qs_enrich_meta m = {.recv_time_ns = 1764000000000000000ull, .port = 40000};
	m.ip[10] = m.ip[11] = 0xff, m.ip[12] = 192, m.ip[15] = 7;
	uint64_t start = now_ns(), stop = start + (uint64_t)(seconds * 1e9), end, runs = 0;
	int rc;
	do {
		m.seq = runs++;
		rc = qs_enrich(l->p, l->len, &m, &out, &res);
		qs_json_arena_reset();
	} while ((end = now_ns()) < stop);
	double ns = (double)(end - start) / (double)runs;
	const char *path = rc ? "rejected" : res.fast ? "fast" : "rewrite";
	if (json)
		printf("{\"bytes\":%zu,\"runs\":%" PRIu64 ",\"ns_per_frame\":%.0f,\"ns_per_byte\":%.3f,"
		       "\"path\":\"%s\",\"out_bytes\":%zu}\n",
		       l->len, runs, ns, ns / (double)l->len, path, out.len);
	else
		printf("frame %zu bytes: qs_enrich %.3f ms (%.2f ns/byte, %" PRIu64 " runs), path %s%s%s\n", l->len,
		       ns / 1e6, ns / (double)l->len, runs, path, rc ? ": " : "", rc ? res.reason : "");
	qs_enrich_buf_free(&out);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"corpus", required_argument, NULL, 'f'},
					     {"count", required_argument, NULL, 'n'},
					     {"seconds", required_argument, NULL, 's'},
					     {"json", no_argument, NULL, 'j'},
					     {"frame", required_argument, NULL, 'F'},
					     {"tenant", required_argument, NULL, 't'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *corpus = NULL, *frame = NULL, *tenant = NULL;
	size_t count = 200000;
	double seconds = 2;
	bool json = false;
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "f:n:s:jhF:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'f': corpus = optarg; break;
		case 'F': frame = optarg; break;
		case 't': tenant = optarg; break;
		case 'n':
			if (!qs_cli_integer("qs-parse-bench", "count", optarg, 1, SIZE_MAX, &v))
				return 2;
			count = (size_t)v;
			break;
		case 's':
			if (!qs_cli_number("qs-parse-bench", "seconds", optarg, 0.001, 600, &seconds))
				return 2;
			break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!corpus == !frame || optind < argc) {
		usage(stderr);
		return 2;
	}
	char *buf = NULL;
	size_t n = 0;
	struct line *l = load(frame ? frame : corpus, frame ? 1 : count, &n, &buf);
	if (!l || !n) {
		fprintf(stderr, "qs-parse-bench: cannot read events from %s\n", frame ? frame : corpus);
		return 1;
	}
	qs_json_arena_install();
	qs_enrich_trees_in_arena(true);
	if (frame) {
		time_frame(l, seconds, json);
		free(l);
		free(buf);
		qs_json_arena_free();
		return 0;
	}
	/* warm caches and the arena for both timed halves, not just one */
	run(l, n < 20000 ? n : 20000, 0.05, false, NULL);
	run(l, n < 20000 ? n : 20000, 0.05, true, tenant);
	struct result p = run(l, n, seconds / 2, false, NULL), e = run(l, n, seconds / 2, true, tenant);
	double share = p.ns_per_event / e.ns_per_event;
	if (json)
		printf("{\"events\":%zu,\"cjson_ns\":%.1f,\"enrich_ns\":%.1f,\"cjson_share\":%.3f,"
		       "\"fast\":%.3f,\"rejected\":%zu}\n",
		       n, p.ns_per_event, e.ns_per_event, share, (double)e.fast / (double)n, e.rejected);
	else
		printf("corpus %zu events: cJSON parse %.0f ns/event, qs_enrich %.0f ns/event (cJSON %.0f%% of it); "
		       "fast path %.0f%%, rejected %zu\n",
		       n, p.ns_per_event, e.ns_per_event, 100 * share, 100.0 * (double)e.fast / (double)n,
		       e.rejected);
	free(l);
	free(buf);
	qs_json_arena_free();
	return e.rejected ? 1 : 0;
}

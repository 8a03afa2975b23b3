/* qs-bench-steady: how steady this machine's CPUs are, measured within the
 * same bench/run as the figures it qualifies.
 *
 * On every CPU at once, a thread pinned there does fixed units of work and
 * counts how many it finishes in each window (10 ms). On a steady machine
 * every window holds about the same count. On a busy VM host the count
 * swings: the hypervisor runs other guests on our cores and the guest is not
 * told (its steal time stays 0), so to every process here the CPU is just
 * slower for a while, and a pipeline that ran at half its capacity a second
 * ago runs at its full capacity or above it. Latency percentiles measured
 * there measure the host as much as the software.
 *
 * Prints the speed of the median window, of the slowest tenth and of the
 * slowest hundredth, each as a share of the "best" speed (the edge of the
 * fastest tenth). A steady machine shows about 100 / 95 / 90%. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/cli.h"

#define MAX_CPUS 256

struct prober {
	pthread_t tid;
	int cpu;
	size_t nwin;
	double *rates; /* units per ms, one per window */
	uint64_t start_ns, window_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One unit: a few microseconds of dependent integer work the compiler can
 * neither drop nor vectorise (xorshift). */
static uint64_t unit(uint64_t x)
{
	for (int i = 0; i < 2000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}

static volatile uint64_t sink;

static void *probe(void *arg)
{
	struct prober *p = arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(p->cpu, &set);
	/* unpinned, the figures still mean something: the scheduler spreads us */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	uint64_t x = 88172645463325252ull + (uint64_t)p->cpu;
	for (size_t w = 0; w < p->nwin; w++) {
		uint64_t end = p->start_ns + (w + 1) * p->window_ns, t0 = now_ns(), t = t0, units = 0;
		while (t < end) {
			x = unit(x);
			units++;
			t = now_ns();
		}
		p->rates[w] = t > t0 ? (double)units * 1e6 / (double)(t - t0) : 0;
	}
	sink = x;
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: qs-bench-steady [--seconds S] [--window-ms W] [--json]\n"
		   "  fixed work on every CPU at once, counted per window: how steady the CPUs' speed is\n");
}

static int parse_args(int argc, char **argv, double *secs, double *win_ms, int *json)
{
	static const struct option opts[] = {{"seconds", required_argument, NULL, 's'},
					     {"window-ms", required_argument, NULL, 'w'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "s:w:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!qs_cli_number("qs-bench-steady", "seconds", optarg, 0.05, 3600, secs))
				return 2;
			break;
		case 'w':
			if (!qs_cli_number("qs-bench-steady", "window-ms", optarg, 1, 1000, win_ms))
				return 2;
			break;
		case 'j':
			*json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "qs-bench-steady: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	double secs = 2, win_ms = 10;
	int json = 0, rc = parse_args(argc, argv, &secs, &win_ms, &json);
	if (rc >= 0)
		return rc;
	cpu_set_t mine;
	if (sched_getaffinity(0, sizeof(mine), &mine) != 0) {
		fprintf(stderr, "qs-bench-steady: sched_getaffinity: %s\n", strerror(errno));
		return 1;
	}
	static struct prober pr[MAX_CPUS];
	size_t n = 0, nwin = (size_t)(secs * 1000 / win_ms + 0.5); /* 0.3 s / 10 ms: 30, not 29 */
	if (nwin < 1)
		nwin = 1;
	double *all = calloc((size_t)CPU_COUNT(&mine) * nwin, sizeof(double));
	if (!all)
		return 1;
	uint64_t start = now_ns(); /* windows end at the same times on every CPU */
	for (int cpu = 0; cpu < MAX_CPUS && n < (size_t)CPU_COUNT(&mine); cpu++) {
		if (!CPU_ISSET(cpu, &mine))
			continue;
		pr[n] = (struct prober){.cpu = cpu, .nwin = nwin, .rates = all + n * nwin, .start_ns = start,
					.window_ns = (uint64_t)(win_ms * 1e6)};
		if (pthread_create(&pr[n].tid, NULL, probe, &pr[n]) != 0) {
			fprintf(stderr, "qs-bench-steady: cannot start a thread for CPU %d\n", cpu);
			return 1;
		}
		n++;
	}
	for (size_t i = 0; i < n; i++)
		pthread_join(pr[i].tid, NULL);
	size_t total = n * nwin;
	qsort(all, total, sizeof(double), cmp_double);
	double best = all[total * 9 / 10], pct[3];
	const double at[3] = {0.5, 0.1, 0.01};
	for (int i = 0; i < 3; i++)
		pct[i] = best > 0 ? 100 * all[(size_t)(at[i] * (double)total)] / best : 0;
	if (json)
		printf("{\"cpus\":%zu,\"windows\":%zu,\"window_ms\":%g,\"best_units_per_ms\":%.1f,"
		       "\"median_pct\":%.1f,\"p10_pct\":%.1f,\"p1_pct\":%.1f}\n",
		       n, total, win_ms, best, pct[0], pct[1], pct[2]);
	else
		printf("steady: %zu CPUs x %zu windows of %g ms: median window %.0f%% of the best speed, "
		       "slowest tenth <= %.0f%%, slowest hundredth <= %.0f%%\n",
		       n, nwin, win_ms, pct[0], pct[1], pct[2]);
	free(all);
	return 0;
}

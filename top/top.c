/* quicstash-top: a live view of a quicstashd's metrics endpoint (docs/METRICS.md),
 * redrawn every interval, like varnishstat or htop; usable over SSH (plain ANSI).
 * A separate program, not a mode of quicstashd: it is a client of the HTTP
 * endpoint, needs none of the daemon's privileges or options, and keeps
 * terminal code out of the daemon. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "top/expo.h"
#include "top/scrape.h"
#include "top/term.h"
#include "top/view.h"

struct top {
	struct event_base *base;
	struct scrape *scrape;
	struct event *tick, *keys;
	const char *addr;
	double interval;
	bool once, busy, tty, failed;
	struct expo snap[2]; /* the last two answers */
	int cur;             /* index of the newest; -1: none */
	bool have_prev;
	double at[2];        /* when each was received (monotonic seconds) */
	char error[160];
	char screen[64 * 1024];
	size_t screen_len;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void render(struct top *t)
{
	int cols = 0, rows = 0;
	if (t->tty)
		term_size(&cols, &rows);
	struct view_in in = {
		.prev = t->cur >= 0 && t->have_prev ? &t->snap[!t->cur] : NULL,
		.cur = t->cur >= 0 ? &t->snap[t->cur] : NULL,
		.dt = t->cur >= 0 ? t->at[t->cur] - t->at[!t->cur] : 0,
		.addr = t->addr,
		.error = t->error[0] ? t->error : NULL,
		.width = cols, .height = rows,
	};
	t->screen_len = view_render(&in, t->screen, sizeof(t->screen));
	if (t->tty)
		term_draw(t->screen, t->screen_len);
	else
		fwrite(t->screen, 1, t->screen_len, stdout);
}

static void on_scrape(void *arg, const char *body, size_t len, const char *error)
{
	struct top *t = arg;
	t->busy = false;
	if (error) {
		snprintf(t->error, sizeof(t->error), "%s: %s", t->addr, error);
		t->have_prev = false;
		if (t->once) {
			fprintf(stderr, "quicstash-top: %s\n", t->error);
			t->failed = true;
			event_base_loopbreak(t->base);
			return;
		}
		render(t);
		return;
	}
	t->error[0] = '\0';
	int next = t->cur < 0 ? 0 : !t->cur;
	t->have_prev = t->cur >= 0;
	expo_parse(&t->snap[next], body, len);
	t->at[next] = now_s();
	t->cur = next;
	/* --once: one screen with rates, so after the second answer */
	if (!t->once || t->have_prev)
		render(t);
	if (t->once && t->have_prev)
		event_base_loopbreak(t->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct top *t = arg;
	if (t->busy)
		return; /* the previous scrape is still out (its timeout ends it) */
	t->busy = true;
	if (scrape_start(t->scrape, on_scrape, t) != 0) {
		t->busy = false;
		snprintf(t->error, sizeof(t->error), "%s: cannot start a request", t->addr);
	}
}

static void on_key(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct top *t = arg;
	char c[64];
	ssize_t n = read(fd, c, sizeof(c));
	if (n <= 0) {
		event_del(t->keys); /* end of input: only signals end it now */
		return;
	}
	if (memchr(c, 'q', (size_t)n) || memchr(c, 'Q', (size_t)n))
		event_base_loopbreak(t->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct top *t = arg;
	if (sig == SIGWINCH) {
		render(t);
	} else if (sig == SIGTSTP) {
		/* suspended with the terminal given back; taken again on continue */
		term_leave();
		raise(SIGSTOP);
		term_enter();
		render(t);
	} else {
		event_base_loopbreak(t->base);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: quicstash-top [options]\n"
		   "Live view of quicstashd's metrics endpoint (quicstashd --metrics-addr).\n"
		   "  -a, --metrics-addr [HOST:]PORT  where to read /metrics (default 127.0.0.1:9464)\n"
		   "  -i, --interval S                seconds between screens, 0.1..3600 (default 1)\n"
		   "      --once                      print one screen (rates over one interval) and exit\n"
		   "  -h, --help                      this help\n"
		   "  -V, --version                   the version\n"
		   "Keys: q quits (so do Ctrl-C and SIGTERM).\n");
}

static int parse_args(struct top *t, int argc, char **argv)
{
	static const struct option long_opts[] = {
		{"metrics-addr", required_argument, NULL, 'a'},
		{"interval", required_argument, NULL, 'i'},
		{"once", no_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "a:i:hV", long_opts, NULL)) != -1) {
		switch (c) {
		case 'a': t->addr = optarg; break;
		case 'i':
			t->interval = strtod(optarg, &end);
			if (*end || !(t->interval >= 0.1 && t->interval <= 3600)) {
				fprintf(stderr, "quicstash-top: --interval %s: expected 0.1..3600 seconds\n", optarg);
				return 2;
			}
			break;
		case 'o': t->once = true; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("quicstash-top %s\n", QS_VERSION); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "quicstash-top: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	return 0;
}

static int run(struct top *t)
{
	char err[256];
	int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP};
	struct event *sev[5] = {0};
	if (!(t->base = event_base_new()) || !(t->scrape = scrape_new(t->base, t->addr, t->interval < 5 ? 5 : t->interval, err, sizeof(err)))) {
		fprintf(stderr, "quicstash-top: %s\n", t->base ? err : "no event base");
		return 2;
	}
	struct timeval tv = {(time_t)t->interval, (suseconds_t)((t->interval - (time_t)t->interval) * 1e6)};
	t->tick = event_new(t->base, -1, EV_PERSIST, on_tick, t);
	event_add(t->tick, &tv);
	for (int i = 0; i < 5; i++) {
		sev[i] = evsignal_new(t->base, sigs[i], on_signal, t);
		if (t->tty || sigs[i] < SIGWINCH)
			evsignal_add(sev[i], NULL);
	}
	if (t->tty) {
		t->keys = event_new(t->base, 0, EV_READ | EV_PERSIST, on_key, t);
		event_add(t->keys, NULL);
		render(t);
	}
	on_tick(-1, 0, t);
	event_base_dispatch(t->base);
	term_leave();
	for (int i = 0; i < 5; i++)
		if (sev[i])
			event_free(sev[i]);
	if (t->keys)
		event_free(t->keys);
	event_free(t->tick);
	scrape_free(t->scrape);
	event_base_free(t->base);
	return t->failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct top t = {.addr = "127.0.0.1:9464", .interval = 1, .cur = -1};
	int rc = parse_args(&t, argc, argv);
	if (rc)
		return rc;
	for (int i = 0; i < 2; i++)
		if (!(t.snap[i].s = calloc(EXPO_MAX_SAMPLES, sizeof(struct expo_sample)))) {
			fprintf(stderr, "quicstash-top: out of memory\n");
			return 2;
		}
	signal(SIGPIPE, SIG_IGN);
	if (!t.once) {
		atexit(term_leave);
		t.tty = term_enter();
		if (!t.tty)
			t.once = true; /* not a terminal: a screen for a script */
	}
	rc = run(&t);
	free(t.snap[0].s);
	free(t.snap[1].s);
	return rc;
}

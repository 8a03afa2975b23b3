/* qs-bench-receiver: the benchmark's TCP sink (stands in for Logstash's
 * tcp/json_lines input). Accepts any number of connections on a loopback
 * address, counts newline-terminated lines and bytes, and records the
 * CLOCK_MONOTONIC time of the first byte and of the last newline.
 *
 * Stops when --count lines arrived, when --idle seconds pass without data
 * (after the first byte), or at --timeout; then prints one JSON object:
 *   {"lines":N,"bytes":B,"first_ns":T0,"last_ns":T1,"connections":C,
 *    "reason":"count|idle|timeout|signal"}
 * Use --port 0 with --port-file to get a free port. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/cli.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: qs-bench-receiver [options]\n"
		   "  -a, --addr IP          listen address (127.0.0.1)\n"
		   "  -p, --port N           TCP port, 0 for any free one (5000)\n"
		   "  -P, --port-file FILE   write the bound port here once listening\n"
		   "  -n, --count N          stop after N lines (0: no limit)\n"
		   "  -i, --idle S           stop S seconds after the last data (0: never; 10)\n"
		   "  -t, --timeout S        stop after S seconds in all (600)\n"
		   "  -o, --output FILE      write the JSON result here (stdout)\n"
		   "  -q, --quiet            no progress on stderr\n");
}

struct opts {
	const char *addr, *port_file, *output;
	long port;
	uint64_t count;
	double idle_s, timeout_s;
	bool quiet;
};

#define TOOL "qs-bench-receiver"

/* 0 to run, 1 to exit 0 (--help), 2 on bad usage (said on stderr). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{"addr", required_argument, NULL, 'a'},	     {"port", required_argument, NULL, 'p'},
		{"port-file", required_argument, NULL, 'P'}, {"count", required_argument, NULL, 'n'},
		{"idle", required_argument, NULL, 'i'},	     {"timeout", required_argument, NULL, 't'},
		{"output", required_argument, NULL, 'o'},    {"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},	     {NULL, 0, NULL, 0},
	};
	*o = (struct opts){.addr = "127.0.0.1", .port = 5000, .idle_s = 10, .timeout_s = 600};
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "a:p:P:n:i:t:o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'a': o->addr = optarg; break;
		case 'p':
			if (!qs_cli_integer(TOOL, "port", optarg, 0, 65535, &v))
				return 2;
			o->port = (long)v;
			break;
		case 'P': o->port_file = optarg; break;
		case 'n':
			if (!qs_cli_integer(TOOL, "count", optarg, 0, UINT64_MAX, &o->count))
				return 2;
			break;
		case 'i':
			if (!qs_cli_number(TOOL, "idle", optarg, 0, 86400, &o->idle_s))
				return 2;
			break;
		case 't':
			if (!qs_cli_number(TOOL, "timeout", optarg, 0.001, 86400, &o->timeout_s))
				return 2;
			break;
		case 'o': o->output = optarg; break;
		case 'q': o->quiet = true; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/* The listening socket (its port written to --port-file), or -1 (said). */
static int listen_on(const struct opts *o)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
	if (inet_pton(AF_INET, o->addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "qs-bench-receiver: bad IPv4 address %s\n", o->addr);
		return -1;
	}
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 128) < 0) {
		fprintf(stderr, "qs-bench-receiver: listen %s:%ld: %s\n", o->addr, o->port, strerror(errno));
		return -1;
	}
	socklen_t sl = sizeof(sin);
	getsockname(lfd, (struct sockaddr *)&sin, &sl);
	if (o->port_file) {
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", o->port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", ntohs(sin.sin_port)) < 0 || fclose(f) != 0 || rename(tmp, o->port_file) < 0) {
			fprintf(stderr, "qs-bench-receiver: %s: %s\n", o->port_file, strerror(errno));
			return -1;
		}
	}
	if (!o->quiet)
		fprintf(stderr, "qs-bench-receiver: listening on %s:%u\n", o->addr, ntohs(sin.sin_port));
	return lfd;
}

enum { BUFSZ = 1 << 20 };

struct tally {
	uint64_t lines, bytes, first_ns, last_ns, last_data_ns, conns;
};

static void accept_all(int ep, int lfd, struct tally *t)
{
	int cfd;
	while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		int rcv = 4 << 20;
		setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
		struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
		epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
		t->conns++;
	}
}

/* Reads what fd has (up to 16 MiB per wake-up), counting lines and bytes;
 * closes it at end of stream or on an error. */
static void drain(int ep, int fd, char *buf, struct tally *t)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t r = read(fd, buf, BUFSZ);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			close(fd);
			return;
		}
		uint64_t now = now_ns(), nl = 0;
		if (!t->first_ns)
			t->first_ns = now;
		t->last_data_ns = now;
		t->bytes += (uint64_t)r;
		for (const char *p = buf, *end = buf + r; (p = memchr(p, '\n', (size_t)(end - p))); p++)
			nl++;
		if (nl) {
			t->lines += nl;
			t->last_ns = now;
		}
		if (r < BUFSZ)
			return;
	}
}

/* Why to stop now, or NULL to go on. */
static const char *stop_reason(const struct opts *o, const struct tally *t, uint64_t now, uint64_t deadline)
{
	if (stop_signal)
		return "signal";
	if (o->count && t->lines >= o->count)
		return "count";
	if (now >= deadline)
		return "timeout";
	if (o->idle_s > 0 && t->last_data_ns && now - t->last_data_ns >= (uint64_t)(o->idle_s * 1e9))
		return "idle";
	return NULL;
}

/* Serves until a stop reason; returns it, or NULL on an error (said). */
static const char *serve(const struct opts *o, int lfd, struct tally *t)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	char *buf = malloc(BUFSZ);
	if (ep < 0 || !buf || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("qs-bench-receiver");
		free(buf);
		return NULL;
	}
	uint64_t start = now_ns(), deadline = start + (uint64_t)(o->timeout_s * 1e9), next_report = start + 1000000000ull;
	const char *reason;
	while (!(reason = stop_reason(o, t, now_ns(), deadline))) {
		if (!o->quiet && now_ns() >= next_report) {
			fprintf(stderr, "qs-bench-receiver: %llu lines %llu bytes\n", (unsigned long long)t->lines,
				(unsigned long long)t->bytes);
			next_report = now_ns() + 1000000000ull;
		}
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 100);
		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			reason = NULL;
			break;
		}
		for (int k = 0; k < n; k++) {
			if (evs[k].data.fd == lfd)
				accept_all(ep, lfd, t);
			else
				drain(ep, evs[k].data.fd, buf, t);
		}
	}
	free(buf);
	close(ep);
	return reason;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	int lfd = listen_on(&o);
	if (lfd < 0)
		return 1;
	struct tally t = {0};
	const char *reason = serve(&o, lfd, &t);
	if (!reason)
		return 1;
	FILE *out = stdout;
	if (o.output && !(out = fopen(o.output, "w"))) {
		fprintf(stderr, "qs-bench-receiver: %s: %s\n", o.output, strerror(errno));
		out = stdout;
	}
	fprintf(out,
		"{\"lines\":%llu,\"bytes\":%llu,\"first_ns\":%llu,\"last_ns\":%llu,\"connections\":%llu,"
		"\"reason\":\"%s\"}\n",
		(unsigned long long)t.lines, (unsigned long long)t.bytes, (unsigned long long)t.first_ns,
		(unsigned long long)t.last_ns, (unsigned long long)t.conns, reason);
	if (out != stdout)
		fclose(out);
	return 0;
}

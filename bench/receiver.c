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

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *port_file = NULL, *output = NULL;
	long port = 5000;
	uint64_t count = 0;
	double idle_s = 10, timeout_s = 600;
	bool quiet = false;
	static const struct option opts[] = {
		{"addr", required_argument, NULL, 'a'},	     {"port", required_argument, NULL, 'p'},
		{"port-file", required_argument, NULL, 'P'}, {"count", required_argument, NULL, 'n'},
		{"idle", required_argument, NULL, 'i'},	     {"timeout", required_argument, NULL, 't'},
		{"output", required_argument, NULL, 'o'},    {"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},	     {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "a:p:P:n:i:t:o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'P': port_file = optarg; break;
		case 'n': count = strtoull(optarg, NULL, 10); break;
		case 'i': idle_s = strtod(optarg, NULL); break;
		case 't': timeout_s = strtod(optarg, NULL); break;
		case 'o': output = optarg; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (port < 0 || port > 65535 || timeout_s <= 0) {
		usage(stderr);
		return 2;
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "qs-bench-receiver: bad IPv4 address %s\n", addr);
		return 2;
	}
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 128) < 0) {
		fprintf(stderr, "qs-bench-receiver: listen %s:%ld: %s\n", addr, port, strerror(errno));
		return 1;
	}
	socklen_t sl = sizeof(sin);
	getsockname(lfd, (struct sockaddr *)&sin, &sl);
	if (port_file) {
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", ntohs(sin.sin_port)) < 0 || fclose(f) != 0 || rename(tmp, port_file) < 0) {
			fprintf(stderr, "qs-bench-receiver: %s: %s\n", port_file, strerror(errno));
			return 1;
		}
	}
	if (!quiet)
		fprintf(stderr, "qs-bench-receiver: listening on %s:%u\n", addr, ntohs(sin.sin_port));

	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	enum { BUFSZ = 1 << 20 };
	char *buf = malloc(BUFSZ);
	if (!buf)
		return 1;
	uint64_t lines = 0, bytes = 0, first_ns = 0, last_ns = 0, last_data_ns = 0, conns = 0;
	uint64_t start = now_ns(), deadline = start + (uint64_t)(timeout_s * 1e9), next_report = start + 1000000000ull;
	const char *reason = "timeout";
	for (;;) {
		if (stop_signal) {
			reason = "signal";
			break;
		}
		if (count && lines >= count) {
			reason = "count";
			break;
		}
		uint64_t now = now_ns();
		if (now >= deadline)
			break;
		if (idle_s > 0 && last_data_ns && now - last_data_ns >= (uint64_t)(idle_s * 1e9)) {
			reason = "idle";
			break;
		}
		if (!quiet && now >= next_report) {
			fprintf(stderr, "qs-bench-receiver: %llu lines %llu bytes\n", (unsigned long long)lines,
				(unsigned long long)bytes);
			next_report = now + 1000000000ull;
		}
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 100);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			return 1;
		}
		for (int k = 0; k < n; k++) {
			int fd = evs[k].data.fd;
			if (fd == lfd) {
				int cfd;
				while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					int rcv = 4 << 20;
					setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
					struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
					conns++;
				}
				continue;
			}
			for (int rounds = 0; rounds < 16; rounds++) {
				ssize_t r = read(fd, buf, BUFSZ);
				if (r > 0) {
					uint64_t t = now_ns();
					if (!first_ns)
						first_ns = t;
					last_data_ns = t;
					bytes += (uint64_t)r;
					uint64_t nl = 0;
					for (const char *p = buf, *end = buf + r; (p = memchr(p, '\n', (size_t)(end - p))); p++)
						nl++;
					if (nl) {
						lines += nl;
						last_ns = t;
					}
					if (r < BUFSZ)
						break;
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
					close(fd);
					break;
				} else {
					break;
				}
			}
		}
	}
	FILE *out = stdout;
	if (output && !(out = fopen(output, "w"))) {
		fprintf(stderr, "qs-bench-receiver: %s: %s\n", output, strerror(errno));
		out = stdout;
	}
	fprintf(out,
		"{\"lines\":%llu,\"bytes\":%llu,\"first_ns\":%llu,\"last_ns\":%llu,\"connections\":%llu,"
		"\"reason\":\"%s\"}\n",
		(unsigned long long)lines, (unsigned long long)bytes, (unsigned long long)first_ns,
		(unsigned long long)last_ns, (unsigned long long)conns, reason);
	if (out != stdout)
		fclose(out);
	free(buf);
	return 0;
}

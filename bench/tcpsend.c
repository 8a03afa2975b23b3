/* qs-bench-tcpsend: writes the lines of a newline-delimited file to a TCP
 * address as fast as the socket takes them (the load for the rsyslog and
 * plain-TCP baselines), or with --rate N paced as quicstash-bench paces: the
 * k-th line is due at start + k/N, checked on a 1 ms tick, every line due so
 * far written at once (bench/run's everyday rates feed rsyslog so). Prints
 * one JSON object:
 *   {"lines":N,"bytes":B,"start_ns":T0,"end_ns":T1,"rate":R}
 * with CLOCK_MONOTONIC times (comparable with qs-bench-receiver's). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/cli.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: qs-bench-tcpsend [options] FILE\n"
		   "  -a, --addr IP        destination (127.0.0.1)\n"
		   "  -p, --port N         destination port (required)\n"
		   "  -n, --count N        send only the first N lines (all)\n"
		   "  -t, --timeout S      give up after S seconds (300)\n"
		   "  -c, --chunk BYTES    bytes per write (262144)\n"
		   "  -r, --rate N         events (lines) per second, paced on a 1 ms tick (0: as fast as possible)\n");
}

struct opts {
	const char *addr, *file;
	long port;
	uint64_t count;
	unsigned timeout_s;
	size_t chunk;
	double rate; /* lines/s, 0: as fast as the socket takes them */
};

#define TOOL "qs-bench-tcpsend"

/* 0 to run, 1 to exit 0 (--help), 2 on bad usage (said on stderr). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{"addr", required_argument, NULL, 'a'},	  {"port", required_argument, NULL, 'p'},
		{"count", required_argument, NULL, 'n'},  {"timeout", required_argument, NULL, 't'},
		{"chunk", required_argument, NULL, 'c'},  {"rate", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	*o = (struct opts){.addr = "127.0.0.1", .port = -1, .timeout_s = 300, .chunk = 256 * 1024};
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "a:p:n:t:c:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': o->addr = optarg; break;
		case 'p':
			if (!qs_cli_integer(TOOL, "port", optarg, 1, 65535, &v))
				return 2;
			o->port = (long)v;
			break;
		case 'n':
			if (!qs_cli_integer(TOOL, "count", optarg, 0, UINT64_MAX, &o->count))
				return 2;
			break;
		case 't':
			if (!qs_cli_integer(TOOL, "timeout", optarg, 1, 86400, &v))
				return 2;
			o->timeout_s = (unsigned)v;
			break;
		case 'c':
			if (!qs_cli_integer(TOOL, "chunk", optarg, 1, 1 << 30, &v))
				return 2;
			o->chunk = (size_t)v;
			break;
		case 'r':
			if (!qs_cli_number(TOOL, "rate", optarg, 0, 1e9, &o->rate))
				return 2;
			break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc || o->port < 0) {
		usage(stderr);
		return 2;
	}
	o->file = argv[optind];
	return 0;
}

/* The file mapped, *len cut after its first `count` lines (0: all), *lines
 * counted; NULL on error (said). */
static const char *map_lines(const char *path, uint64_t count, size_t *len, uint64_t *lines)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
		fprintf(stderr, "qs-bench-tcpsend: %s: %s\n", path, fd < 0 ? strerror(errno) : "empty");
		return NULL;
	}
	const char *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	if (data == MAP_FAILED) {
		perror("qs-bench-tcpsend: mmap");
		return NULL;
	}
	*len = (size_t)st.st_size;
	*lines = 0;
	const char *p = data, *end = data + *len;
	while ((!count || *lines < count) && (p = memchr(p, '\n', (size_t)(end - p)))) {
		p++;
		++*lines;
	}
	if (count && *lines == count)
		*len = (size_t)(p - data);
	return data;
}

/* A connected socket, or -1 (said; *bad_addr set when the address is bad). */
static int connect_to(const struct opts *o, bool *bad_addr)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
	*bad_addr = inet_pton(AF_INET, o->addr, &sin.sin_addr) != 1;
	if (*bad_addr) {
		fprintf(stderr, "qs-bench-tcpsend: bad IPv4 address %s\n", o->addr);
		return -1;
	}
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		fprintf(stderr, "qs-bench-tcpsend: connect %s:%ld: %s\n", o->addr, o->port, strerror(errno));
		if (s >= 0)
			close(s);
		return -1;
	}
	int snd = 4 << 20;
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
	return s;
}

static bool send_all(int s, const char *data, size_t len, size_t chunk)
{
	for (size_t off = 0; off < len;) {
		size_t n = len - off < chunk ? len - off : chunk;
		ssize_t w = write(s, data + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "qs-bench-tcpsend: write: %s\n", strerror(errno));
			return false;
		}
		off += (size_t)w;
	}
	return true;
}

/* --rate: the k-th line (from 0) is due at start + k / rate, as in
 * quicstash-bench; on every 1 ms tick (absolute, a late tick skipped, as
 * libevent's persistent timer does there) every line due so far is written
 * in one go. A trailing part without a newline goes last. */
static bool send_paced(int s, const char *data, size_t len, uint64_t lines, const struct opts *o, uint64_t start)
{
	const char *end = data + len;
	size_t off = 0;
	uint64_t sent = 0, tick = start;
	while (sent < lines) {
		uint64_t now = now_ns();
		uint64_t due = (uint64_t)((double)(now - start) * o->rate / 1e9) + 1;
		if (due > lines)
			due = lines;
		const char *p = data + off;
		for (; sent < due; sent++)
			p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1; /* counted by map_lines */
		if (!send_all(s, data + off, (size_t)(p - (data + off)), o->chunk))
			return false;
		off = (size_t)(p - data);
		if (sent == lines)
			break;
		while (tick <= now)
			tick += 1000000;
		struct timespec ts = {.tv_sec = (time_t)(tick / 1000000000ull), .tv_nsec = (long)(tick % 1000000000ull)};
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
	return send_all(s, data + off, len - off, o->chunk);
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	alarm(o.timeout_s); /* bounded: SIGALRM ends us */
	signal(SIGPIPE, SIG_IGN);
	size_t len;
	uint64_t lines;
	const char *data = map_lines(o.file, o.count, &len, &lines);
	if (!data)
		return 1;
	bool bad_addr;
	int s = connect_to(&o, &bad_addr);
	if (s < 0)
		return bad_addr ? 2 : 1;
	uint64_t start = now_ns();
	if (!(o.rate > 0 ? send_paced(s, data, len, lines, &o, start) : send_all(s, data, len, o.chunk)))
		return 1;
	uint64_t end = now_ns();
	shutdown(s, SHUT_WR);
	/* wait for the peer to close (bounded by the alarm), so nothing is reset */
	char sink[4096];
	while (read(s, sink, sizeof(sink)) > 0)
		;
	close(s);
	printf("{\"lines\":%llu,\"bytes\":%zu,\"start_ns\":%llu,\"end_ns\":%llu,\"rate\":%.1f}\n",
	       (unsigned long long)lines, len, (unsigned long long)start, (unsigned long long)end, o.rate);
	return 0;
}

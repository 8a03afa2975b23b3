/* qs-bench-tcpsend: writes the lines of a newline-delimited file to a TCP
 * address as fast as the socket takes them (the load for the rsyslog and
 * plain-TCP baselines). Prints one JSON object:
 *   {"lines":N,"bytes":B,"start_ns":T0,"end_ns":T1}
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
		   "  -c, --chunk BYTES    bytes per write (262144)\n");
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	long port = -1;
	uint64_t count = 0;
	unsigned timeout_s = 300;
	size_t chunk = 256 * 1024;
	static const struct option opts[] = {
		{"addr", required_argument, NULL, 'a'},	  {"port", required_argument, NULL, 'p'},
		{"count", required_argument, NULL, 'n'},  {"timeout", required_argument, NULL, 't'},
		{"chunk", required_argument, NULL, 'c'},  {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "a:p:n:t:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': addr = optarg; break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'n': count = strtoull(optarg, NULL, 10); break;
		case 't': timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': chunk = strtoull(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc || port <= 0 || port > 65535 || chunk == 0) {
		usage(stderr);
		return 2;
	}
	alarm(timeout_s); /* bounded: SIGALRM ends us */
	signal(SIGPIPE, SIG_IGN);

	int fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
		fprintf(stderr, "qs-bench-tcpsend: %s: %s\n", argv[optind], fd < 0 ? strerror(errno) : "empty");
		return 1;
	}
	const char *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (data == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	size_t len = (size_t)st.st_size;
	uint64_t lines = 0;
	if (count) {
		const char *p = data, *end = data + len;
		while (lines < count && (p = memchr(p, '\n', (size_t)(end - p)))) {
			p++;
			lines++;
		}
		if (lines == count)
			len = (size_t)(p - data);
	} else {
		for (const char *p = data, *end = data + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
			lines++;
	}

	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "qs-bench-tcpsend: bad IPv4 address %s\n", addr);
		return 2;
	}
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		fprintf(stderr, "qs-bench-tcpsend: connect %s:%ld: %s\n", addr, port, strerror(errno));
		return 1;
	}
	int snd = 4 << 20;
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
	uint64_t start = now_ns();
	size_t off = 0;
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		ssize_t w = write(s, data + off, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "qs-bench-tcpsend: write: %s\n", strerror(errno));
			return 1;
		}
		off += (size_t)w;
	}
	uint64_t end = now_ns();
	shutdown(s, SHUT_WR);
	/* wait for the peer to close (bounded by the alarm), so nothing is reset */
	char sink[4096];
	while (read(s, sink, sizeof(sink)) > 0)
		;
	close(s);
	printf("{\"lines\":%llu,\"bytes\":%zu,\"start_ns\":%llu,\"end_ns\":%llu}\n", (unsigned long long)lines, len,
	       (unsigned long long)start, (unsigned long long)end);
	return 0;
}

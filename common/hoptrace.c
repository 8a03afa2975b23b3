/* See common/hoptrace.h. */
#include "common/hoptrace.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

struct hop_rec {
	uint64_t t_ns;
	uint64_t ticket;
	uint16_t point;
	uint16_t acceptor;
	uint32_t pad;
};

#define HOP_BUF 65536
#define HOP_MAX_MB 256 /* default cap of one file: a trace left on must not fill the spool's disk */

static struct hop_rec buf[HOP_BUF];
static unsigned used;
static uint64_t room; /* records the file may still take */
int qs_hop_fd = -1;

static void stop_tracing(void)
{
	qs_info("hop trace: the file reached QS_HOPTRACE_MAX_MB; tracing stopped");
	close(qs_hop_fd);
	qs_hop_fd = -1;
}

static void flush_buf(void)
{
	if (used > room)
		used = (unsigned)room;
	room -= used;
	const char *p = (const char *)buf;
	size_t left = used * sizeof(buf[0]);
	while (left) {
		ssize_t n = write(qs_hop_fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
	used = 0;
	if (room == 0)
		stop_tracing();
}

static void flush_at_exit(void)
{
	if (qs_hop_fd >= 0)
		flush_buf();
}

void qs_hop_open(const char *role)
{
	const char *dir = getenv("QS_HOPTRACE_DIR");
	if (!dir || !*dir || qs_hop_fd >= 0)
		return;
	const char *max = getenv("QS_HOPTRACE_MAX_MB");
	unsigned long mb = max && *max ? strtoul(max, NULL, 10) : HOP_MAX_MB;
	room = (uint64_t)(mb ? mb : HOP_MAX_MB) * 1024 * 1024 / sizeof(struct hop_rec);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.%d.hop", dir, role, (int)getpid());
	qs_hop_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (qs_hop_fd >= 0)
		atexit(flush_at_exit);
	else
		qs_warn("QS_HOPTRACE_DIR: cannot create %s: %s (not tracing)", path, strerror(errno));
}

void qs_hop_record(enum qs_hop_point point, uint32_t acceptor, uint64_t ticket)
{
	qs_hop_record_at(point, acceptor, ticket, qs_now_ns());
}

void qs_hop_record_at(enum qs_hop_point point, uint32_t acceptor, uint64_t ticket, uint64_t t_ns)
{
	buf[used++] = (struct hop_rec){.t_ns = t_ns,
				       .ticket = ticket,
				       .point = (uint16_t)point,
				       .acceptor = (uint16_t)acceptor};
	if (used == HOP_BUF)
		flush_buf();
}

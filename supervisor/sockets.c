#include "supervisor/sockets.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/log.h"
#include "supervisor/steer.h"

#define UDP_BUFFER_BYTES (8 * 1024 * 1024)

static void tune(int fd)
{
	int sz = UDP_BUFFER_BYTES;
	/* FORCE variants pass the rmem_max cap when we have CAP_NET_ADMIN. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

static int bind_one(const struct sockaddr *sa, socklen_t len, const char *text)
{
	int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		qs_err("socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) != 0) {
		qs_err("cannot bind UDP %s: %s", text, strerror(errno));
		close(fd);
		return -1;
	}
	tune(fd);
	return fd;
}

/* The first socket passed by systemd that is a datagram socket, or -1. */
static int activated_socket(void)
{
	int n = sd_listen_fds(1);
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_DGRAM, -1) > 0)
			return fd;
	}
	return -1;
}

/* The socket systemd passed decides where clients connect, --server-addr (the
 * configuration file's) is not used: say so when they differ, as an operator
 * who changed one of them and not the other would otherwise never know. */
static void warn_elsewhere(const struct qs_config *cfg, const struct sockaddr_storage *ss)
{
	char bound[64], want[64];
	unsigned bound_port, want_port;
	qs_addr_ip_string((const struct sockaddr *)ss, bound, sizeof(bound), &bound_port);
	qs_addr_ip_string((const struct sockaddr *)&cfg->server_addr.ss, want, sizeof(want), &want_port);
	if (bound_port != want_port || strcmp(bound, want))
		qs_warn("the UDP socket passed by systemd is bound to %s port %u, not --server-addr %s: clients "
			"must use the socket's address (change ListenDatagram= and server-addr together)",
			bound, bound_port, cfg->server_addr_text);
}

int qs_udp_open(const struct qs_config *cfg, int *fds, unsigned n)
{
	struct sockaddr_storage ss = cfg->server_addr.ss;
	socklen_t len = cfg->server_addr.len;
	unsigned first = 0;
	int act = activated_socket();
	if (act >= 0) {
		fds[0] = act;
		tune(act);
		len = sizeof(ss);
		getsockname(act, (struct sockaddr *)&ss, &len);
		qs_info("using the UDP socket passed by systemd (fd %d)", act);
		warn_elsewhere(cfg, &ss);
		first = 1;
	}
	/* SO_REUSEPORT would let us join another running instance's group and
	 * silently share its port: make sure the port is free first. */
	if (first == 0) {
		int probe = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && bind(probe, (struct sockaddr *)&ss, len) != 0) {
			qs_err("cannot bind UDP %s: %s", cfg->server_addr_text, strerror(errno));
			close(probe);
			return -1;
		}
		if (probe >= 0) {
			len = sizeof(ss);
			getsockname(probe, (struct sockaddr *)&ss, &len);
			close(probe);
		}
	}
	for (unsigned i = first; i < n; i++) {
		fds[i] = bind_one((struct sockaddr *)&ss, len, cfg->server_addr_text);
		if (fds[i] < 0)
			return -1;
	}
	return qs_steer_udp_group(fds, n); /* 0, or QS_STEER_UNAVAILABLE: only fds[0] is left */
}

int qs_udp_bind_like(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		qs_err("getsockname: %s", strerror(errno));
		return -1;
	}
	return bind_one((struct sockaddr *)&ss, len, "(next acceptor generation)");
}

#include "shipper/peer.h"

#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define DRAIN_READS 16 /* per call: a peer sending us data cannot hold the loop */

uint64_t qs_peer_unread_max(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || !(ti.tcpi_options & TCPI_OPT_WSCALE))
		return QS_PEER_UNREAD_UNKNOWN;
	return 2 * ((uint64_t)65535 << ti.tcpi_snd_wscale);
}

int qs_peer_drain_read(int fd)
{
	char buf[4096];
	for (int i = 0; i < DRAIN_READS; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			continue; /* Logstash sends nothing; TLS: its close_notify */
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 1 : -1;
		/* Its FIN. Our FIN counts in SIOCOUTQ too: 0 means the peer's FIN
		 * acknowledged every byte we sent and our FIN, so it closed after
		 * reading our end of data, not on its own before our last bytes. */
		int unacked = 0;
		if (ioctl(fd, SIOCOUTQ, &unacked) != 0)
			return -1;
		if (unacked == 0)
			return 0;
		errno = EPIPE;
		return -1;
	}
	return 1;
}

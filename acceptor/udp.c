/* The UDP socket inherited at fd 4: packets in with recvmmsg bursts (UDP GRO
 * datagrams split into their packets), out with sendmmsg batches. A packet that cannot be sent right now (EAGAIN) is dropped: QUIC
 * loss recovery resends its contents, exactly as if the network had lost it. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "acceptor/acc.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/hoptrace.h"
#include "common/log.h"
#include "common/metrics_page.h"

#define ACC_RX_BATCH 64
#define ACC_RX_BUF 65536    /* a UDP GRO datagram: many packets of one sender, at most 64 KiB */
#define ACC_RX_CTL 64       /* room for the UDP_GRO cmsg (an int) */
#define ACC_RX_ROUNDS 16    /* recvmmsg calls per wake-up, so other events get their turn */

/* 4 MiB of address space; pages are only touched as far as datagrams reach. */
static uint8_t rx_bufs[ACC_RX_BATCH][ACC_RX_BUF];
static union {
	char buf[ACC_RX_CTL];
	struct cmsghdr align;
} rx_ctl[ACC_RX_BATCH];

/* RFC 9000, 14: QUIC datagrams are never fragmented. With the DF bit set a
 * packet too large for the path is lost (or refused here with EMSGSIZE:
 * acc_udp_flush skips it), which is what PMTU discovery's probes rely on;
 * without it the kernel sends IP fragments, a probe "succeeds", and every
 * later packet travels in pieces that a lossy path loses twice as often.
 * Both levels for an IPv6 socket: it also carries IPv4-mapped peers. */
static void set_dont_fragment(int fd, int family)
{
	int v4 = IP_PMTUDISC_DO, v6 = IPV6_PMTUDISC_DO;
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v6, sizeof(v6)) != 0)
		qs_warn("IPV6_MTU_DISCOVER: %s (large packets may be fragmented)", strerror(errno));
	if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v4, sizeof(v4)) != 0 && family == AF_INET)
		qs_warn("IP_MTU_DISCOVER: %s (large packets may be fragmented)", strerror(errno));
}

/* The segment size of a datagram the kernel coalesced (UDP GRO), or 0; notes
 * its arrival (SO_TIMESTAMPNS) in a->rx_pkt_ns (0: none) and a->rx_newest_ns. */
static size_t gro_size(struct acc *a, struct msghdr *mh)
{
	size_t seg = 0;
	a->rx_pkt_ns = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
			int v;
			memcpy(&v, CMSG_DATA(cm), sizeof(v));
			seg = v > 0 ? (size_t)v : 0;
		} else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
			uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
			a->rx_pkt_ns = ns;
			if (ns > a->rx_newest_ns)
				a->rx_newest_ns = ns;
		}
	}
	return seg;
}

/* One received datagram: a single QUIC packet, or with GRO several of one
 * sender, seg bytes each but the last. Each is a packet of its own for ngtcp2
 * (a short-header packet runs to the end of its datagram). */
static void datagram(struct acc *a, struct msghdr *mh, size_t len, uint8_t *buf)
{
	if (mh->msg_flags & MSG_TRUNC)
		return;
	size_t seg = gro_size(a, mh);
	if (seg == 0)
		seg = len;
	/* also drops a coalesced datagram whose UDP_GRO cmsg was lost (MSG_CTRUNC) */
	if (seg > ACC_MAX_PKT)
		return;
	for (size_t off = 0; off < len; off += seg) {
		qs_mp_add(QS_M_UDP_IN_PKTS, 1);
		acc_conn_packet(a, mh->msg_name, mh->msg_namelen, buf + off, len - off < seg ? len - off : seg);
	}
}

/* Reads what is queued; returns the packets read, -1 to read again at once. */
static int udp_read(struct acc *a, evutil_socket_t fd)
{
	int total = 0;
	struct mmsghdr msgs[ACC_RX_BATCH];
	struct iovec iov[ACC_RX_BATCH];
	struct sockaddr_storage from[ACC_RX_BATCH];
	int round;
	for (round = 0; round < ACC_RX_ROUNDS; round++) {
		memset(msgs, 0, sizeof(msgs));
		for (int i = 0; i < ACC_RX_BATCH; i++) {
			iov[i] = (struct iovec){.iov_base = rx_bufs[i], .iov_len = ACC_RX_BUF};
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_name = &from[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
			msgs[i].msg_hdr.msg_control = rx_ctl[i].buf;
			msgs[i].msg_hdr.msg_controllen = sizeof(rx_ctl[i].buf);
		}
		int n = recvmmsg(fd, msgs, ACC_RX_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				qs_warn("recvmmsg: %s", strerror(errno));
			break;
		}
		qs_hop(QS_HOP_A_RECV, acc_channel(a), 0);
		total += n;
		/* While handshakes are in progress, the established connections'
		 * datagrams of the batch first (a client's second flight finishes its
		 * handshake and frees its place), new attempts' Initials after. */
		int later[ACC_RX_BATCH], nlater = 0;
		for (int i = 0; i < n; i++) {
			qs_mp_add(QS_M_UDP_IN_BYTES, msgs[i].msg_len);
			if (a->handshaking && !(msgs[i].msg_hdr.msg_flags & MSG_TRUNC) &&
			    acc_new_attempt(a, rx_bufs[i], msgs[i].msg_len))
				later[nlater++] = i;
			else
				datagram(a, &msgs[i].msg_hdr, msgs[i].msg_len, rx_bufs[i]);
		}
		if (nlater && nlater < n)
			a->n_deferred += (uint64_t)nlater;
		for (int j = 0; j < nlater; j++)
			datagram(a, &msgs[later[j]].msg_hdr, msgs[later[j]].msg_len, rx_bufs[later[j]]);
		if (n < ACC_RX_BATCH)
			break;
	}
	acc_incomplete_shed(a);
	acc_schedule_flush(a);
	/* Budget spent, or a full batch or more came at once: the load is high
	 * and batches form by themselves; come back on the next loop pass. */
	return round == ACC_RX_ROUNDS || total >= ACC_RX_BATCH ? -1 : total;
}

/* Receive moderation, as network cards throttle their interrupts: after a
 * read that found a burst (ACC_RX_GATHER_MIN frames or more: several
 * clients, or one client sending faster than it can pack), the socket is not
 * watched for the gather wait; then whatever arrived meanwhile is read
 * together, so every hop after this one handles the batch at one wake-up. A
 * read that finds less (a lone event, or only acknowledgements of our own
 * packets) goes back to waking on arrival: an everyday client's lone event is
 * read at once and costs no timer, the next burst is read the moment it
 * comes, and an idle acceptor sleeps. Under heavy load (a full batch at
 * once, or the budget spent) the batches form by themselves and the socket
 * is read again on the next loop pass. */
#define ACC_RX_GATHER_MIN 2

/* The wait runs from the arrival of the newest packet read, not from now:
 * clients that send in bursts (a timer's worth of events, as most loggers
 * flush) have the next read fall just after their next burst instead of
 * anywhere in it, so a burst is read whole and its events wait for its own
 * last packet only; with arrivals spread evenly the newest is moments old and
 * the wait is what it was. Never longer than the full wait; a newest packet
 * older than the wait (or no timestamp) gives the full wait. */
uint64_t acc_gather_wait_us(uint64_t wait_us, uint64_t newest_ns, uint64_t now_ns)
{
	uint64_t age_us = now_ns > newest_ns ? (now_ns - newest_ns) / 1000 : 0;
	if (newest_ns == 0 || age_us >= wait_us)
		return wait_us;
	return wait_us - age_us;
}

static void after_read(struct acc *a, int n, uint64_t frames)
{
	if (n < 0) {
		event_active(a->udp_ev, EV_READ, 0);
		return;
	}
	bool gathering = evtimer_pending(a->rx_gather_ev, NULL);
	if (a->rx_gather_us && a->n_frames - frames >= ACC_RX_GATHER_MIN) {
		uint64_t us = acc_gather_wait_us(a->rx_gather_us, a->rx_newest_ns, qs_realtime_ns());
		struct timeval tv = {0, (suseconds_t)us};
		if (!gathering)
			event_del(a->udp_ev);
		evtimer_add(a->rx_gather_ev, &tv);
	} else if (gathering || !event_pending(a->udp_ev, EV_READ, NULL)) {
		evtimer_del(a->rx_gather_ev);
		event_add(a->udp_ev, NULL);
	}
}

static void gather_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acc *a = arg;
	uint64_t frames = a->n_frames;
	after_read(a, udp_read(a, a->udp_fd), frames);
}

static void udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct acc *a = arg;
	uint64_t frames = a->n_frames;
	after_read(a, udp_read(a, fd), frames);
}

int acc_udp_init(struct acc *a)
{
	a->udp_fd = QS_CHILD_UDP_FD;
	a->local_len = sizeof(a->local);
	if (getsockname(a->udp_fd, (struct sockaddr *)&a->local, &a->local_len) != 0) {
		qs_err("UDP socket at fd %d: %s", a->udp_fd, strerror(errno));
		return -1;
	}
	int type = 0;
	socklen_t tl = sizeof(type);
	if (getsockopt(a->udp_fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_DGRAM) {
		qs_err("fd %d is not a UDP socket", a->udp_fd);
		return -1;
	}
	/* UDP GRO: a burst of same-size packets from one sender (a client sending
	 * with GSO) arrives as one datagram, cut up again in datagram(): fewer
	 * receive calls, and the kernel does not segment it first. Set here on the
	 * socket we were given (the supervisor's or systemd's), before the sandbox. */
	int on = 1;
	if (setsockopt(a->udp_fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) != 0)
		qs_debug("UDP_GRO: %s (datagrams arrive one by one)", strerror(errno));
	set_dont_fragment(a->udp_fd, a->local.ss_family);
	/* arrival times: the gather wait runs from the newest packet (after_read) */
	if (setsockopt(a->udp_fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) != 0)
		qs_debug("SO_TIMESTAMPNS: %s (the gather wait runs from the read)", strerror(errno));
	int fl = fcntl(a->udp_fd, F_GETFL);
	fcntl(a->udp_fd, F_SETFL, fl | O_NONBLOCK);
	fcntl(a->udp_fd, F_SETFD, FD_CLOEXEC);
	a->udp_ev = event_new(a->base, a->udp_fd, EV_READ | EV_PERSIST, udp_read_cb, a);
	a->rx_gather_us = a->cfg->receive_coalesce_us;
	a->rx_gather_ev = evtimer_new(a->base, gather_cb, a);
	if (!a->udp_ev || !a->rx_gather_ev || event_add(a->udp_ev, NULL))
		return -1;
	return 0;
}

/* Outgoing packets are queued and leave in one sendmmsg per loop pass (the
 * flush callback, which runs in the same pass as whatever queued them: no
 * timer), instead of one sendmsg each. */
#define ACC_TX_BATCH 64
#define ACC_TX_BUF 1500 /* larger packets (none with ngtcp2's defaults) go out at once */

static struct {
	uint8_t buf[ACC_TX_BATCH][ACC_TX_BUF];
	struct sockaddr_storage to[ACC_TX_BATCH];
	struct iovec iov[ACC_TX_BATCH];
	struct mmsghdr msgs[ACC_TX_BATCH];
	unsigned n;
} tx;

static void send_one(struct acc *a, const struct sockaddr *to, socklen_t tolen, const uint8_t *pkt, size_t len)
{
	struct iovec iov = {.iov_base = (void *)pkt, .iov_len = len};
	struct msghdr mh = {.msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;
	do
		n = sendmsg(a->udp_fd, &mh, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		qs_mp_add(QS_M_UDP_OUT_PKTS, 1);
	if (n < 0 && errno != EAGAIN)
		qs_debug("sendmsg: %s", strerror(errno));
}

void acc_udp_flush(struct acc *a)
{
	unsigned done = 0;
	while (done < tx.n) {
		int n = sendmmsg(a->udp_fd, tx.msgs + done, tx.n - done, MSG_DONTWAIT);
		if (n > 0) {
			for (int i = 0; i < n; i++)
				qs_mp_add(QS_M_UDP_OUT_BYTES, tx.msgs[done + (unsigned)i].msg_len);
			qs_mp_add(QS_M_UDP_OUT_PKTS, (uint64_t)n);
			done += (unsigned)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break; /* the socket buffer is full: dropped, as a network would (QUIC resends) */
		/* this datagram failed (e.g. an unreachable destination): skip it, send the rest */
		if (n < 0)
			qs_debug("sendmmsg: %s", strerror(errno));
		done++;
	}
	if (tx.n)
		qs_hop(QS_HOP_A_SENT, acc_channel(a), 0);
	tx.n = 0;
}

void acc_udp_send(struct acc *a, const struct sockaddr *to, socklen_t tolen, const uint8_t *pkt, size_t len)
{
	if (len > ACC_TX_BUF || tolen > sizeof(tx.to[0])) {
		acc_udp_flush(a); /* keep the order */
		send_one(a, to, tolen, pkt, len);
		return;
	}
	if (tx.n == ACC_TX_BATCH)
		acc_udp_flush(a);
	unsigned i = tx.n++;
	memcpy(tx.buf[i], pkt, len);
	memcpy(&tx.to[i], to, tolen);
	tx.iov[i] = (struct iovec){.iov_base = tx.buf[i], .iov_len = len};
	tx.msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &tx.to[i], .msg_namelen = tolen,
						   .msg_iov = &tx.iov[i], .msg_iovlen = 1}};
	if (i == 0)
		acc_schedule_flush(a); /* out in this loop pass, after the rest of its work */
}

/* Moving packets: read and feed ngtcp2, write stream data, run its timers. */
#include <errno.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client/lib/internal.h"

#define MAX_PKTS_PER_PASS 64
#define MAX_VECS 16
#define QS_GSO_MAX_SEGS 64 /* UDP_MAX_SEGMENTS of older kernels (newer ones take 128) */

static void explain_read_error(struct qs_client *c, int rv)
{
	char why[256];
	const ngtcp2_ccerr *ce;
	switch (rv) {
	case NGTCP2_ERR_DRAINING: /* the server closed the connection */
		ce = ngtcp2_conn_get_ccerr(c->conn);
		if (ce->type == NGTCP2_CCERR_TYPE_TRANSPORT && ce->error_code == NGTCP2_CONNECTION_REFUSED) {
			/* quicstashd's reasons say "busy: why" themselves */
			bool said = ce->reasonlen >= 4 && !memcmp(ce->reason, "busy", 4);
			static const char later[] = "retry later";
			c->busy_brief = ce->reasonlen >= sizeof(later) - 1 &&
					!memcmp(ce->reason + ce->reasonlen - (sizeof(later) - 1), later, sizeof(later) - 1);
			qs_client_fail(c, QS_FAIL_BUSY, "server refused the connection (%s%s%.*s)",
				       said ? "" : "busy", said || !ce->reasonlen ? "" : ": ", (int)ce->reasonlen,
				       ce->reason ? (const char *)ce->reason : "");
		} else if (ce->type == NGTCP2_CCERR_TYPE_TRANSPORT && ce->error_code == NGTCP2_INVALID_TOKEN) {
			/* Our Retry token came too late (older than the server takes:
			 * its packets waited out a storm's backlog and our
			 * retransmissions) or from elsewhere: start again from
			 * scratch (RFC 9000, 8.1.2), after a busy backoff. */
			c->busy_hint = true;
			qs_client_fail(c, QS_FAIL_PASSING(c), "server refused our address-validation token (busy)");
		} else if (ce->type == NGTCP2_CCERR_TYPE_APPLICATION && ce->error_code >= QS_APP_AUTH_FIRST &&
			   ce->error_code <= QS_APP_AUTH_LAST) {
			/* final: another try would present the same credentials */
			qs_client_fail(c, QS_FAIL_FATAL, "server refused authentication: %.*s", (int)ce->reasonlen,
				       ce->reason ? (const char *)ce->reason : "unauthenticated");
		} else if (ce->type == NGTCP2_CCERR_TYPE_TRANSPORT && (ce->error_code & ~0xffull) == 0x100) {
			const char *n = gnutls_alert_get_name((gnutls_alert_description_t)(ce->error_code & 0xff));
			/* internal_error: the server could not finish (its keyholder being
			 * replaced or restarted, say): worth another try; others are final. */
			bool passing = (ce->error_code & 0xff) == GNUTLS_A_INTERNAL_ERROR;
			qs_client_fail(c, passing || c->ever_connected ? QS_FAIL_PASSING(c) : QS_FAIL_FATAL,
				       "server rejected the TLS handshake: %s", n ? n : "alert");
		} else {
			qs_client_fail(c, c->goaway ? QS_FAIL_GOAWAY : QS_FAIL_LOST,
				       "server closed the connection (%s 0x%llx%s%.*s)",
				       ce->type == NGTCP2_CCERR_TYPE_APPLICATION ? "application" : "transport",
				       (unsigned long long)ce->error_code, ce->reasonlen ? ": " : "",
				       (int)ce->reasonlen, ce->reason ? (const char *)ce->reason : "");
		}
		return;
	case NGTCP2_ERR_CRYPTO:
		qs_tls_describe_failure(c, why, sizeof(why));
		ngtcp2_ccerr_set_tls_alert(&c->last_error, ngtcp2_conn_get_tls_alert(c->conn), NULL, 0);
		qs_client_fail(c, c->ever_connected ? QS_FAIL_LOST : QS_FAIL_FATAL, "%s", why);
		return;
	case NGTCP2_ERR_DROP_CONN:
		qs_client_fail(c, QS_FAIL_LOST, "connection dropped");
		return;
	default:
		ngtcp2_ccerr_set_liberr(&c->last_error, rv, NULL, 0);
		qs_client_fail(c, QS_FAIL_LOST, "QUIC error: %s", ngtcp2_strerror(rv));
	}
}

void qs_io_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct qs_client *c = arg;
	uint8_t buf[65536];
	for (int i = 0; i < 256 && c->conn && !c->fail; i++) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
		if (n < 0) {
			if (errno == EMSGSIZE)
				continue; /* an ICMP "too big" for a PMTU probe: the probe is lost, no more */
			if (errno == ECONNREFUSED)
				qs_client_fail(c, QS_FAIL_PASSING(c), "cannot connect to %s: connection refused",
					       c->opts.server_addr);
			else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				qs_client_fail(c, QS_FAIL_LOST, "receive: %s", strerror(errno));
			break;
		}
		ngtcp2_path path = {
			.local = {.addr = (struct sockaddr *)&c->local, .addrlen = c->local_len},
			.remote = {.addr = (struct sockaddr *)&from, .addrlen = fromlen},
		};
		ngtcp2_pkt_info pi = {0};
		int rv = ngtcp2_conn_read_pkt(c->conn, &path, &pi, buf, (size_t)n, qs_now());
		if (rv != 0 && !c->fail)
			explain_read_error(c, rv);
	}
	if (c->conn && !c->fail)
		qs_io_write(c);
	qs_client_after_io(c);
}

void qs_io_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_client *c = arg;
	int rv = ngtcp2_conn_handle_expiry(c->conn, qs_now());
	if (rv == NGTCP2_ERR_IDLE_CLOSE) {
		qs_client_fail(c, c->goaway ? QS_FAIL_GOAWAY : QS_FAIL_LOST, "connection timed out (idle)");
	} else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
		/* An overloaded server (a connection storm) or a path that lost
		 * every packet: worth another try after a busy backoff, bounded
		 * like the other failures a first handshake may pass. */
		c->busy_hint = true;
		qs_client_fail(c, QS_FAIL_PASSING(c), "cannot connect to %s: handshake timed out", c->opts.server_addr);
	} else if (rv != 0) {
		qs_client_fail(c, QS_FAIL_LOST, "QUIC timer: %s", ngtcp2_strerror(rv));
	} else {
		qs_io_write(c);
	}
	qs_client_after_io(c);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_client *c = arg;
	if (c->conn && !c->fail)
		qs_io_write(c);
	qs_client_after_io(c);
}

/* Many sends in one loop iteration end up in one write pass. */
void qs_io_schedule_write(struct qs_client *c)
{
	if (!c->write_ev)
		c->write_ev = event_new(c->base, -1, 0, write_cb, c);
	if (!event_pending(c->write_ev, EV_TIMEOUT, NULL))
		event_active(c->write_ev, EV_TIMEOUT, 0);
}

/* ngtcp2 acknowledges a packet an eighth of the RTT after it came (on
 * loopback: at once), so at everyday rates each packet of answers drew an
 * ACK-only packet from us, a wake-up of the server for nothing. While nothing
 * of ours waits to be sent (no pacing to honour), the timer (the ACK, loss
 * detection, keep-alive) may fire QS_ACK_RIDE late: events sent meanwhile
 * take the ACK along. */
static void arm_timer(struct qs_client *c)
{
	ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->conn), now = qs_now();
	if (exp != UINT64_MAX && c->handshake_done && !c->closing && qs_streams_idle(c))
		exp += QS_ACK_RIDE;
	uint64_t d = exp > now ? exp - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(d / NGTCP2_SECONDS),
			     .tv_usec = (suseconds_t)(d % NGTCP2_SECONDS / 1000)};
	evtimer_add(c->timer_ev, &tv);
}

/* One writev_stream call; returns the packet length, 0 when nothing can be sent, -1 to stop. */
static ngtcp2_ssize write_one(struct qs_client *c, ngtcp2_path *path, ngtcp2_pkt_info *pi, uint8_t *buf,
			      size_t buflen, ngtcp2_tstamp ts)
{
	for (;;) {
		struct qs_stream *s = c->goaway ? NULL : qs_streams_pick(c);
		ngtcp2_vec v[MAX_VECS];
		bool fin = false;
		size_t nv = s ? qs_stream_vecs(c, s, v, MAX_VECS, &fin) : 0;
		size_t total = 0;
		for (size_t i = 0; i < nv; i++)
			total += v[i].len;
		uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
		ngtcp2_ssize ndata = -1;
		ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->conn, path, pi, buf, buflen, &ndata, flags,
							   s ? s->id : -1, v, nv, ts);
		if (s && ndata >= 0)
			qs_stream_advance(c, s, (size_t)ndata, fin, total);
		if (n >= 0)
			return n;
		switch (n) {
		case NGTCP2_ERR_WRITE_MORE:
			continue;
		case NGTCP2_ERR_STREAM_DATA_BLOCKED:
			s->blocked = true;
			continue;
		case NGTCP2_ERR_STREAM_SHUT_WR:
		case NGTCP2_ERR_STREAM_NOT_FOUND:
			s->fin_sent = true; /* nothing more can go on it; stream_close decides */
			continue;
		default:
			ngtcp2_ccerr_set_liberr(&c->last_error, (int)n, NULL, 0);
			qs_client_fail(c, QS_FAIL_LOST, "QUIC write: %s", ngtcp2_strerror((int)n));
			return -1;
		}
	}
}

/* Reports a failed send: fatal unless the kernel only had no room (EAGAIN:
 * the packets are lost as on the network, QUIC retransmits them). EMSGSIZE
 * for packets of a size discovery had found means the path shrank: the
 * connection fails and its successor starts again from 1200 bytes. */
static int send_failed(struct qs_client *c)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	if (errno == ECONNREFUSED)
		qs_client_fail(c, QS_FAIL_PASSING(c), "cannot connect to %s: connection refused", c->opts.server_addr);
	else
		qs_client_fail(c, QS_FAIL_LOST, "send: %s", strerror(errno));
	return -1;
}

/* One sendmsg for all packets in buf, cut by the kernel into datagrams of gso
 * bytes (UDP GSO, the last may be shorter): one syscall instead of one per
 * packet. -1 with errno set when the kernel refuses. */
static int send_gso(struct qs_client *c, const uint8_t *buf, size_t len, size_t gso)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_UDP;
	cm->cmsg_type = UDP_SEGMENT;
	cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
	uint16_t seg = (uint16_t)gso;
	memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
	ssize_t n;
	do
		n = sendmsg(c->fd, &msg, 0);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

/* Sends len bytes of packets of gso bytes each (the last may be shorter);
 * -1 when the connection failed. */
static int send_pkts(struct qs_client *c, const uint8_t *buf, size_t len, size_t gso)
{
	if (len > gso && !c->no_gso) {
		if (send_gso(c, buf, len, gso) == 0)
			return 0;
		if (errno != EIO && errno != EINVAL)
			return send_failed(c);
		/* EIO: the device cannot checksum segments; EINVAL: segment size or
		 * count refused. Either way it will not get better: stop asking. */
		c->no_gso = true;
	}
	for (size_t off = 0; off < len; off += gso) {
		size_t n = len - off < gso ? len - off : gso;
		if (send(c->fd, buf + off, n, 0) < 0 && send_failed(c) < 0)
			return -1;
	}
	return 0;
}

/* The packets of one write batch are built in a buffer of the thread's, not
 * the client's: a batch is sent before qs_io_write returns, and qs_io_write
 * never runs inside another (ngtcp2's callbacks only schedule writes), so the
 * clients of a thread can share one. In each client it was 64 KiB of zeroed
 * memory, a third of what a client held: in a storm of 3,000 clients 3% of
 * the generator's CPU went to zeroing it and faulting its pages in. Freed at
 * the thread's exit. */
static pthread_key_t txbuf_key;
static pthread_once_t txbuf_once = PTHREAD_ONCE_INIT;
static bool txbuf_key_ok;

static void txbuf_key_init(void)
{
	txbuf_key_ok = pthread_key_create(&txbuf_key, free) == 0;
}

/* The calling thread's batch buffer (QS_TX_BATCH_MAX bytes), or NULL (ENOMEM). */
static uint8_t *thread_txbuf(void)
{
	pthread_once(&txbuf_once, txbuf_key_init);
	if (!txbuf_key_ok)
		return NULL;
	uint8_t *buf = pthread_getspecific(txbuf_key);
	if (!buf && (buf = malloc(QS_TX_BATCH_MAX)) && pthread_setspecific(txbuf_key, buf) != 0) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

/* Packets waiting in buf for one send: len bytes of packets of gso bytes
 * each, all the same size except possibly the last (what UDP GSO can carry). */
struct batch {
	uint8_t *buf; /* the thread's (thread_txbuf) */
	size_t cap;   /* bytes of buf to use: ngtcp2's send quantum */
	size_t len, gso, pkts;
};

static int flush(struct qs_client *c, struct batch *b)
{
	int rv = b->len ? send_pkts(c, b->buf, b->len, b->gso) : 0;
	b->len = b->gso = b->pkts = 0;
	return rv;
}

/* A packet of n bytes was written at b->buf + b->len: adds it to the batch,
 * or sends the batch and starts the next with it. -1 when the connection failed. */
static int add_pkt(struct qs_client *c, struct batch *b, size_t n, size_t path_max)
{
	if (b->len > 0 && n > b->gso) {
		/* only a shorter packet may end a batch: this one starts the next */
		size_t at = b->len;
		if (flush(c, b) < 0)
			return -1;
		memmove(b->buf, b->buf + at, n);
	}
	if (n > path_max) {
		/* A PMTU probe goes alone: as a segment size it could exceed the
		 * route's MTU, and the kernel would refuse the whole batch. One the
		 * route cannot carry is refused (EMSGSIZE, DF set): a lost probe,
		 * which is how ngtcp2 learns the size is too large. */
		if (send(c->fd, b->buf, n, 0) < 0 && errno != EMSGSIZE)
			return send_failed(c);
		return 0;
	}
	if (b->len == 0)
		b->gso = n;
	b->len += n;
	b->pkts++;
	/* a shorter packet ends the batch; so do the segment and byte limits */
	if (n < b->gso || b->pkts == QS_GSO_MAX_SEGS || b->cap - b->len < path_max)
		return flush(c, b);
	return 0;
}

void qs_io_write(struct qs_client *c)
{
	if (!c->conn || c->fail)
		return;
	qs_streams_open(c);
	for (struct qs_stream *s = c->streams; s; s = s->next)
		s->blocked = false; /* connection-level credit has no callback: retry each pass */
	ngtcp2_path_storage ps;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_pkt_info pi;
	ngtcp2_tstamp ts = qs_now();
	size_t max = ngtcp2_conn_get_max_tx_udp_payload_size(c->conn);
	size_t path_max = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
	/* ngtcp2 says how much to send at once (64 KiB with its default cubic) */
	size_t quantum = ngtcp2_conn_get_send_quantum(c->conn);
	struct batch b = {.buf = thread_txbuf(),
			  .cap = quantum < path_max ? path_max : quantum > QS_TX_BATCH_MAX ? QS_TX_BATCH_MAX : quantum};
	if (!b.buf) {
		qs_client_fail(c, QS_FAIL_LOST, "out of memory");
		return;
	}
	for (int i = 0; i < MAX_PKTS_PER_PASS; i++) {
		size_t room = b.cap - b.len; /* >= path_max: add_pkt sends the batch before */
		/* room for a larger PMTU probe only where one fits, as ngtcp2's examples do */
		ngtcp2_ssize n = write_one(c, &ps.path, &pi, b.buf + b.len, room >= max ? max : path_max, ts);
		if (n <= 0 || add_pkt(c, &b, (size_t)n, path_max) < 0)
			break;
	}
	if (!c->fail)
		flush(c, &b);
	if (c->conn && !c->fail) {
		ngtcp2_conn_update_pkt_tx_time(c->conn, ts);
		qs_conn_keepalive(c);
		arm_timer(c);
	}
}

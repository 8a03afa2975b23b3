/* One QUIC connection: the UDP socket, the ngtcp2 connection and its callbacks. */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/internal.h"
#include "common/clock.h"

uint64_t qs_now(void)
{
	return qs_now_ns(); /* ngtcp2 counts in ns (NGTCP2_SECONDS) */
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	(void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

static int new_cid_cb(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
	(void)conn;
	(void)ud;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0 ||
	    gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	cid->datalen = cidlen;
	return 0;
}

static int handshake_completed_cb(ngtcp2_conn *conn, void *ud)
{
	(void)conn;
	qs_client_on_handshake(ud);
	return 0;
}

static int recv_stream_data_cb(ngtcp2_conn *conn, uint32_t flags, int64_t id, uint64_t off,
			       const uint8_t *data, size_t len, void *ud, void *sud)
{
	(void)off;
	struct qs_stream *s = sud;
	if (s) {
		qs_stream_answers(ud, s, data, len);
		if (flags & NGTCP2_STREAM_DATA_FLAG_FIN)
			s->remote_fin = true;
	}
	/* Answers are consumed at once: give the credit back. */
	struct qs_client *c = ud;
	if (c->opts.unread_answers)
		return 0;
	ngtcp2_conn_extend_max_stream_offset(conn, id, len);
	ngtcp2_conn_extend_max_offset(conn, len);
	return 0;
}

static int acked_offset_cb(ngtcp2_conn *conn, int64_t id, uint64_t off, uint64_t len, void *ud, void *sud)
{
	(void)conn;
	(void)id;
	if (sud)
		qs_stream_qacked(ud, sud, off + len);
	return 0;
}

static int stream_close_cb(ngtcp2_conn *conn, uint32_t flags, int64_t id, uint64_t code, void *ud, void *sud)
{
	(void)conn;
	(void)id;
	if (sud)
		qs_stream_closed(ud, sud, flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET, code);
	return 0;
}

/* Credit arrived: writing resumes on the next pass. */
static int extend_stream_cb(ngtcp2_conn *conn, int64_t id, uint64_t max, void *ud, void *sud)
{
	(void)conn;
	(void)id;
	(void)max;
	if (sud)
		((struct qs_stream *)sud)->blocked = false;
	qs_io_schedule_write(ud);
	return 0;
}

static int extend_streams_cb(ngtcp2_conn *conn, uint64_t max, void *ud)
{
	(void)conn;
	(void)max;
	qs_io_schedule_write(ud);
	return 0;
}

static int new_token_cb(ngtcp2_conn *conn, const uint8_t *token, size_t len, void *ud)
{
	(void)conn;
	struct qs_client *c = ud;
	if (len <= sizeof(c->token)) { /* a larger one is not ours to keep: ignore it */
		memcpy(c->token, token, len);
		c->tokenlen = len;
	}
	return 0;
}

static void log_cb(void *ud, const char *fmt, ...)
{
	(void)ud;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	return ((struct qs_client *)ref->user_data)->conn;
}

/* RFC 9000, 14: never IP fragments. With DF set, a packet larger than the
 * path allows is lost (or refused with EMSGSIZE, io.c drops it), so ngtcp2's
 * PMTU probes find the real size; without it the kernel would fragment the
 * probe, it would arrive, and every later packet would go in two pieces (a
 * VPN's 1400-byte MTU), lost twice as often on a lossy path. */
static void set_dont_fragment(int fd, int family)
{
	int v4 = IP_PMTUDISC_DO, v6 = IPV6_PMTUDISC_DO;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v6, sizeof(v6));
	else
		setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v4, sizeof(v4));
}

/* TEST HOOK: binds the socket to opts.source_addr (port 0), as another host. */
static int bind_source(struct qs_client *c)
{
	struct sockaddr_storage ss = {.ss_family = c->remote.ss.ss_family};
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	void *addr = ss.ss_family == AF_INET ? (void *)&v4->sin_addr : (void *)&v6->sin6_addr;
	if (inet_pton(ss.ss_family, c->opts.source_addr, addr) != 1)
		return -1;
	return bind(c->fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET ? sizeof(*v4) : sizeof(*v6));
}

static int open_socket(struct qs_client *c)
{
	c->fd = socket(c->remote.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	int sz = 4 << 20; /* room for bursts of acks and answers */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	set_dont_fragment(c->fd, c->remote.ss.ss_family);
	/* A kernel without UDP GSO (< 4.18) could ignore the UDP_SEGMENT cmsg and
	 * send one oversized datagram: ask first (io.c also gives up on errors). */
	int gso;
	socklen_t gsolen = sizeof(gso);
	if (getsockopt(c->fd, SOL_UDP, UDP_SEGMENT, &gso, &gsolen) < 0)
		c->no_gso = true;
	if (c->opts.source_addr && bind_source(c) < 0)
		return -1;
	/* connect(): the kernel picks the source address, and an ICMP "port unreachable"
	 * comes back as ECONNREFUSED, so "nothing listens" fails fast. */
	if (connect(c->fd, (struct sockaddr *)&c->remote.ss, c->remote.len) < 0)
		return -1;
	c->local_len = sizeof(c->local);
	return getsockname(c->fd, (struct sockaddr *)&c->local, &c->local_len);
}

/* A Retry says the server validates addresses: quicstashd does so under load
 * (docs/PROTOCOL.md). Should this attempt fail, back off as from a busy server. */
static int recv_retry_cb(ngtcp2_conn *conn, const ngtcp2_pkt_hd *hd, void *user_data)
{
	struct qs_client *c = user_data;
	c->busy_hint = true;
	return ngtcp2_crypto_recv_retry_cb(conn, hd, user_data);
}

static int new_conn(struct qs_client *c)
{
	ngtcp2_callbacks cbs = {
		.client_initial = ngtcp2_crypto_client_initial_cb,
		.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
		.encrypt = ngtcp2_crypto_encrypt_cb,
		.decrypt = ngtcp2_crypto_decrypt_cb,
		.hp_mask = ngtcp2_crypto_hp_mask_cb,
		.recv_retry = recv_retry_cb,
		.update_key = ngtcp2_crypto_update_key_cb,
		.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
		.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
		.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
		.version_negotiation = ngtcp2_crypto_version_negotiation_cb,
		.rand = rand_cb,
		.get_new_connection_id = new_cid_cb,
		.handshake_completed = handshake_completed_cb,
		.recv_stream_data = recv_stream_data_cb,
		.acked_stream_data_offset = acked_offset_cb,
		.stream_close = stream_close_cb,
		.extend_max_stream_data = extend_stream_cb,
		.extend_max_local_streams_bidi = extend_streams_cb,
		.recv_new_token = new_token_cb,
	};
	ngtcp2_cid dcid = {.datalen = 18}, scid = {.datalen = 16};
	if (gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen) != 0 ||
	    gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0)
		return -1;
	ngtcp2_settings set;
	ngtcp2_settings_default(&set);
	set.initial_ts = qs_now();
	set.handshake_timeout = 10 * NGTCP2_SECONDS;
	set.token = c->tokenlen ? c->token : NULL;
	set.tokenlen = c->tokenlen;
	if (c->opts.debug)
		set.log_printf = log_cb;
	ngtcp2_transport_params tp;
	ngtcp2_transport_params_default(&tp);
	tp.initial_max_stream_data_bidi_local = 256 * 1024; /* answers on our streams */
	tp.initial_max_data = 1024 * 1024;
	tp.max_idle_timeout = 30 * NGTCP2_SECONDS;
	ngtcp2_path path = {
		.local = {.addr = (struct sockaddr *)&c->local, .addrlen = c->local_len},
		.remote = {.addr = (struct sockaddr *)&c->remote.ss, .addrlen = c->remote.len},
	};
	int rv = ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cbs, &set,
					&tp, NULL, c);
	if (rv != 0)
		return -1;
	ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
	c->probing = false;
	ngtcp2_conn_set_keep_alive_timeout(c->conn, QS_KEEPALIVE_IDLE);
	return 0;
}

/* PINGs after a quiet spell: every 10 s they keep an idle connection (slow
 * input) from timing out; while answers are due, every second. When the
 * server holds our data back (flow control: its backpressure) and has
 * QUIC-acknowledged all we sent, we send nothing else: had it crashed or
 * restarted meanwhile, only this probe would find out, and a restarted server
 * answers it with a stateless reset at once. */
void qs_conn_keepalive(struct qs_client *c)
{
	bool waiting = c->win.unresolved > 0;
	if (c->conn && waiting != c->probing) {
		ngtcp2_conn_set_keep_alive_timeout(c->conn, waiting ? QS_KEEPALIVE_WAITING : QS_KEEPALIVE_IDLE);
		c->probing = waiting;
	}
}

int qs_conn_open(struct qs_client *c)
{
	c->conn_ref.get_conn = get_conn;
	c->conn_ref.user_data = c;
	ngtcp2_ccerr_default(&c->last_error);
	c->handshake_done = c->goaway = c->busy_hint = c->busy_brief = false;
	c->auth_opened = c->authed = false;
	c->fail = QS_FAIL_NONE;
	if (open_socket(c) < 0) {
		qs_client_fail(c, QS_FAIL_LOST, "cannot connect to %s: %s", c->opts.server_addr, strerror(errno));
		return -1;
	}
	int rv = qs_tls_session_new(c);
	if (rv != 0) {
		qs_client_fail(c, QS_FAIL_FATAL, "TLS setup: %s", gnutls_strerror(rv));
		return -1;
	}
	if (new_conn(c) < 0) {
		qs_client_fail(c, QS_FAIL_FATAL, "QUIC connection setup failed");
		return -1;
	}
	c->read_ev = event_new(c->base, c->fd, EV_READ | EV_PERSIST, qs_io_read_cb, c);
	c->timer_ev = evtimer_new(c->base, qs_io_timer_cb, c);
	event_add(c->read_ev, NULL);
	qs_io_write(c); /* the Initial packet */
	return 0;
}

#ifdef QS_TEST_HOOKS
int qs_client_test_rebind(struct qs_client *c)
{
	if (!c->conn || c->fd < 0)
		return -1;
	int old_fd = c->fd;
	struct sockaddr_storage old_local = c->local;
	socklen_t old_len = c->local_len;
	if (open_socket(c) < 0) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = old_fd;
		c->local = old_local;
		c->local_len = old_len;
		return -1;
	}
	event_free(c->read_ev);
	close(old_fd);
	c->read_ev = event_new(c->base, c->fd, EV_READ | EV_PERSIST, qs_io_read_cb, c);
	event_add(c->read_ev, NULL);
	ngtcp2_addr la = {.addr = (struct sockaddr *)&c->local, .addrlen = c->local_len};
	ngtcp2_conn_set_local_addr(c->conn, &la);
	qs_io_schedule_write(c);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->local;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c->local;
	return ntohs(c->local.ss_family == AF_INET6 ? sin6->sin6_port : sin->sin_port);
}
#endif

static void send_close(struct qs_client *c)
{
	if (ngtcp2_conn_in_closing_period(c->conn) || ngtcp2_conn_in_draining_period(c->conn))
		return;
	uint8_t buf[1500];
	ngtcp2_path_storage ps;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_pkt_info pi;
	ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->conn, &ps.path, &pi, buf, sizeof(buf),
							    &c->last_error, qs_now());
	if (n > 0 && send(c->fd, buf, (size_t)n, 0) < 0) {
		/* best effort: the server times the connection out otherwise */
	}
}

void qs_conn_teardown(struct qs_client *c, bool graceful)
{
	if (c->conn && graceful)
		send_close(c);
	qs_streams_free(c);
	qs_window_conn_lost(&c->win);
	if (c->read_ev)
		event_free(c->read_ev);
	if (c->timer_ev)
		event_free(c->timer_ev);
	c->read_ev = c->timer_ev = NULL;
	if (c->conn)
		ngtcp2_conn_del(c->conn);
	c->conn = NULL;
	if (c->tls)
		gnutls_deinit(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->handshake_done = false;
}

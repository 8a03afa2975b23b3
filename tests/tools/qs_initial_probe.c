/* qs_initial_probe: an unvalidated client's first flight, for amplification tests.
 *
 *   qs_initial_probe HOST PORT [WAIT_MS [COPY_MS]]
 *
 * Builds a real QUIC v1 Initial (ngtcp2 client + GnuTLS, ALPN quicstash/1),
 * sends its datagram(s) from a fresh UDP socket, then only listens for
 * WAIT_MS (default 1000) without ever answering, and prints one line:
 *
 *   sent_bytes=N sent_dgrams=K recv_bytes=M recv_dgrams=J types=initial,handshake,retry,... copy_types=...
 *
 * types lists every QUIC packet in every received datagram (coalesced packets
 * walked; "short" for a short header, "vn" for Version Negotiation). With
 * COPY_MS, the same datagrams are sent again COPY_MS after the first (as a
 * client's retransmission of its first flight: the same DCID, from the same
 * address); what came after that is in copy_types instead. COPY_MS "usr1":
 * the copy goes when SIGUSR1 comes, and the probe listens one second more.
 * Exit 0, or 2 on a local error. Test tool only: nothing is verified. */
#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/wire.h"

static ngtcp2_conn *g_conn;
static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1 = 1;
}
static ngtcp2_crypto_conn_ref g_ref;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	(void)ref;
	return g_conn;
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

static int new_cid_cb(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
	(void)conn;
	(void)ud;
	cid->datalen = cidlen;
	gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen);
	gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN);
	return 0;
}

static int varint(const uint8_t *p, size_t len, uint64_t *v)
{
	if (!len)
		return -1;
	size_t n = (size_t)1 << (p[0] >> 6);
	if (n > len)
		return -1;
	*v = p[0] & 0x3f;
	for (size_t i = 1; i < n; i++)
		*v = (*v << 8) | p[i];
	return (int)n;
}

/* Appends the types of the packets coalesced in one datagram. */
static void describe(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	static const char *const names[] = {"initial", "0rtt", "handshake", "retry"};
	while (len > 0) {
		const char *t;
		size_t used = len;
		if (!(p[0] & 0x80)) {
			t = "short";
		} else if (len < 7) {
			t = "bad";
		} else {
			uint32_t ver = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
			unsigned type = (p[0] >> 4) & 3;
			t = ver == 0 ? "vn" : names[type];
			if (ver != 0 && type != 3) { /* Initial, 0-RTT, Handshake carry a Length */
				size_t off = 5;
				off += 1 + p[off];             /* DCID */
				if (off < len)
					off += 1 + p[off];     /* SCID */
				uint64_t v;
				int k;
				if (type == 0 && off < len && (k = varint(p + off, len - off, &v)) > 0)
					off += (size_t)k + v; /* token */
				if (off < len && (k = varint(p + off, len - off, &v)) > 0 && off + (size_t)k + v <= len)
					used = off + (size_t)k + v;
			}
		}
		size_t l = strlen(out);
		snprintf(out + l, outlen - l, "%s%s", l ? "," : "", t);
		p += used;
		len -= used;
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: qs_initial_probe HOST PORT [WAIT_MS [COPY_MS]]\n");
		return 2;
	}
	int wait_ms = argc > 3 ? atoi(argv[3]) : 1000;
	int copy_ms = argc > 4 ? atoi(argv[4]) : -1;
	if (argc > 4 && !strcmp(argv[4], "usr1")) {
		struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART: poll returns */
		sigaction(SIGUSR1, &sa, NULL);
		copy_ms = -1;
	}
	struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
	if (inet_pton(AF_INET, argv[1], &remote.sin_addr) != 1) {
		fprintf(stderr, "qs_initial_probe: IPv4 address expected\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t local_len = sizeof(local);
	if (fd < 0 || bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) {
		perror("qs_initial_probe: socket");
		return 2;
	}

	gnutls_certificate_credentials_t cred;
	gnutls_session_t tls;
	static const gnutls_datum_t alpn = {(unsigned char *)QS_ALPN, sizeof(QS_ALPN) - 1};
	if (gnutls_certificate_allocate_credentials(&cred) != 0 || gnutls_init(&tls, GNUTLS_CLIENT) != 0 ||
	    ngtcp2_crypto_gnutls_configure_client_session(tls) != 0 ||
	    gnutls_priority_set_direct(tls,
				       "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
				       "+CHACHA20-POLY1305:+AES-128-CCM",
				       NULL) != 0 ||
	    gnutls_credentials_set(tls, GNUTLS_CRD_CERTIFICATE, cred) != 0 ||
	    gnutls_alpn_set_protocols(tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0 ||
	    gnutls_server_name_set(tls, GNUTLS_NAME_DNS, "localhost", 9) != 0) {
		fprintf(stderr, "qs_initial_probe: TLS setup failed\n");
		return 2;
	}
	g_ref.get_conn = get_conn;
	gnutls_session_set_ptr(tls, &g_ref);

	ngtcp2_callbacks cbs = {
		.client_initial = ngtcp2_crypto_client_initial_cb,
		.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
		.encrypt = ngtcp2_crypto_encrypt_cb,
		.decrypt = ngtcp2_crypto_decrypt_cb,
		.hp_mask = ngtcp2_crypto_hp_mask_cb,
		.recv_retry = ngtcp2_crypto_recv_retry_cb,
		.update_key = ngtcp2_crypto_update_key_cb,
		.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
		.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
		.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
		.version_negotiation = ngtcp2_crypto_version_negotiation_cb,
		.rand = rand_cb,
		.get_new_connection_id = new_cid_cb,
	};
	ngtcp2_cid dcid = {.datalen = 18}, scid = {.datalen = 16};
	gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
	gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
	ngtcp2_settings set;
	ngtcp2_settings_default(&set);
	set.initial_ts = now_ns();
	ngtcp2_transport_params tp;
	ngtcp2_transport_params_default(&tp);
	tp.initial_max_stream_data_bidi_local = 65536;
	tp.initial_max_data = 65536;
	ngtcp2_path path = {
		.local = {.addr = (struct sockaddr *)&local, .addrlen = local_len},
		.remote = {.addr = (struct sockaddr *)&remote, .addrlen = sizeof(remote)},
	};
	if (ngtcp2_conn_client_new(&g_conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cbs, &set, &tp, NULL,
				   NULL) != 0) {
		fprintf(stderr, "qs_initial_probe: ngtcp2_conn_client_new failed\n");
		return 2;
	}
	ngtcp2_conn_set_tls_native_handle(g_conn, tls);

	size_t sent_bytes = 0, sent_dgrams = 0, recv_bytes = 0, recv_dgrams = 0;
	uint8_t buf[65536];
	static uint8_t flight[8][1452]; /* the first flight, for its copy */
	size_t flight_len[8];
	for (int i = 0; i < 8; i++) { /* the first flight: one padded Initial datagram in practice */
		ngtcp2_pkt_info pi;
		ngtcp2_ssize n = ngtcp2_conn_write_pkt(g_conn, NULL, &pi, buf, 1452, now_ns());
		if (n < 0) {
			fprintf(stderr, "qs_initial_probe: write_pkt: %s\n", ngtcp2_strerror((int)n));
			return 2;
		}
		if (n == 0)
			break;
		if (sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&remote, sizeof(remote)) != n) {
			perror("qs_initial_probe: sendto");
			return 2;
		}
		memcpy(flight[sent_dgrams], buf, (size_t)n);
		flight_len[sent_dgrams] = (size_t)n;
		sent_bytes += (size_t)n;
		sent_dgrams++;
	}

	char types[4096] = "", copy_types[4096] = "", *into = types;
	uint64_t start = now_ns(), deadline = start + (uint64_t)wait_ms * 1000000ull;
	uint64_t copy_at = copy_ms >= 0 ? start + (uint64_t)copy_ms * 1000000ull : deadline;
	for (;;) {
		uint64_t t = now_ns();
		if (t >= deadline)
			break;
		if ((t >= copy_at || usr1) && into == types) {
			for (size_t i = 0; i < sent_dgrams; i++)
				if (sendto(fd, flight[i], flight_len[i], 0, (struct sockaddr *)&remote, sizeof(remote)) < 0)
					perror("qs_initial_probe: sendto (copy)");
			into = copy_types;
			if (usr1 && t + 1000000000ull < deadline)
				deadline = t + 1000000000ull;
		}
		uint64_t until = into == types && copy_at < deadline ? copy_at : deadline;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)((until - t) / 1000000ull) + 1) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			continue;
		recv_bytes += (size_t)n;
		recv_dgrams++;
		describe(buf, (size_t)n, into, sizeof(types));
	}
	printf("sent_bytes=%zu sent_dgrams=%zu recv_bytes=%zu recv_dgrams=%zu types=%s copy_types=%s\n", sent_bytes,
	       sent_dgrams, recv_bytes, recv_dgrams, types, copy_types);
	ngtcp2_conn_del(g_conn);
	gnutls_deinit(tls);
	gnutls_certificate_free_credentials(cred);
	close(fd);
	return 0;
}

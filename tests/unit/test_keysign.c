/* Unit tests for what the keyholder signs (ipc/keysign.c, ipc/keypolicy.c,
 * acceptor/transcript.c), issue 26 point 10. With a P-256 key:
 *  - raw requests as a compromised acceptor could send them: the input
 *    libFuzzer found (ECDSA-SECP521R1-SHA512 against the P-256 key) and other
 *    schemes, flags, arbitrary data, a bare digest, CertificateVerify inputs
 *    with a wrong transcript hash length or context are refused; a well-formed
 *    input (32- and 48-byte transcript hash) is signed and verifies;
 *  - real TLS 1.3 handshakes (GnuTLS client and server threads over a
 *    socketpair) whose server key (P-256, RSA, Ed25519) lives in a keyholder
 *    process (a child serving qs_keysign_serve on a SOCK_SEQPACKET socket,
 *    as keyholder.c does): with SHA-256 and SHA-384 suites and after a
 *    HelloRetryRequest.
 *    The client checks the CertificateVerify signature against the
 *    certificate, so a finished handshake means it verified. Without the
 *    acceptor's transcript the keyholder signs nothing for a P-256 or RSA
 *    key (GnuTLS hands those only a digest) and the handshake fails. */
#include "tests/unit/check.h"
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acceptor/acc.h"
#include "ipc/keysign.h"

static gnutls_privkey_t key;
static gnutls_pubkey_t pub;
static struct qs_keysign_key ks;
static struct qs_keysign_rep rep;

/* 64 spaces, the server's context string, a zero byte, then th_len bytes. */
static size_t cv_input(uint8_t *out, const char *context, size_t th_len)
{
	memset(out, ' ', 64);
	size_t n = strlen(context) + 1;
	memcpy(out + 64, context, n);
	for (size_t i = 0; i < th_len; i++)
		out[64 + n + i] = (uint8_t)(i * 7 + 1);
	return 64 + n + th_len;
}

static const char server_ctx[] = "TLS 1.3, server CertificateVerify";

/* One raw request to qs_keysign_serve; returns rc (the reply must be well formed). */
static int32_t ask(uint32_t op, uint32_t algo, uint32_t flags, const void *data, size_t n)
{
	static struct qs_keysign_req r;
	r = (struct qs_keysign_req){QS_KEYSIGN_MAGIC, op, algo, flags, (uint32_t)n, {0}};
	memcpy(r.data, data, n);
	ssize_t w = qs_keysign_serve(&ks, &r, QS_KEYSIGN_REQ_HDR + n, &rep);
	CHECK(w == (ssize_t)(QS_KEYSIGN_REP_HDR + rep.len));
	CHECK(rep.rc == 0 || rep.len == 0);
	return rep.rc;
}

static bool verifies(uint32_t algo, const uint8_t *data, size_t n)
{
	gnutls_datum_t d = {(unsigned char *)data, (unsigned)n}, s = {rep.sig, rep.len};
	return gnutls_pubkey_verify_data2(pub, (gnutls_sign_algorithm_t)algo, 0, &d, &s) >= 0;
}

static void test_found_by_fuzzer(void)
{
	current_test = "found_by_fuzzer";
	/* tests/fuzz/corpus/keysign/raw_sign_data_p521_algo_on_p256_key without its mode byte */
	static const char b64[] = "MUtTUQIAAAAnAAAAAAAAABcAAABjbGllanQgaGVsbG8gdHJhbnNjcmlwMg==";
	gnutls_datum_t in = {(unsigned char *)b64, sizeof(b64) - 1}, raw;
	CHECK(gnutls_base64_decode2(&in, &raw) == 0);
	CHECK_EQ(raw.size, QS_KEYSIGN_REQ_HDR + 23);
	ssize_t w = qs_keysign_serve(&ks, raw.data, raw.size, &rep);
	CHECK_EQ(w, QS_KEYSIGN_REP_HDR);
	CHECK_EQ(rep.rc, GNUTLS_E_INVALID_REQUEST);
	CHECK_EQ(rep.len, 0);
	gnutls_free(raw.data);
}

static void test_cv_signed(void)
{
	current_test = "cv_signed";
	uint8_t cv[200];
	for (size_t th = 32; th <= 48; th += 16) {
		size_t n = cv_input(cv, server_ctx, th);
		CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, GNUTLS_SIGN_ECDSA_SECP256R1_SHA256, 0, cv, n), 0);
		CHECK(rep.len > 0 && verifies(GNUTLS_SIGN_ECDSA_SECP256R1_SHA256, cv, n));
	}
}

static void test_refused(void)
{
	current_test = "refused";
	const uint32_t p256 = GNUTLS_SIGN_ECDSA_SECP256R1_SHA256;
	const int32_t bad = GNUTLS_E_INVALID_REQUEST;
	uint8_t cv[200], digest[32] = {1};
	size_t n = cv_input(cv, server_ctx, 32);
	static const char any[] = "client hello transcript";
	CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, p256, 0, any, sizeof(any) - 1), bad);
	CHECK_EQ(ask(QS_KEYSIGN_SIGN_HASH, p256, 0, digest, sizeof(digest)), bad);
	/* schemes this key cannot serve, or not TLS 1.3's */
	static const uint32_t algos[] = {GNUTLS_SIGN_ECDSA_SECP521R1_SHA512, GNUTLS_SIGN_ECDSA_SECP384R1_SHA384,
					 GNUTLS_SIGN_ECDSA_SHA256, GNUTLS_SIGN_RSA_PSS_RSAE_SHA256,
					 GNUTLS_SIGN_EDDSA_ED25519, GNUTLS_SIGN_RSA_SHA256, 0, 0xffffffffu};
	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++)
		CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, algos[i], 0, cv, n), bad);
	CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, p256, GNUTLS_PRIVKEY_SIGN_FLAG_RSA_PSS, cv, n), bad);
	CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, p256, GNUTLS_PRIVKEY_FLAG_REPRODUCIBLE, cv, n), bad);
	/* a transcript hash of no TLS 1.3 suite's length */
	static const size_t lens[] = {0, 20, 31, 33, 47, 49, 64};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		n = cv_input(cv, server_ctx, lens[i]);
		CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, p256, 0, cv, n), bad);
	}
	/* the client's context, a damaged pad, no separator */
	n = cv_input(cv, "TLS 1.3, client CertificateVerify", 32);
	CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, p256, 0, cv, n), bad);
	n = cv_input(cv, server_ctx, 32);
	cv[5] = 0x21;
	CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, p256, 0, cv, n), bad);
	n = cv_input(cv, server_ctx, 32);
	cv[64 + sizeof(server_ctx) - 1] = 1;
	CHECK_EQ(ask(QS_KEYSIGN_SIGN_DATA, p256, 0, cv, n), bad);
}

/* ---- a keyholder process and real handshakes ---- */

static char dir[64];
static char sock_path[100];
static pid_t keyholder = -1;

/* The child: one client at a time, each request answered, until EOF. */
static void keyholder_serve(int lfd)
{
	static uint8_t req[sizeof(struct qs_keysign_req) + 1];
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			_exit(1);
		ssize_t r;
		while ((r = recv(c, req, sizeof(req), 0)) > 0) {
			ssize_t w = qs_keysign_serve(&ks, req, (size_t)r, &rep);
			if (w < 0 || send(c, &rep, (size_t)w, MSG_NOSIGNAL) != w)
				break;
		}
		close(c);
	}
}

static void keyholder_start(void)
{
	snprintf(dir, sizeof(dir), "/tmp/qs-test-keysign-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(sock_path, sizeof(sock_path), "%s/%s", dir, QS_KEYSIGN_SOCKET);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0);
	keyholder = fork();
	if (keyholder == 0)
		keyholder_serve(lfd);
	close(lfd);
}

static void keyholder_stop(void)
{
	kill(keyholder, SIGTERM);
	waitpid(keyholder, NULL, 0);
	unlink(sock_path);
	rmdir(dir);
}

static gnutls_x509_crt_t self_signed(void)
{
	gnutls_x509_crt_t crt;
	time_t now = time(NULL);
	CHECK(gnutls_x509_crt_init(&crt) == 0);
	CHECK(gnutls_x509_crt_set_version(crt, 3) == 0);
	CHECK(gnutls_x509_crt_set_serial(crt, "\x01", 1) == 0);
	CHECK(gnutls_x509_crt_set_activation_time(crt, now - 60) == 0);
	CHECK(gnutls_x509_crt_set_expiration_time(crt, now + 3600) == 0);
	CHECK(gnutls_x509_crt_set_dn(crt, "CN=localhost", NULL) == 0);
	CHECK(gnutls_x509_crt_set_pubkey(crt, pub) == 0);
	CHECK(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) == 0);
	gnutls_digest_algorithm_t dig = ks.pk == GNUTLS_PK_EDDSA_ED25519 ? GNUTLS_DIG_UNKNOWN : GNUTLS_DIG_SHA256;
	CHECK(gnutls_x509_crt_privkey_sign(crt, crt, key, dig, 0) == 0);
	return crt;
}

struct side {
	gnutls_session_t s;
	int rc;
};

static void *handshake(void *arg)
{
	struct side *sd = arg;
	do
		sd->rc = gnutls_handshake(sd->s);
	while (sd->rc < 0 && !gnutls_error_is_fatal(sd->rc));
	return NULL;
}

static int hrr_seen;

/* The acceptor's hook, as acceptor/tls.c installs it. */
static int hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming, const gnutls_datum_t *msg)
{
	hrr_seen += htype == GNUTLS_HANDSHAKE_HELLO_RETRY_REQUEST && when == GNUTLS_HOOK_POST;
	return acc_transcript_hook(s, htype, when, incoming, msg);
}

#define PRIO "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE:-CIPHER-ALL:-GROUP-ALL:"

/* One TLS 1.3 handshake; the server signs through the keyholder. */
static int tls13(gnutls_certificate_credentials_t scred, const char *sprio, const char *cprio, bool with_hook,
		 gnutls_digest_algorithm_t *prf)
{
	gnutls_certificate_credentials_t ccred;
	CHECK(gnutls_certificate_allocate_credentials(&ccred) == 0);
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct side srv = {0}, cli = {0};
	struct acc_conn *conn = calloc(1, sizeof(*conn));
	conn->ref.user_data = conn;
	CHECK(gnutls_init(&srv.s, GNUTLS_SERVER) == 0 && gnutls_init(&cli.s, GNUTLS_CLIENT) == 0);
	CHECK(gnutls_priority_set_direct(srv.s, sprio, NULL) == 0);
	CHECK(gnutls_priority_set_direct(cli.s, cprio, NULL) == 0);
	CHECK(gnutls_credentials_set(srv.s, GNUTLS_CRD_CERTIFICATE, scred) == 0);
	CHECK(gnutls_credentials_set(cli.s, GNUTLS_CRD_CERTIFICATE, ccred) == 0);
	gnutls_session_set_ptr(srv.s, &conn->ref);
	if (with_hook)
		gnutls_handshake_set_hook_function(srv.s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_BOTH, hook);
	gnutls_transport_set_int(srv.s, sv[0]);
	gnutls_transport_set_int(cli.s, sv[1]);
	gnutls_handshake_set_timeout(srv.s, 10000);
	gnutls_handshake_set_timeout(cli.s, 10000);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, handshake, &cli) == 0);
	handshake(&srv);
	if (srv.rc < 0)
		shutdown(sv[0], SHUT_RDWR); /* the client stops waiting */
	pthread_join(t, NULL);
	*prf = gnutls_prf_hash_get(srv.s);
	gnutls_deinit(srv.s);
	gnutls_deinit(cli.s);
	acc_transcript_free(conn);
	free(conn);
	close(sv[0]);
	close(sv[1]);
	gnutls_certificate_free_credentials(ccred);
	return srv.rc < 0 ? srv.rc : cli.rc;
}

static void test_handshakes(void)
{
	current_test = gnutls_pk_get_name(ks.pk);
	keyholder_start();
	gnutls_privkey_t remote;
	CHECK(qs_keysign_privkey(&remote, sock_path) == 0);
	gnutls_x509_crt_t crt = self_signed();
	gnutls_pcert_st pc;
	CHECK(gnutls_pcert_import_x509(&pc, crt, 0) == 0);
	gnutls_certificate_credentials_t scred;
	CHECK(gnutls_certificate_allocate_credentials(&scred) == 0);
	gnutls_certificate_set_flags(scred, GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH);
	CHECK(gnutls_certificate_set_key(scred, NULL, 0, &pc, 1, remote) == 0);
	gnutls_digest_algorithm_t prf;
	const char *s128 = PRIO "+AES-128-GCM:+GROUP-X25519", *s256 = PRIO "+AES-256-GCM:+GROUP-X25519";
	CHECK_EQ(tls13(scred, s128, s128, true, &prf), 0);
	CHECK_EQ(prf, GNUTLS_DIG_SHA256);
	CHECK_EQ(tls13(scred, s256, s256, true, &prf), 0);
	CHECK_EQ(prf, GNUTLS_DIG_SHA384); /* a 48-byte transcript hash under a SHA-256 signature scheme */
	/* the client's key share (P-256) is not the server's group (P-384): HelloRetryRequest */
	hrr_seen = 0;
	CHECK_EQ(tls13(scred, PRIO "+AES-128-GCM:+GROUP-SECP384R1",
		       PRIO "+AES-128-GCM:+GROUP-SECP256R1:+GROUP-SECP384R1", true, &prf),
		 0);
	CHECK_EQ(hrr_seen, 1);
	/* without the transcript, nothing is signed; but GnuTLS gives an EdDSA
	 * key the whole input, which needs no transcript */
	if (ks.pk == GNUTLS_PK_EDDSA_ED25519)
		CHECK_EQ(tls13(scred, s128, s128, false, &prf), 0);
	else
		CHECK(tls13(scred, s128, s128, false, &prf) < 0);
	/* through the acceptor's key: any data but a CertificateVerify input is refused */
	uint8_t th[32] = {0}, any[130] = "not a CertificateVerify";
	gnutls_datum_t d = {any, sizeof(any)}, sig = {NULL, 0};
	qs_keysign_set_transcript(th, sizeof(th));
	CHECK(gnutls_privkey_sign_data2(remote, qs_keypolicy_scheme_for(pub), 0, &d, &sig) < 0);
	gnutls_certificate_free_credentials(scred);
	gnutls_x509_crt_deinit(crt);
	keyholder_stop();
}

static void use_key(gnutls_pk_algorithm_t pk, unsigned bits)
{
	if (key) {
		qs_keysign_key_deinit(&ks);
		gnutls_pubkey_deinit(pub);
		gnutls_privkey_deinit(key);
	}
	CHECK(gnutls_privkey_init(&key) == 0);
	CHECK(gnutls_privkey_generate2(key, pk, bits, 0, NULL, 0) == 0);
	CHECK(gnutls_pubkey_init(&pub) == 0 && gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0);
	CHECK(qs_keysign_key_init(&ks, key) == 0);
}

int main(void)
{
	gnutls_global_init();
	use_key(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
	test_found_by_fuzzer();
	test_cv_signed();
	test_refused();
	test_handshakes();
	/* RSA (RSA-PSS in TLS 1.3) and Ed25519 (GnuTLS signs the input itself) keys */
	use_key(GNUTLS_PK_RSA, 2048);
	test_handshakes();
	use_key(GNUTLS_PK_EDDSA_ED25519, 0);
	test_handshakes();
	qs_keysign_key_deinit(&ks);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(key);
	gnutls_global_deinit();
	return check_report();
}

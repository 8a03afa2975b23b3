/* TLS for QUIC connections: one credentials object per process, one GnuTLS
 * session per connection. TLS 1.3 only, ALPN quicstash/1 only, and no early
 * data: a replayed 0-RTT flight would duplicate events. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/tlsfiles.h"
#include "common/wire.h"
#include "ipc/keysign.h"

/* The server's order decides (%SERVER_PRECEDENCE): X25519 and AES-128-GCM
 * (SHA-256) first, the cheapest here in a connection storm (nettle's P-256
 * ECDH and SHA-384 were the largest crypto costs); the rest stays allowed. */
#define ACC_TLS_PRIORITY                                                                           \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:+GROUP-X448:" \
	"+GROUP-FFDHE2048:+GROUP-FFDHE3072:+GROUP-FFDHE4096:+GROUP-FFDHE6144:+GROUP-FFDHE8192:" \
	"%SERVER_PRECEDENCE:%DISABLE_TLS13_COMPAT_MODE"

/* Waits up to 3 s for the keyholder's socket: the supervisor starts it first,
 * but without it (a hand-started acceptor) we read the key file ourselves. */
static bool keyholder_present(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, QS_KEYSIGN_SOCKET);
	for (int i = 0; i < 30; i++) {
		struct stat st;
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return true;
		usleep(100000);
	}
	return false;
}

int acc_tls_load(struct acc *a)
{
	char err[256];
	if (gnutls_certificate_allocate_credentials(&a->cred) != 0) {
		qs_err("gnutls_certificate_allocate_credentials failed");
		return -1;
	}
	/* Parsed once for every connection, not per handshake: parsing the
	 * string each time was a visible share of a connection storm. */
	if (gnutls_priority_init2(&a->prio, ACC_TLS_PRIORITY, NULL, 0) != 0) {
		qs_err("gnutls_priority_init2 failed");
		return -1;
	}
	if (acc_auth_load(a))
		return -1;
	a->use_keyholder = keyholder_present(a->cfg->runtime_dir);
	if (a->use_keyholder) {
		/* The certificate is public; the private key stays in the keyholder. */
		if (qs_tls_load_crts(a->cfg->cert_path, &a->crts, &a->ncrts, err, sizeof(err)) == 0)
			return 0;
		qs_err("certificate %s: %s", a->cfg->cert_path, err);
		return -1;
	}
	qs_warn("no keyholder socket in %s: reading the private key in the acceptor", a->cfg->runtime_dir);
	if (qs_tls_load_pair(a->cred, a->cfg->cert_path, a->cfg->key_path, err, sizeof(err))) {
		qs_err("certificate %s / key %s: %s", a->cfg->cert_path, a->cfg->key_path, err);
		return -1;
	}
	return 0;
}

/* GnuTLS checks a key against its certificate by signing a test string with a
 * TLS 1.2 scheme, which the keyholder refuses (it signs TLS 1.3
 * CertificateVerify inputs only): check with such an input instead. */
static int key_matches_cert(gnutls_privkey_t key, gnutls_x509_crt_t crt)
{
	uint8_t th[32] = {0}, cv[QS_CV_MAX];
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t sig = {NULL, 0};
	int rc = gnutls_pubkey_init(&pub);
	if (rc == 0)
		rc = gnutls_pubkey_import_x509(pub, crt, 0);
	gnutls_sign_algorithm_t algo = rc == 0 ? qs_keypolicy_scheme_for(pub) : GNUTLS_SIGN_UNKNOWN;
	if (rc == 0 && algo == GNUTLS_SIGN_UNKNOWN)
		rc = GNUTLS_E_UNKNOWN_PK_ALGORITHM; /* no TLS 1.3 scheme for this key */
	if (rc == 0)
		rc = gnutls_rnd(GNUTLS_RND_NONCE, th, sizeof(th));
	gnutls_datum_t in = {cv, (unsigned)qs_keypolicy_cv_build(cv, th, sizeof(th))};
	qs_keysign_set_transcript(th, sizeof(th));
	if (rc == 0)
		rc = gnutls_privkey_sign_data2(key, algo, 0, &in, &sig);
	if (rc == 0)
		rc = gnutls_pubkey_verify_data2(pub, algo, 0, &in, &sig);
	gnutls_free(sig.data);
	gnutls_pubkey_deinit(pub);
	return rc < 0 ? rc : 0;
}

/* After the sandbox is entered (sock_path is then inside the chroot). */
int acc_tls_keyholder(struct acc *a, const char *sock_path)
{
	if (!a->use_keyholder)
		return 0;
	gnutls_privkey_t key;
	gnutls_pcert_st *pc = gnutls_calloc(a->ncrts, sizeof(*pc));
	if (!pc || qs_keysign_privkey(&key, sock_path) != 0) {
		qs_err("cannot reach the keyholder at %s", sock_path);
		gnutls_free(pc);
		return -1;
	}
	unsigned imported = 0;
	int rc = 0;
	for (; imported < a->ncrts && rc == 0; imported += rc == 0)
		rc = gnutls_pcert_import_x509(&pc[imported], a->crts[imported], 0);
	if (rc != 0)
		qs_err("certificate %s: cannot import", a->cfg->cert_path);
	else if ((rc = key_matches_cert(key, a->crts[0])) < 0)
		qs_err("certificate does not match the keyholder's key: %s", gnutls_strerror(rc));
	if (rc != 0) {
		/* The acceptor exits on this error: freed anyway, so that a
		 * sanitizer build reports real leaks only. */
		for (unsigned i = 0; i < imported; i++)
			gnutls_pcert_deinit(&pc[i]);
		gnutls_free(pc);
		gnutls_privkey_deinit(key);
		return -1;
	}
	gnutls_certificate_set_flags(a->cred, GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH);
	/* On success the credentials own the key and the pcerts' contents. */
	rc = gnutls_certificate_set_key(a->cred, NULL, 0, pc, (int)a->ncrts, key);
	gnutls_free(pc);
	if (rc < 0) {
		qs_err("certificate does not match the keyholder's key: %s", gnutls_strerror(rc));
		return -1;
	}
	for (unsigned i = 0; i < a->ncrts; i++)
		gnutls_x509_crt_deinit(a->crts[i]);
	gnutls_free(a->crts);
	a->crts = NULL;
	return 0;
}

/* Refuses a ClientHello whose ALPN is not ours (belt and braces on top of
 * GNUTLS_ALPN_MANDATORY). */
static int alpn_check(gnutls_session_t session)
{
	gnutls_datum_t alpn;
	if (gnutls_alpn_get_selected_protocol(session, &alpn) != 0)
		return GNUTLS_E_NO_APPLICATION_PROTOCOL;
	for (unsigned i = 0; i < 2; i++) {
		const char *ours = i ? QS_ALPN_NOTICES : QS_ALPN;
		if (alpn.size == strlen(ours) && memcmp(alpn.data, ours, alpn.size) == 0)
			return 0;
	}
	return GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

bool acc_tls_notices(const struct acc_conn *c)
{
	gnutls_datum_t alpn;
	return c->tls && gnutls_alpn_get_selected_protocol(c->tls, &alpn) == 0 &&
	       alpn.size == strlen(QS_ALPN_NOTICES) && memcmp(alpn.data, QS_ALPN_NOTICES, alpn.size) == 0;
}

static int client_hello_cb(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
			   const gnutls_datum_t *msg)
{
	(void)htype;
	(void)when;
	(void)incoming;
	(void)msg;
	return alpn_check(session);
}

/* With the keyholder: every handshake message, for the transcript hash. */
static int handshake_cb(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
			const gnutls_datum_t *msg)
{
	bool hello = htype == GNUTLS_HANDSHAKE_CLIENT_HELLO && incoming && when == GNUTLS_HOOK_POST;
	int rc = hello ? alpn_check(session) : 0;
	return rc < 0 ? rc : acc_transcript_hook(session, htype, when, incoming, msg);
}

int acc_tls_session(struct acc *a, struct acc_conn *c)
{
	if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET | GNUTLS_NO_END_OF_EARLY_DATA) != 0)
		return -1;
	if (gnutls_priority_set(c->tls, a->prio) != 0) {
		qs_warn("gnutls_priority_set failed");
		return -1;
	}
	if (a->use_keyholder)
		gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_BOTH, handshake_cb);
	else
		gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST,
						   client_hello_cb);
	if (ngtcp2_crypto_gnutls_configure_server_session(c->tls) != 0)
		return -1;
	gnutls_session_set_ptr(c->tls, &c->ref);
	if (gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, a->cred) != 0)
		return -1;
	acc_auth_session(a, c);
	if (acc_ticket_session(a, c) != 0)
		return -1;
	/* quicstash/1.1 first: a client offering it gets limit notices ('T') */
	gnutls_datum_t alpn[2] = {{.data = (unsigned char *)QS_ALPN_NOTICES, .size = (unsigned)strlen(QS_ALPN_NOTICES)},
				  {.data = (unsigned char *)QS_ALPN, .size = (unsigned)strlen(QS_ALPN)}};
	if (gnutls_alpn_set_protocols(c->tls, alpn, 2, GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE))
		return -1;
	ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
	return 0;
}

/* The TLS 1.3 transcript hash a server's CertificateVerify signs (RFC 8446
 * 4.4.1, 4.4.3), kept beside GnuTLS's own from its handshake hooks. GnuTLS
 * hashes the CertificateVerify input itself and hands an external key only
 * the digest; the keyholder signs nothing but CertificateVerify inputs, so
 * the acceptor rebuilds the input from this hash and sends it whole
 * (ipc/keysign.c checks that it hashes to GnuTLS's digest). */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>

#include "acceptor/acc.h"
#include "common/metrics_page.h"
#include "ipc/keysign.h"

/* Both suite hashes run until ServerHello has chosen one. */
struct acc_transcript {
	gnutls_hash_hd_t h[2];
};
static const gnutls_digest_algorithm_t suite_hash[2] = {GNUTLS_DIG_SHA256, GNUTLS_DIG_SHA384};

void acc_transcript_free(struct acc_conn *c)
{
	if (!c->ts)
		return;
	for (int i = 0; i < 2; i++)
		if (c->ts->h[i])
			gnutls_hash_deinit(c->ts->h[i], NULL);
	free(c->ts);
	c->ts = NULL;
}

static int ts_new(struct acc_conn *c)
{
	c->ts = calloc(1, sizeof(*c->ts));
	if (!c->ts)
		return GNUTLS_E_MEMORY_ERROR;
	for (int i = 0; i < 2; i++)
		if (gnutls_hash_init(&c->ts->h[i], suite_hash[i]) < 0) {
			acc_transcript_free(c);
			return GNUTLS_E_MEMORY_ERROR;
		}
	return 0;
}

/* A handshake message as it went on the wire: type, 24-bit length, body. */
static void ts_add(struct acc_transcript *t, unsigned type, const uint8_t *body, size_t n)
{
	uint8_t hdr[4] = {(uint8_t)type, (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	for (int i = 0; i < 2; i++) {
		gnutls_hash(t->h[i], hdr, sizeof(hdr));
		gnutls_hash(t->h[i], body, n);
	}
}

/* After a HelloRetryRequest, ClientHello1 counts as message_hash(its hash). */
static void ts_fold_hello(struct acc_transcript *t)
{
	for (int i = 0; i < 2; i++) {
		uint8_t d[48], hdr[4] = {254, 0, 0, (uint8_t)gnutls_hash_get_len(suite_hash[i])};
		gnutls_hash_output(t->h[i], d); /* and resets */
		gnutls_hash(t->h[i], hdr, sizeof(hdr));
		gnutls_hash(t->h[i], d, hdr[3]);
	}
}

/* The server's Certificate is the last message the signature covers. */
static int ts_finish(struct acc_conn *c, gnutls_session_t session)
{
	gnutls_digest_algorithm_t prf = gnutls_prf_hash_get(session);
	for (int i = 0; i < 2; i++)
		if (suite_hash[i] == prf) {
			uint8_t th[48];
			gnutls_hash_output(c->ts->h[i], th);
			qs_keysign_set_transcript(th, gnutls_hash_get_len(prf));
			qs_mp_add(QS_M_KEYSIGN_SIGNS, 1); /* GnuTLS asks the keyholder next */
			acc_transcript_free(c);
			return 0;
		}
	acc_transcript_free(c);
	return GNUTLS_E_INTERNAL_ERROR;
}

int acc_transcript_hook(gnutls_session_t session, unsigned htype, unsigned when, bool incoming,
			const gnutls_datum_t *msg)
{
	/* A received message before GnuTLS reads it: a ClientHello answered
	 * with a HelloRetryRequest never reaches the POST hook. */
	if (when != (incoming ? GNUTLS_HOOK_PRE : GNUTLS_HOOK_POST))
		return 0;
	ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
	struct acc_conn *c = ref->user_data;
	if (c->ts_done)
		return 0;
	if (!c->ts && ts_new(c) < 0)
		return GNUTLS_E_MEMORY_ERROR;
	unsigned wire = htype;
	if (htype == GNUTLS_HANDSHAKE_HELLO_RETRY_REQUEST) {
		ts_fold_hello(c->ts);
		wire = GNUTLS_HANDSHAKE_SERVER_HELLO;
	}
	if (wire > 255)
		return 0; /* not a TLS 1.3 handshake message (SSLv2 hello, CCS) */
	ts_add(c->ts, wire, msg->data, msg->size);
	if (htype == GNUTLS_HANDSHAKE_CERTIFICATE_PKT && !incoming) {
		c->ts_done = true;
		return ts_finish(c, session);
	}
	return 0;
}

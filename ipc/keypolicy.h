/* What the keyholder signs: only what a TLS 1.3 server's CertificateVerify
 * needs (RFC 8446 4.4.3), with a signature scheme TLS 1.3 defines for the
 * key's type and curve. quicstash offers TLS 1.3 only (ALPN quicstash/1 over
 * QUIC), so nothing else is ever asked by an honest acceptor; a compromised
 * one must not get the server key's signature over anything else. */
#ifndef QS_IPC_KEYPOLICY_H
#define QS_IPC_KEYPOLICY_H

#include <gnutls/abstract.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "TLS 1.3, server CertificateVerify" without its NUL. */
#define QS_CV_CONTEXT "TLS 1.3, server CertificateVerify"
#define QS_CV_PAD 64

/* The key as the keyholder serves it: its type, curve and public half. */
struct qs_keysign_key {
	gnutls_privkey_t priv;
	gnutls_pubkey_t pub;
	gnutls_pk_algorithm_t pk;
	gnutls_ecc_curve_t curve; /* ECDSA only */
};

int qs_keysign_key_init(struct qs_keysign_key *k, gnutls_privkey_t priv);
void qs_keysign_key_deinit(struct qs_keysign_key *k);

/* algo is a TLS 1.3 signature scheme this key can serve. */
bool qs_keypolicy_algo_ok(const struct qs_keysign_key *k, gnutls_sign_algorithm_t algo);

/* d[0..n) is a server CertificateVerify input: 64 spaces, the server's
 * context string, a zero byte, then a transcript hash as long as a TLS 1.3
 * cipher suite's hash (SHA-256 or SHA-384: GnuTLS hashes the transcript with
 * the suite's hash, whatever the signature scheme's). */
bool qs_keypolicy_cv_ok(const uint8_t *d, size_t n);

/* The TLS 1.3 scheme used to check that a certificate's public key matches
 * the keyholder's key; GNUTLS_SIGN_UNKNOWN when TLS 1.3 has none. */
gnutls_sign_algorithm_t qs_keypolicy_scheme_for(gnutls_pubkey_t pub);

/* The longest CertificateVerify input: a SHA-384 transcript hash. */
#define QS_CV_MAX (QS_CV_PAD + sizeof(QS_CV_CONTEXT) + 48)

/* Builds a CertificateVerify input with transcript hash th[0..th_len) (at
 * most 48 bytes) into out[QS_CV_MAX]; returns its length. */
size_t qs_keypolicy_cv_build(uint8_t *out, const uint8_t *th, size_t th_len);

#endif

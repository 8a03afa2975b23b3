/* Fuzz target: the keyholder's request handler (ipc/keysign.c,
 * qs_keysign_serve). The keyholder holds the TLS private key; its requests
 * come from acceptors, the processes that parse the network's QUIC and TLS,
 * so they are to be read as if an attacker wrote them.
 *
 * Input: byte 0 chooses the mode; mode even: the rest is a request as
 * received; mode odd: a request is built from the rest (op, algorithm from a
 * short list or as given, flags, data), so that well-formed ones are common.
 * Properties:
 *  - a request is served exactly when it is well formed (a header, the
 *    magic, the length it declares, a known operation: checked here on its
 *    own), and then the reply is a header plus at most QS_KEYSIGN_MAX_SIG
 *    bytes, its length as returned;
 *  - any sign flag is refused (GnuTLS leaked memory on a request with
 *    REPRODUCIBLE: LSan, in the sanitizer build, finds it again);
 *  - a signature is returned only for what a TLS 1.3 server's
 *    CertificateVerify needs (checked here on its own: the key is P-256, so
 *    ecdsa_secp256r1_sha256 only; SIGN_DATA over 64 spaces, the server's
 *    context string, a zero byte and a 32- or 48-byte transcript hash;
 *    never SIGN_HASH, a bare digest), and it verifies with the public key
 *    over exactly the data asked for. Found by libFuzzer: a P-256
 *    key signed for ECDSA-SECP521R1-SHA512, a signature no one accepts. */
#include "tests/fuzz/fuzz.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <string.h>

#include "ipc/keysign.h"

static gnutls_privkey_t key;
static gnutls_pubkey_t pub;
static struct qs_keysign_key ks;

/* 64 spaces, "TLS 1.3, server CertificateVerify", a zero byte: written out
 * here apart from ipc/keypolicy.c. */
static uint8_t cv_head[64 + 33 + 1];

static void make_key(void)
{
	FUZZ_CHECK(gnutls_privkey_init(&key) == 0);
	FUZZ_CHECK(gnutls_privkey_generate2(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
					    0, NULL, 0) == 0);
	FUZZ_CHECK(gnutls_pubkey_init(&pub) == 0 && gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0);
	FUZZ_CHECK(qs_keysign_key_init(&ks, key) == 0);
	memset(cv_head, ' ', 64);
	memcpy(cv_head + 64, "TLS 1.3, server CertificateVerify", 34);
}

/* What a TLS 1.3 server with a P-256 key asks to have signed. */
static bool tls13_cv(const struct qs_keysign_req *r)
{
	if (r->op != QS_KEYSIGN_SIGN_DATA || r->flags != 0 || r->algo != GNUTLS_SIGN_ECDSA_SECP256R1_SHA256)
		return false;
	return (r->len == sizeof(cv_head) + 32 || r->len == sizeof(cv_head) + 48) &&
	       memcmp(r->data, cv_head, sizeof(cv_head)) == 0;
}

static bool well_formed(const uint8_t *d, size_t n)
{
	struct qs_keysign_req r;
	if (n < QS_KEYSIGN_REQ_HDR || n > sizeof(r))
		return false;
	memcpy(&r, d, n);
	return r.magic == QS_KEYSIGN_MAGIC && r.len == n - QS_KEYSIGN_REQ_HDR &&
	       (r.op == QS_KEYSIGN_INFO || r.op == QS_KEYSIGN_SIGN_DATA || r.op == QS_KEYSIGN_SIGN_HASH);
}

/* A request from v[0..n): [op][algo pick][flags u32][algo u32][data...];
 * bit 3 of the pick puts a CertificateVerify head before the data. */
static size_t build(const uint8_t *v, size_t n, struct qs_keysign_req *r)
{
	static const uint32_t algos[] = {GNUTLS_SIGN_ECDSA_SHA256, GNUTLS_SIGN_ECDSA_SECP256R1_SHA256,
					 GNUTLS_SIGN_RSA_SHA256, GNUTLS_SIGN_RSA_PSS_SHA256, GNUTLS_SIGN_EDDSA_ED25519,
					 GNUTLS_SIGN_ECDSA_SHA384, GNUTLS_SIGN_ECDSA_SECP521R1_SHA512,
					 GNUTLS_SIGN_ECDSA_SECP384R1_SHA384};
	memset(r, 0, sizeof(*r));
	if (n < 10)
		return 0;
	r->magic = QS_KEYSIGN_MAGIC;
	r->op = 1u + v[0] % 3;
	memcpy(&r->flags, v + 2, 4);
	memcpy(&r->algo, v + 6, 4);
	if (v[1] % 4 != 3) {
		r->algo = algos[v[1] % (sizeof(algos) / sizeof(algos[0]))];
		r->flags = r->op == QS_KEYSIGN_INFO ? r->flags : 0;
	}
	size_t head = v[1] & 8 ? sizeof(cv_head) : 0;
	memcpy(r->data, cv_head, head);
	r->len = (uint32_t)(head + (n - 10 < QS_KEYSIGN_MAX_DATA - head ? n - 10 : QS_KEYSIGN_MAX_DATA - head));
	memcpy(r->data + head, v + 10, r->len - head);
	return QS_KEYSIGN_REQ_HDR + r->len;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct qs_keysign_req built;
	if (!key)
		make_key();
	if (n < 1)
		return 0;
	const uint8_t *req = d + 1;
	size_t len = n - 1;
	if (d[0] % 2) {
		len = build(d + 1, n - 1, &built);
		req = (const uint8_t *)&built;
	}
	uint8_t *copy = fuzz_dup(req, len); /* exactly len bytes: ASan sees any read past them */
	struct qs_keysign_rep rep;
	memset(&rep, 0xA5, sizeof(rep));
	ssize_t rv = qs_keysign_serve(&ks, copy, len, &rep);
	free(copy);
	if (!well_formed(req, len)) {
		FUZZ_CHECK(rv == -1);
		return 0;
	}
	FUZZ_CHECK(rep.magic == QS_KEYSIGN_MAGIC && rep.len <= QS_KEYSIGN_MAX_SIG);
	FUZZ_CHECK(rv == (ssize_t)(QS_KEYSIGN_REP_HDR + rep.len));
	struct qs_keysign_req r;
	memcpy(&r, req, len);
	if (r.op == QS_KEYSIGN_INFO) {
		FUZZ_CHECK(rep.len == 0);
		return 0;
	}
	if (r.flags != 0)
		FUZZ_CHECK(rep.rc == GNUTLS_E_INVALID_REQUEST && rep.len == 0);
	FUZZ_CHECK(rep.rc == 0 || rep.len == 0);
	if (rep.rc == 0) {
		FUZZ_CHECK(tls13_cv(&r));
		gnutls_datum_t data = {r.data, r.len}, sig = {rep.sig, rep.len};
		FUZZ_CHECK(gnutls_pubkey_verify_data2(pub, (gnutls_sign_algorithm_t)r.algo, 0, &data, &sig) >= 0);
	}
	return 0;
}

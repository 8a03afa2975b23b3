#include "ipc/keypolicy.h"

#include <string.h>

/* RFC 8446 4.2.3's schemes for a CertificateVerify, with the key type (and
 * curve: in TLS 1.3 an ECDSA scheme names it) each needs. */
static const struct scheme {
	gnutls_sign_algorithm_t algo;
	gnutls_pk_algorithm_t pk;
	gnutls_ecc_curve_t curve;
} schemes[] = {
	{GNUTLS_SIGN_ECDSA_SECP256R1_SHA256, GNUTLS_PK_ECDSA, GNUTLS_ECC_CURVE_SECP256R1},
	{GNUTLS_SIGN_ECDSA_SECP384R1_SHA384, GNUTLS_PK_ECDSA, GNUTLS_ECC_CURVE_SECP384R1},
	{GNUTLS_SIGN_ECDSA_SECP521R1_SHA512, GNUTLS_PK_ECDSA, GNUTLS_ECC_CURVE_SECP521R1},
	{GNUTLS_SIGN_RSA_PSS_RSAE_SHA256, GNUTLS_PK_RSA, GNUTLS_ECC_CURVE_INVALID},
	{GNUTLS_SIGN_RSA_PSS_RSAE_SHA384, GNUTLS_PK_RSA, GNUTLS_ECC_CURVE_INVALID},
	{GNUTLS_SIGN_RSA_PSS_RSAE_SHA512, GNUTLS_PK_RSA, GNUTLS_ECC_CURVE_INVALID},
	{GNUTLS_SIGN_RSA_PSS_SHA256, GNUTLS_PK_RSA_PSS, GNUTLS_ECC_CURVE_INVALID},
	{GNUTLS_SIGN_RSA_PSS_SHA384, GNUTLS_PK_RSA_PSS, GNUTLS_ECC_CURVE_INVALID},
	{GNUTLS_SIGN_RSA_PSS_SHA512, GNUTLS_PK_RSA_PSS, GNUTLS_ECC_CURVE_INVALID},
	{GNUTLS_SIGN_EDDSA_ED25519, GNUTLS_PK_EDDSA_ED25519, GNUTLS_ECC_CURVE_INVALID},
	{GNUTLS_SIGN_EDDSA_ED448, GNUTLS_PK_EDDSA_ED448, GNUTLS_ECC_CURVE_INVALID},
};
#define NSCHEMES (sizeof(schemes) / sizeof(schemes[0]))

static gnutls_ecc_curve_t pub_curve(gnutls_pubkey_t pub, gnutls_pk_algorithm_t pk)
{
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	if (pk != GNUTLS_PK_ECDSA || gnutls_pubkey_export_ecc_raw2(pub, &curve, NULL, NULL, 0) < 0)
		return GNUTLS_ECC_CURVE_INVALID;
	return curve;
}

int qs_keysign_key_init(struct qs_keysign_key *k, gnutls_privkey_t priv)
{
	memset(k, 0, sizeof(*k));
	k->priv = priv;
	int rc = gnutls_pubkey_init(&k->pub);
	if (rc == 0)
		rc = gnutls_pubkey_import_privkey(k->pub, priv, 0, 0);
	if (rc < 0) {
		qs_keysign_key_deinit(k);
		return rc;
	}
	k->pk = (gnutls_pk_algorithm_t)gnutls_pubkey_get_pk_algorithm(k->pub, NULL);
	k->curve = pub_curve(k->pub, k->pk);
	return 0;
}

void qs_keysign_key_deinit(struct qs_keysign_key *k)
{
	if (k->pub)
		gnutls_pubkey_deinit(k->pub);
	k->pub = NULL;
}

bool qs_keypolicy_algo_ok(const struct qs_keysign_key *k, gnutls_sign_algorithm_t algo)
{
	for (size_t i = 0; i < NSCHEMES; i++)
		if (schemes[i].algo == algo)
			return schemes[i].pk == k->pk && schemes[i].curve == k->curve &&
			       gnutls_sign_supports_pk_algorithm(algo, k->pk);
	return false;
}

bool qs_keypolicy_cv_ok(const uint8_t *d, size_t n)
{
	static const char ctx[] = QS_CV_CONTEXT; /* its NUL is the separator */
	size_t head = QS_CV_PAD + sizeof(ctx);
	if (n != head + 32 && n != head + 48)
		return false;
	for (size_t i = 0; i < QS_CV_PAD; i++)
		if (d[i] != 0x20)
			return false;
	return memcmp(d + QS_CV_PAD, ctx, sizeof(ctx)) == 0;
}

gnutls_sign_algorithm_t qs_keypolicy_scheme_for(gnutls_pubkey_t pub)
{
	gnutls_pk_algorithm_t pk = (gnutls_pk_algorithm_t)gnutls_pubkey_get_pk_algorithm(pub, NULL);
	gnutls_ecc_curve_t curve = pub_curve(pub, pk);
	for (size_t i = 0; i < NSCHEMES; i++)
		if (schemes[i].pk == pk && schemes[i].curve == curve)
			return schemes[i].algo;
	return GNUTLS_SIGN_UNKNOWN;
}

size_t qs_keypolicy_cv_build(uint8_t *out, const uint8_t *th, size_t th_len)
{
	static const char ctx[] = QS_CV_CONTEXT;
	th_len = th_len < 48 ? th_len : 48;
	memset(out, 0x20, QS_CV_PAD);
	memcpy(out + QS_CV_PAD, ctx, sizeof(ctx));
	memcpy(out + QS_CV_PAD + sizeof(ctx), th, th_len);
	return QS_CV_PAD + sizeof(ctx) + th_len;
}

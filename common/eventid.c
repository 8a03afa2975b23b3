/* See common/eventid.h. GnuTLS does the cryptography (HKDF, HMAC). */
#include "common/eventid.h"

#include <gnutls/crypto.h>
#include <string.h>

int qs_eventid_key(const uint8_t secret[QS_SECRET_LEN], uint8_t key[QS_EVENTID_KEY_LEN])
{
	/* The secret is 32 random bytes already: a pseudorandom key for HKDF-Expand
	 * as it is (no Extract step). The label keeps K_id apart from the tokens
	 * and stateless resets made from the same secret. */
	const gnutls_datum_t prk = {(unsigned char *)secret, QS_SECRET_LEN};
	const gnutls_datum_t info = {(unsigned char *)QS_EVENTID_LABEL, sizeof(QS_EVENTID_LABEL) - 1};
	return gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &prk, &info, key, QS_EVENTID_KEY_LEN) == 0 ? 0 : -1;
}

int qs_eventid_session(const uint8_t key[QS_EVENTID_KEY_LEN], const void *scope, size_t scope_len,
		       const uint8_t session[QS_SESSION_ID_LEN], uint8_t out[QS_SESSION_ID_LEN])
{
	if (scope_len > UINT32_MAX)
		return -1;
	const uint8_t len[4] = {(uint8_t)(scope_len >> 24), (uint8_t)(scope_len >> 16), (uint8_t)(scope_len >> 8),
				(uint8_t)scope_len};
	gnutls_hmac_hd_t h;
	if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, key, QS_EVENTID_KEY_LEN) != 0)
		return -1;
	uint8_t mac[32];
	int rc = gnutls_hmac(h, len, sizeof(len));
	if (rc == 0 && scope_len)
		rc = gnutls_hmac(h, scope, scope_len);
	if (rc == 0)
		rc = gnutls_hmac(h, session, QS_SESSION_ID_LEN);
	gnutls_hmac_deinit(h, mac);
	if (rc != 0)
		return -1;
	memcpy(out, mac, QS_SESSION_ID_LEN);
	return 0;
}

/* event.id's session part (common/eventid.h) against vectors computed apart
 * from GnuTLS: K_id with `openssl kdf ... mode:EXPAND_ONLY ... HKDF` and with
 * Python's hmac (T(1) = HMAC(secret, label || 0x01)), the sessions with
 * Python's hmac:
 *   k = hmac.new(bytes(range(32)), b"quicstash event-id v1\x01", sha256).digest()
 *   hmac.new(k, struct.pack(">I", len(scope)) + scope + S, sha256).digest()[:16]
 * and the properties the ids rely on. */
#include "check.h"
#include "common/eventid.h"

static const char *hex(const uint8_t *b, size_t n)
{
	static char out[2 * 64 + 1];
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return out;
}

static const uint8_t S[QS_SESSION_ID_LEN] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
					     0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

static void known_answers(uint8_t key[QS_EVENTID_KEY_LEN])
{
	current_test = "known answers";
	uint8_t secret[QS_SECRET_LEN], out[QS_SESSION_ID_LEN];
	for (int i = 0; i < QS_SECRET_LEN; i++)
		secret[i] = (uint8_t)i;
	CHECK(qs_eventid_key(secret, key) == 0);
	CHECK_STR(hex(key, QS_EVENTID_KEY_LEN), "5d61ff3a678bddc767eb6d46059eafd79f2ce992b0391f5b5302ba813f7a3cbf");
	CHECK(qs_eventid_session(key, NULL, 0, S, out) == 0);
	CHECK_STR(hex(out, sizeof(out)), "e8e912fd7cf81ffd5e58e8d432a1e0ee");
	CHECK(qs_eventid_session(key, "tenant", 6, S, out) == 0);
	CHECK_STR(hex(out, sizeof(out)), "6a793722ee9b6136c6a5e598a1772df7");
}

static void properties(const uint8_t key[QS_EVENTID_KEY_LEN])
{
	current_test = "properties";
	uint8_t a[QS_SESSION_ID_LEN], b[QS_SESSION_ID_LEN], s2[QS_SESSION_ID_LEN];
	/* the same input gives the same id (a resend), and never the session itself */
	CHECK(qs_eventid_session(key, NULL, 0, S, a) == 0 && qs_eventid_session(key, NULL, 0, S, b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK(memcmp(a, S, sizeof(a)) != 0);
	/* the forger's move: its own session set to a victim's id gives another id */
	CHECK(qs_eventid_session(key, NULL, 0, a, b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	/* one bit of the session, or the scope, changes it */
	memcpy(s2, S, sizeof(s2));
	s2[15] ^= 1;
	CHECK(qs_eventid_session(key, NULL, 0, s2, b) == 0 && memcmp(a, b, sizeof(a)) != 0);
	CHECK(qs_eventid_session(key, "", 0, S, b) == 0 && memcmp(a, b, sizeof(a)) == 0);
	CHECK(qs_eventid_session(key, "\0", 1, S, b) == 0 && memcmp(a, b, sizeof(a)) != 0);
	/* another secret, another id */
	uint8_t secret[QS_SECRET_LEN] = {0}, key2[QS_EVENTID_KEY_LEN];
	CHECK(qs_eventid_key(secret, key2) == 0);
	CHECK(qs_eventid_session(key2, NULL, 0, S, b) == 0 && memcmp(a, b, sizeof(a)) != 0);
}

int main(void)
{
	uint8_t key[QS_EVENTID_KEY_LEN];
	known_answers(key);
	properties(key);
	return check_report();
}

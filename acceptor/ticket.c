/* TLS 1.3 session tickets, so that a reconnect storm (every client back at
 * once after a crash or a network blip) resumes: no certificate, no
 * keyholder signature (one blocking round trip per full handshake), no
 * certificate checks on the client. docs/ARCHITECTURE.md "Session
 * resumption".
 *
 * The ticket key is derived from the persistent secret (secret.c), so every
 * acceptor, a restarted one and a server restarted after a crash take each
 * other's tickets. GnuTLS rotates the key it encrypts with from this master
 * key by itself (every 3 lifetimes, on the wall clock, so all acceptors
 * rotate alike). A ticket is sent only to connections that did not present
 * a client certificate: that identity (expiry, CA, a tenant removed by a
 * reload) is checked again by a full handshake each time. Token
 * authentication is per connection, resumed or not. No 0-RTT: early data
 * could be replayed into duplicate events (the sessions never enable it). */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>

#include "acceptor/acc.h"
#include "common/log.h"
#include "common/metrics_page.h"

#define TICKET_LABEL "quicstash session-ticket v1"

/* How long a ticket may be used (GnuTLS's default is 6 h). A client's
 * ticket is from its connection's handshake or the last refresh, so a long
 * connection gets a new one every ACC_TICKET_REFRESH_NS. */
#define ACC_TICKET_LIFETIME_S (24u * 3600u)
#define ACC_TICKET_REFRESH_NS (3600ull * 1000000000ull)

int acc_ticket_key(struct acc *a)
{
	/* Under --auth mtls every connection must show its certificate: no
	 * resumption at all (a ticket from a run with other options is ignored,
	 * and the handshake is a full one). */
	a->tickets = a->cfg->auth != QS_AUTH_MTLS;
	a->ticket_refresh_ns = ACC_TICKET_REFRESH_NS;
#ifdef QS_TEST_HOOKS
	const char *ms = getenv("QS_TEST_TICKET_REFRESH_MS"); /* test_resumption "refresh" */
	if (ms && strtoull(ms, NULL, 10) > 0)
		a->ticket_refresh_ns = strtoull(ms, NULL, 10) * 1000000ull;
#endif
	/* As the event-id key: HKDF-Expand of the 32 random bytes with its own
	 * label, apart from the tokens, resets and event ids made from them. */
	const gnutls_datum_t prk = {a->secret, sizeof(a->secret)};
	const gnutls_datum_t info = {(unsigned char *)TICKET_LABEL, sizeof(TICKET_LABEL) - 1};
	return gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &prk, &info, a->ticket_key, sizeof(a->ticket_key)) == 0 ? 0 : -1;
}

int acc_ticket_session(struct acc *a, struct acc_conn *c)
{
	if (!a->tickets)
		return 0;
	const gnutls_datum_t key = {a->ticket_key, sizeof(a->ticket_key)};
	gnutls_db_set_cache_expiration(c->tls, ACC_TICKET_LIFETIME_S);
	return gnutls_session_ticket_enable_server(c->tls, &key) == 0 ? 0 : -1;
}

static void send_ticket(struct acc_conn *c)
{
	int rc = gnutls_session_ticket_send(c->tls, 1, 0);
	if (rc < 0)
		qs_debug("session ticket not sent: %s", gnutls_strerror(rc));
	else
		qs_mp_add(QS_M_TICKETS_SENT, 1);
	c->ticket_mono = qs_now_ns();
}

void acc_ticket_handshake(struct acc_conn *c)
{
	bool resumed = gnutls_session_is_resumed(c->tls);
	if (resumed) {
		c->a->n_resumed++;
		qs_mp_add(QS_M_HANDSHAKES_RESUMED, 1);
	}
	unsigned n = 0;
	c->ticketed = c->a->tickets &&
		      (resumed || !gnutls_certificate_get_peers(c->tls, &n) || !n);
	if (c->ticketed)
		send_ticket(c);
}

void acc_ticket_refresh(struct acc_conn *c)
{
	if (c->ticketed && qs_now_ns() - c->ticket_mono > c->a->ticket_refresh_ns)
		send_ticket(c);
}

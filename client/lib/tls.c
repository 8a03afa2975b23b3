/* TLS for the client: the trust anchor, the session, and why a handshake failed. */
#include <arpa/inet.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client/lib/internal.h"

/* TLS 1.3 only (QUIC requires it); no middlebox compatibility records in QUIC.
 * X25519 first: the key share we send is the one quicstashd prefers (no
 * HelloRetryRequest), and the cheapest for both sides. */
static const char priority[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
			       "+GROUP-SECP384R1:+GROUP-SECP521R1:+GROUP-X448:+GROUP-FFDHE2048:+GROUP-FFDHE3072:"
			       "+GROUP-FFDHE4096:+GROUP-FFDHE6144:+GROUP-FFDHE8192:%DISABLE_TLS13_COMPAT_MODE";

/* Parsed once per process and shared by every session (GnuTLS counts its
 * references): parsing it for each attempt was a visible part of a client's
 * handshake in a connection storm. NULL if parsing failed: each session then
 * parses it itself and reports the error. */
static gnutls_priority_t shared_prio;
static pthread_once_t shared_prio_once = PTHREAD_ONCE_INIT;

static void shared_prio_init(void)
{
	if (gnutls_priority_init2(&shared_prio, priority, NULL, 0) < 0)
		shared_prio = NULL;
}

void qs_tls_trust_error(char *err, size_t errlen, const char *file, int rv)
{
	snprintf(err, errlen, "certificate file %s: %s", file,
		 rv == GNUTLS_E_FILE_ERROR ? "cannot read it"
		 : rv == 0		    ? "no certificate in it"
					    : gnutls_strerror(rv));
}

static int add_trust(gnutls_certificate_credentials_t cred, const char *file, const gnutls_datum_t *bytes,
		     gnutls_x509_crt_fmt_t fmt)
{
	return bytes ? gnutls_certificate_set_x509_trust_mem(cred, bytes, fmt)
		     : gnutls_certificate_set_x509_trust_file(cred, file, fmt);
}

int qs_tls_load_trust(gnutls_certificate_credentials_t *cred, const char *file, const gnutls_datum_t *bytes,
		      char *err, size_t errlen)
{
	int rv = gnutls_certificate_allocate_credentials(cred);
	if (rv < 0) {
		snprintf(err, errlen, "TLS credentials: %s", gnutls_strerror(rv));
		return -1;
	}
	/* A PEM bundle may hold several CAs; the server's own certificate is DER. */
	rv = add_trust(*cred, file, bytes, GNUTLS_X509_FMT_PEM);
	if (rv <= 0)
		rv = add_trust(*cred, file, bytes, GNUTLS_X509_FMT_DER);
	if (rv <= 0) {
		qs_tls_trust_error(err, errlen, file, rv);
		gnutls_certificate_free_credentials(*cred);
		*cred = NULL;
		return -1;
	}
	return 0;
}

int qs_tls_load_client_cert(gnutls_certificate_credentials_t cred, const char *cert, const char *key, char *err,
			    size_t errlen)
{
	if (!cert && !key)
		return 0;
	if (!cert || !key) {
		snprintf(err, errlen, "a client certificate needs its key, and a key its certificate");
		return -1;
	}
	int rv = gnutls_certificate_set_x509_key_file(cred, cert, key, GNUTLS_X509_FMT_PEM);
	if (rv < 0) {
		snprintf(err, errlen, "client certificate %s / key %s: %s", cert, key, gnutls_strerror(rv));
		return -1;
	}
	return 0;
}

static bool is_ip_literal(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* A NewSessionTicket arrived (after the handshake: ngtcp2's crypto helper
 * hands GnuTLS the post-handshake CRYPTO data): keep the session data it
 * makes for the next connection, in place of the one before. */
static int ticket_cb(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
		     const gnutls_datum_t *msg)
{
	(void)htype;
	(void)when;
	(void)incoming;
	(void)msg;
	ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
	struct qs_client *c = ref->user_data;
	gnutls_datum_t d = {NULL, 0};
	if (gnutls_session_get_data2(session, &d) < 0)
		return 0; /* the next connection does a full handshake */
	qs_tls_forget_ticket(c);
	c->ticket = d;
	return 0;
}

void qs_tls_forget_ticket(struct qs_client *c)
{
	if (c->ticket.data)
		gnutls_memset(c->ticket.data, 0, c->ticket.size); /* it holds a resumption secret */
	gnutls_free(c->ticket.data);
	c->ticket = (gnutls_datum_t){NULL, 0};
}

void qs_tls_on_handshake(struct qs_client *c)
{
	if (gnutls_session_is_resumed(c->tls))
		c->resumed++;
}

int qs_tls_session_new(struct qs_client *c)
{
	/* quicstash/1.1 (limit notices) preferred; an older server picks quicstash/1 */
	static const gnutls_datum_t alpn[2] = {{(unsigned char *)QS_ALPN_NOTICES, sizeof(QS_ALPN_NOTICES) - 1},
					       {(unsigned char *)QS_ALPN, sizeof(QS_ALPN) - 1}};
	/* No GNUTLS_ENABLE_EARLY_DATA: 0-RTT could be replayed into duplicate events.
	 * GNUTLS_KEY_SHARE_TOP: one key share (X25519, what quicstashd picks), not
	 * GnuTLS's default two (X25519 and P-256): a P-256 key made for nothing
	 * cost ~65 us per attempt. A server that wants another group asks for it
	 * with a HelloRetryRequest (RFC 8446 4.1.4). */
	int rv = gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_KEY_SHARE_TOP);
	if (rv < 0)
		return rv;
	if (ngtcp2_crypto_gnutls_configure_client_session(c->tls) != 0)
		return GNUTLS_E_INTERNAL_ERROR;
	pthread_once(&shared_prio_once, shared_prio_init);
	if ((rv = shared_prio ? gnutls_priority_set(c->tls, shared_prio) : gnutls_priority_set_direct(c->tls, priority, NULL)) < 0 ||
	    (rv = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred)) < 0 ||
	    (rv = gnutls_alpn_set_protocols(c->tls, alpn, 2, GNUTLS_ALPN_MANDATORY)) < 0)
		return rv;
	/* SNI must not carry an IP address (RFC 6066); verification still checks IP SANs. */
	if (!is_ip_literal(c->server_name) &&
	    (rv = gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, c->server_name, strlen(c->server_name))) < 0)
		return rv;
	/* A resumed session sends no certificate: GnuTLS then authenticates the
	 * server by the ticket's secret, which only a server holding the key
	 * that issued it (after we verified its certificate) can use. */
	gnutls_session_set_verify_cert(c->tls, c->server_name, 0);
	gnutls_session_set_ptr(c->tls, &c->conn_ref);
	gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST, ticket_cb);
	/* A ticket GnuTLS will not take (expired, damaged) means a full handshake. */
	if (c->ticket.data && !c->opts.no_resume && gnutls_session_set_data(c->tls, c->ticket.data, c->ticket.size) < 0)
		qs_tls_forget_ticket(c);
	return 0;
}

/* Called after the handshake failed locally (NGTCP2_ERR_CRYPTO). */
void qs_tls_describe_failure(struct qs_client *c, char *buf, size_t len)
{
	unsigned status = gnutls_session_get_verify_cert_status(c->tls);
	if (status != 0) {
		gnutls_datum_t out = {0};
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
			snprintf(buf, len, "server certificate rejected (name %s): %s", c->server_name,
				 (char *)out.data);
			gnutls_free(out.data);
			return;
		}
		snprintf(buf, len, "server certificate rejected (status 0x%x)", status);
		return;
	}
	uint8_t alert = ngtcp2_conn_get_tls_alert(c->conn);
	const char *name = gnutls_alert_get_name((gnutls_alert_description_t)alert);
	snprintf(buf, len, "TLS handshake failed: %s", name ? name : "unknown alert");
}

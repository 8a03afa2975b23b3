/* TLS for QUIC connections: one credentials object per process, one GnuTLS
 * session per connection. TLS 1.3 only, ALPN quicstash/1 only, and no early
 * data: a replayed 0-RTT flight would duplicate events. */
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/tlsfiles.h"
#include "common/wire.h"

#define ACC_TLS_PRIORITY                                                                           \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"+AES-128-CCM:%DISABLE_TLS13_COMPAT_MODE"

int acc_tls_init(struct acc *a)
{
	char err[256];
	if (gnutls_certificate_allocate_credentials(&a->cred) != 0) {
		qs_err("gnutls_certificate_allocate_credentials failed");
		return -1;
	}
	if (qs_tls_load_pair(a->cred, a->cfg->cert_path, a->cfg->key_path, err, sizeof(err))) {
		qs_err("certificate %s / key %s: %s", a->cfg->cert_path, a->cfg->key_path, err);
		return -1;
	}
	return 0;
}

/* Refuses a ClientHello whose ALPN is not ours (belt and braces on top of
 * GNUTLS_ALPN_MANDATORY). */
static int client_hello_cb(gnutls_session_t session, unsigned htype, unsigned when, unsigned incoming,
			   const gnutls_datum_t *msg)
{
	(void)htype;
	(void)when;
	(void)incoming;
	(void)msg;
	gnutls_datum_t alpn;
	if (gnutls_alpn_get_selected_protocol(session, &alpn) != 0)
		return GNUTLS_E_NO_APPLICATION_PROTOCOL;
	if (alpn.size != strlen(QS_ALPN) || memcmp(alpn.data, QS_ALPN, alpn.size) != 0)
		return GNUTLS_E_NO_APPLICATION_PROTOCOL;
	return 0;
}

int acc_tls_session(struct acc *a, struct acc_conn *c)
{
	if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET | GNUTLS_NO_END_OF_EARLY_DATA) != 0)
		return -1;
	if (gnutls_priority_set_direct(c->tls, ACC_TLS_PRIORITY, NULL) != 0) {
		qs_warn("gnutls_priority_set_direct failed");
		return -1;
	}
	gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST,
					   client_hello_cb);
	if (ngtcp2_crypto_gnutls_configure_server_session(c->tls) != 0)
		return -1;
	gnutls_session_set_ptr(c->tls, &c->ref);
	if (gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, a->cred) != 0)
		return -1;
	gnutls_datum_t alpn = {.data = (unsigned char *)QS_ALPN, .size = (unsigned)strlen(QS_ALPN)};
	if (gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE))
		return -1;
	ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
	return 0;
}

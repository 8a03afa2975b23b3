/* Which tenant a connection belongs to (docs/TENANTS.md, docs/PROTOCOL.md
 * "Authentication"): a client certificate that chains to --client-ca and
 * names a tenant (checked when the handshake completes), or a bearer token on
 * the connection's authentication stream. With --auth other than none, a
 * frame (or stream header) before either closes the connection with
 * QS_APP_UNAUTHENTICATED: nothing of an unauthenticated client is ever
 * forwarded, so nothing is acknowledged.
 *
 * A refusal sets the connection's close reason and returns -1: the callers
 * run inside ngtcp2 callbacks, which then fail, and acc_conn_fail closes the
 * connection with that application error (it keeps an error already set). */
#include <gnutls/x509.h>
#include <stdio.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/log.h"
#include "common/tenants.h"
#include "common/tlsfiles.h"

#define SAN_MAX 16

static bool ca_wanted(const struct acc *a)
{
	return a->cfg->client_ca[0] && (a->cfg->auth == QS_AUTH_MTLS || a->cfg->auth == QS_AUTH_ANY);
}

int acc_auth_load(struct acc *a)
{
	if (acc_tenant_count_init(a) || acc_limit_init(a))
		return -1;
	if (!ca_wanted(a))
		return 0;
	char err[512];
	if (qs_tls_add_trust(a->cred, a->cfg->client_ca, err, sizeof(err)) < 0) {
		qs_err("--client-ca %s", err);
		return -1;
	}
	return 0;
}

void acc_auth_session(struct acc *a, struct acc_conn *c)
{
	/* Asked for, not required: with --auth any a client may use a token instead. */
	if (ca_wanted(a))
		gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUEST);
}

static int refuse(struct acc_conn *c, uint64_t code, const char *reason, const char *tenant)
{
	char ip[64] = "?", ports[8];
	unsigned port = 0;
	const ngtcp2_path *p = ngtcp2_conn_get_path(c->qc);
	if (p && p->remote.addr)
		qs_addr_ip_string(p->remote.addr, ip, sizeof(ip), &port);
	snprintf(ports, sizeof(ports), "%u", port);
	/* one call site: at most 20 lines per 10 s however many clients fail */
	qs_warn_kv(QS_KV({QS_LOG_PEER, ip}, {QS_LOG_PORT, ports}, {QS_LOG_TENANT, tenant}),
		   "authentication refused for %s port %u: %s", ip, port, reason);
	c->a->n_auth_refused++;
	ngtcp2_ccerr_set_application_error(&c->err, code, (const uint8_t *)reason, strlen(reason));
	return -1;
}

/* The connection becomes the tenant's, unless the tenant holds its
 * max-connections already (on all acceptors together): then it is refused, and
 * the tenant's other connections go on. */
static int admit(struct acc_conn *c, const struct qs_tenant *t, uint64_t cred)
{
	const char *why = acc_limit_admit(c, t);
	if (why)
		return refuse(c, QS_APP_TENANT_CONNECTIONS, why, t->name);
	c->tenant = t;
	c->credential = cred;
	acc_tenant_count_conn(c, +1);
	return 0;
}

/* A parser with a newer tenants file rejected a frame as unauthenticated: its
 * credential was revoked (or its tenant removed) by a reload. The connection
 * decodes no more frames (streams.c), and is closed with
 * unauthenticated once every frame it sent is answered and its client has
 * the answers (acc_auth_close_revoked). */
void acc_auth_revoke(struct acc_conn *c)
{
	if (c->revoked || c->state != ACC_CONN_ACTIVE)
		return;
	c->revoked = true;
	char ip[64] = "?";
	unsigned port = 0;
	qs_addr_ip_string(ngtcp2_conn_get_path(c->qc)->remote.addr, ip, sizeof(ip), &port);
	qs_warn_kv(QS_KV({QS_LOG_PEER, ip}, {QS_LOG_TENANT, c->tenant ? c->tenant->name : NULL}),
		   "tenant %s: the credential of the connection from %s port %u was revoked; closing it once answered",
		   c->tenant ? c->tenant->name : "?", ip, port);
}

bool acc_auth_close_revoked(struct acc_conn *c)
{
	if (!c->revoked || c->frames)
		return false;
	/* every answer written (no ack still to coalesce) and acknowledged by the client */
	for (const struct acc_stream *s = c->streams; s; s = s->next)
		if (s->ack_dirty || s->next_ack > s->ack_sent || s->tx.acked < s->tx.end)
			return false;
	acc_conn_close_reason(c, QS_APP_UNAUTHENTICATED, "unauthenticated: credential revoked");
	return true;
}

int acc_auth_require(struct acc_conn *c)
{
	/* revoked: closes once answered, whether or not its tenant is still there */
	if (c->a->cfg->auth == QS_AUTH_NONE || c->tenant || c->revoked)
		return 0;
	return refuse(c, QS_APP_UNAUTHENTICATED, "unauthenticated", NULL);
}

int acc_auth_token(struct acc_stream *s, const struct qs_dec_out *out)
{
	struct acc_conn *c = s->c;
	const struct qs_config *cfg = c->a->cfg;
	if (!out->data)
		return refuse(c, QS_APP_AUTH_MALFORMED, "malformed authentication: token of 0 or over 1024 bytes", NULL);
	if (cfg->auth == QS_AUTH_MTLS)
		return refuse(c, QS_APP_UNAUTHENTICATED, "unauthenticated: this server takes client certificates only",
			      NULL);
	uint64_t cred = 0;
	const struct qs_tenant *t = cfg->auth == QS_AUTH_NONE ? NULL
				    : qs_tenants_by_token(cfg->tenants, out->data, out->len, &cred);
	if (cfg->auth != QS_AUTH_NONE && !t)
		return refuse(c, QS_APP_UNKNOWN_TOKEN, "unknown token", NULL);
	if (c->tenant && c->tenant != t)
		return refuse(c, QS_APP_UNAUTHENTICATED, "unauthenticated: this credential names another tenant than the first",
			      t->name);
	if (!c->tenant && admit(c, t, cred))
		return -1;
	c->tenant = t;
	acc_stream_auth_ok(s, t ? t->name : "");
	return 0;
}

/* The certificate's subject DN and its DNS, IP, e-mail and URI SANs. */
static int cert_names(gnutls_x509_crt_t crt, gnutls_datum_t *dn, char sans[][256], size_t *nsans)
{
	if (gnutls_x509_crt_get_dn3(crt, dn, 0) != 0)
		return -1;
	*nsans = 0;
	for (unsigned i = 0; *nsans < SAN_MAX; i++) {
		size_t len = 255;
		unsigned critical;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, i, sans[*nsans], &len, &critical);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_SAN_IPADDRESS) {
			char ip[64];
			struct sockaddr_storage ss = {0};
			if (len == 4) {
				ss.ss_family = AF_INET;
				memcpy(&((struct sockaddr_in *)&ss)->sin_addr, sans[*nsans], 4);
			} else if (len == 16) {
				ss.ss_family = AF_INET6;
				memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, sans[*nsans], 16);
			} else {
				continue;
			}
			unsigned port;
			qs_addr_ip_string((struct sockaddr *)&ss, ip, sizeof(ip), &port);
			snprintf(sans[*nsans], 256, "%s", ip);
			(*nsans)++;
		} else if (type == GNUTLS_SAN_DNSNAME || type == GNUTLS_SAN_RFC822NAME || type == GNUTLS_SAN_URI) {
			sans[*nsans][len < 255 ? len : 255] = 0;
			(*nsans)++;
		}
	}
	return 0;
}

int acc_auth_handshake(struct acc_conn *c)
{
	struct acc *a = c->a;
	if (!ca_wanted(a))
		return 0;
	unsigned n = 0;
	/* A resumed session shows no certificate (tickets go only to connections
	 * without one, ticket.c); what GnuTLS kept from the ticket is never a tenant. */
	const gnutls_datum_t *chain = gnutls_session_is_resumed(c->tls) ? NULL : gnutls_certificate_get_peers(c->tls, &n);
	if (!chain || !n) /* --auth any: a token may follow; mtls: refused at the first frame */
		return a->cfg->auth == QS_AUTH_MTLS ? refuse(c, QS_APP_UNAUTHENTICATED,
							     "unauthenticated: a client certificate from the client CA is required", NULL)
						    : 0;
	unsigned status = 0;
	if (gnutls_certificate_verify_peers2(c->tls, &status) != 0 || status) {
		gnutls_datum_t out = {0};
		char why[QS_REASON_MAX];
		if (status && gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
			snprintf(why, sizeof(why), "certificate refused: %s", (const char *)out.data);
			for (size_t n = strlen(why); n && why[n - 1] == ' ';)
				why[--n] = 0;
		} else
			snprintf(why, sizeof(why), "certificate refused");
		gnutls_free(out.data);
		/* the reason must outlive this frame: ngtcp2 keeps the pointer until the close is written */
		snprintf(c->close_reason, sizeof(c->close_reason), "%s", why);
		return refuse(c, QS_APP_BAD_CERT, c->close_reason, NULL);
	}
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = {0};
	char sans[SAN_MAX][256];
	size_t nsans = 0;
	const struct qs_tenant *t = NULL;
	uint64_t cred = 0;
	if (gnutls_x509_crt_init(&crt) == 0) {
		if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) == 0 &&
		    cert_names(crt, &dn, sans, &nsans) == 0) {
			const char *list[SAN_MAX];
			for (size_t i = 0; i < nsans; i++)
				list[i] = sans[i];
			t = qs_tenants_by_cert(a->cfg->tenants, (const char *)dn.data, list, nsans, &cred);
		}
		gnutls_x509_crt_deinit(crt);
	}
	if (!t) {
		snprintf(c->close_reason, sizeof(c->close_reason), "certificate matches no tenant: %s",
			 dn.data ? (const char *)dn.data : "?");
		gnutls_free(dn.data);
		return refuse(c, QS_APP_NO_TENANT, c->close_reason, NULL);
	}
	gnutls_free(dn.data);
	return admit(c, t, cred);
}

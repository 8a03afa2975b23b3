#include "shipper/tls_out.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/tlsfiles.h"

struct qs_tls_creds {
	gnutls_certificate_credentials_t cred;
};

struct qs_tls_conn {
	gnutls_session_t s;
	int fd;
	uint64_t wire;
	int last_error;
	char host[256]; /* GnuTLS keeps a pointer to the name to verify, not a copy */
};

struct qs_tls_creds *qs_tls_creds_load(const struct qs_config *cfg, char *err, size_t errlen)
{
	struct qs_tls_creds *cr = calloc(1, sizeof(*cr));
	if (!cr || qs_tls_client_creds(&cr->cred, cfg->logstash_ca, cfg->logstash_cert, cfg->logstash_key, err,
				       errlen) < 0) {
		if (!cr)
			snprintf(err, errlen, "out of memory");
		free(cr);
		return NULL;
	}
	return cr;
}

void qs_tls_creds_free(struct qs_tls_creds *cr)
{
	if (!cr)
		return;
	gnutls_certificate_free_credentials(cr->cred);
	free(cr);
}

/* Our own transport functions, so that every byte put on the wire is counted. */
static ssize_t push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	struct qs_tls_conn *c = p;
	ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0)
		c->wire += (uint64_t)n;
	else if (n < 0)
		gnutls_transport_set_errno(c->s, errno);
	return n;
}

static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct qs_tls_conn *c = p;
	ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);
	if (n < 0)
		gnutls_transport_set_errno(c->s, errno);
	return n;
}

/* Never waits: the event loop does (readable data, or end of stream, counts). */
static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	(void)ms;
	struct qs_tls_conn *c = p;
	char b;
	ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK) ? 1 : 0;
}

struct qs_tls_conn *qs_tls_conn_new(struct qs_tls_creds *cr, int fd, const char *host, char *err, size_t errlen)
{
	struct qs_tls_conn *c = calloc(1, sizeof(*c));
	int rc = c ? gnutls_init(&c->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK) : GNUTLS_E_MEMORY_ERROR;
	if (rc < 0) {
		snprintf(err, errlen, "TLS session: %s", gnutls_strerror(rc));
		free(c);
		return NULL;
	}
	c->fd = fd;
	snprintf(c->host, sizeof(c->host), "%s", host);
	host = c->host;
	bool ip = qs_addr_is_ip(host); /* no SNI for an address */
	if ((rc = gnutls_set_default_priority(c->s)) < 0 ||
	    (rc = gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, cr->cred)) < 0 ||
	    (!ip && (rc = gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, host, strlen(host))) < 0)) {
		snprintf(err, errlen, "TLS session: %s", gnutls_strerror(rc));
		qs_tls_conn_free(c);
		return NULL;
	}
	gnutls_session_set_verify_cert(c->s, host, 0); /* chain and name, in the handshake */
	gnutls_handshake_set_timeout(c->s, 0);          /* the output's own timer bounds it */
	gnutls_transport_set_ptr(c->s, c);
	gnutls_transport_set_push_function(c->s, push);
	gnutls_transport_set_pull_function(c->s, pull);
	gnutls_transport_set_pull_timeout_function(c->s, pull_timeout);
	return c;
}

void qs_tls_conn_free(struct qs_tls_conn *c)
{
	if (!c)
		return;
	gnutls_deinit(c->s);
	free(c);
}

void qs_tls_bye(struct qs_tls_conn *c)
{
	if (c)
		gnutls_bye(c->s, GNUTLS_SHUT_WR);
}

int qs_tls_handshake(struct qs_tls_conn *c, char *err, size_t errlen)
{
	int rc = gnutls_handshake(c->s);
	if (rc == GNUTLS_E_SUCCESS)
		return 0;
	if (!gnutls_error_is_fatal(rc))
		return 1;
	c->last_error = rc;
	gnutls_alert_send_appropriate(c->s, rc); /* Logstash logs why (if the socket takes it now) */
	gnutls_datum_t why = {NULL, 0};
	if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
		gnutls_certificate_verification_status_print(gnutls_session_get_verify_cert_status(c->s),
							    GNUTLS_CRT_X509, &why, 0);
	snprintf(err, errlen, "TLS handshake failed: %s%s%s", gnutls_strerror(rc), why.data ? " " : "",
		 why.data ? (const char *)why.data : "");
	gnutls_free(why.data);
	return -1;
}

bool qs_tls_wants_write(const struct qs_tls_conn *c)
{
	return gnutls_record_get_direction(c->s) == 1;
}

ssize_t qs_tls_send(struct qs_tls_conn *c, const void *buf, size_t len)
{
	ssize_t n = gnutls_record_send(c->s, buf, len);
	if (n >= 0)
		return n;
	if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
		errno = EAGAIN;
		return -1;
	}
	c->last_error = (int)n;
	errno = ECONNABORTED;
	return -1;
}

int qs_tls_drain(struct qs_tls_conn *c)
{
	char buf[4096];
	for (;;) {
		ssize_t n = gnutls_record_recv(c->s, buf, sizeof(buf));
		if (n > 0)
			continue;
		if (n == 0)
			return 0;
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			return 1;
		if (!gnutls_error_is_fatal((int)n))
			continue; /* e.g. a warning alert */
		c->last_error = (int)n;
		errno = ECONNABORTED;
		return -1;
	}
}

uint64_t qs_tls_wire_bytes(const struct qs_tls_conn *c)
{
	return c->wire;
}

const char *qs_tls_last_error(const struct qs_tls_conn *c)
{
	return c->last_error ? gnutls_strerror(c->last_error) : "";
}

/* amqps://: librabbitmq's OpenSSL socket, with what the confined shipper
 * cannot read any more given from memory: the CA bundle (--logstash-ca or
 * the system's, read at start), the client certificate and key
 * (--logstash-cert/-key). The broker's certificate must chain to the CA and
 * name the host of the -l entry (X509_VERIFY_PARAM: librabbitmq's own check
 * would compare it with the address it connects to). It connects to the
 * address resolved for the entry: the chrooted shipper cannot look names
 * up. Connect and handshake are bounded by the handshake's limit. */
#include "shipper/output_parts.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"

#define OPEN_MAX_S 5

void out_amqps_prepare(void)
{
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
	amqp_set_initialize_ssl_library(0); /* done here, before confinement */
}

static int add_cas(SSL_CTX *ctx, const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	int n = 0;
	X509 *x;
	while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		n += X509_STORE_add_cert(store, x) == 1;
		X509_free(x);
	}
	ERR_clear_error(); /* the end of the bundle reads as an error */
	BIO_free(bio);
	return n;
}

static int use_cert(SSL_CTX *ctx, const struct qs_amqp_creds *c)
{
	if (!c->cert)
		return 0;
	BIO *cb = BIO_new_mem_buf(c->cert, (int)c->cert_len), *kb = BIO_new_mem_buf(c->key, (int)c->key_len);
	X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	int ok = x && k && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1;
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(cb);
	BIO_free(kb);
	return ok ? 0 : -1;
}

int out_amqps_open(const struct qs_amqp_target *t, void *conn, char *err, size_t errlen)
{
	const struct qs_amqp_creds *c = t->creds;
	amqp_socket_t *s = amqp_ssl_socket_new(conn);
	SSL_CTX *ctx = s ? amqp_ssl_socket_get_context(s) : NULL;
	if (!ctx) {
		snprintf(err, errlen, "cannot set up TLS");
		return -1;
	}
	char host[256], ip[64];
	unsigned port = 0;
	qs_addr_host(t->name, host, sizeof(host));
	qs_addr_ip_string((const struct sockaddr *)&t->ss, ip, sizeof(ip), &port);
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
	int named = qs_addr_is_ip(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
					: X509_VERIFY_PARAM_set1_host(param, host, 0);
	if (!named || add_cas(ctx, c->ca, c->ca_len) == 0 || use_cert(ctx, c) < 0) {
		snprintf(err, errlen, "TLS set-up: %s", !named ? "bad host name" : "bad CA bundle or client certificate");
		return -1;
	}
	amqp_ssl_socket_set_verify_peer(s, 1);
	amqp_ssl_socket_set_verify_hostname(s, 0); /* X509_VERIFY_PARAM above checks the name */
	struct timeval tv = {t->timeout_s < OPEN_MAX_S ? t->timeout_s : OPEN_MAX_S, 0};
	int rc = amqp_socket_open_noblock(s, ip, (int)port, &tv);
	if (rc != AMQP_STATUS_OK) {
		unsigned long e = ERR_peek_last_error();
		snprintf(err, errlen, "TLS connect: %s%s%s", amqp_error_string2(rc), e ? ": " : "",
			 e ? ERR_reason_error_string(e) : "");
		ERR_clear_error();
		return -1;
	}
	return 0;
}

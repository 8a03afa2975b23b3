#include "common/tlsfiles.h"

#include <errno.h>
#include <stdio.h>

#include "common/secretfile.h"

/* A private key file is a few KiB; anything far larger is not one. */
#define QS_KEY_MAX_BYTES (1024 * 1024)

int qs_tls_load_crts(const char *path, gnutls_x509_crt_t **crts, unsigned *n, char *err, size_t errlen)
{
	gnutls_datum_t data;
	int rc = gnutls_load_file(path, &data);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read certificate %s: %s", path, gnutls_strerror(rc));
		return -1;
	}
	rc = gnutls_x509_crt_list_import2(crts, n, &data, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0)
		rc = gnutls_x509_crt_list_import2(crts, n, &data, GNUTLS_X509_FMT_DER, 0);
	gnutls_free(data.data);
	if (rc < 0) {
		snprintf(err, errlen, "certificate %s is neither PEM nor DER: %s", path, gnutls_strerror(rc));
		return -1;
	}
	return 0;
}

int qs_tls_load_key(const char *path, gnutls_x509_privkey_t *key, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	/* Refused, as the QUIC secret is, when group or others may read it. */
	if (qs_file_read(path, QS_KEY_MAX_BYTES, true, &buf, &len) < 0) {
		snprintf(err, errlen, "cannot read key %s: %s", path, qs_private_strerror(errno));
		return -1;
	}
	gnutls_datum_t data = {.data = (unsigned char *)buf, .size = (unsigned)len};
	gnutls_x509_privkey_init(key);
	int rc = gnutls_x509_privkey_import2(*key, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0)
		rc = gnutls_x509_privkey_import2(*key, &data, GNUTLS_X509_FMT_DER, NULL, 0);
	qs_file_free(buf, len);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(*key);
		snprintf(err, errlen, "key %s is neither PEM nor DER: %s", path, gnutls_strerror(rc));
		return -1;
	}
	return 0;
}

int qs_tls_load_pair(gnutls_certificate_credentials_t cred, const char *cert_path, const char *key_path,
		     char *err, size_t errlen)
{
	gnutls_x509_crt_t *crts = NULL;
	unsigned n = 0;
	gnutls_x509_privkey_t key;
	if (qs_tls_load_crts(cert_path, &crts, &n, err, errlen) < 0)
		return -1;
	int rc = -1;
	if (qs_tls_load_key(key_path, &key, err, errlen) == 0) {
		int g = gnutls_certificate_set_x509_key(cred, crts, n, key);
		if (g < 0)
			snprintf(err, errlen, "certificate %s and key %s do not go together: %s", cert_path,
				 key_path, gnutls_strerror(g));
		else
			rc = 0;
		gnutls_x509_privkey_deinit(key);
	}
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	return rc;
}

int qs_tls_add_trust(gnutls_certificate_credentials_t cred, const char *path, char *err, size_t errlen)
{
	int rc = gnutls_certificate_set_x509_trust_file(cred, path, GNUTLS_X509_FMT_PEM);
	if (rc <= 0)
		rc = gnutls_certificate_set_x509_trust_file(cred, path, GNUTLS_X509_FMT_DER);
	if (rc <= 0)
		snprintf(err, errlen, "%s: %s", path, rc == 0 ? "no certificate in it" : gnutls_strerror(rc));
	return rc > 0 ? 0 : -1;
}

int qs_tls_client_creds(gnutls_certificate_credentials_t *out, const char *ca, const char *cert_path,
			const char *key_path, char *err, size_t errlen)
{
	gnutls_certificate_credentials_t cred;
	if (gnutls_certificate_allocate_credentials(&cred) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = ca && *ca ? gnutls_certificate_set_x509_trust_file(cred, ca, GNUTLS_X509_FMT_PEM)
			   : gnutls_certificate_set_x509_system_trust(cred);
	if (rc <= 0) {
		snprintf(err, errlen, "%s%s: %s", ca && *ca ? "CA file " : "the system trust store", ca && *ca ? ca : "",
			 rc == 0 ? "no certificate in it" : gnutls_strerror(rc));
		gnutls_certificate_free_credentials(cred);
		return -1;
	}
	if (cert_path && *cert_path && qs_tls_load_pair(cred, cert_path, key_path, err, errlen) < 0) {
		gnutls_certificate_free_credentials(cred);
		return -1;
	}
	*out = cred;
	return 0;
}

/* Loading a certificate and key that may each be PEM or DER (the generated
 * pair is a DER certificate, for clients to trust, and a PEM key). */
#ifndef QS_TLSFILES_H
#define QS_TLSFILES_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* Imports a certificate chain (PEM, possibly several) or a single DER certificate.
 * On success *crts is gnutls_malloc'ed with *n entries (free each + gnutls_free). */
int qs_tls_load_crts(const char *path, gnutls_x509_crt_t **crts, unsigned *n, char *err, size_t errlen);
int qs_tls_load_key(const char *path, gnutls_x509_privkey_t *key, char *err, size_t errlen);
/* Both of the above, then gnutls_certificate_set_x509_key (which checks that they match). */
int qs_tls_load_pair(gnutls_certificate_credentials_t cred, const char *cert_path, const char *key_path,
		     char *err, size_t errlen);
/* Adds the certificates of path (a PEM bundle, or one DER certificate) to
 * cred's trust anchors; -1 with err (unreadable, none in it). */
int qs_tls_add_trust(gnutls_certificate_credentials_t cred, const char *path, char *err, size_t errlen);
/* Client credentials: trust the PEM bundle ca (NULL or "": the system's
 * store) and, when cert_path is set, present that certificate and key. */
int qs_tls_client_creds(gnutls_certificate_credentials_t *out, const char *ca, const char *cert_path,
			const char *key_path, char *err, size_t errlen);

#endif

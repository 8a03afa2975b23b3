#ifndef QS_CERTGEN_H
#define QS_CERTGEN_H

/* Makes sure a usable certificate and key exist at the configured paths:
 * loads existing PEM or DER files as they are, or generates a self-signed
 * certificate (DER, world-readable, for clients to trust) and its key (PEM,
 * mode 0600). Logs the certificate's SHA-256 fingerprint. Returns 0, or -1
 * with a one-line reason already logged. */
int qs_cert_ensure(const char *cert_path, const char *key_path);
/* Only checks that the pair loads and matches (for a reload: never generates). */
int qs_cert_check(const char *cert_path, const char *key_path);

/* --logstash-tls: the CA bundle and client pair load (so that a typo stops
 * the start or the reload here, not the shipper in a restart loop). 0, or -1
 * (logged). */
struct qs_config;
int qs_output_tls_check(const struct qs_config *cfg);

#endif

#include "supervisor/certgen.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/crypto.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tlsfiles.h"

#define VALID_DAYS 3650

static void log_fingerprint(gnutls_x509_crt_t crt, const char *path)
{
	unsigned char fp[32];
	size_t fplen = sizeof(fp);
	char hex[32 * 3 + 1] = "";
	if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fplen) == 0) {
		for (size_t i = 0; i < fplen; i++)
			snprintf(hex + i * 3, 4, i + 1 < fplen ? "%02X:" : "%02X", fp[i]);
	}
	qs_info("certificate %s SHA-256 fingerprint %s", path, hex);
}

/* Loads the pair the way the acceptor will: this also checks that they match. */
static int check_pair(const char *cert_path, const char *key_path)
{
	char err[512];
	gnutls_certificate_credentials_t cred;
	gnutls_certificate_allocate_credentials(&cred);
	int rc = qs_tls_load_pair(cred, cert_path, key_path, err, sizeof(err));
	gnutls_certificate_free_credentials(cred);
	if (rc < 0)
		qs_err("%s", err);
	return rc;
}

static int write_file(const char *path, const gnutls_datum_t *d, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		qs_err("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	fchmod(fd, mode); /* the umask must not make the certificate unreadable to clients */
	ssize_t n = write(fd, d->data, d->size);
	int bad = n != (ssize_t)d->size || fsync(fd) != 0;
	close(fd);
	if (bad) {
		qs_err("cannot write %s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

static void add_sans(gnutls_x509_crt_t crt)
{
	char host[256] = "";
	unsigned char v4[4], v6[16];
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND);
	if (gethostname(host, sizeof(host) - 1) == 0 && host[0] && strcmp(host, "localhost"))
		gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host, (unsigned)strlen(host),
						     GNUTLS_FSAN_APPEND);
	inet_pton(AF_INET, "127.0.0.1", v4);
	inet_pton(AF_INET6, "::1", v6);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v4, 4, GNUTLS_FSAN_APPEND);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v6, 16, GNUTLS_FSAN_APPEND);
}

static int make_crt(gnutls_x509_privkey_t key, gnutls_x509_crt_t crt)
{
	unsigned char serial[16];
	gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	serial[0] &= 0x7f;
	time_t now = time(NULL);
	const char *err = NULL;
	int rc = 0;
	rc |= gnutls_x509_crt_set_version(crt, 3);
	rc |= gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	rc |= gnutls_x509_crt_set_activation_time(crt, now - 3600);
	rc |= gnutls_x509_crt_set_expiration_time(crt, now + (time_t)VALID_DAYS * 86400);
	rc |= gnutls_x509_crt_set_dn(crt, "CN=quicstash", &err);
	rc |= gnutls_x509_crt_set_key(crt, key);
	rc |= gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
	rc |= gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
	rc |= gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
	add_sans(crt);
	rc |= gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
	return rc < 0 ? -1 : 0;
}

static int generate(const char *cert_path, const char *key_path)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t kd = {0}, cd = {0};
	int rc = -1;

	gnutls_x509_privkey_init(&key);
	gnutls_x509_crt_init(&crt);
	if (gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
					 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
	    make_crt(key, crt) < 0) {
		qs_err("cannot generate a self-signed certificate");
		goto out;
	}
	if (gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &kd) < 0 ||
	    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &cd) < 0) {
		qs_err("cannot export the generated certificate");
		goto out;
	}
	if (write_file(key_path, &kd, 0600) < 0)
		goto out;
	if (write_file(cert_path, &cd, 0644) < 0) {
		unlink(key_path);
		goto out;
	}
	qs_info("generated a self-signed certificate %s (key %s, mode 0600)", cert_path, key_path);
	log_fingerprint(crt, cert_path);
	rc = 0;
out:
	if (kd.data) {
		gnutls_memset(kd.data, 0, kd.size);
		gnutls_free(kd.data);
	}
	gnutls_free(cd.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return rc;
}

int qs_cert_check(const char *cert_path, const char *key_path)
{
	return check_pair(cert_path, key_path);
}

int qs_cert_ensure(const char *cert_path, const char *key_path)
{
	bool have_cert = access(cert_path, F_OK) == 0;
	bool have_key = access(key_path, F_OK) == 0;
	if (!have_cert && !have_key)
		return generate(cert_path, key_path);
	if (have_cert != have_key) {
		qs_err("%s exists but %s does not: give both or neither", have_cert ? cert_path : key_path,
		       have_cert ? key_path : cert_path);
		return -1;
	}
	if (check_pair(cert_path, key_path) < 0)
		return -1;
	char err[512];
	gnutls_x509_crt_t *crts;
	unsigned n;
	if (qs_tls_load_crts(cert_path, &crts, &n, err, sizeof(err)) == 0) {
		log_fingerprint(crts[0], cert_path);
		for (unsigned i = 0; i < n; i++)
			gnutls_x509_crt_deinit(crts[i]);
		gnutls_free(crts);
	}
	return 0;
}

int qs_output_tls_check(const struct qs_config *cfg)
{
	if (!cfg->logstash_tls)
		return 0;
	gnutls_certificate_credentials_t cred;
	char err[8400];
	if (qs_tls_client_creds(&cred, cfg->logstash_ca, cfg->logstash_cert, cfg->logstash_key, err, sizeof(err)) < 0) {
		qs_err("--logstash-tls: %s", err);
		return -1;
	}
	gnutls_certificate_free_credentials(cred);
	return 0;
}

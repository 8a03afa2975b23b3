/* Unit tests for client/lib/trust.c: clients whose trust file holds the same
 * bytes share one credentials object; a file that changed, a client
 * certificate or a file that cannot be read each get their own (or an error),
 * and the credentials trust exactly what the file held when the client was made. */
#include "tests/unit/check.h"
#include <event2/event.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/lib/internal.h"

static char dir[] = "/tmp/qs-test-trust-XXXXXX";

struct cert {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
};

/* A self-signed Ed25519 certificate for cn, its PEM written to cert_path (and
 * its key to key_path unless NULL). */
static struct cert make_cert(const char *cn, const char *cert_path, const char *key_path)
{
	struct cert c;
	CHECK(gnutls_x509_privkey_init(&c.key) == 0);
	CHECK(gnutls_x509_privkey_generate(c.key, GNUTLS_PK_EDDSA_ED25519, 256, 0) == 0);
	CHECK(gnutls_x509_crt_init(&c.crt) == 0);
	CHECK(gnutls_x509_crt_set_version(c.crt, 3) == 0);
	unsigned char serial[8] = {1, 2, 3, 4, 5, 6, 7, (unsigned char)cn[0]};
	CHECK(gnutls_x509_crt_set_serial(c.crt, serial, sizeof(serial)) == 0);
	time_t now = time(NULL);
	CHECK(gnutls_x509_crt_set_activation_time(c.crt, now - 3600) == 0);
	CHECK(gnutls_x509_crt_set_expiration_time(c.crt, now + 86400) == 0);
	CHECK(gnutls_x509_crt_set_dn_by_oid(c.crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)) == 0);
	CHECK(gnutls_x509_crt_set_subject_alt_name(c.crt, GNUTLS_SAN_DNSNAME, cn, strlen(cn), GNUTLS_FSAN_SET) == 0);
	CHECK(gnutls_x509_crt_set_key(c.crt, c.key) == 0);
	CHECK(gnutls_x509_crt_set_basic_constraints(c.crt, 1, -1) == 0);
	CHECK(gnutls_x509_crt_set_key_usage(c.crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN) == 0);
	CHECK(gnutls_x509_crt_sign2(c.crt, c.crt, c.key, GNUTLS_DIG_UNKNOWN, 0) == 0);
	gnutls_datum_t out;
	CHECK(gnutls_x509_crt_export2(c.crt, GNUTLS_X509_FMT_PEM, &out) == 0);
	FILE *f = fopen(cert_path, "w");
	CHECK(f && fwrite(out.data, 1, out.size, f) == out.size && fclose(f) == 0);
	gnutls_free(out.data);
	if (key_path) {
		CHECK(gnutls_x509_privkey_export2_pkcs8(c.key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &out) == 0);
		f = fopen(key_path, "w");
		CHECK(f && fwrite(out.data, 1, out.size, f) == out.size && fclose(f) == 0);
		gnutls_free(out.data);
	}
	return c;
}

static void cert_free(struct cert *c)
{
	gnutls_x509_crt_deinit(c->crt);
	gnutls_x509_privkey_deinit(c->key);
}

/* Whether credentials cred verify crt (the chain of one) as a server certificate. */
static bool trusts(gnutls_certificate_credentials_t cred, gnutls_x509_crt_t crt)
{
	gnutls_x509_trust_list_t tl;
	gnutls_certificate_get_trust_list(cred, &tl);
	/* as the server would send it: DER, parsed anew */
	gnutls_datum_t der;
	gnutls_x509_crt_t peer;
	CHECK(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) == 0);
	CHECK(gnutls_x509_crt_init(&peer) == 0 && gnutls_x509_crt_import(peer, &der, GNUTLS_X509_FMT_DER) == 0);
	gnutls_free(der.data);
	unsigned status = 1;
	int rv = gnutls_x509_trust_list_verify_crt(tl, &peer, 1, 0, &status, NULL);
	gnutls_x509_crt_deinit(peer);
	return rv == 0 && status == 0;
}

static struct qs_client *client(struct event_base *base, const char *trust, const char *cert, const char *key,
				char *err, size_t errlen)
{
	struct qs_client_opts o = {.server_addr = "127.0.0.1:1", .trust_file = trust, .client_cert = cert,
				   .client_key = key};
	struct qs_client_callbacks cb = {0};
	return qs_client_new(base, &o, &cb, NULL, err, errlen);
}

static void test_shared_and_not(void)
{
	char a[64], b[64], ck[64], cc[64], missing[64], err[256];
	snprintf(a, sizeof(a), "%s/a.pem", dir);
	snprintf(b, sizeof(b), "%s/b.pem", dir);
	snprintf(cc, sizeof(cc), "%s/client.pem", dir);
	snprintf(ck, sizeof(ck), "%s/client.key", dir);
	snprintf(missing, sizeof(missing), "%s/none.pem", dir);
	struct cert x = make_cert("x.example", a, NULL);
	struct cert y = make_cert("y.example", b, NULL);
	struct cert cl = make_cert("client.example", cc, ck);
	struct event_base *base = event_base_new();

	/* the same bytes: one object, trusting x and not y */
	struct qs_client *c1 = client(base, a, NULL, NULL, err, sizeof(err));
	struct qs_client *c2 = client(base, a, NULL, NULL, err, sizeof(err));
	CHECK(c1 && c2 && c1->cred == c2->cred);
	CHECK(trusts(c1->cred, x.crt) && !trusts(c1->cred, y.crt));

	/* another file with other bytes: its own, trusting y only */
	struct qs_client *c3 = client(base, b, NULL, NULL, err, sizeof(err));
	CHECK(c3 && c3->cred != c1->cred && trusts(c3->cred, y.crt) && !trusts(c3->cred, x.crt));

	/* a changed file: the next client trusts what it holds now, the live ones
	 * what it held before */
	char a2[64];
	snprintf(a2, sizeof(a2), "%s/a2.pem", dir);
	struct cert z = make_cert("z.example", a2, NULL);
	CHECK(rename(a2, a) == 0);
	struct qs_client *c4 = client(base, a, NULL, NULL, err, sizeof(err));
	CHECK(c4 && c4->cred != c1->cred && trusts(c4->cred, z.crt) && !trusts(c4->cred, x.crt));
	CHECK(trusts(c2->cred, x.crt) && !trusts(c2->cred, z.crt));

	/* a client certificate: credentials of its own, never shared */
	struct qs_client *c5 = client(base, b, cc, ck, err, sizeof(err));
	struct qs_client *c6 = client(base, b, cc, ck, err, sizeof(err));
	if (!c5)
		fprintf(stderr, "client certificate: %s\n", err);
	CHECK(c5 && c6 && c5->cred != c6->cred && c5->cred != c3->cred && trusts(c5->cred, y.crt));

	/* a file that cannot be read: the same error as before */
	err[0] = 0;
	CHECK(client(base, missing, NULL, NULL, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "cannot read it") != NULL);

	/* freed in any order: the shared object lives while a client uses it
	 * (ASan sees a use after free or a leak) */
	qs_client_free(c1);
	CHECK(trusts(c2->cred, x.crt));
	struct qs_client *c7 = client(base, b, NULL, NULL, err, sizeof(err));
	CHECK(c7 && c7->cred == c3->cred);
	qs_client_free(c3);
	qs_client_free(c7);
	qs_client_free(c2);
	qs_client_free(c4);
	qs_client_free(c5);
	qs_client_free(c6);
	/* every client gone: a new one loads the file again */
	struct qs_client *c8 = client(base, b, NULL, NULL, err, sizeof(err));
	CHECK(c8 && trusts(c8->cred, y.crt));
	qs_client_free(c8);

	event_base_free(base);
	cert_free(&x);
	cert_free(&y);
	cert_free(&z);
	cert_free(&cl);
	unlink(a);
	unlink(b);
	unlink(cc);
	unlink(ck);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_shared_and_not();
	rmdir(dir);
	return check_report();
}

/* The clients' TLS credentials, shared by the clients of a process that trust
 * the same bytes.
 *
 * Parsing the trust file was 6% of quicstash-bench's CPU in a storm of 3,000
 * clients (one parse per client: open, read, PEM, X.509 import), and every
 * client held its own copy. The parsed trust list is a function of the file's
 * bytes alone, so a client whose trust file holds exactly the bytes another
 * live client loaded gets the same credentials object (counted), and verifies
 * the server's certificate against it as it would against its own copy:
 * GnuTLS only reads a credentials object during handshakes, which is safe
 * from several threads (its manual, "Thread safety"). The file is still read
 * by every client, so a changed file is loaded anew. Not shared: credentials
 * with a client certificate (a private key stays with the client that loaded
 * it) and trust given as a URL (PKCS#11 trust stores are not safe to share
 * between threads). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"

struct shared_cred {
	gnutls_datum_t bytes; /* the trust file's content */
	gnutls_certificate_credentials_t cred;
	unsigned refs;
	struct shared_cred *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_cred *shared; /* live ones only: freed with their last client */

static struct shared_cred *find(const gnutls_datum_t *bytes)
{
	for (struct shared_cred *s = shared; s; s = s->next)
		if (s->bytes.size == bytes->size && !memcmp(s->bytes.data, bytes->data, bytes->size))
			return s;
	return NULL;
}

int qs_cred_get(gnutls_certificate_credentials_t *cred, const struct qs_client_opts *o, char *err, size_t errlen)
{
	*cred = NULL;
	if (o->client_cert || o->client_key || gnutls_url_is_supported(o->trust_file)) {
		/* our own, unshared (qs_cred_put frees what it does not know) */
		if (qs_tls_load_trust(cred, o->trust_file, NULL, err, errlen) < 0)
			return -1;
		return qs_tls_load_client_cert(*cred, o->client_cert, o->client_key, err, errlen);
	}
	gnutls_datum_t bytes = {0};
	int rv = gnutls_load_file(o->trust_file, &bytes);
	if (rv < 0) {
		qs_tls_trust_error(err, errlen, o->trust_file, GNUTLS_E_FILE_ERROR);
		return -1;
	}
	pthread_mutex_lock(&lock);
	struct shared_cred *s = find(&bytes);
	if (s) {
		s->refs++;
		*cred = s->cred;
		gnutls_free(bytes.data);
	} else if ((s = calloc(1, sizeof(*s))) && qs_tls_load_trust(&s->cred, o->trust_file, &bytes, err, errlen) == 0) {
		s->bytes = bytes;
		s->refs = 1;
		s->next = shared;
		shared = s;
		*cred = s->cred;
	} else {
		if (!s)
			snprintf(err, errlen, "out of memory");
		free(s);
		gnutls_free(bytes.data);
	}
	pthread_mutex_unlock(&lock);
	return *cred ? 0 : -1;
}

void qs_cred_put(gnutls_certificate_credentials_t cred)
{
	if (!cred)
		return;
	pthread_mutex_lock(&lock);
	struct shared_cred **p = &shared;
	while (*p && (*p)->cred != cred)
		p = &(*p)->next;
	struct shared_cred *s = *p;
	bool last = s && --s->refs == 0;
	if (last)
		*p = s->next;
	pthread_mutex_unlock(&lock);
	if (!s) {
		gnutls_certificate_free_credentials(cred); /* an unshared one */
	} else if (last) {
		gnutls_certificate_free_credentials(s->cred);
		gnutls_free(s->bytes.data);
		free(s);
	}
}

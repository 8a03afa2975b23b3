#include "ipc/keysign.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

/* The keyholder's INFO answers depend only on its key, and GnuTLS asks two
 * or more of them in every handshake (the key's type, whether it signs with
 * the scheme chosen): each was a round trip, three per handshake with the
 * signature. They are kept for the connection to the keyholder they came
 * from (a keyholder reached anew may hold another key). */
#define KC_INFO_CACHE 32

struct keyclient {
	char path[108];
	int fd;
	unsigned ninfo;
	struct {
		unsigned flags;
		int32_t rc;
	} info[KC_INFO_CACHE];
};

static int kc_connect(struct keyclient *kc)
{
	if (kc->fd >= 0)
		return 0;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", kc->path);
	/* A handshake waits for at most this long on the keyholder. */
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		qs_warn("keyholder %s: %s", kc->path, strerror(errno));
		close(fd);
		return -1;
	}
	kc->fd = fd;
	return 0;
}

/* One round trip; reconnects once if the keyholder was restarted. */
static int kc_call(struct keyclient *kc, struct qs_keysign_req *req, struct qs_keysign_rep *rep)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (kc_connect(kc) < 0)
			continue;
		req->magic = QS_KEYSIGN_MAGIC;
		size_t n = QS_KEYSIGN_REQ_HDR + req->len;
		ssize_t r = -1;
		if (send(kc->fd, req, n, MSG_NOSIGNAL) == (ssize_t)n)
			r = recv(kc->fd, rep, sizeof(*rep), 0);
		if (r >= (ssize_t)QS_KEYSIGN_REP_HDR && rep->magic == QS_KEYSIGN_MAGIC &&
		    rep->len <= QS_KEYSIGN_MAX_SIG && (size_t)r == QS_KEYSIGN_REP_HDR + rep->len)
			return 0;
		close(kc->fd);
		kc->fd = -1;
		kc->ninfo = 0;
	}
	return -1;
}

static int sign_common(uint32_t op, gnutls_sign_algorithm_t algo, void *userdata, unsigned flags,
		       const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	static struct qs_keysign_req req;
	static struct qs_keysign_rep rep;
	if (data->size > QS_KEYSIGN_MAX_DATA)
		return GNUTLS_E_INVALID_REQUEST;
	req.op = op;
	req.algo = (uint32_t)algo;
	req.flags = flags;
	req.len = data->size;
	memcpy(req.data, data->data, data->size);
	if (kc_call(userdata, &req, &rep) < 0)
		return GNUTLS_E_PK_SIGN_FAILED;
	if (rep.rc < 0)
		return rep.rc;
	sig->data = gnutls_malloc(rep.len);
	if (!sig->data)
		return GNUTLS_E_MEMORY_ERROR;
	memcpy(sig->data, rep.sig, rep.len);
	sig->size = rep.len;
	return 0;
}

static int sign_data_cb(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata, unsigned flags,
			const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	(void)key;
	return sign_common(QS_KEYSIGN_SIGN_DATA, algo, userdata, flags, data, sig);
}

/* The transcript hash of the handshake being signed for (the acceptor's
 * handshake hook sets it just before GnuTLS signs; used once). */
static _Thread_local uint8_t cv_th[48];
static _Thread_local size_t cv_th_len;

void qs_keysign_set_transcript(const uint8_t *th, size_t len)
{
	cv_th_len = len <= sizeof(cv_th) ? len : 0;
	memcpy(cv_th, th, cv_th_len);
}

/* GnuTLS hashed the CertificateVerify input and hands over the digest; the
 * keyholder signs only whole inputs, so send the input rebuilt from the
 * transcript hash, once it is shown to be what GnuTLS hashed. */
static int sign_hash_cb(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata, unsigned flags,
			const gnutls_datum_t *hash, gnutls_datum_t *sig)
{
	(void)key;
	uint8_t cv[QS_CV_MAX], d[64];
	size_t th_len = cv_th_len;
	cv_th_len = 0;
	gnutls_digest_algorithm_t dig = gnutls_sign_get_hash_algorithm(algo);
	gnutls_datum_t in = {cv, (unsigned)qs_keypolicy_cv_build(cv, cv_th, th_len)};
	if (th_len == 0 || flags != 0 || gnutls_hash_get_len(dig) != hash->size ||
	    gnutls_hash_fast(dig, cv, in.size, d) < 0 || memcmp(d, hash->data, hash->size) != 0) {
		qs_err("keysign: a %s digest that is no CertificateVerify of this handshake: not sent to the keyholder",
		       gnutls_sign_get_name(algo));
		return GNUTLS_E_PK_SIGN_FAILED;
	}
	return sign_common(QS_KEYSIGN_SIGN_DATA, algo, userdata, 0, &in, sig);
}

static int info_cb(gnutls_privkey_t key, unsigned flags, void *userdata)
{
	(void)key;
	struct keyclient *kc = userdata;
	for (unsigned i = 0; i < kc->ninfo; i++)
		if (kc->info[i].flags == flags)
			return kc->info[i].rc;
	static struct qs_keysign_req req;
	static struct qs_keysign_rep rep;
	req.op = QS_KEYSIGN_INFO;
	req.algo = flags;
	req.flags = 0;
	req.len = 0;
	if (kc_call(kc, &req, &rep) < 0)
		return GNUTLS_E_INTERNAL_ERROR;
	if (kc->ninfo < KC_INFO_CACHE) {
		kc->info[kc->ninfo].flags = flags;
		kc->info[kc->ninfo++].rc = rep.rc;
	}
	return rep.rc;
}

static void deinit_cb(gnutls_privkey_t key, void *userdata)
{
	(void)key;
	struct keyclient *kc = userdata;
	if (kc->fd >= 0)
		close(kc->fd);
	free(kc);
}

int qs_keysign_privkey(gnutls_privkey_t *out, const char *sock_path)
{
	struct keyclient *kc = calloc(1, sizeof(*kc));
	if (!kc || strlen(sock_path) >= sizeof(kc->path)) {
		free(kc);
		return -1;
	}
	snprintf(kc->path, sizeof(kc->path), "%s", sock_path);
	kc->fd = -1;
	gnutls_privkey_init(out);
	int rc = gnutls_privkey_import_ext4(*out, kc, sign_data_cb, sign_hash_cb, NULL, deinit_cb, info_cb,
					    GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
	if (rc < 0) {
		qs_err("gnutls_privkey_import_ext4: %s", gnutls_strerror(rc));
		gnutls_privkey_deinit(*out);
		free(kc);
		return -1;
	}
	return 0;
}

static int32_t serve_info(const struct qs_keysign_key *k, unsigned flags)
{
	unsigned bits = 0;
	int pk = gnutls_privkey_get_pk_algorithm(k->priv, &bits);
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
		return pk;
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
		return (int32_t)bits;
	if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO) /* so GnuTLS picks only what we sign */
		return qs_keypolicy_algo_ok(k, GNUTLS_FLAGS_TO_SIGN_ALGO(flags)) ? 1 : 0;
	if (flags & GNUTLS_PRIVKEY_INFO_SIGN_ALGO)
		return 0;
	return GNUTLS_E_UNKNOWN_PK_ALGORITHM;
}

/* The policy of ipc/keypolicy.h: a TLS 1.3 scheme of this key, no flags, and
 * a whole CertificateVerify input. Never a bare digest (SIGN_HASH): it could
 * be the digest of anything. */
static bool allowed(const struct qs_keysign_key *k, const struct qs_keysign_req *r)
{
	return r->op == QS_KEYSIGN_SIGN_DATA && r->flags == 0 &&
	       qs_keypolicy_algo_ok(k, (gnutls_sign_algorithm_t)r->algo) && qs_keypolicy_cv_ok(r->data, r->len);
}

/* Signs, then verifies with the public key: whatever GnuTLS accepted, no
 * signature leaves that the client would not accept from this key. */
static int sign_checked(const struct qs_keysign_key *k, const struct qs_keysign_req *r, gnutls_datum_t *sig)
{
	gnutls_sign_algorithm_t algo = (gnutls_sign_algorithm_t)r->algo;
	gnutls_datum_t in = {(unsigned char *)r->data, r->len};
	int rc = gnutls_privkey_sign_data2(k->priv, algo, 0, &in, sig);
	if (rc < 0)
		return rc;
	rc = gnutls_pubkey_verify_data2(k->pub, algo, 0, &in, sig);
	if (rc < 0)
		qs_warn("keyholder: a %s signature did not verify: refused", gnutls_sign_get_name(algo));
	return rc < 0 ? GNUTLS_E_PK_SIGN_FAILED : 0;
}

ssize_t qs_keysign_serve(const struct qs_keysign_key *key, const void *buf, size_t len, struct qs_keysign_rep *rep)
{
	struct qs_keysign_req req;
	if (len < QS_KEYSIGN_REQ_HDR || len > sizeof(req))
		return -1;
	memcpy(&req, buf, len);
	if (req.magic != QS_KEYSIGN_MAGIC || req.len != len - QS_KEYSIGN_REQ_HDR)
		return -1;
	rep->magic = QS_KEYSIGN_MAGIC;
	rep->len = 0;
	if (req.op == QS_KEYSIGN_INFO) {
		rep->rc = serve_info(key, req.algo);
		return QS_KEYSIGN_REP_HDR;
	}
	if (req.op != QS_KEYSIGN_SIGN_DATA && req.op != QS_KEYSIGN_SIGN_HASH)
		return -1;
	if (!allowed(key, &req)) {
		rep->rc = GNUTLS_E_INVALID_REQUEST;
		return QS_KEYSIGN_REP_HDR;
	}
	gnutls_datum_t sig = {NULL, 0};
	int rc = sign_checked(key, &req, &sig);
	if (rc == 0 && sig.size > QS_KEYSIGN_MAX_SIG)
		rc = GNUTLS_E_SHORT_MEMORY_BUFFER;
	if (rc == 0) {
		memcpy(rep->sig, sig.data, sig.size);
		rep->len = sig.size;
	}
	gnutls_free(sig.data);
	rep->rc = rc;
	return (ssize_t)(QS_KEYSIGN_REP_HDR + rep->len);
}

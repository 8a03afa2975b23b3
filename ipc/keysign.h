/* Signing with a key that lives in another process (OpenBSD relayd's "ca"
 * idea): the keyholder owns the TLS private key; an acceptor gets a
 * gnutls_privkey_t whose sign callbacks ask the keyholder over a
 * SOCK_SEQPACKET unix socket. One request, one reply, both size-checked. */
#ifndef QS_IPC_KEYSIGN_H
#define QS_IPC_KEYSIGN_H

#include <gnutls/abstract.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc/keypolicy.h"

#define QS_KEYSIGN_SOCKET "keyholder.sock"
#define QS_KEYSIGN_MAX_DATA 4096
#define QS_KEYSIGN_MAX_SIG 1024

enum qs_keysign_op { QS_KEYSIGN_INFO = 1, QS_KEYSIGN_SIGN_DATA = 2, QS_KEYSIGN_SIGN_HASH = 3 };

struct qs_keysign_req {
	uint32_t magic;
	uint32_t op;
	uint32_t algo;  /* gnutls_sign_algorithm_t, or INFO flags */
	uint32_t flags;
	uint32_t len;
	uint8_t data[QS_KEYSIGN_MAX_DATA];
};

struct qs_keysign_rep {
	uint32_t magic;
	int32_t rc; /* INFO: the answer; SIGN: 0 or a GnuTLS error */
	uint32_t len;
	uint8_t sig[QS_KEYSIGN_MAX_SIG];
};

#define QS_KEYSIGN_MAGIC 0x51534b31u /* "QSK1" */
/* What is signed: ipc/keypolicy.h. No sign flags are served: GnuTLS passes
 * none to an external key's callbacks in TLS 1.3 (TLS1_RSA and RSA_PSS belong
 * to TLS 1.2), and the others lead into paths no handshake takes, one of
 * which leaks memory in GnuTLS on every request (REPRODUCIBLE with a short
 * hash; found by tests/fuzz): an acceptor must not be able to grow the
 * keyholder. */
#define QS_KEYSIGN_REQ_HDR (5 * sizeof(uint32_t))
#define QS_KEYSIGN_REP_HDR (3 * sizeof(uint32_t))

/* Client side: a private key backed by the keyholder at sock_path. It signs
 * TLS 1.3 server CertificateVerify inputs only: the caller gives the
 * transcript hash of the handshake (qs_keysign_set_transcript) before GnuTLS
 * signs, as GnuTLS hands the key only the input's digest. */
int qs_keysign_privkey(gnutls_privkey_t *out, const char *sock_path);
void qs_keysign_set_transcript(const uint8_t *th, size_t len);

/* Server side: answers one request with key; returns the reply length or -1
 * when the request is malformed. A signature is made only as ipc/keypolicy.h
 * allows (else rc GNUTLS_E_INVALID_REQUEST) and returned only after it
 * verifies with the key's public half. */
ssize_t qs_keysign_serve(const struct qs_keysign_key *key, const void *req, size_t req_len,
			 struct qs_keysign_rep *rep);

#endif

/* TLS for the output to Logstash (--logstash-tls): credentials loaded before
 * the shipper confines itself, and a non-blocking client session over the
 * output's TCP socket. The session counts the bytes it puts on the wire:
 * the settle logic (settle.h) compares them with what TCP still holds
 * unacknowledged, so it works on ciphertext exactly as on plain TCP. */
#ifndef QS_SHIPPER_TLS_OUT_H
#define QS_SHIPPER_TLS_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qs_config;
struct qs_tls_creds;
struct qs_tls_conn;

/* The CA to trust (or the system's store) and the client certificate, read
 * now (files are out of reach once confined). NULL on error, with the reason
 * in err. */
struct qs_tls_creds *qs_tls_creds_load(const struct qs_config *cfg, char *err, size_t errlen);
void qs_tls_creds_free(struct qs_tls_creds *cr);

/* A client session on the connected socket fd; the peer's certificate must
 * name host (a DNS name, or an IP literal checked against its IP SANs). */
struct qs_tls_conn *qs_tls_conn_new(struct qs_tls_creds *cr, int fd, const char *host, char *err, size_t errlen);
void qs_tls_conn_free(struct qs_tls_conn *c);
/* A clean end: close_notify, if the socket takes it now (never waits). */
void qs_tls_bye(struct qs_tls_conn *c);

/* One step of the handshake: 0 done, 1 call again when the socket is ready
 * (qs_tls_wants_write says for what), -1 failed (reason in err). */
int qs_tls_handshake(struct qs_tls_conn *c, char *err, size_t errlen);
bool qs_tls_wants_write(const struct qs_tls_conn *c);

/* Sends up to len bytes as records: the count, or -1 with errno EAGAIN (call
 * again with the same buffer and length, as GnuTLS requires) or another errno. */
ssize_t qs_tls_send(struct qs_tls_conn *c, const void *buf, size_t len);
/* Reads and discards what the peer sent (Logstash sends no data: tickets,
 * alerts): 1 nothing more for now, 0 closed by the peer, -1 error (errno). */
int qs_tls_drain(struct qs_tls_conn *c);
/* Bytes written to the socket since the session began. */
uint64_t qs_tls_wire_bytes(const struct qs_tls_conn *c);
const char *qs_tls_last_error(const struct qs_tls_conn *c);

#endif

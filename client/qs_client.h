/* quicstash client library: one object per QUIC connection to quicstashd,
 * driven by a libevent loop, reporting through callbacks.
 *
 * Events get consecutive sequence numbers (opts.first_seq, +1 per event). The
 * library copies each event and keeps it until the server resolved it (acked =
 * durable, or rejected); after a lost connection it reconnects with backoff and
 * sends every unresolved event again (at-least-once, stable event.id).
 * Callbacks run inside the event loop; do not call qs_client_free() from one
 * (use qs_client_close(), then free after QS_CLIENT_CLOSED). */
#ifndef QS_CLIENT_H
#define QS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"

struct event_base;
struct qs_client;

enum qs_client_state {
	QS_CLIENT_CONNECTED, /* handshake done (also after every reconnect) */
	QS_CLIENT_LOST,      /* connection lost; reconnecting after a backoff */
	QS_CLIENT_GOAWAY,    /* the server asked to move: reconnecting now (not an error) */
	QS_CLIENT_FAILED,    /* fatal (bad certificate, never connected, ...): no retry */
	QS_CLIENT_CLOSED,    /* after qs_client_close() */
};

#define QS_CLIENT_NO_RETRY UINT32_MAX

struct qs_client_opts {
	const char *server_addr; /* "host:port", "[v6]:port", "name:port" */
	const char *trust_file;  /* the server's certificate (DER/PEM) or a PEM CA bundle; read by
				  * every qs_client_new, parsed once for the clients of the process
				  * that find the same bytes in it (client/lib/trust.c) */
	const char *server_name; /* name verified in the certificate; NULL: host of server_addr */
	unsigned streams;        /* concurrent streams (ranges in flight); 0: 4, max 64 */
	bool have_session;       /* else a random session id is made; keep it private
				  * (whoever knows it can send under its event ids) */
	uint8_t session[QS_SESSION_ID_LEN];
	uint64_t first_seq;      /* seq of the first event */
	uint32_t range_events;   /* events per stream before FIN; 0: 4096 */
	uint32_t range_bytes;    /* bytes per stream before FIN; 0: 4 MiB */
	bool raw;                /* one stream of caller-given bytes, no header; no reconnect */
	/* Before the first handshake succeeds, a failure on the server's side that
	 * passes (its TLS internal_error alert, e.g. while its keyholder restarts;
	 * an ICMP "port unreachable" while it restarts) is retried with jittered
	 * exponential backoff at most this many times (0: 8; QS_CLIENT_NO_RETRY:
	 * none) and for at most this long since the first of them (0: 30000 ms).
	 * CONNECTION_REFUSED (busy) is always retried; other handshake failures
	 * (a certificate that does not verify) never are. */
	unsigned handshake_retries;
	unsigned handshake_retry_ms;
	/* Authentication to a server with tenants (docs/PROTOCOL.md, "Authentication"):
	 * a bearer token (copied; at most QS_AUTH_TOKEN_MAX bytes), presented on
	 * the first stream of every connection before any event, and/or a PEM
	 * client certificate and its key. A refusal is final: QS_CLIENT_FAILED
	 * with the server's reason ("unknown token", ...). */
	const void *token;
	size_t token_len;
	const char *client_cert, *client_key;
	/* Never resume a TLS session: every connection does a full handshake
	 * (quicstash-bench --no-resume, to measure what resumption saves). */
	bool no_resume;
	/* The TEST HOOK fields below stay in every build (the library's layout
	 * does not depend on QS_TEST_HOOKS) but only quicstash-send's hidden
	 * options, compiled into test builds alone, set them. */
	/* TEST HOOK (quicstash-send --test-hold-streams): raw mode on this many
	 * streams, each carrying the same bytes and never finished (no FIN), as a
	 * client that starts frames and never completes them would. */
	unsigned raw_hold_streams;
	/* TEST HOOK (quicstash-send --test-unread-answers): answers are read but
	 * their flow-control credit is never given back, as by a client that sends
	 * and never reads: the server must not buffer answers without bound. */
	bool unread_answers;
	/* TEST HOOK (quicstash-send --test-reset-streams N): raw mode; the first N
	 * streams carry the bytes without FIN and are reset (RESET_STREAM) once the
	 * server has them, as by a client that gives up waiting; then one more
	 * stream carries them as usual. */
	unsigned raw_reset_streams;
	/* TEST HOOK (quicstash-send --test-raw-reset): raw mode on one stream whose
	 * bytes go without FIN; once the server has them all the client resets its
	 * sending side (RESET_STREAM, QS_APP_CANCELLED) and keeps reading the
	 * answers, as a client that abandons a partial frame does (docs/PROTOCOL.md). */
	bool raw_reset_read;
	/* TEST HOOK (quicstash-send --test-source-addr IP): the local address to
	 * send from (e.g. 127.0.0.2), as a client on another host would. */
	const char *source_addr;
	bool debug;              /* ngtcp2's log on stderr */
};

struct qs_client_callbacks {
	/* seq was durably stored; tag as given to qs_client_send. */
	void (*on_ack)(void *ud, uint64_t seq, uint64_t tag);
	/* seq was rejected (reported once per seq, even if rejected again after a resend). */
	void (*on_reject)(void *ud, uint64_t seq, uint64_t tag, uint16_t code, const char *reason);
	void (*on_state)(void *ud, enum qs_client_state st, const char *reason);
	/* Every answer as it arrives, in stream order (raw mode, tracing); 'K'
	 * (authenticated, the tenant in reason) too. */
	void (*on_answer)(void *ud, const struct qs_answer *a);
	/* Raw mode: the stream ended; clean = both sides finished without error. */
	void (*on_raw_done)(void *ud, bool clean, const char *reason);
};

/* The token a program was given: the file's one line (--token-file; its
 * trailing newline is not part of the token), or without a file the
 * QUICSTASH_TOKEN variable. 0 with *len = 0: none given; -1 with err. */
int qs_client_token(const char *file, char *out, size_t cap, size_t *len, char *err, size_t errlen);

/* Starts connecting. NULL with a one-line reason in err (bad address, unreadable trust file). */
struct qs_client *qs_client_new(struct event_base *base, const struct qs_client_opts *opts,
				const struct qs_client_callbacks *cb, void *ud, char *err, size_t errlen);
/* Queues one event (copied); returns its seq, or -1 when out of memory. */
int64_t qs_client_send(struct qs_client *c, const void *data, uint32_t len, uint64_t tag);
/* No more events for now: finish the open stream (FIN). Later sends open new ones. */
void qs_client_flush(struct qs_client *c);
/* Raw mode: the whole content of the one stream (copied), FIN after it. */
int qs_client_send_raw(struct qs_client *c, const void *data, size_t len);

size_t qs_client_buffered_bytes(const struct qs_client *c); /* event bytes held */
uint64_t qs_client_unresolved(const struct qs_client *c);   /* queued, neither acked nor rejected */
/* Events whose whole frame was handed to QUIC at least once (a resend counts once);
 * events still queued when the client stops never left. */
uint64_t qs_client_sent(const struct qs_client *c);
/* The limit the server last said it held this client at (a 'T' answer, with
 * ALPN quicstash/1.1: "events-per-second", ...), or NULL if it never did;
 * *notices (may be NULL): how many such answers came. */
const char *qs_client_held_at(const struct qs_client *c, uint64_t *notices);
bool qs_client_connected(const struct qs_client *c);
/* Handshakes of this client that resumed a TLS session with the server's
 * ticket (kept in memory from its last connection). */
uint64_t qs_client_resumed(const struct qs_client *c);
/* Closes the live connection and connects again at once (as when the server
 * says it goes away), with the session ticket: quicstash-bench's reconnect
 * storm. Events not yet acknowledged are resent as after any move. */
void qs_client_reconnect(struct qs_client *c);
/* The largest UDP payload the connection sends now: 1200 at first, then what
 * path MTU discovery found (ngtcp2's probes stop at 1444); 0 while not connected. */
size_t qs_client_path_max_payload(const struct qs_client *c);
void qs_client_session_hex(const struct qs_client *c, char out[2 * QS_SESSION_ID_LEN + 1]);

/* TEST HOOK (quicstash-send --test-rebind-after): moves the live connection
 * to a new local UDP port, as a NAT rebinding would (the old socket is
 * closed; ngtcp2 keeps the connection and the server validates the new
 * path). Returns the new local port, or -1 (no connection, socket error). */
#ifdef QS_TEST_HOOKS
int qs_client_test_rebind(struct qs_client *c);
#endif

/* Closes the connection cleanly; QS_CLIENT_CLOSED follows from the loop. */
void qs_client_close(struct qs_client *c);
void qs_client_free(struct qs_client *c);

#endif

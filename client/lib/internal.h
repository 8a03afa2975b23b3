/* What the client library's files share; not part of the public API. */
#ifndef QS_CLIENT_INTERNAL_H
#define QS_CLIENT_INTERNAL_H

#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "client/lib/window.h"
#include "client/qs_client.h"
#include "common/addr.h"

/* One bidi stream on the live connection: a range of events, or the raw bytes. */
struct qs_stream {
	int64_t id;
	struct qs_range *range; /* NULL for raw, or once the range is finished (detached) */
	uint8_t hdr[QS_STREAM_HEADER_LEN];
	size_t hdr_len, hdr_sent;
	uint64_t write_seq;     /* next event to hand to ngtcp2 */
	size_t write_off;       /* bytes of write_seq already handed over */
	uint64_t qacked_seq;    /* events below it are no longer referenced by ngtcp2 */
	uint64_t offset;        /* stream bytes handed to ngtcp2 */
	size_t raw_sent;
	bool raw, fin_sent, blocked, remote_fin;
	bool auth; /* the authentication stream: c->auth_msg, then FIN */
	/* TEST HOOK (raw_reset_streams): raw bytes without FIN, reset once QUIC-acked */
	bool cancel, cancel_due;
	/* TEST HOOK (raw_reset_read): raw bytes without FIN, then RESET_STREAM once
	 * QUIC-acked; the answers are still read */
	bool reset_read;
	struct qs_answer_decoder dec;
	struct qs_stream *next;
};

/* The most bytes written for one send: one UDP GSO send must stay below 64 KiB
 * with the IP and UDP headers. */
#define QS_TX_BATCH_MAX 65000
#define QS_KEEPALIVE_IDLE (10 * NGTCP2_SECONDS)   /* conn.c: qs_conn_keepalive */
#define QS_KEEPALIVE_WAITING (1 * NGTCP2_SECONDS)
/* io.c arm_timer: how late the timer may fire while nothing of ours waits to
 * be sent, so that our ACK of the server's answers rides on our next events;
 * with ngtcp2's ack delay (an eighth of the RTT) inside the 25 ms
 * max_ack_delay we announce (ngtcp2's default). */
#define QS_ACK_RIDE (10 * NGTCP2_MILLISECONDS)

/* LOST: retried once a connection has worked; BUSY (CONNECTION_REFUSED): always retried;
 * TRANSIENT: a first handshake failing on the server's side (its TLS internal_error
 * alert, an ICMP "port unreachable"), retried within opts.handshake_retries/_ms. */
enum qs_fail_kind { QS_FAIL_NONE = 0, QS_FAIL_LOST, QS_FAIL_BUSY, QS_FAIL_GOAWAY, QS_FAIL_TRANSIENT, QS_FAIL_FATAL };

/* The kind for a failure that passes once the server is back: TRANSIENT until a
 * handshake has worked, LOST (retried without bound) after. */
#define QS_FAIL_PASSING(c) ((c)->ever_connected ? QS_FAIL_LOST : QS_FAIL_TRANSIENT)

struct qs_client {
	struct event_base *base;
	struct qs_client_opts opts;
	struct qs_client_callbacks cb;
	void *ud;
	struct qs_addr remote;
	char server_name[256];
	uint8_t session[QS_SESSION_ID_LEN];
	gnutls_certificate_credentials_t cred;
	struct qs_window win;
	/* The server's last NEW_TOKEN: presented by the next connection so that a
	 * returning client skips the Retry round trip (it is bound to our address). */
	uint8_t token[NGTCP2_CRYPTO_MAX_REGULAR_TOKENLEN];
	size_t tokenlen;
	/* The server's last TLS session ticket (GnuTLS's session data): presented
	 * by the next connection so that it resumes (no certificate, no signature,
	 * no certificate checks). Only in memory, only for this client's server. */
	gnutls_datum_t ticket;
	uint64_t resumed;          /* handshakes that resumed */

	/* the live connection (conn == NULL between connections) */
	int fd;
	struct sockaddr_storage local;
	socklen_t local_len;
	ngtcp2_conn *conn;
	gnutls_session_t tls;
	ngtcp2_crypto_conn_ref conn_ref;
	ngtcp2_ccerr last_error; /* what we send in CONNECTION_CLOSE */
	struct qs_stream *streams;
	struct qs_stream *rr_next; /* round-robin start for writing */
	bool handshake_done;
	bool goaway;               /* the server said 'G': drain, then move */
	bool no_gso;               /* the kernel refused UDP_SEGMENT: one send per packet from now on */
	struct event *read_ev, *timer_ev, *write_ev, *retry_ev, *goaway_ev;

	/* failure noticed inside an ngtcp2 callback, handled after it returns */
	enum qs_fail_kind fail;
	char fail_reason[256];

	bool ever_connected;
	bool probing;              /* keep-alive at QS_KEEPALIVE_WAITING: answers are due */
	bool closing, closed, failed;
	unsigned backoff_ms;
	bool busy_hint;            /* this attempt got a Retry or timed out: back off as from a busy server */
	bool busy_brief;           /* refused "retry later": a storm, which clears in about a second */
	unsigned transient_fails;  /* TRANSIENT failures in a row (reset by a handshake) */
	uint64_t transient_since;  /* when the first of them happened (qs_now) */
	uint64_t sent_events;      /* events whose frame was handed to QUIC at least once */

	/* authentication: "QSA1" u16 n token, on the first stream of each connection */
	uint8_t *auth_msg;
	size_t auth_len;
	bool auth_opened, authed; /* on the live connection; data streams wait for 'K' */
	char held_at[QS_REASON_MAX + 1]; /* the last limit the server said it held us at ('T'), "" if none */
	uint64_t notices;         /* 'T' answers received */

	uint8_t *raw;
	size_t raw_len;
	unsigned raw_streams; /* raw streams open (1, or raw_hold_streams) */
	unsigned raw_opened;  /* raw streams opened in all */
	bool raw_given, raw_reported;

};

/* tls.c */
/* Credentials trusting what file holds (its bytes when read already: the same
 * as reading it, which is what GnuTLS's *_trust_file does); -1 with err. */
int qs_tls_load_trust(gnutls_certificate_credentials_t *cred, const char *file, const gnutls_datum_t *bytes,
		      char *err, size_t errlen);
int qs_tls_session_new(struct qs_client *c);
/* The client certificate and key (both NULL: none); -1 with err. */
int qs_tls_load_client_cert(gnutls_certificate_credentials_t cred, const char *cert, const char *key, char *err,
			    size_t errlen);
void qs_tls_describe_failure(struct qs_client *c, char *buf, size_t len);
void qs_tls_on_handshake(struct qs_client *c); /* counts a resumption */
void qs_tls_forget_ticket(struct qs_client *c);
/* "certificate file F: why" for a trust file that failed to load with rv. */
void qs_tls_trust_error(char *err, size_t errlen, const char *file, int rv);

/* trust.c: the credentials for o's trust file and client certificate, shared
 * with the other clients whose trust file holds the same bytes; -1 with err.
 * Given back with qs_cred_put. */
int qs_cred_get(gnutls_certificate_credentials_t *cred, const struct qs_client_opts *o, char *err, size_t errlen);
void qs_cred_put(gnutls_certificate_credentials_t cred);

/* conn.c */
int qs_conn_open(struct qs_client *c);
void qs_conn_teardown(struct qs_client *c, bool send_close);
void qs_conn_keepalive(struct qs_client *c);
uint64_t qs_now(void);

/* io.c */
void qs_io_write(struct qs_client *c);
void qs_io_schedule_write(struct qs_client *c);
void qs_io_read_cb(evutil_socket_t fd, short what, void *arg);
void qs_io_timer_cb(evutil_socket_t fd, short what, void *arg);

/* streams.c */
void qs_streams_open(struct qs_client *c);
struct qs_stream *qs_streams_pick(struct qs_client *c);
bool qs_streams_idle(struct qs_client *c);
size_t qs_stream_vecs(struct qs_client *c, struct qs_stream *s, ngtcp2_vec *v, size_t max, bool *fin);
void qs_stream_advance(struct qs_client *c, struct qs_stream *s, size_t n, bool fin_requested, size_t total);
void qs_stream_answers(struct qs_client *c, struct qs_stream *s, const uint8_t *data, size_t len);
void qs_stream_qacked(struct qs_client *c, struct qs_stream *s, uint64_t acked_end);
void qs_stream_closed(struct qs_client *c, struct qs_stream *s, bool reset, uint64_t code);
void qs_streams_free(struct qs_client *c);
void qs_streams_release(struct qs_client *c);

/* client.c */
void qs_client_fail(struct qs_client *c, enum qs_fail_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void qs_client_after_io(struct qs_client *c);
void qs_client_on_handshake(struct qs_client *c);
void qs_client_on_goaway(struct qs_client *c, uint32_t ms);

#endif

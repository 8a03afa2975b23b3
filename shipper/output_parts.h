/* The output's parts, one file per job, and what they share. output.h is
 * the API the shipper uses; these are for the output's own files:
 *
 *   output.c           the API: init, new commits, freeze, caught up, free
 *   output_connect.c   the connection: socket, connect, keepalives, up, loss
 *   output_failover.c  after a failure: log once, next address, backoff, DNS
 *   output_tls.c       TLS on the connection (the session itself: tls_out.c)
 *   output_write.c     the write loop: spool records out to socket or file
 *   output_settle.c    the cursor past what Logstash proved it read; drains
 *   output_file.c      the file output (-l file:PATH)
 *   output_amqp.c      the RabbitMQ output (-l amqp://...), publisher confirms
 *   output_amqp_creds.c its credentials file (and the TLS files for amqps://)
 *   output_amqp_tls.c  amqps://: librabbitmq's OpenSSL socket, verified
 *   output_amqp_dial.c its handshake, on a thread of its own
 *   output_balance.c   round-robin over a connection to each Logstash host
 *
 * One struct qs_output (output.h) is their common state; everything runs on
 * the shipper's loop. What differs between the kinds of output is one
 * struct out_kind each; what they share is the reader after the cursor, the
 * failover and backoff (out_fail), and the rule that only what a kind has
 * durably handed over moves the cursor (qs_spool_advance). */
#ifndef QS_SHIPPER_OUTPUT_PARTS_H
#define QS_SHIPPER_OUTPUT_PARTS_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "shipper/output.h"

#define BACKOFF_MIN_MS 100
#define TLS_CHUNK 16384 /* one TLS record of plaintext */
#define OUT_LINGER_BYTES (64u * 1024) /* --logstash-linger: this much waiting is written at once */

/* One kind of output (-l HOST:PORT, file:PATH, amqp://...). Each hook runs
 * on the shipper's loop and never blocks it for long; a NULL hook does nothing. */
struct out_kind {
	const char *name;                       /* the output's name in the log: "logstash HOST:PORT" */
	void (*start)(struct qs_output *o);     /* connect or open; out_up()/out_fail() follow */
	void (*connected)(struct qs_output *o); /* the TCP connect completed (TLS, a handshake, or up) */
	void (*run)(struct qs_output *o);       /* hand over what the reader holds, as far as it can */
	void (*readable)(struct qs_output *o);  /* the peer sent something, or closed */
	void (*tick)(struct qs_output *o);      /* every 100 ms: settle, watch the peer, time out */
	bool (*caught_up)(struct qs_output *o); /* all up to the freeze handed over durably */
	void (*close)(struct qs_output *o);     /* before the socket is closed (may take the fd over) */
};
extern const struct out_kind out_kind_logstash, out_kind_file, out_kind_amqp, out_kind_balance;

/* output.c */
bool out_stream_caught_up(struct qs_output *o);
/* No connection up nor draining: nothing written waits for proof. */
static inline bool out_unconnected(const struct qs_output *o)
{
	return o->state < QS_OUT_UP;
}
int out_init(struct qs_output *o, const struct qs_config *cfg, struct event_base *base, struct qs_spool *spool,
	     const struct out_kind *kind);
/* What the destination took reaches pos: the cursor moves (a lane tells its balancer). */
void out_advance(struct qs_output *o, struct qs_pos pos);

/* output_balance.c */
int out_balance_init(struct qs_output *o);
void out_balance_free(struct qs_output *o);
void out_balance_settled(struct qs_output *o, struct qs_output *lane);
void out_balance_lane_down(struct qs_output *o, struct qs_output *lane);
struct qs_output *out_balance_lane(struct qs_output *o, unsigned i);

/* output_connect.c */
void out_start(struct qs_output *o);
void out_tcp_connect(struct qs_output *o);
void out_tcp_readable(struct qs_output *o);
void out_up(struct qs_output *o);
void out_close(struct qs_output *o);
void out_watch_peer(struct qs_output *o);
void out_on_writable(evutil_socket_t fd, short what, void *arg);
void out_on_readable(evutil_socket_t fd, short what, void *arg);
void out_on_establish_timeout(evutil_socket_t fd, short what, void *arg);
void out_on_retry(evutil_socket_t fd, short what, void *arg);

/* output_failover.c */
/* The output's name without its kind, for the log's peer field. */
const char *out_log_peer(const struct qs_output *o);
void out_fail(struct qs_output *o, const char *what, int err);

/* output_file.c */
/* Any failure of the file output (out_fail): cut back to the last sync, write again from it. */
void out_file_cut_back(struct qs_output *o);
/* n more bytes went into the file. */
void out_file_wrote(struct qs_output *o, size_t n);

/* output_tls.c */
void out_tls_start(struct qs_output *o);
void out_tls_handshake(struct qs_output *o);
void out_tls_readable(struct qs_output *o);
ssize_t out_tls_write(struct qs_output *o, const struct iovec *iov, int n);
size_t out_tls_on_wire(struct qs_output *o, size_t w);

/* output_write.c */
void out_run(struct qs_output *o);
void out_written(struct qs_output *o, size_t n, struct qs_pos pos);
bool out_past_limit(const struct qs_output *o);
void out_on_run(evutil_socket_t fd, short what, void *arg);

/* output_settle.c */
void out_settle(struct qs_output *o);
void out_drain_tick(struct qs_output *o);
void out_drain_read(struct qs_output *o);
void out_on_settle(evutil_socket_t fd, short what, void *arg);
void out_stream_tick(struct qs_output *o);
/* The settle tick's pace: every 100 ms, or stopped while a Logstash output
 * has nothing to prove, write or time out (up with everything settled, or
 * down between its reconnections); after every tick and pass, and once a
 * second from the shipper's status timer (qs_output_pace). */
void out_tick_pace(struct qs_output *o);

/* output_file.c */
void out_file_start(struct qs_output *o);

/* output_amqp_creds.c: user:password for the broker, read before confinement */
struct qs_amqp_creds {
	char user[256];
	char pass[256];
	/* amqps://: PEM read before confinement (the CA: --logstash-ca or the system's bundle) */
	char *ca, *cert, *key;
	size_t ca_len, cert_len, key_len;
};
void qs_amqp_creds_free(struct qs_amqp_creds *c);

/* Where and how a handshake connects: a copy taken on the loop, so that the
 * handshake's thread (output_amqp_dial.c) reads nothing the loop may change. */
struct qs_amqp_target {
	const struct qs_config *cfg;
	const struct qs_amqp_creds *creds;
	char name[sizeof(((struct qs_config *)0)->logstash_name[0])]; /* the -l entry (TLS names its host) */
	struct sockaddr_storage ss;  /* its address, resolved by the supervisor */
	unsigned timeout_s;          /* --logstash-timeout */
};

/* output_amqp_tls.c: amqps:// on conn (an amqp_connection_state_t): a TLS
 * socket connected to the target and verified. 0, or -1 and why. */
int out_amqps_open(const struct qs_amqp_target *t, void *conn, char *err, size_t errlen);
/* Before confinement: OpenSSL's initialisation reads its configuration. */
void out_amqps_prepare(void);

/* output_amqp.c */
int out_amqp_init(struct qs_output *o, struct qs_output_opened *op); /* takes op->amqp over */

void out_amqp_report(const struct qs_output *o, struct qs_output_report *r);
void out_amqp_free(struct qs_output *o);

#endif

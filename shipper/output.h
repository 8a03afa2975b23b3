/* The output: newline-delimited JSON (Logstash tcp input, json_lines codec)
 * over TCP, appended to a local file, or one persistent message per event to
 * RabbitMQ. It reads the spool after the cursor and advances the in-memory
 * cursor past every record the destination durably took: for a file once
 * written, for TCP once the bytes have settled (settle.h), since json_lines
 * has no acknowledgement (docs/SPOOL.md), for RabbitMQ once the broker
 * confirmed the message (publisher confirms). */
#ifndef QS_SHIPPER_OUTPUT_H
#define QS_SHIPPER_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "shipper/reader.h"
#include "shipper/settle.h"

struct qs_config;
struct qs_spool;
struct qs_tls_creds;
struct qs_tls_conn;
struct event_base;
struct event;
struct out_kind;
struct out_amqp;
struct qs_amqp_creds;

/* DRAINING: up, everything written, our FIN sent: waiting for Logstash's FIN,
 * the proof that it read every byte (settle.h). */
enum qs_out_state { QS_OUT_DOWN = 0, QS_OUT_CONNECTING, QS_OUT_HANDSHAKE, QS_OUT_UP, QS_OUT_DRAINING };

struct qs_output {
	const struct qs_config *cfg;
	const struct out_kind *kind; /* logstash (TCP/TLS), file or amqp (output_parts.h) */
	struct out_amqp *amqp;       /* the AMQP kind's own state */
	struct out_balance *bal;     /* --logstash-balance round-robin: the lanes (output_balance.c) */
	struct qs_output *parent;    /* a lane: its balancer */
	bool bounded;                /* a lane: write nothing past limit (the end of its batch) */
	uint64_t connects, failures_total; /* since start: for qs_output_report */
	struct event_base *base;
	struct qs_spool *spool;
	struct qs_reader rd;
	int fd;
	int file_fd; /* file output: opened once before the shipper drops privileges */
	/* file output: its size as written by us, at the last record written
	 * whole, and at the last sync (without fsync: the last persist) with the
	 * spool position that covered; a failed write or sync cuts the file back
	 * to that and writes again from there (output_file.c) */
	uint64_t file_end, file_whole, file_synced;
	struct qs_pos file_synced_pos;
	enum qs_out_state state;
	struct event *wev, *rev, *retry_ev, *run_ev, *settle_ev;
	struct event *estab_ev; /* connect plus TLS handshake deadline */
	struct qs_tls_creds *tls_creds; /* --logstash-tls; NULL: plain TCP */
	struct qs_tls_conn *tls;        /* the session on fd */
	uint8_t *tls_buf;               /* plaintext of the record being sent */
	size_t tls_len;
	bool tls_pending;               /* tls_buf must be offered again (EAGAIN) */
	uint64_t wire_mark;             /* session's wire bytes already counted as written */
	struct qs_settle settle; /* TCP: written bytes waiting to count as taken */
	unsigned backoff_ms;
	unsigned addr;     /* TCP: index of the --logstash-addr entry in use */
	struct qs_addr addrs[QS_MAX_LOGSTASH]; /* each entry's address: resolved at start, then again
						* by the supervisor on request (qs_output_resolved) */
	int ctl_fd;        /* to ask the supervisor; -1: never ask */
	unsigned failures; /* since the last healthy connection: every n-th one backs off */
	uint64_t up_since_ms;
	uint64_t unanswered_since_ms; /* first tick with retransmissions or probes unanswered, 0: none */
	uint64_t drain_since_ms;      /* DRAINING: when our FIN went out */
	uint64_t last_write_ms;       /* when bytes last went to Logstash */
	uint64_t unproven_since_ms;   /* last tick with nothing unproven (output_settle.c, tail_stale) */
	bool idle;                    /* the last pass found nothing more to write */
	bool tick_slow;               /* the settle tick runs at the idle pace (out_tick_pace) */
	bool drained;                 /* frozen, and Logstash proved it read all up to the limit */
	bool redial;                  /* reconnecting after a drain: no "connected" line */
	unsigned down_logged; /* bit per address: its failure was logged in this outage */
	bool dirty; /* file output: written since the last sync */
	uint64_t offered; /* commits shipped from the shipper's memory, not read back */
	size_t linger_bytes; /* committed since the last write pass (qs_output_kick) */
	bool frozen;      /* a stop is coming: ship nothing after limit */
	struct qs_pos limit;
	char name[4200];
};

/* What each kind of output must open before the shipper confines itself (as
 * the user it starts as, before the chroot): the output file, the TLS
 * credentials, the AMQP credentials. */
struct qs_output_opened {
	int file_fd; /* -l file:PATH, else -2 */
	struct qs_tls_creds *tls;
	struct qs_amqp_creds *amqp;
};
/* 0, or -1 (logged; nothing left open). */
int qs_output_open(const struct qs_config *cfg, struct qs_output_opened *op);
void qs_output_opened_free(struct qs_output_opened *op);
/* File output: opens the file. Returns the descriptor, -1 on error (logged),
 * or -2 for another output. */
int qs_output_open_file(const struct qs_config *cfg);
/* --logstash-tls: the credentials (NULL: no TLS, or an error, logged;
 * cfg->logstash_tls tells which). */
struct qs_tls_creds *qs_output_tls_load(const struct qs_config *cfg);
/* -l amqp://...: --amqp-credentials (guest:guest without it). NULL: not AMQP,
 * or an error (logged; cfg->output_is_amqp tells which). */
struct qs_amqp_creds *qs_output_amqp_load(const struct qs_config *cfg);
/* Takes what op holds over (and clears op). */
int qs_output_init(struct qs_output *o, const struct qs_config *cfg, struct event_base *base,
		   struct qs_spool *spool, struct qs_output_opened *op);
/* The output's state for the status line and metrics. */
struct qs_output_report {
	enum qs_out_state state;
	const char *name;   /* "logstash HOST:PORT", "file PATH", "amqp HOST:PORT" */
	uint64_t connects;  /* connections made (or the file opened) since start */
	uint64_t failures;  /* connections lost or refused since start */
	uint64_t written;   /* events written or published since start (not yet all taken) */
	uint64_t confirmed; /* AMQP: events the broker confirmed since start (0 for the others) */
	uint64_t in_flight; /* AMQP: published, not yet confirmed */
};
void qs_output_report(const struct qs_output *o, struct qs_output_report *r);
/* New records were committed: ship them when possible. buf[0..len) are
 * those records as written at pos (see qs_reader_offer). */
void qs_output_kick(struct qs_output *o, struct qs_pos pos, const uint8_t *buf, size_t len);
/* Once a second (the shipper's status timer): an output whose 100 ms tick
 * stopped while it had nothing to do gets it back if it has something now
 * (a pass that writes gets it back at once). */
void qs_output_pace(struct qs_output *o);
/* A stop is coming: ship what is committed now and nothing after it, so that
 * the output can catch up while the shipper goes on taking events. */
void qs_output_freeze(struct qs_output *o);
/* The stop's first part is over (shipper.c): write nothing more than the
 * record in hand, so that what Logstash holds can be proven read in time. */
void qs_output_stop_writing(struct qs_output *o);
/* True when every committed record (up to the freeze, if frozen) has been
 * written and has settled, or when no connection is up: nothing written
 * waits for proof then (what a broken connection left is sent again by
 * design), and the next shipper writes the rest. */
bool qs_output_caught_up(struct qs_output *o);
/* Committed bytes not yet written to Logstash (or the file): the backlog the
 * status line shows. Written but not yet proven read (settle.h) is not in it:
 * that tail stays after the cursor until proven, up to the peer's unread bound. */
uint64_t qs_output_unsent(const struct qs_output *o);
/* File output in fsync mode: make written lines durable before the cursor
 * says they are shipped. */
int qs_output_sync(struct qs_output *o); /* 0, or -1: do not persist the cursor */
void qs_output_free(struct qs_output *o);
/* The supervisor's answer to a QS_CTL_RESOLVE the output sent: the next
 * connect to that entry goes to the address it resolves to now. */
struct qs_ctl_resolved;
void qs_output_resolved(struct qs_output *o, const struct qs_ctl_resolved *m);

#endif

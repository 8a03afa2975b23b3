/* The output: newline-delimited JSON (Logstash tcp input, json_lines codec)
 * over TCP, or appended to a local file. It reads the spool after the cursor
 * and advances the in-memory cursor past every record whose bytes were fully
 * written: for a file at once, for TCP once they have settled (settle.h),
 * since json_lines has no acknowledgement (docs/SPOOL.md). */
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

/* DRAINING: up, everything written, our FIN sent: waiting for Logstash's FIN,
 * the proof that it read every byte (settle.h). */
enum qs_out_state { QS_OUT_DOWN = 0, QS_OUT_CONNECTING, QS_OUT_HANDSHAKE, QS_OUT_UP, QS_OUT_DRAINING };

struct qs_output {
	const struct qs_config *cfg;
	struct event_base *base;
	struct qs_spool *spool;
	struct qs_reader rd;
	int fd;
	int file_fd; /* file output: opened once before the shipper drops privileges */
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
	bool drained;                 /* frozen, and Logstash proved it read all up to the limit */
	bool redial;                  /* reconnecting after a drain: no "connected" line */
	unsigned down_logged; /* bit per address: its failure was logged in this outage */
	bool dirty; /* file output: written since the last sync */
	uint64_t offered; /* commits shipped from the shipper's memory, not read back */
	bool frozen;      /* a stop is coming: ship nothing after limit */
	struct qs_pos limit;
	char name[4200];
};

/* File output: opens the file (as the user the shipper starts as, before it
 * confines itself). Returns the descriptor, -1 on error (logged), or -2 for
 * TCP output. */
int qs_output_open_file(const struct qs_config *cfg);
/* --logstash-tls: the credentials, read before the shipper confines itself
 * (NULL: no TLS, or an error, logged; cfg->logstash_tls tells which). */
struct qs_tls_creds *qs_output_tls_load(const struct qs_config *cfg);
/* Takes file_fd and tls_creds (may be NULL) over. */
int qs_output_init(struct qs_output *o, const struct qs_config *cfg, struct event_base *base,
		   struct qs_spool *spool, int file_fd, struct qs_tls_creds *tls_creds);
/* New records were committed: ship them when possible. buf[0..len) are
 * those records as written at pos (see qs_reader_offer). */
void qs_output_kick(struct qs_output *o, struct qs_pos pos, const uint8_t *buf, size_t len);
/* A stop is coming: ship what is committed now and nothing after it, so that
 * the output can catch up while the shipper goes on taking events. */
void qs_output_freeze(struct qs_output *o);
/* True when every committed record (up to the freeze, if frozen) has been
 * written and has settled. */
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

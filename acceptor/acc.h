/* Internal state of the acceptor process, shared by its source files.
 *
 * One process, one event loop, no threads: every structure here is touched
 * only from libevent callbacks. Frames are addressed by pool index (tickets),
 * never by pointer, because the pool grows with realloc. */
#ifndef QS_ACCEPTOR_ACC_H
#define QS_ACCEPTOR_ACC_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/eventid.h"
#include "common/wire.h"
#include "ipc/zsock.h"
#include "ipc/msg.h"
#include "ipc/runtime.h"

struct event;
struct event_base;
struct qs_config;
struct qs_zwatch;
struct qs_chan_in;
struct qs_sl_region;
struct qs_sl_row;

/* Connection storms (docs/ARCHITECTURE.md): a half-open connection is given
 * up after ACC_HANDSHAKE_TIMEOUT, and while ACC_MAX_HANDSHAKING handshakes
 * are in progress new connections are refused as busy (the clients back off
 * with jitter) instead of queued behind each other until their clients
 * time out: under a second of this acceptor's handshakes on the 2-core
 * benchmark host, well inside a client's 10 s (docs/PERFORMANCE.md). */
#define ACC_HANDSHAKE_TIMEOUT (10 * NGTCP2_SECONDS)
#define ACC_MAX_HANDSHAKING 1024
/* ACKs ride on answers (issue 27, quic_conn.c conn_update_timer): while a
 * connection waits for answers and has nothing else to send, its timer may
 * fire this late, so the QUIC ACK of its packets leaves with the answers
 * instead of in a packet of its own; within the 25 ms max_ack_delay we
 * announce (ngtcp2's default). A gathered batch with several packets of one
 * client no longer forces an ACK at once either (ack_thresh). */
#define ACC_ACK_RIDE (5 * NGTCP2_MILLISECONDS)
#define ACC_ACK_THRESH 8
/* A client back with a valid Retry token (it answered our Retry: its address
 * is real, and it already paid a round trip) is let in up to twice the cap:
 * refused there, the Retry, its second Initial and its whole attempt were
 * spent for nothing. New attempts are refused at ACC_MAX_HANDSHAKING before
 * any Retry, so the validated ones over it are at most the Retries
 * outstanding, and the state stays bounded. */
#define ACC_VALIDATED_CAP(cap) (2 * (cap))
/* An Initial of a new attempt that waited this long in the socket's receive
 * queue (kernel arrival time, SO_TIMESTAMPNS) is dropped unread: its client
 * has already retransmitted it (a client's first PTO with ngtcp2's 333 ms
 * initial RTT is ~1 s; the copy is behind it in the queue) or given up, and
 * a Retry, a refusal or a handshake for it would be spent on an attempt
 * that has moved on. Dropping is cheap, so a storm's queue drains down to
 * this wait instead of growing past it (docs/PERFORMANCE.md round 17). */
#define ACC_STALE_INITIAL_NS (1000ull * 1000000)
#define ACC_HELD_CAP (512ull * 1024 * 1024) /* bytes of unresolved frames before credit is deferred */
#define ACC_RESEND_AFTER_NS (30ull * 1000000000)
#define ACC_STATUS_STALE_NS (5ull * 1000000000)
#define ACC_SHUTDOWN_WAIT_NS (5ull * 1000000000)
#define ACC_NONE (-1)
/* The largest QUIC packet taken (longer ones are dropped), and so the
 * max_udp_payload_size we announce: a client's PMTU probes stop there. */
#define ACC_MAX_PKT 2048
/* Answers a connection may hold unacknowledged by its client before the
 * client's flow-control credit is held back (streams.c) and its bytes wait
 * undecoded (pending.c): a client that sends and never reads must not make
 * the acceptor buffer rejections without end. */
#define ACC_ANSWERS_HELD_MAX (1024 * 1024)
/* A connection's flow-control window at the start; it grows to conn_window with use (quic_conn.c). */
#define ACC_CONN_WINDOW_INITIAL (2ull * 1024 * 1024)

/* One chunk of a stream's send data; chunks never move, because ngtcp2 keeps
 * pointers into them until the peer acknowledges the bytes. */
struct acc_chunk {
	struct acc_chunk *next;
	uint64_t off; /* stream offset of data[0] */
	size_t len, cap;
	uint8_t data[];
};

struct acc_sendbuf {
	struct acc_chunk *head, *tail;
	uint64_t sent;  /* stream offset handed to ngtcp2 so far */
	uint64_t acked; /* stream offset the peer acknowledged */
	uint64_t end;  /* stream offset after the last appended byte */
};

/* Stream bytes not decoded yet: the connection holds its cap of frames (pending.c). */
struct acc_pending {
	uint8_t *buf;
	size_t off, len, cap; /* buf[off..len) is waiting */
};

/* A frame (or an immediate rejection) waiting for its answer. */
struct acc_frame {
	uint32_t gen; /* bumped on free: stale tickets no longer match */
	bool in_use, resolved, forwarded, queued;
	struct acc_stream *st;
	int32_t next;           /* next frame of the same stream, in seq order */
	int32_t q_prev, q_next; /* queue of frames waiting to be handed to ZeroMQ */
	uint64_t seq;
	uint8_t *data;
	uint32_t len;
	uint32_t credit; /* flow-control bytes returned when resolved */
	uint64_t recv_ns;   /* CLOCK_REALTIME */
	uint64_t sent_mono; /* last hand-off to ZeroMQ */
	uint16_t code;
	char *reason;
};

struct acc_stream {
	struct acc_conn *c;
	int64_t id;
	struct acc_stream *prev, *next; /* the connection's streams */
	struct acc_stream *owed_prev, *owed_next;
	bool in_owed;
	uint64_t owed; /* credit deferred by the global cap */
	uint64_t answer_owed; /* credit deferred while the connection's answers go unread */
	uint64_t conn_early;  /* connection credit given for the frame being reassembled */
	struct acc_pending pend;
	struct qs_frame_decoder dec;
	size_t dec_counted; /* its buffer as counted in conn and acceptor totals (incomplete.c) */
	/* event.id's session part (common/eventid.h): the keyed hash of the
	 * header's session id, or random without a header. Never the raw id. */
	uint8_t session[QS_SESSION_ID_LEN];
	bool fin_pending; /* the client's FIN arrived behind pending bytes */
	bool fin_in;  /* the client's FIN arrived and everything before it was decoded */
	bool fin_out; /* we decided to end our side */
	bool fin_sent, goaway;
	int32_t head, tail; /* unresolved frames, in order */
	uint64_t next_ack;  /* every seq below is resolved */
	uint64_t ack_sent;
	bool ack_dirty;
	bool held_told; /* its client was sent a limit notice ('T') */
	struct acc_sendbuf tx;
};

enum acc_conn_state { ACC_CONN_ACTIVE = 0, ACC_CONN_CLOSING, ACC_CONN_DRAINING };

struct acc_conn {
	struct acc *a;
	ngtcp2_conn *qc;
	gnutls_session_t tls;
	ngtcp2_crypto_conn_ref ref;
	struct acc_transcript *ts; /* until the server's Certificate (transcript.c) */
	bool ts_done;
	bool ticketed;        /* gets session tickets (ticket.c): no client certificate */
	uint64_t ticket_mono; /* when it was last sent one */
	struct event *timer;
	struct acc_conn *prev, *next;
	struct acc_conn *dirty_next;
	bool dirty;
	bool dirty_write;     /* something besides packets read wants a write (acc_conn_flush) */
	uint32_t rx_unacked;  /* packets read since we last sent one: ACKs ride on answers */
	struct acc_stream *streams;
	ngtcp2_cid odcid; /* the client's first DCID, also in the CID map */
	ngtcp2_ccerr err;
	enum acc_conn_state state;
	uint8_t closebuf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
	size_t closelen;
	uint64_t close_last_mono;
	bool hs_done; /* handshake completed (counted out of acc.handshaking) */
	uint64_t incomplete; /* bytes its streams' frame decoders hold (frames not yet complete) */
	uint32_t frames;     /* entries unresolved on its streams (frames and rejections) */
	bool pending;        /* some stream holds undecoded bytes (pending.c) */
	size_t answers_held; /* bytes of answer chunks not yet acknowledged by the client */
	bool answers_full;   /* credit is held back until the client reads its answers */
	uint64_t conn_debt;  /* connection credit given early for frames now complete */
	int32_t src;         /* its entry in the per-source table, ACC_NONE: not counted */
	const struct qs_tenant *tenant; /* authenticated as (auth.c); NULL: not (yet), or --auth none */
	uint64_t credential;            /* the credential's id (common/tenants.h), in its frames' records */
	bool revoked;                   /* a parser said the credential is gone: close once answered */
	struct qs_sl_row *lim_row;      /* the shared row it is counted open in (tenant_limit.c); NULL: none */
	char close_reason[QS_REASON_MAX + 1]; /* a refusal's reason, kept until the close is written */
};

/* Per-source limits (srclimit.c): a bounded table of sources. */
#define QS_SRC_KEYLEN 9 /* family byte + IPv4 address or IPv6 /64 */
struct acc_src;
struct acc_srctab {
	struct acc_src *e;
	uint32_t *buckets; /* index + 1 of a chain's first entry, 0: none */
	uint32_t cap, used, nbuckets;
	int32_t idle_head, idle_tail; /* sources without connections, idle the longest first */
	uint32_t cap_conns;           /* connections per source (this acceptor's share); 0: no limit */
	uint32_t rate;                /* handshakes a second per source (its share); 0: no limit */
	uint64_t interval, tolerance; /* GCRA of the handshake rate (ns); interval 0: no limit */
	uint64_t seed;
	uint64_t lines_mono;
	unsigned lines;
};

/* What recent new attempts were answered, for their copies (attempts.c). */
struct acc_attempt_slot;
struct acc_attempts {
	struct acc_attempt_slot *slot;
	uint64_t seed;
	uint32_t memory_ms; /* how long an answer is remembered (tests shorten it) */
};

struct acc_cidmap_node;
struct acc_cidmap {
	struct acc_cidmap_node **slots;
	size_t nslots, count;
	uint64_t seed; /* the hash's key (cidmap.c) */
};

struct acc {
	const struct qs_config *cfg;
	struct qs_runtime rt;     /* event loop, signals, control socket (ipc/runtime.h) */
	struct event_base *base; /* rt.base */
	int udp_fd;
	struct sockaddr_storage local;
	socklen_t local_len;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio; /* parsed once: ACC_TLS_PRIORITY (tls.c) */
	bool use_keyholder; /* sign through the keyholder; the key never enters this process */
	gnutls_x509_crt_t *crts;
	unsigned ncrts;
	uint8_t secret[QS_SECRET_LEN];
	uint8_t eventid_key[QS_EVENTID_KEY_LEN]; /* K_id, derived from secret */
	uint8_t ticket_key[64];                  /* TLS session tickets' master key, derived from secret (ticket.c) */
	bool tickets;                            /* session tickets offered (not under --auth mtls) */
	uint64_t ticket_refresh_ns;              /* a connection's next ticket after (ticket.c) */
	uint64_t n_resumed, logged_resumed;      /* handshakes that resumed a session */
	uint64_t stream_window, conn_window; /* conn_window: what a connection's window may grow to */
	uint32_t conn_frames_cap; /* unresolved frames per connection (pending.c) */

	struct acc_cidmap map;
	struct acc_srctab src;
	uint64_t n_src_refused, logged_src_refused;
	struct acc_conn *conns;
	unsigned nconns;
	struct acc_conn *dirty;
	uint64_t refuse_log_mono;
	unsigned refused;
	unsigned handshaking; /* connections whose handshake is not complete */
	uint64_t n_hs_refused, logged_hs_refused; /* refused: hs_cap handshakes in progress */
	uint64_t n_stale, logged_stale;           /* first Initials dropped: ACC_STALE_INITIAL_NS in the queue */
	uint64_t n_deferred;                      /* new attempts' Initials read after a batch's established packets */
	struct acc_attempts attempts;
	uint64_t n_copies, logged_copies; /* copies of an answered attempt, answered alike */
	uint64_t initial_wait_max_ns;             /* the longest a first Initial waited in the queue */
	unsigned hs_cap; /* ACC_MAX_HANDSHAKING (tests may lower it: QS_TEST_MAX_HANDSHAKING) */
	unsigned retry_cur, retry_prev; /* Retries not yet answered, this and the last half second */
	unsigned retry_sent_w, retry_ans_w, retry_ans_pct; /* Retries and answers since the share was last measured; the share % */
	uint64_t retry_win_mono;

	/* stateless resets: token bucket, and counters logged at most once a second */
	uint64_t sr_bucket;
	uint64_t sr_refill_mono;
	uint64_t stat_log_mono;
	uint64_t n_accepted, n_resets, n_misrouted, n_retries, n_bad_tokens;
	uint64_t logged_accepted, logged_resets, logged_misrouted, logged_retries, logged_bad_tokens;
	uint64_t n_acked, n_rejected; /* frames resolved durable / rejected, for the status report */
	uint64_t n_frames;            /* frames decoded (receive moderation counts a read's: udp.c) */
	uint64_t n_auth_refused, logged_auth_refused; /* connections refused authentication (auth.c) */
	struct qs_mp_tenant **tcount; /* per tenant of cfg->tenants: its row in the metrics page (tenant_count.c) */
	struct acc_tenant_limit *tlimit; /* per tenant of cfg->tenants (tenant_limit.c) */
	struct qs_sl_region *limits;     /* the tenants' state all acceptors share (QS_CHILD_LIMITS_FD) */
	struct qs_sl_region *limits_own; /* this acceptor's alone: without the shared one, or it is full */
	bool limits_tried;
	uint64_t report_mono;         /* last QS_CTL_STATUS to the supervisor */
	uint64_t resend_walk_mono;    /* last walk of the pool for frames to resend (inflight.c) */

	struct event *udp_ev, *flush_ev, *tick_ev;
	struct event *rx_gather_ev; /* receive moderation: the next read after this wait (udp.c) */
	uint64_t rx_gather_us;      /* 0: read on every packet's arrival */
	uint64_t rx_newest_ns;      /* realtime arrival of the newest packet read (SO_TIMESTAMPNS) */
	uint64_t rx_pkt_ns;         /* realtime arrival of the datagram in hand, 0 if unknown */
	bool tick_fast; /* the tick runs at the busy pace (acceptor.c, tick_arm) */

	void *zctx;
	/* One PUSH per parser slot (QS_EP_ACCEPTOR_FRAMES): batches go round the
	 * slots that take them; a slot whose parser said BYE gets nothing more
	 * but the end of its frames, until a later process of it says HELLO. */
	void *push[QS_MAX_PARSERS];
	struct qs_zwatch *push_w[QS_MAX_PARSERS];
	unsigned npush, push_next;
	/* The last batch found no parser taking it: new frames wait for the next
	 * loop pass or a socket that takes more (inflight.c), not one more try each. */
	bool push_blocked;
	struct acc_slot {
		bool paused, end_due;
		uint32_t bye_gen;
		uint32_t hello_gen; /* the newest generation that said HELLO (0: none; generations start at 1) */
	} slot[QS_MAX_PARSERS];
	struct qs_chan_in *answers;

	struct acc_frame *pool;
	uint32_t pool_cap, pool_used;
	uint32_t ticket_epoch; /* in every ticket: the low byte of this process's generation (ipc/msg.h) */
	int32_t free_head;
	int32_t q_head, q_tail;
	size_t q_bytes;
	uint32_t q_frames; /* frames in that queue */
	struct qs_batch batch;
	uint64_t held;
	struct acc_stream *owed;
	/* Bytes of incomplete frames in all decoders, and this acceptor's share of
	 * --max-incomplete-bytes: beyond it the largest holder is closed. */
	uint64_t incomplete, incomplete_cap;
	uint64_t n_shed, logged_shed, shed_log_mono;

	bool accepting, status_seen;
	uint64_t status_mono, start_mono;
	uint64_t pass_real_ns; /* CLOCK_REALTIME read once per loop pass for the frames received in it; 0: stale */

	int stopping; /* 0 run, 1 G sent, wait for answers, 2 wait for their acks, 3 closed, exit */
	uint64_t stop_began, stop_deadline;
};

/* acceptor.c */
/* This acceptor's IPC channel (endpoints, .acceptor in records): see ipc/zsock.h
 * and, for its slot and steering key, docs/ARCHITECTURE.md, "Glossary". */
static inline unsigned acc_channel(const struct acc *a)
{
	return qs_acceptor_channel(a->cfg->steer_key, a->cfg->acceptors);
}
void acc_schedule_flush(struct acc *a);

/* tls.c */
int acc_tls_load(struct acc *a);
bool acc_tls_notices(const struct acc_conn *c); /* the client took ALPN quicstash/1.1 */
int acc_tls_keyholder(struct acc *a, const char *sock_path);
int acc_tls_session(struct acc *a, struct acc_conn *c);
/* transcript.c: a handshake hook's share (the transcript hash for the
 * keyholder), hooked for GNUTLS_HOOK_BOTH; acc_transcript_free when the
 * connection goes. */
int acc_transcript_hook(gnutls_session_t session, unsigned htype, unsigned when, bool incoming,
			const gnutls_datum_t *msg);
void acc_transcript_free(struct acc_conn *c);

/* ticket.c: TLS 1.3 session resumption (docs/ARCHITECTURE.md "Session resumption") */
int acc_ticket_key(struct acc *a);                        /* from the secret, at start */
int acc_ticket_session(struct acc *a, struct acc_conn *c); /* a new connection's session takes tickets */
void acc_ticket_handshake(struct acc_conn *c);            /* counts a resumption; a ticket if no client cert */
void acc_ticket_refresh(struct acc_conn *c);              /* a new ticket for a long connection */

/* auth.c: the connection's tenant. The int functions return -1 after setting
 * the connection's close error (inside ngtcp2 callbacks: fail the callback). */
struct qs_tenant;
int acc_auth_load(struct acc *a);                       /* --client-ca into the credentials */
void acc_auth_session(struct acc *a, struct acc_conn *c); /* asks for a client certificate */
int acc_auth_handshake(struct acc_conn *c);             /* the certificate, once the handshake is done */
int acc_auth_token(struct acc_stream *s, const struct qs_dec_out *out); /* QS_DEC_AUTH */
int acc_auth_require(struct acc_conn *c);               /* before anything is taken from a stream */
void acc_auth_revoke(struct acc_conn *c);               /* a frame was rejected unauthenticated */
bool acc_auth_close_revoked(struct acc_conn *c);        /* closes it once all is answered: true */

/* tenant_count.c: per-tenant counters, in the metrics page (the supervisor logs them) */
struct qs_mp_tenant;
int acc_tenant_count_init(struct acc *a);
void acc_tenant_count_free(struct acc *a);
void acc_tenant_count_conn(const struct acc_conn *c, int delta); /* +1 authenticated, -1 gone */
void acc_tenant_count_frame(const struct acc_conn *c, uint16_t code, uint32_t bytes);
/* Time the connection's tenant was held back by its limits (flow control calls it). */
void acc_tenant_count_throttled(const struct acc_conn *c, uint64_t ns);

/* tenant_reload.c: a reload applied in place (QS_CTL_TENANTS): cfg->tenants
 * is already the new table, old the one it replaced (freed here). */
struct qs_tenants;
void acc_tenants_reload(struct acc *a, struct qs_tenants *old);

/* tenant_limit.c: per-tenant limits, for the whole server (common/shared_limits.h) */
struct acc_tenant_limit;
int acc_limit_init(struct acc *a);
void acc_limit_free(struct acc *a);
/* After a reload in place: each tenant still there (by id) keeps its holds
 * from old (indexed like old_ts); its buckets and counts are in its shared row. */
void acc_limit_carry(struct acc *a, const struct acc_tenant_limit *old, const struct qs_tenants *old_ts);
/* Counts the new connection of that tenant open, or says why it is refused
 * (max-connections, all acceptors together): NULL admitted. */
const char *acc_limit_admit(struct acc_conn *c, const struct qs_tenant *tenant);
void acc_limit_gone(struct acc_conn *c); /* no longer open */
/* A complete frame of len bytes: 0 to forward it (its tokens taken), or the
 * code to reject it with (why: the reason). */
uint16_t acc_limit_frame(struct acc_conn *c, uint32_t len, char *why, size_t whylen);
bool acc_limit_held(struct acc_conn *c);             /* over a rate: decode nothing now */
/* Whether anything can hold it (a rate, a spool quota, a hold to end): when
 * not, a decode pass asks acc_limit_held nothing per frame. Only the loop
 * changes the answer (a reload, the shipper's word), never a frame. */
bool acc_limit_may_hold(const struct acc_conn *c);
const char *acc_limit_held_at(const struct acc_conn *c); /* the limit last held at */
void acc_limit_tick(struct acc *a);
/* The shipper's STATUS: the n tenant ids (u64, host order, unaligned) over their spool-quota. */
void acc_limit_quota(struct acc *a, const uint8_t *ids, uint32_t n);

/* secret.c */
int acc_secret_load(struct acc *a);

/* cidmap.c */
int acc_cidmap_init(struct acc_cidmap *m); /* draws the hash's key */
int acc_cidmap_put(struct acc_cidmap *m, const ngtcp2_cid *cid, struct acc_conn *c);
struct acc_conn *acc_cidmap_get(const struct acc_cidmap *m, const uint8_t *cid, size_t len);
void acc_cidmap_del(struct acc_cidmap *m, const ngtcp2_cid *cid);
void acc_cidmap_free(struct acc_cidmap *m);
size_t acc_cidmap_longest(const struct acc_cidmap *m); /* the longest chain (tests) */

/* Keyed FNV-1a with a shift mixed in, for tables whose keys a client
 * chooses (srclimit.c, attempts.c, cidmap.c): start h from a random seed. */
static inline uint64_t acc_hash_mix(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h = (h ^ p[i]) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

/* attempts.c: the answer a new attempt's DCID got from this address in the
 * last seconds (NULL: none); a refusal's reason, or NULL for a Retry. */
int acc_attempts_init(struct acc *a);
void acc_attempts_free(struct acc *a);
const struct acc_attempt_slot *acc_attempt_seen(const struct acc *a, const ngtcp2_pkt_hd *hd,
						const struct sockaddr *from);
const char *acc_attempt_reason(const struct acc_attempt_slot *s);
void acc_attempt_note(struct acc *a, const ngtcp2_pkt_hd *hd, const struct sockaddr *from, const char *reason);

/* srclimit.c */
int acc_src_init(struct acc *a);
void acc_src_free(struct acc *a);
/* Whether a new connection from this address is over its source's limits:
 * the reason for the peer, or NULL; *idx: the source's entry, if any. */
const char *acc_src_check(struct acc *a, const struct sockaddr *from, int32_t *idx);
/* Counts a new connection (and a handshake) for its source; its entry or ACC_NONE. */
int32_t acc_src_admit(struct acc *a, const struct sockaddr *from);
void acc_src_release(struct acc *a, int32_t idx);
void acc_src_refused(struct acc *a, int32_t idx, const char *why); /* logs, rate-limited */

/* udp.c */
int acc_udp_init(struct acc *a);
/* Receive moderation's wait (udp.c): wait_us counted from the newest packet's
 * arrival (realtime ns; 0: unknown), as seen at now_ns. */
uint64_t acc_gather_wait_us(uint64_t wait_us, uint64_t newest_ns, uint64_t now_ns);
/* Queues a packet; acc_udp_flush() (end of every loop pass) sends the queue. */
void acc_udp_send(struct acc *a, const struct sockaddr *to, socklen_t tolen, const uint8_t *pkt, size_t len);
void acc_udp_flush(struct acc *a);

/* dispatch.c */
bool acc_new_attempt(const struct acc *a, const uint8_t *pkt, size_t len);
void acc_conn_packet(struct acc *a, const struct sockaddr *from, socklen_t fromlen, uint8_t *pkt, size_t len);
void acc_dispatch_stats(struct acc *a); /* logs reset/Retry counters (rate-limited) */

/* quic_conn.c */
/* retry_odcid: the client's original DCID from a verified Retry token (NULL
 * without Retry); token_type: what hd->token is (UNKNOWN: no valid token). */
struct acc_conn *acc_conn_new(struct acc *a, const struct sockaddr *from, socklen_t fromlen,
			      const ngtcp2_pkt_hd *hd, const ngtcp2_cid *retry_odcid, ngtcp2_token_type token_type);
int acc_make_cid(struct acc *a, ngtcp2_cid *cid, uint8_t *token);
void acc_conn_read(struct acc_conn *c, const struct sockaddr *from, socklen_t fromlen, const uint8_t *pkt,
		   size_t len);
void acc_conn_send_close(struct acc_conn *c);
void acc_conn_mark_dirty(struct acc_conn *c);
void acc_conn_write(struct acc_conn *c);
/* The loop pass's write for a dirty connection: skipped while only packets
 * read made it dirty and their ACK can wait for the answers. */
void acc_conn_flush(struct acc_conn *c);
void acc_conn_close(struct acc_conn *c, uint64_t app_error);
/* Closes with an application error and its reason (a static string). */
void acc_conn_close_reason(struct acc_conn *c, uint64_t app_error, const char *reason);
/* Closes with CONNECTION_REFUSED (retry later) and a reason for the peer. */
void acc_conn_refuse(struct acc_conn *c, const char *reason);
void acc_conn_free(struct acc_conn *c);
/* Closes after an internal failure outside ngtcp2's callbacks. */
void acc_conn_fail(struct acc_conn *c, int rv);

/* streams.c */
struct acc_stream *acc_stream_new(struct acc_conn *c, int64_t id);
void acc_stream_free(struct acc_stream *s);
int acc_stream_recv(struct acc_stream *s, const uint8_t *data, size_t len, bool fin);
void acc_stream_advance(struct acc_stream *s);
void acc_stream_flush_answers(struct acc_stream *s);
int acc_stream_reset_in(struct acc_stream *s);
void acc_stream_stop_out(struct acc_stream *s);
void acc_stream_acked(struct acc_stream *s, uint64_t upto);
void acc_stream_credit(struct acc_stream *s, uint64_t bytes);
void acc_stream_goaway(struct acc_stream *s, uint32_t ms);
void acc_stream_auth_ok(struct acc_stream *s, const char *tenant); /* the 'K' answer */
void acc_stream_notice(struct acc_stream *s, const char *limit);   /* the 'T' answer, once */
bool acc_stream_wants_write(const struct acc_stream *s);
size_t acc_stream_vecs(const struct acc_stream *s, ngtcp2_vec *v, size_t max, bool *fin);
void acc_stream_consumed(struct acc_stream *s, size_t n, bool fin);
void acc_owed_grant(struct acc *a);
/* Decodes data into frames until its connection is full; *used: bytes taken. */
int acc_stream_decode(struct acc_stream *s, const uint8_t *data, size_t len, size_t *used);
void acc_stream_pending_done(struct acc_stream *s); /* its pending bytes are all decoded */

/* pending.c */
bool acc_conn_full(const struct acc_conn *c); /* holds its cap of frames or of unread answers */
int acc_pending_add(struct acc_stream *s, const uint8_t *data, size_t len);
bool acc_pending_empty(const struct acc_stream *s);
void acc_pending_free(struct acc_stream *s);
void acc_pending_drain(struct acc_conn *c);

/* incomplete.c */
void acc_incomplete_count(struct acc_stream *s);
void acc_incomplete_release(struct acc_stream *s);
void acc_incomplete_shed(struct acc *a);

/* inflight.c */
/* The ticket of pool entry idx as it goes out (ipc/msg.h: index, epoch, reuse generation). */
uint64_t acc_ticket(const struct acc *a, int32_t idx);
int32_t acc_frame_new(struct acc *a, struct acc_stream *s, uint64_t seq, uint32_t credit);
void acc_frame_forward(struct acc *a, int32_t idx, const uint8_t *data, uint32_t len);
void acc_frame_resolve(struct acc *a, int32_t idx, uint16_t code, const char *reason, size_t reason_len);
void acc_frame_free(struct acc *a, int32_t idx);
void acc_frames_send(struct acc *a);
void acc_frames_resend_all(struct acc *a);
void acc_frames_tick(struct acc *a);
uint32_t acc_frames_unresolved(const struct acc *a);
int acc_ipc_init(struct acc *a);
void acc_ipc_free(struct acc *a);

#endif

/* Counters a process publishes for the metrics endpoint, without a message
 * per scrape: a shared-memory page (a sealed memfd the supervisor makes for
 * each process slot, docs/ARCHITECTURE.md "Metrics") that only its process
 * writes and the metrics process reads. It knows no role: every metric is an
 * index into the page, declared once in QS_METRICS below with its exposition
 * name, type, label and help (docs/METRICS.md lists them).
 *
 * One writer per page: an increment is a relaxed load and store (no locked
 * instruction on the data path); the reader reads each value atomically, so
 * it sees every value whole, though not all at one instant. A page outlives
 * its process: a restarted one continues from the values there, so counters
 * never go backwards; its gauges are zeroed by the supervisor when it exits. */
#ifndef QS_METRICS_PAGE_H
#define QS_METRICS_PAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(ID, name, type, label, help). A label "k=\"v\"" makes the row one series
 * of a labelled family (rows of one family are adjacent). Types: C counter,
 * G gauge, H histogram bucket (its upper bound in the label: le), S a
 * histogram's sum in nanoseconds (exposed in seconds). */
/* The rejection codes (QS_REJ_* of common/wire.h, 1..9 in this order):
 * R(X, PRE##NAME, "name") for each, for the page's rows and the tenants'. */
#define QS_REJECT_CODES(R, X, PRE)                                                                         \
	R(X, PRE##INVALID_JSON, "invalid_json")                                                            \
	R(X, PRE##NOT_OBJECT, "not_object")                                                                \
	R(X, PRE##TOO_LARGE, "too_large")                                                                  \
	R(X, PRE##EMPTY, "empty")                                                                          \
	R(X, PRE##TRUNCATED, "truncated")                                                                  \
	R(X, PRE##SERVER_FIELD, "server_field")                                                            \
	R(X, PRE##INTERNAL, "internal")                                                                    \
	R(X, PRE##UNAUTHENTICATED, "unauthenticated")                                                      \
	R(X, PRE##RATE_LIMITED, "rate_limited")
#define QS_METRICS_REJECT(X, ID, code)                                                                     \
	X(ID, "quicstash_frames_rejected_total", C, "code=\"" code "\"",                                   \
	  "Frames answered with a rejection, by code (docs/PROTOCOL.md)")
#define QS_METRICS_REFUSED(X, ID, why)                                                                     \
	X(ID, "quicstash_connections_refused_total", C, "reason=\"" why "\"",                              \
	  "New connections refused with CONNECTION_REFUSED, by reason")
#define QS_METRICS_ACKLAT(X, ID, le)                                                                       \
	X(ID, "quicstash_ack_latency_seconds", H, "le=\"" le "\"",                                         \
	  "Acceptor: from a frame complete to its answer (acknowledgement or rejection) queued to the client")
#define QS_METRICS_ROLE(X, ID, NAME, T, role, help) X(ID, NAME, T, "role=\"" role "\"", help)
#define QS_METRICS_RESTART(X, ID, role)                                                                    \
	QS_METRICS_ROLE(X, ID, "quicstash_child_restarts_total", C, role,                                  \
			"Children that ended unexpectedly and were started again, by role")
#define QS_METRICS_READY(X, ID, role)                                                                      \
	QS_METRICS_ROLE(X, ID, "quicstash_children_ready", G, role,                                        \
			"Processes of the role that report ready (a reload's overlap counts both)")

#define QS_METRICS(X)                                                                                      \
	/* acceptor */                                                                                     \
	X(QS_M_CONN_ACCEPTED, "quicstash_connections_accepted_total", C, "",                               \
	  "QUIC connections created (after address validation)")                                           \
	X(QS_M_CONN_OPEN, "quicstash_connections_open", G, "", "QUIC connections open")                    \
	QS_METRICS_REFUSED(X, QS_M_REFUSED_LIMIT, "connection_limit")                                      \
	QS_METRICS_REFUSED(X, QS_M_REFUSED_SOURCE, "source_connections")                                   \
	QS_METRICS_REFUSED(X, QS_M_REFUSED_RATE, "source_rate")                                            \
	X(QS_M_CONN_HOARDING, "quicstash_connections_closed_hoarding_total", C, "",                        \
	  "Connections closed for holding the most incomplete-frame bytes over the budget")               \
	X(QS_M_HANDSHAKES, "quicstash_handshakes_completed_total", C, "", "TLS handshakes completed")     \
	X(QS_M_HANDSHAKES_RESUMED, "quicstash_handshakes_resumed_total", C, "",                            \
	  "TLS handshakes that resumed a session with a ticket (no certificate, no signature)")           \
	X(QS_M_KEYSIGN_SIGNS, "quicstash_keyholder_signatures_total", C, "",                               \
	  "CertificateVerify signatures asked of the keyholder (one per full handshake)")                   \
	X(QS_M_TICKETS_SENT, "quicstash_session_tickets_sent_total", C, "",                               \
	  "TLS session tickets sent (after a handshake without a client certificate, then hourly)")        \
	X(QS_M_STREAMS, "quicstash_streams_opened_total", C, "", "Client streams opened")                 \
	X(QS_M_FRAMES_IN, "quicstash_frames_received_total", C, "", "Complete frames decoded from clients")\
	X(QS_M_FRAMES_ACKED, "quicstash_frames_acknowledged_total", C, "",                                 \
	  "Frames answered as durable (each once, whatever was resent inside the server)")                \
	QS_REJECT_CODES(QS_METRICS_REJECT, X, QS_M_REJ_)                                                   \
	X(QS_M_UDP_IN_BYTES, "quicstash_udp_received_bytes_total", C, "", "UDP payload bytes received")   \
	X(QS_M_UDP_OUT_BYTES, "quicstash_udp_sent_bytes_total", C, "", "UDP payload bytes sent")          \
	X(QS_M_UDP_IN_PKTS, "quicstash_udp_received_packets_total", C, "", "QUIC packets received")        \
	X(QS_M_UDP_OUT_PKTS, "quicstash_udp_sent_packets_total", C, "", "QUIC packets sent")                \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_0, "0.0005")                                                      \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_1, "0.001")                                                       \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_2, "0.0025")                                                      \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_3, "0.005")                                                       \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_4, "0.01")                                                        \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_5, "0.025")                                                       \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_6, "0.05")                                                        \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_7, "0.1")                                                         \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_8, "0.25")                                                        \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_9, "0.5")                                                         \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_10, "1")                                                          \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_11, "2.5")                                                        \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_12, "10")                                                         \
	QS_METRICS_ACKLAT(X, QS_M_ACKLAT_INF, "+Inf")                                                      \
	X(QS_M_ACKLAT_SUM, "quicstash_ack_latency_seconds", S, "", "")                                     \
	X(QS_M_ACC_UNRESOLVED, "quicstash_acceptor_frames_unresolved", G, "",                              \
	  "Frames the acceptors hold that wait for their answer (queued towards parsers and the spool)")  \
	X(QS_M_ACC_HELD_BYTES, "quicstash_acceptor_held_bytes", G, "",                                     \
	  "Bytes of those frames the acceptors keep for resending")                                        \
	X(QS_M_ACC_QUEUED, "quicstash_acceptor_frames_queued", G, "",                                      \
	  "Frames the acceptors have not handed to a parser's socket yet (no parser takes them now)")     \
	X(QS_M_ACC_QUEUED_BYTES, "quicstash_acceptor_queued_bytes", G, "", "Bytes of those frames")       \
	X(QS_M_ACC_REFUSED, "quicstash_acceptor_batches_refused_total", C, "",                              \
	  "Times a batch of frames found no parser's socket taking it (all full or paused): tried again "  \
	  "in the next loop pass or when a socket takes more")                                            \
	/* acceptor, parser, shipper */                                                                    \
	X(QS_M_CHAN_LOST, "quicstash_ipc_connections_lost_total", C, "",                                   \
	  "Channel connections a sender lost (the process at the other end ended): what was on its way "   \
	  "in them is written off from quicstash_hop_waiting")                                             \
	/* parser */                                                                                       \
	X(QS_M_PARSED, "quicstash_parser_frames_total", C, "", "Frames the parsers took and answered or passed on") \
	X(QS_M_PARSE_REJECTED, "quicstash_parser_rejected_total", C, "", "Frames the parsers rejected")    \
	/* shipper */                                                                                      \
	X(QS_M_SPOOL_EVENTS, "quicstash_spool_events_written_total", C, "",                                \
	  "Events made durable in the spool (a frame resent inside the server counts again)")             \
	X(QS_M_SPOOL_GROUPS, "quicstash_spool_group_commits_total", C, "",                                 \
	  "Group commits (one write, and one fdatasync with --durability fsync, each): events per group = " \
	  "quicstash_spool_events_written_total / this")                                                   \
	X(QS_M_SPOOL_BYTES, "quicstash_spool_bytes", G, "", "Bytes of spool segments on disk")            \
	X(QS_M_SPOOL_LIMIT, "quicstash_spool_limit_bytes", G, "", "--spool-max-bytes")                    \
	X(QS_M_SPOOL_SEGMENTS, "quicstash_spool_segments", G, "", "Spool segment files")                  \
	X(QS_M_SPOOL_UNSHIPPED, "quicstash_spool_unshipped_bytes", G, "",                                  \
	  "Spool bytes not yet taken by the output")                                                       \
	X(QS_M_SPOOL_OLDEST, "quicstash_spool_oldest_unshipped_age_seconds", G, "",                        \
	  "Seconds since the oldest event the output has not taken was spooled (0: none)")                \
	X(QS_M_SHIPPER_STAGED, "quicstash_shipper_staged_events", G, "",                                   \
	  "Events the shipper received and has not made durable yet (its group commit)")                  \
	X(QS_M_SPOOL_ACCEPTING, "quicstash_spool_accepting", G, "",                                        \
	  "1 while the shipper takes events; 0 while it refuses them (see quicstash_spool_refusing)")      \
	X(QS_M_SPOOL_FULL, "quicstash_spool_refusing", G, "reason=\"full\"",                               \
	  "1 while the shipper refuses events for that reason")                                            \
	X(QS_M_SPOOL_ERROR, "quicstash_spool_refusing", G, "reason=\"write_error\"", "")                  \
	X(QS_M_OUT_UP, "quicstash_output_up", G, "", "1 while connected to Logstash (or the output file is open)") \
	X(QS_M_OUT_CONNECTS, "quicstash_output_connects_total", C, "",                                     \
	  "Connections to Logstash established (the first and every reconnection)")                       \
	X(QS_M_OUT_EVENTS, "quicstash_output_events_shipped_total", C, "",                                 \
	  "Events written to the output (again after a reconnection when not known to be read)")          \
	X(QS_M_OUT_BYTES, "quicstash_output_sent_bytes_total", C, "", "Bytes written to the output")      \
	X(QS_M_OUT_WRITES, "quicstash_output_writes_total", C, "",                                         \
	  "Writes to Logstash or the output file (a send or write call each; see --logstash-linger)")     \
	/* supervisor */                                                                                   \
	QS_METRICS_RESTART(X, QS_M_RESTART_KEYHOLDER, "keyholder")                                         \
	QS_METRICS_RESTART(X, QS_M_RESTART_SHIPPER, "shipper")                                             \
	QS_METRICS_RESTART(X, QS_M_RESTART_PARSER, "parser")                                               \
	QS_METRICS_RESTART(X, QS_M_RESTART_ACCEPTOR, "acceptor")                                           \
	QS_METRICS_RESTART(X, QS_M_RESTART_METRICS, "metrics")                                             \
	QS_METRICS_READY(X, QS_M_READY_KEYHOLDER, "keyholder")                                             \
	QS_METRICS_READY(X, QS_M_READY_SHIPPER, "shipper")                                                 \
	QS_METRICS_READY(X, QS_M_READY_PARSER, "parser")                                                   \
	QS_METRICS_READY(X, QS_M_READY_ACCEPTOR, "acceptor")                                               \
	QS_METRICS_READY(X, QS_M_READY_METRICS, "metrics")                                                 \
	X(QS_M_RELOADS, "quicstash_reloads_total", C, "", "Reloads applied (SIGHUP; refused ones not counted)") \
	X(QS_M_RELOADS_REFUSED, "quicstash_reloads_refused_total", C, "", "Reloads refused (the reason is logged)")

#define QS_M_ENUM_ROW(ID, name, type, label, help) ID,
enum qs_metric { QS_METRICS(QS_M_ENUM_ROW) QS_M_COUNT };
#undef QS_M_ENUM_ROW

enum qs_metric_type { QS_MT_C, QS_MT_G, QS_MT_H, QS_MT_S, QS_MT_T };

struct qs_metric_def {
	const char *name, *label, *help;
	enum qs_metric_type type;
};
extern const struct qs_metric_def qs_metric_defs[QS_M_COUNT];

/* The latency buckets' upper bounds in nanoseconds (QS_M_ACKLAT_0..; the last, +Inf, is UINT64_MAX). */
#define QS_ACKLAT_BUCKETS (QS_M_ACKLAT_INF - QS_M_ACKLAT_0 + 1)
extern const uint64_t qs_acklat_le_ns[QS_ACKLAT_BUCKETS];

/* Per-tenant rows (the acceptors' pages): X(ID, name, type, label, help),
 * exposed with a tenant="NAME" label before the row's own label. T is a
 * counter kept in nanoseconds and exposed in seconds. */
#define QS_TMETRICS_REJECT(X, ID, code)                                                                    \
	X(ID, "quicstash_tenant_frames_rejected_total", C, "code=\"" code "\"",                            \
	  "The tenant's frames answered with a rejection, by code (docs/PROTOCOL.md)")
#define QS_TMETRICS(X)                                                                                     \
	X(QS_TM_CONNS, "quicstash_tenant_connections_total", C, "", "Connections authenticated as the tenant") \
	X(QS_TM_OPEN, "quicstash_tenant_connections_open", G, "", "The tenant's connections open")        \
	X(QS_TM_ACKED, "quicstash_tenant_frames_acknowledged_total", C, "",                                \
	  "The tenant's frames answered as durable")                                                       \
	QS_REJECT_CODES(QS_TMETRICS_REJECT, X, QS_TM_REJ_)                                                 \
	X(QS_TM_BYTES, "quicstash_tenant_received_bytes_total", C, "",                                     \
	  "Bytes of the tenant's frames answered (acknowledged or rejected)")                              \
	X(QS_TM_THROTTLED, "quicstash_tenant_throttled_seconds_total", T, "",                              \
	  "Time the tenant's connections were held back by its limits")

#define QS_M_ENUM_ROW(ID, name, type, label, help) ID,
enum qs_tmetric { QS_TMETRICS(QS_M_ENUM_ROW) QS_TM_COUNT };
#undef QS_M_ENUM_ROW
extern const struct qs_metric_def qs_tmetric_defs[QS_TM_COUNT];

#define QS_MP_VALUES 256 /* room for QS_M_COUNT and later ones */
#define QS_MP_DIR_MAX 1000
#define QS_MP_SIZE 32768
/* Tenants a page has rows for. A row is claimed by a tenant's id (a hash of
 * its name, qs_tenant_id) and kept for the service's life, so a reload that
 * removes, adds or reorders tenants never moves a tenant's counts to another
 * row's name; tenants beyond the rows count in the page's "other" row. */
#define QS_MP_TENANTS 128
#define QS_MP_TENANT_OTHER "~other" /* its tenant label: '~' is not in a tenant name */

struct qs_mp_tenant {
	_Atomic uint64_t id; /* 0: free; stored (release) after name */
	char name[64];
	_Atomic uint64_t v[QS_TM_COUNT];
};

/* Which process slot a page belongs to (the supervisor's own page lists them all). */
struct qs_mp_dirent {
	uint8_t role, lane;
	uint16_t slot;
};

/* Queues between processes (docs/ARCHITECTURE.md "Queues between
 * processes"): a line is one hop's queue, the frames towards parser slot S
 * (line QS_QL_FRAMES + S) or a channel's hop. Its sender counts what it
 * hands to the hop into qsent[line], its receiver what it takes into
 * qrecv[line], each in its own page, once per batch (records and bytes);
 * the supervisor writes off what a process that ended lost into its own
 * page's qrecv (qs_mp_queue_settle). What waits = sum(qsent) - sum(qrecv). */
#define QS_MP_PARSERS 64 /* parser slots (--parsers at most) */
enum qs_queue_line {
	QS_QL_FRAMES = 0,                 /* + parser slot: acceptor -> parser, ZeroMQ */
	QS_QL_EVENTS = QS_MP_PARSERS,     /* parser -> shipper, channel */
	QS_QL_ANSWERS,                    /* shipper -> acceptor: acknowledgements */
	QS_QL_REJECTIONS,                 /* parser -> acceptor: rejections (and its HELLO/BYE words) */
	QS_QL_COUNT
};
struct qs_mp_qend {
	_Atomic uint64_t n, bytes;
};

struct qs_mpage {
	_Atomic uint64_t v[QS_MP_VALUES];
	/* the supervisor's page only: the pages handed to the metrics process
	 * after it, in that order (each slot's two lanes: a reload's overlap runs
	 * the old and the new process of a slot side by side, one on each) */
	_Atomic uint32_t dir_n;
	struct qs_mp_dirent dir[QS_MP_DIR_MAX];
	/* the acceptors' pages: per-tenant rows */
	struct qs_mp_tenant tenant[QS_MP_TENANTS], other;
	struct qs_mp_qend qsent[QS_QL_COUNT], qrecv[QS_QL_COUNT];
};
_Static_assert(QS_M_COUNT <= QS_MP_VALUES, "metrics page too small");
_Static_assert(sizeof(struct qs_mpage) <= QS_MP_SIZE, "metrics page over its size");

/* This process's page: a private one until qs_mp_attach maps a shared one,
 * so writers never check. */
extern struct qs_mpage *qs_mp;

/* A sealed memfd of QS_MP_SIZE (grow/shrink sealed: no one can make a reader
 * fault), zeroed; -1 with errno. */
int qs_mp_create(void);
/* Maps fd (writable or read-only) and returns the page, NULL if it is not one. */
struct qs_mpage *qs_mp_map(int fd, bool writable);
/* Maps fd as this process's page (qs_mp) and closes it; 0, or -1 (kept private). */
int qs_mp_attach(int fd);
/* Zeroes the page's gauges: its writer is gone (the supervisor, after a reap). */
void qs_mp_clear_gauges(struct qs_mpage *p);

static inline void qs_mp_add(enum qs_metric m, uint64_t n)
{
	_Atomic uint64_t *v = &qs_mp->v[m];
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline void qs_mp_set(enum qs_metric m, uint64_t n)
{
	atomic_store_explicit(&qs_mp->v[m], n, memory_order_relaxed);
}

static inline uint64_t qs_mp_get(const struct qs_mpage *p, unsigned m)
{
	return atomic_load_explicit(&((struct qs_mpage *)p)->v[m], memory_order_relaxed);
}

static inline void qs_mp_qadd(struct qs_mp_qend *e, uint64_t n, uint64_t bytes)
{
	atomic_store_explicit(&e->n, atomic_load_explicit(&e->n, memory_order_relaxed) + n, memory_order_relaxed);
	atomic_store_explicit(&e->bytes, atomic_load_explicit(&e->bytes, memory_order_relaxed) + bytes,
			      memory_order_relaxed);
}

/* A batch of n records (bytes long) handed to the hop of line, or taken from it. */
static inline void qs_mp_queue_sent(unsigned line, uint64_t n, uint64_t bytes)
{
	if (line < QS_QL_COUNT)
		qs_mp_qadd(&qs_mp->qsent[line], n, bytes);
}

static inline void qs_mp_queue_recv(unsigned line, uint64_t n, uint64_t bytes)
{
	if (line < QS_QL_COUNT)
		qs_mp_qadd(&qs_mp->qrecv[line], n, bytes);
}

/* What waits in line's hop, over the supervisor's page and n pages: every
 * receiving end is read before any sending end, so that what moves while
 * they are read makes it read high, never low. Negative when more was
 * taken than is known sent (something written off arrived after all). */
struct qs_queue_depth {
	int64_t n, bytes;
};
struct qs_queue_depth qs_mp_queue_depth(const struct qs_mpage *sup, const struct qs_mpage *const *pages, size_t n,
					unsigned line);
/* The supervisor: writes off what line's hop holds (its depth becomes 0) into
 * sup, all of it (a process at one end ended or starts: what it held or
 * what was on the way to it is lost, as far as anyone can know), or only
 * when below 0 (raise: what was written off arrived after all). */
void qs_mp_queue_settle(struct qs_mpage *sup, const struct qs_mpage *const *pages, size_t n, unsigned line,
			bool all);
/* The two families the lines are exposed in (records, bytes), labelled
 * hop="qs_mp_queue_hop(line)" and, for the frames, parser="S". */
extern const struct qs_metric_def qs_queue_defs[2];
/* The hop's label value for line (acceptor_to_parser, parser_to_shipper, ...). */
const char *qs_mp_queue_hop(unsigned line);

/* The row of a rejection code (QS_REJ_*, common/wire.h: 1..7, in that order
 * in QS_METRICS); an unknown one counts as internal. */
static inline enum qs_metric qs_m_rejected(unsigned code)
{
	return code >= 1 && code <= 9 ? (enum qs_metric)(QS_M_REJ_INVALID_JSON + code - 1) : QS_M_REJ_INTERNAL;
}

/* The row of tenant id named name in this process's page: the one it had
 * (a restarted or reloaded process continues its counts), else a free one
 * claimed, else the page's "other" row. Never NULL. */
struct qs_mp_tenant *qs_mp_tenant_row(uint64_t id, const char *name);

static inline void qs_mp_tadd(struct qs_mp_tenant *t, enum qs_tmetric m, uint64_t n)
{
	_Atomic uint64_t *v = &t->v[m];
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n, memory_order_relaxed);
}

/* A tenant's counts summed over pages (the metrics process, the supervisor's log). */
struct qs_tenant_sum {
	uint64_t id;
	char name[64];
	uint64_t v[QS_TM_COUNT];
};
#define QS_TENANT_SUMS_MAX (2 * QS_MP_TENANTS)
/* Sums the tenant rows of n pages by id into out (at most QS_TENANT_SUMS_MAX
 * tenants, sorted by name; beyond them and every page's "other" row: *other).
 * A row whose name is not printable ASCII or whose id is not its name's is
 * skipped: a page is written by a child, which may be compromised. Returns
 * how many tenants out holds. */
size_t qs_mp_tenant_sums(const struct qs_mpage *const *pages, size_t n, struct qs_tenant_sum *out,
			 struct qs_tenant_sum *other);

/* One acknowledgement latency observation. */
void qs_mp_observe_ack_ns(uint64_t ns);

#endif

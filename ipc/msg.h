/* Typed, size-checked batch messages between the roles, carried over ZeroMQ
 * (FRAMES) and over channels (ipc/chan.h: EVENTS, ANSWERS, STATUS).
 *
 *   FRAMES   acceptor -> parser    raw client frames with their origin
 *   EVENTS   parser   -> shipper   validated, enriched JSON events
 *   ANSWERS  parser|shipper -> acceptor   ack (code 0) or rejection per frame
 *   STATUS   shipper  -> acceptors  heartbeat: is the spool taking events?
 *
 * Every message is one header plus `count` records; each record is 8-byte
 * aligned and its variable part padded to 8. A receiver never trusts a length:
 * qs_batch_next() checks every record against the message size.
 * All processes run the same binary on one host, so host byte order is used.
 */
#ifndef QS_IPC_MSG_H
#define QS_IPC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QS_MSG_MAGIC 0x51534d31u /* "QSM1" */
#define QS_MSG_VERSION 1

enum qs_msg_type { QS_MSG_FRAMES = 1, QS_MSG_EVENTS = 2, QS_MSG_ANSWERS = 3, QS_MSG_STATUS = 4 };

/* A batch is sent once it reaches this many bytes (or the loop iteration ends). */
#define QS_BATCH_SOFT_BYTES (256 * 1024)

struct qs_msg_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t version;
	uint32_t count;
	uint32_t sender; /* acceptor slot, parser slot or QS_MSG_SENDER_SHIPPER */
};
#define QS_MSG_SENDER_SHIPPER 0xffffffffu /* no slot: the acceptor tells its answers from a parser's */

/* FRAMES record, followed by len bytes of frame payload. */
struct qs_frame_rec {
	uint64_t ticket;       /* acceptor-local handle, echoed in answers */
	uint64_t seq;          /* the frame's sequence in its client session */
	uint64_t recv_time_ns; /* CLOCK_REALTIME when the frame was complete */
	uint8_t session[16];   /* event.id's session part: keyed hash of the client's session id
				* (common/eventid.h), random per stream if it sent none */
	uint8_t ip[16];        /* client address: IPv4 as v4-mapped IPv6 */
	uint16_t port;
	uint8_t acceptor;      /* slot of the acceptor that owns the stream */
	uint8_t flags;
	uint32_t len;
	uint64_t tenant;       /* the authenticated tenant's id (common/tenants.h), 0: none. The
				* parser takes the name from its own tenants file, never from here */
	uint64_t credential;   /* the id of the credential it authenticated with: a parser whose
				* tenants file no longer has it rejects the frame (revoked by a reload) */
};

/* EVENTS record, followed by len bytes: one JSON line ending in '\n'. */
struct qs_event_rec {
	uint64_t ticket;
	uint32_t acceptor;
	uint32_t len;
	uint64_t tenant; /* the tenant's id as the parser checked it against its tenants file, 0: none
			  * (for the shipper's per-tenant work to come: spool quota, fairness) */
};

/* ANSWERS record, followed by reason_len bytes of reason (no NUL).
 * Two codes are no answers but a parser's word about itself, in order with
 * its rejections (ticket = its process generation): HELLO (it serves; sent
 * when it starts and every second) and BYE (it stops: send it no more frames,
 * then an empty FRAMES batch, the end, after the last one; it reads up to
 * that end and answers or hands on everything before it exits). */
#define QS_ANSWER_PARSER_HELLO 0xfffeu
#define QS_ANSWER_PARSER_BYE 0xffffu
struct qs_answer_rec {
	uint64_t ticket;
	uint16_t code; /* 0 = durable (ack), else enum qs_reject_code */
	uint16_t reason_len;
	uint32_t pad;
};

/* STATUS record (count = 1), followed by over_quota u64 tenant ids: the
 * tenants whose unshipped bytes in the spool exceed their spool-quota (the
 * acceptors hold them back; docs/TENANTS.md, "Limits"). */
struct qs_status_rec {
	uint64_t spool_bytes;
	uint64_t spool_limit;
	uint32_t accepting; /* 0 while the spool is full or the disk refuses writes */
	uint32_t over_quota;
};
#define QS_STATUS_OVER_MAX 512

/* A growable buffer that one batch is built in. */
struct qs_batch {
	uint8_t *buf;
	size_t len;
	size_t cap;
	uint32_t count;
};

int qs_batch_begin(struct qs_batch *b, enum qs_msg_type type, uint32_t sender);
/* Appends a record and its payload; returns 0 or -1 (out of memory). */
int qs_batch_add(struct qs_batch *b, const void *rec, size_t rec_len, const void *data, size_t data_len);
bool qs_batch_empty(const struct qs_batch *b);
void qs_batch_free(struct qs_batch *b);

/* Reading side. */
struct qs_batch_iter {
	const uint8_t *p;
	size_t left;
	uint32_t remaining;
	uint16_t type;
	uint32_t sender;
};

/* Validates the header; returns 0, or -1 with a reason for the log. */
int qs_batch_open(struct qs_batch_iter *it, const void *msg, size_t len, const char **why);

/* Where messages are received. Each endpoint is reached by one pipeline hop,
 * so it fixes the role at the other end, and takes only that hop's types
 * (msg.c, inboxes[]); anything else is refused, for the receiver to log and drop. */
enum qs_msg_inbox {
	QS_INBOX_FRAMES,  /* a parser's PULL socket: FRAMES, from acceptors */
	QS_INBOX_EVENTS,  /* the shipper's events channel: EVENTS, from parsers */
	QS_INBOX_ANSWERS, /* an acceptor's answers channel: ANSWERS from parsers and the shipper,
			   * STATUS from the shipper */
};
/* qs_batch_open, and the type must be one the inbox takes. */
int qs_batch_receive(struct qs_batch_iter *it, enum qs_msg_inbox inbox, const void *msg, size_t len,
		     const char **why);
/* Next record of size rec_len (copied to rec) and its payload, whose length
 * the caller's record declared: payload_len() reads it from rec.
 * Returns 1 with a record, 0 at the end, -1 when the message is malformed. */
int qs_batch_next(struct qs_batch_iter *it, void *rec, size_t rec_len,
		  size_t (*payload_len)(const void *rec), const uint8_t **payload);

size_t qs_frame_rec_payload(const void *rec);
size_t qs_event_rec_payload(const void *rec);
size_t qs_answer_rec_payload(const void *rec);
size_t qs_no_payload(const void *rec);
size_t qs_status_rec_payload(const void *rec);

/* Ticket layout used by the acceptor: its pool index (bits 0-23), its process
 * epoch (bits 24-31: the low byte of its process generation) and the entry's
 * reuse generation (bits 32-63; the ticket generation: docs/ARCHITECTURE.md,
 * "Glossary"). A late answer for a recycled entry is recognised by the reuse
 * generation; one for a frame of the process before it on the same channel
 * (a restart, or a reload two generations back), which started its pool at
 * the same indices and reuse generations, by the epoch. Either is ignored. */
#define QS_TICKET_INDEX_BITS 24
#define QS_TICKET_INDEX_MAX (1u << QS_TICKET_INDEX_BITS) /* frames in flight in one acceptor */
static inline uint64_t qs_ticket_make(uint32_t epoch, uint32_t index, uint32_t gen)
{
	return ((uint64_t)gen << 32) | ((uint64_t)(epoch & 0xffu) << QS_TICKET_INDEX_BITS) |
	       (index & (QS_TICKET_INDEX_MAX - 1));
}
static inline uint32_t qs_ticket_index(uint64_t t) { return (uint32_t)t & (QS_TICKET_INDEX_MAX - 1); }
static inline uint32_t qs_ticket_epoch(uint64_t t) { return (uint32_t)t >> QS_TICKET_INDEX_BITS; }
static inline uint32_t qs_ticket_gen(uint64_t t) { return (uint32_t)(t >> 32); }

#endif

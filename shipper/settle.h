/* When may the cursor move past bytes written to Logstash?
 *
 * json_lines over TCP has no acknowledgement, and TCP's acknowledgement only
 * says the peer's kernel holds the bytes: a Logstash that stops reading (its
 * pipeline blocked) and then dies takes what sat unread in its socket with
 * it. So a byte counts as taken only with evidence that Logstash read it:
 *
 *  - depth: the peer's TCP acknowledged at least unread_max more bytes after
 *    it, where unread_max bounds what the peer can hold unread (its receive
 *    buffer; peer.h derives it from the window scale the peer announced);
 *  - drain: after our FIN, the peer closed cleanly (its FIN, not a reset) with
 *    everything acknowledged: a socket closed with unread data sends a reset
 *    (RFC 1122 4.2.2.13), so every byte sent was read.
 *
 * After a broken connection the output resends from the taken position:
 * duplicates, never a loss of what Logstash may not have read. docs/SPOOL.md
 * says what this promises and what it cannot. */
#ifndef QS_SHIPPER_SETTLE_H
#define QS_SHIPPER_SETTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "shipper/cursor.h"

#define QS_SETTLE_MAX 4096

struct qs_checkpoint {
	uint64_t bytes;    /* written on this connection when pos was reached */
	struct qs_pos pos; /* spool position after the last fully written record */
	bool free;         /* no bytes of its own to confirm: settles at once */
};

struct qs_settle {
	struct qs_checkpoint ring[QS_SETTLE_MAX];
	unsigned head, count;
	uint64_t written;    /* bytes written on the current connection */
	uint64_t unread_max; /* bytes the peer may hold acknowledged and unread */
	uint64_t settled;    /* bytes of this connection that have settled (the last checkpoint dropped) */
};

/* A new connection whose peer may hold up to unread_max bytes unread:
 * nothing written on it yet, nothing pending. */
void qs_settle_reset(struct qs_settle *s, uint64_t unread_max);
/* n more bytes were written; the records up to pos are fully written. */
void qs_settle_wrote(struct qs_settle *s, uint64_t n, struct qs_pos pos);
/* peer_acked: bytes of this connection the peer's TCP acknowledged. Returns
 * true and the newest settled position in *pos when the cursor may move. */
bool qs_settle_poll(struct qs_settle *s, uint64_t peer_acked, struct qs_pos *pos);
/* The peer read everything written (drain, above): every checkpoint settles.
 * Returns true and the newest position in *pos when there was one. */
bool qs_settle_drained(struct qs_settle *s, struct qs_pos *pos);
/* True while written bytes wait to settle. */
bool qs_settle_pending(const struct qs_settle *s);

#endif

/* When may the cursor move past bytes written to Logstash?
 *
 * json_lines over TCP has no acknowledgement. A successful write() only means
 * the local kernel took the bytes: if Logstash goes away, whatever sat in our
 * send queue or its receive queue is lost. So the cursor advances in two
 * steps: a checkpoint (bytes written so far, spool position) settles once
 * the peer's TCP has acknowledged those bytes (SIOCOUTQ) *and* they have
 * stayed acknowledged for QS_SETTLE_MS, time for the receiver to read them.
 * After a broken connection the output resends from the settled position:
 * duplicates, never a loss of what Logstash may not have read. */
#ifndef QS_SHIPPER_SETTLE_H
#define QS_SHIPPER_SETTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "shipper/cursor.h"

#define QS_SETTLE_MS 1000
#define QS_SETTLE_MAX 4096

struct qs_checkpoint {
	uint64_t bytes;    /* written on this connection when pos was reached */
	struct qs_pos pos; /* spool position after the last fully written record */
	uint64_t acked_ms; /* when the peer acknowledged bytes (0: not yet) */
	bool free;         /* no bytes of its own to confirm: settles at once */
};

struct qs_settle {
	struct qs_checkpoint ring[QS_SETTLE_MAX];
	unsigned head, count;
	uint64_t written; /* bytes written on the current connection */
};

/* A new connection: nothing written on it yet, nothing pending. */
void qs_settle_reset(struct qs_settle *s);
/* n more bytes were written; the records up to pos are fully written. */
void qs_settle_wrote(struct qs_settle *s, uint64_t n, struct qs_pos pos);
/* peer_acked: bytes of this connection the peer's TCP acknowledged. Returns
 * true and the newest settled position in *pos when the cursor may move. */
bool qs_settle_poll(struct qs_settle *s, uint64_t peer_acked, uint64_t now_ms, struct qs_pos *pos);
/* True while written bytes wait to settle. */
bool qs_settle_pending(const struct qs_settle *s);

#endif

/* The output's view of the spool: a window of whole, verified records after
 * a position, loaded from one segment at a time. The output writes the
 * window's payloads and reports how many bytes went; the reader turns that
 * into the position after the last fully written record (the cursor). */
#ifndef QS_SHIPPER_READER_H
#define QS_SHIPPER_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "shipper/cursor.h"

struct qs_spool;

struct qs_rview {
	size_t data;  /* payload offset in buf */
	uint32_t len;
	uint64_t end; /* segment offset after the record */
};

struct qs_reader {
	struct qs_pos pos; /* where buf[0] was read from */
	struct qs_pos end; /* after the window, skipped damage included */
	uint8_t *buf;
	size_t cap;
	struct qs_rview *recs;
	size_t n, rcap;
	size_t idx;     /* records [0, idx) are fully written */
	size_t partial; /* bytes of recs[idx] already written */
	uint64_t damaged_bytes; /* skipped while reading, since start */
	uint64_t shipped;       /* records fully written, since start */
	uint64_t reads;         /* windows read back from a segment file, since start */
	int fd;                 /* the segment last read (kept open: one openat per segment, not per fill) */
	uint64_t fd_seg;
};

void qs_reader_init(struct qs_reader *r, struct qs_pos from);
void qs_reader_free(struct qs_reader *r);
/* Restarts at pos (after a reconnect: from the cursor), dropping the window. */
void qs_reader_rewind(struct qs_reader *r, struct qs_pos pos);
/* Makes sure unwritten records are in the window if the spool has any.
 * Returns the number of unwritten records (0: caught up), or -1 on a read error. */
long qs_reader_fill(struct qs_reader *r, struct qs_spool *s);
/* buf[0..len) holds whole records this process just sealed and made
 * durable at [off, off+len) of segment seg. If the window ends exactly
 * there, they join it (the window becomes them when used up; with records
 * still to write, up to 1 MiB in all), copied from buf instead of read back
 * from the file and with their CRCs trusted (the shipper computed them a
 * moment ago). Returns whether it took them; if not, qs_reader_fill reads
 * them from the segment as usual. */
bool qs_reader_offer(struct qs_reader *r, uint64_t seg, uint64_t off, const uint8_t *buf, size_t len);
/* Fills iov with unwritten payload bytes; returns the count. */
int qs_reader_iov(const struct qs_reader *r, struct iovec *iov, int max);
/* n bytes of what qs_reader_iov offered were written. */
void qs_reader_consume(struct qs_reader *r, size_t n);
/* Position after the last fully written record. */
struct qs_pos qs_reader_done(const struct qs_reader *r);

#endif

#include "shipper/reader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics_page.h"
#include "shipper/record.h"
#include "shipper/spool.h"
#include "shipper/spool_file.h"

#define CHUNK (1024u * 1024)

void qs_reader_init(struct qs_reader *r, struct qs_pos from)
{
	memset(r, 0, sizeof(*r));
	r->pos = r->end = from;
	r->fd = -1;
}

void qs_reader_free(struct qs_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	free(r->recs);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

void qs_reader_rewind(struct qs_reader *r, struct qs_pos pos)
{
	r->pos = r->end = pos;
	r->n = r->idx = r->partial = 0;
}

static int grow(struct qs_reader *r, size_t need)
{
	if (need <= r->cap)
		return 0;
	uint8_t *nb = realloc(r->buf, need);
	if (!nb)
		return -1;
	r->buf = nb;
	r->cap = need;
	return 0;
}

static int add_rec(struct qs_reader *r, const struct qs_scan_item *it)
{
	if (r->n == r->rcap) {
		size_t cap = r->rcap ? r->rcap * 2 : 256;
		struct qs_rview *nr = realloc(r->recs, cap * sizeof(*nr));
		if (!nr)
			return -1;
		r->recs = nr;
		r->rcap = cap;
	}
	r->recs[r->n++] = (struct qs_rview){.data = (size_t)(it->data - r->buf), .len = it->len,
					    .end = it->off + it->size};
	return 0;
}

/* Scans the want bytes at buf[at], read from [off, off+want) of segment
 * r->pos.seg, into the window after the records it holds. 0, -1 (out of
 * memory), or 1 when the window is empty and its first record is longer than
 * want: *more says how many bytes it needs. */
static int scan_into(struct qs_reader *r, size_t at, uint64_t off, size_t want, uint64_t seg_end, bool trusted,
		     size_t *more)
{
	struct qs_scan s = {.buf = r->buf + at, .len = want, .base = off, .at_end = off + want == seg_end,
			    .key = qs_seg_key(r->pos.seg), .trusted = trusted};
	struct qs_scan_item it;
	int k;
	while ((k = qs_scan_next(&s, &it)) == QS_SCAN_RECORD || k == QS_SCAN_DAMAGE) {
		if (k == QS_SCAN_DAMAGE) {
			r->damaged_bytes += it.size;
			qs_warn("spool: skipped %zu damaged bytes in segment %016" PRIx64 " at offset %" PRIu64,
				it.size, r->pos.seg, it.off);
		} else if (add_rec(r, &it)) {
			return -1;
		}
		r->end.off = it.off + it.size;
	}
	if (k == QS_SCAN_MORE && r->n == 0 && r->end.off == off)
		return *more = it.need, 1;
	return 0;
}

/* Parses the want bytes in buf, read from [off, off+want) of segment
 * r->pos.seg, into a new window (scan_into's results). */
static int parse(struct qs_reader *r, uint64_t off, size_t want, uint64_t seg_end, bool trusted, size_t *more)
{
	r->n = r->idx = r->partial = 0;
	r->pos = r->end = (struct qs_pos){.seg = r->pos.seg, .off = off};
	return scan_into(r, 0, off, want, seg_end, trusted, more);
}

/* Reads [off, off+want) of the segment and parses it into the window. */
static int load(struct qs_reader *r, int fd, uint64_t off, size_t want, uint64_t seg_end)
{
	for (;;) {
		if (grow(r, want))
			return -1;
		ssize_t got = pread(fd, r->buf, want, (off_t)off);
		r->reads++;
		if (got != (ssize_t)want)
			return got < 0 ? -1 : (errno = EIO, -1);
		int rc = parse(r, off, want, seg_end, false, &want);
		if (rc != 1)
			return rc; /* else: one record larger than the chunk, want is its size */
		/* A damaged length may claim more than the segment holds: read to its
		 * end, where the scanner knows the record cannot be whole and skips
		 * the damage (reading the claimed size came back short, for ever). */
		if (want > seg_end - off)
			want = (size_t)(seg_end - off);
	}
}

/* The window still has records to write (the output lingers, or Logstash
 * reads slowly): a group that follows them joins it, up to CHUNK bytes in
 * all, and goes out from memory with them. */
static bool append(struct qs_reader *r, uint64_t off, const uint8_t *buf, size_t len)
{
	size_t have = (size_t)(r->end.off - r->pos.off), more;
	if (have + len > CHUNK || grow(r, have + len))
		return false;
	memcpy(r->buf + have, buf, len);
	return scan_into(r, have, off, len, UINT64_MAX, true, &more) == 0 && r->end.off == off + len;
}

bool qs_reader_offer(struct qs_reader *r, uint64_t seg, uint64_t off, const uint8_t *buf, size_t len)
{
	if (r->end.seg != seg || r->end.off != off || !len)
		return false;
	if (r->idx < r->n)
		return append(r, off, buf, len);
	if (grow(r, len))
		return false;
	memcpy(r->buf, buf, len);
	r->pos.seg = seg;
	/* A group holds whole records only: all of it parses, nothing is MORE. */
	size_t more;
	return parse(r, off, len, UINT64_MAX, true, &more) == 0 && r->end.off == off + len;
}

/* A segment whose name now holds a link, a FIFO...: its records are gone
 * (whoever replaced the file took them); counted as damage and skipped,
 * never followed, never waited for (a FIFO blocked the loop for good). */
static void skip_refused(struct qs_reader *r, struct qs_pos at, uint64_t size)
{
	qs_err("spool: segment %016" PRIx64 " is %s: its %" PRIu64 " unread bytes are skipped as damage", at.seg,
	       qs_spool_file_error(errno), size - at.off);
	r->damaged_bytes += size - at.off;
	qs_reader_rewind(r, (struct qs_pos){.seg = at.seg, .off = size});
}

long qs_reader_fill(struct qs_reader *r, struct qs_spool *s)
{
	if (r->idx < r->n)
		return (long)(r->n - r->idx);
	for (;;) {
		struct qs_pos at = r->end;
		int64_t size = qs_spool_seg_size(s, at.seg);
		uint64_t next;
		if (size < 0 || at.off >= (uint64_t)size) {
			/* This segment is done: move on if a newer one exists. */
			if (!qs_spool_seg_after(s, at.seg, &next))
				return 0;
			qs_reader_rewind(r, (struct qs_pos){.seg = next, .off = 0});
			continue;
		}
		if (r->fd >= 0 && r->fd_seg != at.seg) {
			close(r->fd);
			r->fd = -1;
		}
		if (r->fd < 0) {
			r->fd = qs_spool_open_seg(s, at.seg);
			if (r->fd < 0 && (errno == ELOOP || errno == EINVAL)) {
				skip_refused(r, at, (uint64_t)size);
				continue;
			}
			if (r->fd < 0)
				return -1;
			r->fd_seg = at.seg;
		}
		uint64_t left = (uint64_t)size - at.off;
		r->pos.seg = at.seg;
		int rc = load(r, r->fd, at.off, left < CHUNK ? (size_t)left : CHUNK, (uint64_t)size);
		if (rc) {
			close(r->fd);
			r->fd = -1;
			return -1;
		}
		if (r->n)
			return (long)r->n;
	}
}

int qs_reader_iov(const struct qs_reader *r, struct iovec *iov, int max)
{
	int k = 0;
	for (size_t i = r->idx; i < r->n && k < max; i++, k++) {
		size_t skip = i == r->idx ? r->partial : 0;
		iov[k].iov_base = r->buf + r->recs[i].data + skip;
		iov[k].iov_len = r->recs[i].len - skip;
	}
	return k;
}

void qs_reader_consume(struct qs_reader *r, size_t n)
{
	while (n && r->idx < r->n) {
		size_t left = r->recs[r->idx].len - r->partial;
		if (n < left) {
			r->partial += n;
			return;
		}
		n -= left;
		r->partial = 0;
		r->idx++;
		r->shipped++;
		qs_mp_add(QS_M_OUT_EVENTS, 1);
	}
}

struct qs_pos qs_reader_done(const struct qs_reader *r)
{
	if (r->idx == r->n)
		return r->end;
	if (r->idx == 0)
		return r->pos;
	return (struct qs_pos){.seg = r->pos.seg, .off = r->recs[r->idx - 1].end};
}

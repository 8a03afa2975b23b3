#include "shipper/record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/wire.h"

#define WALK_CHUNK (4u * 1024 * 1024)

static const uint8_t rec_magic[4] = {0xFF, 'Q', 'S', 'R'}; /* QS_REC_MAGIC as it lies on disk */

static uint32_t rec_crc(const uint8_t *hdr, const void *data, uint32_t len)
{
	uint32_t c = qs_crc32c(0, hdr + 4, 12); /* len + time */
	return qs_crc32c(c, data, len);
}

uint32_t qs_seg_key(uint64_t seg)
{
	uint8_t id[8];
	qs_put_u64(id, seg);
	uint32_t k = qs_crc32c(0x51535331u, id, sizeof(id));
	return k ? k : 1;
}

void qs_rec_header_unsealed(uint8_t hdr[QS_REC_HDR], uint32_t len, uint64_t time_ns)
{
	qs_put_u32(hdr, QS_REC_MAGIC);
	qs_put_u32(hdr + 4, len);
	qs_put_u64(hdr + 8, time_ns);
	qs_put_u32(hdr + 16, 0);
}

void qs_rec_header(uint8_t hdr[QS_REC_HDR], const void *data, uint32_t len, uint64_t time_ns, uint32_t key)
{
	qs_rec_header_unsealed(hdr, len, time_ns);
	qs_put_u32(hdr + 16, rec_crc(hdr, data, len) ^ key);
}

void qs_rec_seal(uint8_t *buf, size_t len, uint32_t key)
{
	for (size_t off = 0; off + QS_REC_HDR <= len;) {
		uint8_t *p = buf + off;
		uint32_t n = qs_get_u32(p + 4);
		qs_put_u32(p + 16, rec_crc(p, p + QS_REC_HDR, n) ^ key);
		off += QS_REC_HDR + (size_t)n;
	}
}

/* Next possible record start after a bad one: the next magic, or (when buf
 * does not end the segment) the last 3 bytes, where a magic may straddle. */
static size_t resync(const struct qs_scan *s, size_t from)
{
	const uint8_t *hit = memmem(s->buf + from, s->len - from, rec_magic, sizeof(rec_magic));
	if (hit)
		return (size_t)(hit - s->buf);
	if (s->at_end || s->len - from < 4)
		return s->at_end ? s->len : from;
	return s->len - 3;
}

static int damage(struct qs_scan *s, struct qs_scan_item *it)
{
	size_t next = resync(s, s->pos + 1);
	if (next <= s->pos) { /* cannot decide before more bytes arrive */
		it->off = s->base + s->pos;
		it->need = QS_REC_HDR;
		return QS_SCAN_MORE;
	}
	it->off = s->base + s->pos;
	it->size = next - s->pos;
	s->pos = next;
	return QS_SCAN_DAMAGE;
}

int qs_scan_next(struct qs_scan *s, struct qs_scan_item *it)
{
	memset(it, 0, sizeof(*it));
	size_t left = s->len - s->pos;
	if (left == 0)
		return QS_SCAN_END;
	const uint8_t *p = s->buf + s->pos;
	if (left < QS_REC_HDR) {
		if (!s->at_end) {
			it->off = s->base + s->pos;
			it->need = QS_REC_HDR;
			return QS_SCAN_MORE;
		}
		/* a torn header at the very end: nothing here can be a record */
		it->off = s->base + s->pos;
		it->size = left;
		s->pos = s->len;
		return QS_SCAN_DAMAGE;
	}
	uint32_t len = qs_get_u32(p + 4);
	if (qs_get_u32(p) != QS_REC_MAGIC || len > QS_REC_MAX_LEN)
		return damage(s, it);
	if (left < QS_REC_HDR + (size_t)len) {
		if (s->at_end)
			return damage(s, it);
		it->off = s->base + s->pos;
		it->need = QS_REC_HDR + (size_t)len;
		return QS_SCAN_MORE;
	}
	if (!s->trusted) {
		uint32_t crc = rec_crc(p, p + QS_REC_HDR, len), stored = qs_get_u32(p + 16);
		if (stored != (crc ^ s->key) && stored != crc)
			return damage(s, it);
	}
	it->off = s->base + s->pos;
	it->size = QS_REC_HDR + (size_t)len;
	it->data = p + QS_REC_HDR;
	it->len = len;
	it->time_ns = qs_get_u64(p + 8);
	s->pos += it->size;
	return QS_SCAN_RECORD;
}

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		got += (size_t)n;
	}
	return 0;
}

int qs_seg_walk(int fd, uint32_t key, uint64_t from, uint64_t to, qs_walk_fn cb, void *arg)
{
	size_t cap = WALK_CHUNK;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return -1;
	struct qs_scan_item dmg = {0};
	bool have_dmg = false;
	uint64_t off = from;
	int rc = 0;
	while (off < to) {
		size_t want = to - off < cap ? (size_t)(to - off) : cap;
		if ((rc = read_full(fd, buf, want, off)) != 0)
			break;
		struct qs_scan s = {.buf = buf, .len = want, .base = off, .at_end = off + want == to, .key = key};
		struct qs_scan_item it;
		int k;
		while ((k = qs_scan_next(&s, &it)) == QS_SCAN_RECORD || k == QS_SCAN_DAMAGE) {
			if (k == QS_SCAN_DAMAGE && have_dmg && dmg.off + dmg.size == it.off) {
				dmg.size += it.size;
				continue;
			}
			if (have_dmg)
				cb(&dmg, true, arg);
			have_dmg = k == QS_SCAN_DAMAGE;
			if (have_dmg)
				dmg = it;
			else
				cb(&it, false, arg);
		}
		off += s.pos;
		if (k == QS_SCAN_MORE && it.need > cap) {
			uint8_t *nb = realloc(buf, it.need);
			if (!nb) {
				rc = -1;
				break;
			}
			buf = nb;
			cap = it.need;
		}
	}
	if (have_dmg)
		cb(&dmg, true, arg);
	free(buf);
	return rc;
}

static void summarize_cb(const struct qs_scan_item *it, bool dmg, void *arg)
{
	struct qs_seg_summary *sum = arg;
	if (dmg) {
		if (!sum->damaged_regions++)
			sum->first_damage = it->off;
		sum->damaged_bytes += it->size;
		return;
	}
	sum->records++;
	sum->record_bytes += it->size;
	sum->good_end = it->off + it->size;
	if (it->off >= sum->summary_from && !sum->records_after++)
		sum->first_time_after = it->time_ns;
}

int qs_seg_summarize(int fd, uint32_t key, uint64_t size, uint64_t from, struct qs_seg_summary *out)
{
	memset(out, 0, sizeof(*out));
	out->summary_from = from;
	if (qs_seg_walk(fd, key, 0, size, summarize_cb, out))
		return -1;
	/* Damage after the last good record is the torn tail, not mid-segment damage. */
	uint64_t tail = size - out->good_end;
	if (tail) {
		out->damaged_bytes -= tail;
		out->damaged_regions--;
		if (!out->damaged_regions)
			out->first_damage = 0;
	}
	return 0;
}

/* Whether the record at off is whole and keyed for one of the segments just before seg. */
static int stale_record(int fd, uint64_t seg, uint64_t off, uint64_t size)
{
	uint8_t hdr[QS_REC_HDR];
	if (size - off < QS_REC_HDR)
		return 0;
	if (read_full(fd, hdr, QS_REC_HDR, off) != 0)
		return -1;
	uint32_t len = qs_get_u32(hdr + 4);
	if (qs_get_u32(hdr) != QS_REC_MAGIC || len > QS_REC_MAX_LEN || size - off - QS_REC_HDR < len)
		return 0;
	uint8_t *payload = malloc(len ? len : 1);
	if (!payload || read_full(fd, payload, len, off + QS_REC_HDR) != 0) {
		free(payload);
		return -1;
	}
	uint32_t key = rec_crc(hdr, payload, len) ^ qs_get_u32(hdr + 16);
	free(payload);
	for (uint64_t k = 1; k <= QS_STALE_SPAN && k <= seg; k++)
		if (key == qs_seg_key(seg - k))
			return 1;
	return 0;
}

int qs_seg_zeros_at(int fd, uint64_t off, uint64_t size)
{
	uint8_t *buf = malloc(65536);
	if (!buf)
		return -1;
	int rc = 1;
	while (rc == 1 && off < size) {
		size_t n = size - off < 65536 ? (size_t)(size - off) : 65536;
		if (read_full(fd, buf, n, off) != 0)
			rc = -1;
		else if (buf[0] || (n > 1 && memcmp(buf, buf + 1, n - 1)))
			rc = 0;
		off += n;
	}
	free(buf);
	return rc;
}

int qs_seg_stale_at(int fd, uint64_t seg, uint64_t off, uint64_t size)
{
	/* The new records rarely end where an old one did: look at the first
	 * old record that starts within the next 64 KiB. */
	uint8_t *buf = malloc(65536);
	size_t n = size - off < 65536 ? (size_t)(size - off) : 65536;
	if (!buf || read_full(fd, buf, n, off) != 0) {
		free(buf);
		return -1;
	}
	const uint8_t *hit = memmem(buf, n, rec_magic, sizeof(rec_magic));
	uint64_t at = hit ? off + (uint64_t)(hit - buf) : size;
	free(buf);
	return hit ? stale_record(fd, seg, at, size) : 0;
}

enum qs_seg_tail qs_seg_tail_kind(int fd, uint64_t seg, uint64_t off, uint64_t size)
{
	if (qs_seg_zeros_at(fd, off, size) == 1)
		return QS_TAIL_ZEROS;
	return qs_seg_stale_at(fd, seg, off, size) == 1 ? QS_TAIL_STALE : QS_TAIL_TORN;
}

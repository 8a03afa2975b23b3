/* Spool record format (docs/SPOOL.md). Every record is
 *
 *   u32 magic 0xFF515352 ("\xffQSR")   resync point after damage
 *   u32 len                            payload bytes
 *   u64 time_ns                        CLOCK_REALTIME when spooled
 *   u32 crc                            CRC32C of len, time_ns and payload,
 *                                      XOR the segment's key (qs_seg_key)
 *   payload[len]                       one JSON line ending in '\n'
 *
 * all integers big-endian, no padding. 0xFF never occurs in UTF-8 text, so
 * the magic is rare inside payloads; the CRC decides anyway.
 *
 * Why the key: a shipped segment's file is reused for a later segment
 * (spool.c), and after a crash the records of its earlier use may still
 * follow the new ones. Keyed with the old segment's id, they fail the check
 * for the new one, exactly like a torn tail. Records written before keys
 * existed carry the plain CRC (key 0) and are still accepted. */
#ifndef QS_SHIPPER_RECORD_H
#define QS_SHIPPER_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QS_REC_MAGIC 0xFF515352u
#define QS_REC_HDR 20
/* No valid record is longer (largest message plus enrichment); a header
 * claiming more is damage, which bounds what a reader ever allocates. */
#define QS_REC_MAX_LEN (66u * 1024 * 1024)

/* The key of segment seg's records: never 0. */
uint32_t qs_seg_key(uint64_t seg);

/* Writes the header for payload data[0..len), CRC keyed with key. */
void qs_rec_header(uint8_t hdr[QS_REC_HDR], const void *data, uint32_t len, uint64_t time_ns, uint32_t key);
/* The header without its CRC, which qs_rec_seal fills in once the segment is known. */
void qs_rec_header_unsealed(uint8_t hdr[QS_REC_HDR], uint32_t len, uint64_t time_ns);
/* Computes the CRC of every record in buf[0..len) (whole records, as
 * encoded above) for key. */
void qs_rec_seal(uint8_t *buf, size_t len, uint32_t key);

/* Scanner over bytes of one segment held in memory: buf[0] is at segment
 * offset base; at_end says buf reaches the end of the segment's data. */
struct qs_scan {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	uint64_t base;
	bool at_end;
	uint32_t key; /* the segment's: records keyed otherwise are damage */
	bool trusted; /* buf holds what this process just sealed: CRCs are not re-checked */
};

enum qs_scan_kind {
	QS_SCAN_END = 0, /* nothing left in buf */
	QS_SCAN_RECORD,  /* a valid record */
	QS_SCAN_DAMAGE,  /* bytes that are no valid record (skipped up to the next magic) */
	QS_SCAN_MORE,    /* a record continues past buf: load from off, at least need bytes */
};

struct qs_scan_item {
	uint64_t off;  /* segment offset where the item starts */
	size_t size;   /* bytes it covers */
	const uint8_t *data;
	uint32_t len;
	uint64_t time_ns;
	size_t need;
};

int qs_scan_next(struct qs_scan *s, struct qs_scan_item *it);

/* Walks [from, to) of a segment file through qs_scan_next in chunks, calling
 * cb for every RECORD and DAMAGE item (adjacent damage is merged). Returns 0,
 * or -1 on a read error (errno). */
typedef void (*qs_walk_fn)(const struct qs_scan_item *it, bool damage, void *arg);
int qs_seg_walk(int fd, uint32_t key, uint64_t from, uint64_t to, qs_walk_fn cb, void *arg);

/* Summary of a whole segment, for replay and the offline check. */
struct qs_seg_summary {
	uint64_t records;
	uint64_t record_bytes;
	uint64_t good_end;       /* end of the last valid record: the tail after it is torn */
	uint64_t damaged_bytes;  /* mid-segment damage, before good_end */
	uint64_t damaged_regions;
	uint64_t first_damage;   /* offset of the first mid-segment damage */
	uint64_t first_time_after; /* time_ns of the first record at or after summary_from */
	uint64_t records_after;    /* records at or after summary_from */
	uint64_t summary_from;
};

int qs_seg_summarize(int fd, uint32_t key, uint64_t size, uint64_t from, struct qs_seg_summary *out);

/* Whether the bytes of segment seg's file from off (up to size) are the
 * leftover of the file's earlier use (a reused file, spool.c), not damage:
 * the first record starting in the next 64 KiB is whole and keyed for one
 * of the QS_STALE_SPAN segments before seg. 1 yes, 0 no, -1 read error. */
#define QS_STALE_SPAN 64
int qs_seg_stale_at(int fd, uint64_t seg, uint64_t off, uint64_t size);

/* Whether every byte of the file from off up to size is zero: what the
 * spool laid ahead of its records (spool.c zeros_ahead), cut by a crash
 * before writing moved on; not damage. 1 yes, 0 no, -1 read error. */
int qs_seg_zeros_at(int fd, uint64_t off, uint64_t size);

/* What the bytes of segment seg's file from off up to size are, when they
 * follow its last valid record: QS_TAIL_ZEROS (qs_seg_zeros_at),
 * QS_TAIL_STALE (qs_seg_stale_at), both not damage, or QS_TAIL_TORN. */
enum qs_seg_tail { QS_TAIL_TORN, QS_TAIL_ZEROS, QS_TAIL_STALE };
enum qs_seg_tail qs_seg_tail_kind(int fd, uint64_t seg, uint64_t off, uint64_t size);

#endif

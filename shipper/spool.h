/* The durable spool: a directory of append-only segment files named
 * <16 hex digits id>.seg holding records (record.h), plus the cursor file
 * (cursor.h). One writer, one reader, one process. See docs/SPOOL.md. */
#ifndef QS_SHIPPER_SPOOL_H
#define QS_SHIPPER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shipper/cursor.h"

struct qs_spool_opts {
	const char *dir;
	uint64_t max_bytes; /* refuse appends beyond this total */
	uint64_t seg_max;   /* start a new segment once the current one is this big */
	bool fsync;         /* fdatasync every commit (QS_DURABILITY_FSYNC) */
	bool have_dirfd;    /* dirfd: the directory, opened before privileges were dropped */
	int dirfd;          /* (its parents may be closed to the unprivileged user); taken over */
};

struct qs_spool_seg {
	uint64_t id;
	uint64_t size; /* committed bytes */
};

/* What opening found and repaired, for the log and the tests. */
struct qs_spool_replay {
	uint64_t torn_bytes;      /* cut from the tail of the last segment */
	uint64_t damaged_bytes;   /* mid-segment damage in the last segment (skipped when read) */
	uint64_t leftovers;       /* shipped segments deleted (a crash hit retirement) */
	bool cursor_missing;
	bool cursor_corrupt;
	bool cursor_clamped;
};

struct qs_reaper;

struct qs_spool {
	char dir[4096];
	uint64_t max_bytes, seg_max;
	bool fsync;
	int dirfd;
	int wfd;            /* write segment, -1 until the first append after open */
	struct qs_spool_seg *segs; /* sorted by id; the write segment is the last */
	size_t nsegs, cap;
	uint64_t next_id;
	uint64_t total;     /* committed bytes in all segment files */
	uint64_t pending;   /* written to the write segment past its committed size, awaiting fdatasync */
	uint64_t walloc;    /* the write segment's file size when it is past the committed end
	                     * (a reused spare, zeros laid ahead), else 0 */
	bool no_zeros;      /* laying zeros ahead failed in the write segment (a full disk) */
	uint64_t spare_bytes; /* a shipped segment kept as the next one's file: counted against max_bytes */
	uint64_t first_new_id; /* segments from this id on were written by this process (keyed records only) */
	uint64_t max_seen_id;  /* the highest segment name in the directory at open, even one refused */
	bool write_failed;     /* the last write or fdatasync failed (a full disk?): the write segment
	                        * may never grow again, so once shipped it is retired (roll_if_shipped) */
	struct qs_pos written;   /* where the last qs_spool_write put its buffer */
	struct qs_pos cursor;    /* what the output has taken (in memory) */
	struct qs_pos persisted; /* what the cursor file says, or will say before any deletion it allows */
	struct qs_cursor_writer cw;
	struct qs_spool_replay replay;
	struct qs_reaper *reaper; /* set: the cursor is written and retired segments deleted on its thread */
};

/* Creates the directory (0700) if missing, deletes leftovers of retirement,
 * cuts a torn tail, loads the cursor. 0, or -1 (logged). */
int qs_spool_open(struct qs_spool *s, const struct qs_spool_opts *o);
void qs_spool_close(struct qs_spool *s);

/* Bytes that may be appended now. */
uint64_t qs_spool_room(const struct qs_spool *s);
/* How many of the leading staged records to commit now: those that fit in
 * the room; on an empty spool at least the first, so that one event larger
 * than the limit cannot wedge it (the limit is exceeded by that one event
 * only, never by a whole batch). */
struct qs_stage;
size_t qs_spool_take(const struct qs_spool *s, const struct qs_stage *st);

/* Group commit: buf holds whole encoded records, whose CRCs are filled in
 * here for the segment they land in (record.h); one write, then one
 * fdatasync when opts.fsync. On failure the segment is cut back to its last
 * good end and -1 is returned with errno; nothing of buf counts as written. */
int qs_spool_append(struct qs_spool *s, uint8_t *buf, size_t len);

/* The same commit in two steps, for an fdatasync made elsewhere (the
 * shipper's sync thread): qs_spool_write writes buf after the committed end
 * (only while nothing is pending) and leaves it pending; the caller then
 * fdatasyncs s->wfd and reports with qs_spool_sync_done. Pending bytes are
 * not committed: readers, the size and the room ignore them until then.
 * While bytes are pending, s->wfd stays open and unchanged. */
int qs_spool_write(struct qs_spool *s, uint8_t *buf, size_t len);
/* ok: the pending bytes are durable and become committed. !ok: they are cut
 * off again (after a failed fdatasync the kernel's copy cannot be trusted). */
void qs_spool_sync_done(struct qs_spool *s, bool ok);

/* Committed size of segment id, or -1 when it does not exist. */
int64_t qs_spool_seg_size(const struct qs_spool *s, uint64_t id);
/* Id of the segment after id, or false if id is the newest. */
bool qs_spool_seg_after(const struct qs_spool *s, uint64_t id, uint64_t *next);
int qs_spool_open_seg(const struct qs_spool *s, uint64_t id); /* O_RDONLY fd or -1 */

/* Moves the in-memory cursor forward to pos (never backwards). */
void qs_spool_advance(struct qs_spool *s, struct qs_pos pos);
/* Moves it back to pos, never before the persisted cursor: what the output
 * took after pos turned out not to be taken (a file's failed sync). */
void qs_spool_rewind(struct qs_spool *s, struct qs_pos pos);
/* Committed bytes after p (after the cursor: what the output has yet to take). */
uint64_t qs_spool_bytes_after(const struct qs_spool *s, struct qs_pos p);
/* After the last committed record. */
struct qs_pos qs_spool_end(const struct qs_spool *s);

/* Persists the in-memory cursor (if it moved), then deletes every segment
 * wholly before it: in that order, so a crash in between only leaves
 * leftovers that the next open deletes. 0, or -1 (logged). */
int qs_spool_persist(struct qs_spool *s);

#define QS_REPAIR_TMP "repair.tmp" /* --repair's rewrite of a damaged segment */

/* Segment file names: <16 lowercase hex digits>.seg */
void qs_seg_name(char *out, size_t len, uint64_t id);
bool qs_seg_parse_name(const char *name, uint64_t *id);

#endif

/* The persisted read cursor: how far the output has taken the spool.
 *
 * One small file with two checksummed slots, each in its own 512-byte
 * sector. It is created (and replaced by --repair) atomically: temp file,
 * fsync, rename, fsync of the directory. After that every update overwrites
 * the older slot in place and fdatasyncs it: no metadata changes, so no ext4
 * journal commit (the old way, five times a second, stalled the shipper for
 * 1-4 ms each time). A torn or lost slot write leaves the other, older slot,
 * so a crash never yields a cursor ahead of what was shipped. */
#ifndef QS_SHIPPER_CURSOR_H
#define QS_SHIPPER_CURSOR_H

#include <stdbool.h>
#include <stdint.h>

#define QS_CURSOR_FILE "cursor"
#define QS_CURSOR_TMP "cursor.tmp"
#define QS_CURSOR_SLOT 40       /* bytes of one slot */
#define QS_CURSOR_SLOT_GAP 512  /* slot k starts at k * 512 */
#define QS_CURSOR_FILE_SIZE 1024

struct qs_pos {
	uint64_t seg; /* segment id */
	uint64_t off; /* byte offset inside it: everything before was shipped */
};

/* a is after b in the spool. */
static inline bool qs_pos_after(struct qs_pos a, struct qs_pos b)
{
	return a.seg > b.seg || (a.seg == b.seg && a.off > b.off);
}

/* 0 loaded (the newest valid slot), 1 no cursor file, -1 unreadable or
 * corrupt (no valid slot; logged by the caller). Reads the old one-slot
 * format (version 1) too. */
int qs_cursor_load(int dirfd, struct qs_pos *pos);
/* Replaces the file atomically, both slots holding pos. 0, or -1 with errno. */
int qs_cursor_store(int dirfd, const struct qs_pos *pos);

/* In-place updates by one writer. fd -1 until the first update, which
 * replaces the file with qs_cursor_store and keeps it open. */
struct qs_cursor_writer {
	int fd;
	uint64_t seq; /* of the newest slot */
};
void qs_cursor_writer_init(struct qs_cursor_writer *w);
/* Opens the writer before its first update: a valid two-slot file holding
 * pos is kept and written in place from then on (no new file, no space
 * needed); anything else is replaced by one holding pos. 0, or -1 with errno. */
int qs_cursor_writer_open(struct qs_cursor_writer *w, int dirfd, const struct qs_pos *pos);
/* 0, or -1 with errno (the file then still holds an older cursor). */
int qs_cursor_update(struct qs_cursor_writer *w, int dirfd, const struct qs_pos *pos);
void qs_cursor_writer_close(struct qs_cursor_writer *w);

#endif

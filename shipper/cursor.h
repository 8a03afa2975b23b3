/* The persisted read cursor: how far the output has taken the spool.
 * One small checksummed file, replaced atomically (temp file, fsync, rename,
 * fsync of the directory), so a crash leaves the old or the new cursor. */
#ifndef QS_SHIPPER_CURSOR_H
#define QS_SHIPPER_CURSOR_H

#include <stdint.h>

#define QS_CURSOR_FILE "cursor"
#define QS_CURSOR_TMP "cursor.tmp"
#define QS_CURSOR_SIZE 32

struct qs_pos {
	uint64_t seg; /* segment id */
	uint64_t off; /* byte offset inside it: everything before was shipped */
};

/* 0 loaded, 1 no cursor file, -1 unreadable or corrupt (logged by the caller). */
int qs_cursor_load(int dirfd, struct qs_pos *pos);
/* 0, or -1 with errno. */
int qs_cursor_store(int dirfd, const struct qs_pos *pos);

void qs_cursor_encode(uint8_t out[QS_CURSOR_SIZE], const struct qs_pos *pos);

#endif

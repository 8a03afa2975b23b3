#include "shipper/cursor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/wire.h"
#include "shipper/spool_file.h"

/* Slot layout (version 2), big-endian: u32 magic "QSC2" | u32 version |
 * u64 seq | u64 seg | u64 off | u32 crc32c of the 32 bytes before | u32 zero.
 * Version 1 (read only): u32 "QSC1" | u32 1 | u64 seg | u64 off | u32 crc of
 * 24 bytes | u32 zero, the whole 32-byte file. */
#define CURSOR_MAGIC_V1 0x51534331u
#define CURSOR_MAGIC 0x51534332u
#define CURSOR_VERSION 2

static void encode_slot(uint8_t out[QS_CURSOR_SLOT], const struct qs_pos *pos, uint64_t seq)
{
	memset(out, 0, QS_CURSOR_SLOT);
	qs_put_u32(out, CURSOR_MAGIC);
	qs_put_u32(out + 4, CURSOR_VERSION);
	qs_put_u64(out + 8, seq);
	qs_put_u64(out + 16, pos->seg);
	qs_put_u64(out + 24, pos->off);
	qs_put_u32(out + 32, qs_crc32c(0, out, 32));
}

static bool decode_slot(const uint8_t *b, struct qs_pos *pos, uint64_t *seq)
{
	if (qs_get_u32(b) != CURSOR_MAGIC || qs_get_u32(b + 4) != CURSOR_VERSION ||
	    qs_get_u32(b + 32) != qs_crc32c(0, b, 32))
		return false;
	*seq = qs_get_u64(b + 8);
	pos->seg = qs_get_u64(b + 16);
	pos->off = qs_get_u64(b + 24);
	return true;
}

static bool decode_v1(const uint8_t *b, struct qs_pos *pos)
{
	if (qs_get_u32(b) != CURSOR_MAGIC_V1 || qs_get_u32(b + 4) != 1 || qs_get_u32(b + 24) != qs_crc32c(0, b, 24))
		return false;
	pos->seg = qs_get_u64(b + 8);
	pos->off = qs_get_u64(b + 16);
	return true;
}

/* The newest valid slot of file bytes b[0..n): 0, or -1. */
static int decode_file(const uint8_t *b, size_t n, struct qs_pos *pos, uint64_t *seq)
{
	if (n == 32)
		return decode_v1(b, pos) ? (*seq = 0, 0) : -1;
	bool found = false;
	for (size_t k = 0; k < 2 && k * QS_CURSOR_SLOT_GAP + QS_CURSOR_SLOT <= n; k++) {
		struct qs_pos p;
		uint64_t s;
		if (decode_slot(b + k * QS_CURSOR_SLOT_GAP, &p, &s) && (!found || s > *seq)) {
			*pos = p;
			*seq = s;
			found = true;
		}
	}
	return found ? 0 : -1;
}

int qs_cursor_load(int dirfd, struct qs_pos *pos)
{
	int fd = qs_spool_file_open(dirfd, QS_CURSOR_FILE, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	uint8_t b[QS_CURSOR_FILE_SIZE + 1];
	ssize_t n = pread(fd, b, sizeof(b), 0);
	close(fd);
	uint64_t seq = 0;
	if (n < 0 || n > QS_CURSOR_FILE_SIZE)
		return -1;
	return decode_file(b, (size_t)n, pos, &seq);
}

int qs_cursor_store(int dirfd, const struct qs_pos *pos)
{
	uint8_t b[QS_CURSOR_FILE_SIZE] = {0};
	encode_slot(b, pos, 0);
	encode_slot(b + QS_CURSOR_SLOT_GAP, pos, 1);
	int fd = qs_spool_file_temp(dirfd, QS_CURSOR_TMP);
	if (fd < 0)
		return -1;
	int rc = write(fd, b, sizeof(b)) == (ssize_t)sizeof(b) && fsync(fd) == 0 ? 0 : -1;
	int saved = errno;
	close(fd);
	if (rc == 0 && renameat(dirfd, QS_CURSOR_TMP, dirfd, QS_CURSOR_FILE) == 0 && fsync(dirfd) == 0)
		return 0;
	errno = rc ? saved : errno;
	return -1;
}

void qs_cursor_writer_init(struct qs_cursor_writer *w)
{
	w->fd = -1;
	w->seq = 0;
}

int qs_cursor_writer_open(struct qs_cursor_writer *w, int dirfd, const struct qs_pos *pos)
{
	qs_cursor_writer_close(w);
	int fd = qs_spool_file_open(dirfd, QS_CURSOR_FILE, O_RDWR);
	if (fd >= 0) {
		uint8_t b[QS_CURSOR_FILE_SIZE + 1];
		ssize_t n = pread(fd, b, sizeof(b), 0);
		struct qs_pos p;
		uint64_t seq;
		if (n == QS_CURSOR_FILE_SIZE && decode_file(b, (size_t)n, &p, &seq) == 0 && p.seg == pos->seg &&
		    p.off == pos->off) {
			w->fd = fd;
			w->seq = seq;
			return 0;
		}
		close(fd);
	}
	return qs_cursor_update(w, dirfd, pos);
}

int qs_cursor_update(struct qs_cursor_writer *w, int dirfd, const struct qs_pos *pos)
{
	if (w->fd < 0) {
		if (qs_cursor_store(dirfd, pos) != 0)
			return -1;
		w->fd = qs_spool_file_open(dirfd, QS_CURSOR_FILE, O_WRONLY);
		w->seq = 1; /* qs_cursor_store wrote seq 1 into slot 1 */
		return w->fd < 0 ? -1 : 0;
	}
	/* Sequence n lives in slot n % 2: this overwrites the older slot. */
	uint64_t seq = w->seq + 1;
	uint8_t b[QS_CURSOR_SLOT];
	encode_slot(b, pos, seq);
	off_t at = (off_t)(seq % 2) * QS_CURSOR_SLOT_GAP;
	if (pwrite(w->fd, b, sizeof(b), at) != (ssize_t)sizeof(b) || fdatasync(w->fd) != 0) {
		/* Reopen (and replace the file whole) next time: the slot may be torn. */
		int e = errno;
		qs_cursor_writer_close(w);
		errno = e;
		return -1;
	}
	w->seq = seq;
	return 0;
}

void qs_cursor_writer_close(struct qs_cursor_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	qs_cursor_writer_init(w);
}

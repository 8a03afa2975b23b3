#include "shipper/cursor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/wire.h"

/* Layout: u32 magic "QSC1" | u32 version | u64 seg | u64 off | u32 crc32c of
 * the 24 bytes before it | u32 zero. Big-endian. */
#define CURSOR_MAGIC 0x51534331u
#define CURSOR_VERSION 1

void qs_cursor_encode(uint8_t out[QS_CURSOR_SIZE], const struct qs_pos *pos)
{
	memset(out, 0, QS_CURSOR_SIZE);
	qs_put_u32(out, CURSOR_MAGIC);
	qs_put_u32(out + 4, CURSOR_VERSION);
	qs_put_u64(out + 8, pos->seg);
	qs_put_u64(out + 16, pos->off);
	qs_put_u32(out + 24, qs_crc32c(0, out, 24));
}

int qs_cursor_load(int dirfd, struct qs_pos *pos)
{
	int fd = openat(dirfd, QS_CURSOR_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	uint8_t b[QS_CURSOR_SIZE + 1];
	ssize_t n = read(fd, b, sizeof(b));
	close(fd);
	if (n != QS_CURSOR_SIZE || qs_get_u32(b) != CURSOR_MAGIC || qs_get_u32(b + 4) != CURSOR_VERSION ||
	    qs_get_u32(b + 24) != qs_crc32c(0, b, 24))
		return -1;
	pos->seg = qs_get_u64(b + 8);
	pos->off = qs_get_u64(b + 16);
	return 0;
}

int qs_cursor_store(int dirfd, const struct qs_pos *pos)
{
	uint8_t b[QS_CURSOR_SIZE];
	qs_cursor_encode(b, pos);
	int fd = openat(dirfd, QS_CURSOR_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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

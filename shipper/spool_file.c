#include "shipper/spool_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "shipper/cursor.h"
#include "shipper/reaper.h"
#include "shipper/spool.h"

static int not_regular(mode_t m)
{
	return S_ISLNK(m) ? ELOOP : EINVAL;
}

int qs_spool_file_open(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == ENXIO) /* a FIFO without a reader, opened for writing */
			errno = EINVAL;
		return -1;
	}
	struct stat st;
	int e = 0, fl;
	if (fstat(fd, &st) != 0)
		e = errno;
	else if (!S_ISREG(st.st_mode))
		e = not_regular(st.st_mode);
	else if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		e = errno;
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int qs_spool_file_temp(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
		return -1;
	return qs_spool_file_open(dirfd, name, O_WRONLY | O_CREAT | O_EXCL);
}

int qs_spool_file_stat(int dirfd, const char *name, struct stat *st)
{
	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
		return -1;
	if (S_ISREG(st->st_mode))
		return 0;
	errno = not_regular(st->st_mode);
	return -1;
}

const char *qs_spool_file_error(int err)
{
	if (err == ELOOP)
		return "a symbolic link (refused: never followed)";
	if (err == EINVAL)
		return "not a regular file (refused)";
	return strerror(err);
}

bool qs_spool_file_known(const char *name)
{
	uint64_t id;
	return qs_seg_parse_name(name, &id) || !strcmp(name, QS_CURSOR_FILE) || !strcmp(name, QS_CURSOR_TMP) ||
	       !strcmp(name, QS_SPARE_FILE) || !strcmp(name, QS_REPAIR_TMP);
}

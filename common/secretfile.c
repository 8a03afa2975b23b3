#include "common/secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x) /* QS_SECRET_LEN spelled in a message */

static int check_fd(int fd, size_t max, bool private_only)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	if (private_only && (st.st_mode & 077)) {
		errno = EPERM;
		return -1;
	}
	if ((uint64_t)st.st_size > max) {
		errno = EFBIG;
		return -1;
	}
	return 0;
}

static int open_ro(const char *path)
{
	/* O_NONBLOCK: a FIFO planted at the path must not block the open */
	return open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

int qs_file_check(const char *path, size_t max, bool private_only)
{
	int fd = open_ro(path);
	if (fd < 0)
		return -1;
	int rc = check_fd(fd, max, private_only);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int qs_file_read_fd(int fd, size_t max, bool private_only, char **out, size_t *len)
{
	if (check_fd(fd, max, private_only) < 0)
		return -1;
	char *buf = malloc(max + 1);
	if (!buf)
		return -1;
	size_t got = 0;
	/* pread: a descriptor shared with other processes (a sealed memfd handed
	 * to every child) keeps its offset; one byte past max tells growth. */
	while (got <= max) {
		ssize_t n = pread(fd, buf + got, max + 1 - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			qs_file_free(buf, got);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max) {
		qs_file_free(buf, got);
		errno = EFBIG;
		return -1;
	}
	buf[got] = 0;
	*out = buf;
	*len = got;
	return 0;
}

int qs_file_read(const char *path, size_t max, bool private_only, char **out, size_t *len)
{
	int fd = open_ro(path);
	if (fd < 0)
		return -1;
	int rc = qs_file_read_fd(fd, max, private_only, out, len);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

void qs_file_free(char *buf, size_t len)
{
	if (!buf)
		return;
	explicit_bzero(buf, len);
	free(buf);
}

int qs_secret_read(const char *path, uint8_t out[QS_SECRET_LEN])
{
	char *buf;
	size_t len;
	if (qs_file_read(path, QS_SECRET_LEN, true, &buf, &len) < 0) {
		if (errno == EFBIG)
			errno = EINVAL;
		return -1;
	}
	int rc = len == QS_SECRET_LEN ? 0 : -1;
	if (rc == 0)
		memcpy(out, buf, QS_SECRET_LEN);
	else
		errno = EINVAL;
	qs_file_free(buf, len);
	return rc;
}

const char *qs_private_strerror(int err)
{
	switch (err) {
	case EINVAL: return "not a regular file";
	case EPERM: return "group or others may access it (chmod 600 it)";
	case EFBIG: return "too large";
	default: return strerror(err);
	}
}

const char *qs_secret_strerror(int err)
{
	if (err == EINVAL)
		return "not a regular file of " STR(QS_SECRET_LEN) " bytes (remove it to have a new secret made)";
	return qs_private_strerror(err);
}

#include "common/spool_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* DIR/quicstashd.lock, never through a link, never blocking on a FIFO, only a
 * regular file with one name. flags: O_RDWR or O_RDONLY, maybe O_CREAT. */
static int open_lock_file(const char *dir, int flags, char *err, size_t errlen)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(err, errlen, "spool %s: %s", dir, strerror(errno));
		return -1;
	}
	int fd = openat(dfd, QS_SPOOL_LOCK_FILE, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EACCES && (flags & O_ACCMODE) == O_RDWR) /* left by --check-spool run as root */
		fd = openat(dfd, QS_SPOOL_LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	int e = errno;
	close(dfd);
	if (fd < 0) {
		if (e == ENOENT && !(flags & O_CREAT))
			return -2;
		snprintf(err, errlen, "spool lock %s/%s: %s", dir, QS_SPOOL_LOCK_FILE,
			 e == ELOOP ? "a symbolic link (refused: never followed)" : strerror(e));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		snprintf(err, errlen, "spool lock %s/%s: not a regular file with one link (refused)", dir,
			 QS_SPOOL_LOCK_FILE);
		close(fd);
		return -1;
	}
	return fd;
}

/* "spool DIR is in use by <what the holder wrote>": printable characters of
 * its first line only (the file is the service user's to write). */
static void describe_holder(int fd, const char *dir, char *err, size_t errlen)
{
	char buf[256], clean[256];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	size_t k = 0;
	for (ssize_t i = 0; i < n && buf[i] != '\n'; i++)
		if (buf[i] >= 0x20 && buf[i] < 0x7f)
			clean[k++] = buf[i];
	clean[k] = '\0';
	char *rest;
	long pid = strtol(clean, &rest, 10);
	if (pid > 0 && *rest == ' ')
		snprintf(err, errlen, "spool %s is in use by %s, pid %ld", dir, rest + 1, pid);
	else
		snprintf(err, errlen, "spool %s is in use by another process", dir);
}

int qs_spool_lock(const char *dir, const char *who, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	int fd = open_lock_file(dir, O_RDWR | O_CREAT, err, errlen);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			describe_holder(fd, dir, err, errlen);
		else
			snprintf(err, errlen, "cannot lock spool %s: %s", dir, strerror(errno));
		close(fd);
		return -1;
	}
	char line[512];
	int n = snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), who);
	/* Only for the message of the next one refused; read-only (left by root): nothing written. */
	if (ftruncate(fd, 0) == 0 && n > 0) {
		ssize_t w = pwrite(fd, line, (size_t)n, 0);
		(void)w;
	}
	return fd;
}

int qs_spool_lock_probe(const char *dir, char *err, size_t errlen)
{
	int fd = open_lock_file(dir, O_RDONLY, err, errlen);
	if (fd == -2)
		return 0;
	if (fd < 0)
		return -1;
	int held = 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0)
		flock(fd, LOCK_UN);
	else if (errno == EWOULDBLOCK)
		held = 1;
	if (held)
		describe_holder(fd, dir, err, errlen);
	close(fd);
	return held;
}

#include "client/send_acklog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The offset just past the last newline of the first size bytes (0: none). */
static off_t complete_end(int fd, off_t size)
{
	char buf[4096];
	off_t end = size;
	while (end > 0) {
		size_t n = end < (off_t)sizeof(buf) ? (size_t)end : sizeof(buf);
		if (pread(fd, buf, n, end - (off_t)n) != (ssize_t)n)
			return -1;
		for (size_t i = n; i > 0; i--)
			if (buf[i - 1] == '\n')
				return end - (off_t)n + (off_t)i;
		end -= (off_t)n;
	}
	return 0;
}

/* Cuts a last line that has no newline: the rest of a write the client did
 * not finish. Appending after it would glue the next entry to it. */
static int cut_torn_tail(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	off_t end = fstat(fd, &st) == 0 ? complete_end(fd, st.st_size) : -1;
	if (end < 0 || (end < st.st_size && ftruncate(fd, end) < 0)) {
		snprintf(err, errlen, "--ack-log %s: %s", path, strerror(errno));
		return -1;
	}
	if (end < st.st_size)
		fprintf(stderr, "quicstash-send: --ack-log %s: dropped a torn last line (%lld bytes)\n", path,
			(long long)(st.st_size - end));
	return 0;
}

static int mark(struct send_acklog *a, int file, uint64_t line)
{
	size_t w = (size_t)(line / 64);
	if (w >= a->words[file]) {
		size_t n = w + 1 > 2 * a->words[file] ? w + 1 : 2 * a->words[file];
		uint64_t *nb = realloc(a->done[file], n * sizeof(*nb));
		if (!nb)
			return -1;
		memset(nb + a->words[file], 0, (n - a->words[file]) * sizeof(*nb));
		a->done[file] = nb;
		a->words[file] = n;
	}
	a->done[file][w] |= UINT64_C(1) << (line % 64);
	return 0;
}

/* "L" (one input) or "FILE:L" (several, or one named): the input index, or -1. */
static int entry_file(char *s, char **files, int nfiles, char **num)
{
	char *colon = strrchr(s, ':');
	*num = colon ? colon + 1 : s;
	if (!colon)
		return nfiles <= 1 ? 0 : -1;
	*colon = 0;
	for (int i = 0; i < nfiles; i++)
		if (strcmp(files[i], s) == 0)
			return i;
	return -1;
}

static int load(struct send_acklog *a, const char *path, char **files, int nfiles, char *err, size_t errlen)
{
	int fd = dup(a->fd);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "--ack-log %s: %s", path, strerror(errno));
		return -1;
	}
	rewind(f); /* the dup shares the offset: ours is unused (O_APPEND) */
	char *line = NULL, *num, *end;
	size_t cap = 0;
	ssize_t n;
	uint64_t lineno = 0;
	int rc = 0;
	while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
		lineno++;
		line[strcspn(line, "\r\n")] = 0;
		if (!*line)
			continue;
		int file = entry_file(line, files, nfiles, &num);
		errno = 0;
		unsigned long long l = strtoull(num, &end, 10);
		if (file < 0 || *num < '0' || *num > '9' || *end || errno || l == 0) {
			snprintf(err, errlen, "--ack-log %s line %llu: '%.80s' is not a line of this input (resume with the "
				 "same input files, in the same order)", path, (unsigned long long)lineno, line);
			rc = -1;
		} else if (mark(a, file, l) < 0) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
		}
		a->entries++;
	}
	free(line);
	fclose(f);
	return rc;
}

int acklog_open(struct send_acklog *a, const char *path, bool resume, char **files, int nfiles, char *err,
		size_t errlen)
{
	*a = (struct send_acklog){.fd = -1, .nfiles = nfiles > 0 ? nfiles : 1};
	/* No symlink (a planted link would have us append to another file), nothing
	 * but a regular file, one writer at a time. */
	a->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0644);
	struct stat st;
	if (a->fd < 0 || fstat(a->fd, &st) < 0) {
		snprintf(err, errlen, "--ack-log %s: %s", path,
			 errno == ELOOP ? "is a symbolic link (refused)" : strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "--ack-log %s: not a regular file", path);
		return -1;
	}
	if (flock(a->fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "--ack-log %s: %s", path,
			 errno == EWOULDBLOCK ? "in use by another quicstash-send" : strerror(errno));
		return -1;
	}
	if (cut_torn_tail(a->fd, path, err, errlen) < 0)
		return -1;
	if (!resume)
		return 0;
	a->done = calloc((size_t)a->nfiles, sizeof(*a->done));
	a->words = calloc((size_t)a->nfiles, sizeof(*a->words));
	if (!a->done || !a->words) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return load(a, path, nfiles > 0 ? files : NULL, nfiles, err, errlen);
}

bool acklog_done(const struct send_acklog *a, int file, uint64_t line)
{
	if (!a->done || file < 0 || file >= a->nfiles || line / 64 >= a->words[file])
		return false;
	return (a->done[file][line / 64] >> (line % 64)) & 1;
}

int acklog_append(struct send_acklog *a, const char *entry)
{
	char buf[4200];
	int n = snprintf(buf, sizeof(buf), "%s\n", entry);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		return -1;
	a->dirty = true;
	return write(a->fd, buf, (size_t)n) == n ? 0 : -1;
}

void acklog_sync(struct send_acklog *a)
{
	if (a->fd >= 0 && a->dirty)
		fdatasync(a->fd);
	a->dirty = false;
}

void acklog_close(struct send_acklog *a)
{
	acklog_sync(a);
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	if (a->done)
		for (int i = 0; i < a->nfiles; i++)
			free(a->done[i]);
	free(a->done);
	free(a->words);
	a->done = NULL;
	a->words = NULL;
}

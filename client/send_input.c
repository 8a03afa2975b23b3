#include "client/send_input.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

const char *qs_input_name(const struct qs_input *in, int file)
{
	return in->files ? in->files[file] : "<stdin>";
}

static void ready_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_input *in = arg;
	in->readable(in->ud);
}

/* Opens file cur; a pipe or terminal gets O_NONBLOCK and a read event. */
static int open_current(struct qs_input *in, char *err, size_t errlen)
{
	if (in->files) {
		in->fd = open(in->files[in->cur], O_RDONLY | O_CLOEXEC);
		if (in->fd < 0) {
			snprintf(err, errlen, "%s: %s", in->files[in->cur], strerror(errno));
			return -1;
		}
	} else {
		in->fd = STDIN_FILENO;
	}
	in->line = 0;
	in->eof = false;
	struct stat st;
	if (fstat(in->fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		int fl = fcntl(in->fd, F_GETFL);
		if (in->fd == STDIN_FILENO)
			in->saved_flags = fl;
		fcntl(in->fd, F_SETFL, fl | O_NONBLOCK);
		in->ev = event_new(in->base, in->fd, EV_READ, ready_cb, in);
	}
	return 0;
}

int qs_input_open(struct qs_input *in, struct event_base *base, char **files, int nfiles, size_t max_line,
		  void (*readable)(void *ud), void *ud, char *err, size_t errlen)
{
	memset(in, 0, sizeof(*in));
	in->files = nfiles > 0 ? files : NULL;
	in->nfiles = nfiles > 0 ? nfiles : 1;
	in->max_line = max_line;
	in->readable = readable;
	in->ud = ud;
	in->saved_flags = -1;
	in->base = base;
	/* A missing file fails the run before anything is sent, not halfway. */
	for (int i = 0; i < nfiles; i++) {
		if (access(files[i], R_OK) != 0) {
			snprintf(err, errlen, "%s: %s", files[i], strerror(errno));
			return -1;
		}
	}
	return open_current(in, err, errlen);
}

static void close_current(struct qs_input *in)
{
	if (in->ev)
		event_free(in->ev);
	in->ev = NULL;
	if (in->fd == STDIN_FILENO && in->saved_flags >= 0)
		fcntl(in->fd, F_SETFL, in->saved_flags);
	else if (in->fd > STDIN_FILENO)
		close(in->fd);
	in->fd = -1;
}

/* Reads one chunk; 1 data, 0 would block, -1 EOF, -2 error. */
static int fill(struct qs_input *in, char *err, size_t errlen)
{
	if (in->start > 0 && in->start == in->end)
		in->start = in->end = 0;
	if (in->cap - in->end < CHUNK) {
		if (in->start > 0) { /* slide the partial line to the front */
			memmove(in->buf, in->buf + in->start, in->end - in->start);
			in->end -= in->start;
			in->start = 0;
		}
		if (in->cap - in->end < CHUNK) {
			size_t ncap = in->cap ? in->cap * 2 : 4 * CHUNK;
			char *nb = realloc(in->buf, ncap);
			if (!nb) {
				snprintf(err, errlen, "out of memory");
				return -2;
			}
			in->buf = nb;
			in->cap = ncap;
		}
	}
	ssize_t n = read(in->fd, in->buf + in->end, in->cap - in->end);
	if (n > 0) {
		in->end += (size_t)n;
		return 1;
	}
	if (n == 0)
		return -1;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	snprintf(err, errlen, "%s: %s", qs_input_name(in, in->cur), strerror(errno));
	return -2;
}

int qs_input_next(struct qs_input *in, const char **line, size_t *len, char *err, size_t errlen)
{
	for (;;) {
		char *s = in->buf + in->start;
		char *nl = in->end > in->start ? memchr(s, '\n', in->end - in->start) : NULL;
		if (nl || (in->eof && in->end > in->start)) {
			size_t n = nl ? (size_t)(nl - s) : in->end - in->start;
			in->start += n + (nl ? 1 : 0);
			in->line++;
			*line = s;
			*len = n;
			return QS_IN_LINE;
		}
		if (in->eof) { /* next file */
			close_current(in);
			if (++in->cur >= in->nfiles)
				return QS_IN_END;
			if (open_current(in, err, errlen) < 0)
				return QS_IN_ERROR;
			continue;
		}
		if (in->end - in->start > in->max_line) {
			snprintf(err, errlen, "%s: line %llu is longer than %zu bytes", qs_input_name(in, in->cur),
				 (unsigned long long)in->line + 1, in->max_line);
			return QS_IN_ERROR;
		}
		int rv = fill(in, err, errlen);
		if (rv == -2)
			return QS_IN_ERROR;
		if (rv == -1)
			in->eof = true;
		if (rv == 0) {
			event_add(in->ev, NULL);
			return QS_IN_WAIT;
		}
	}
}

void qs_input_close(struct qs_input *in)
{
	if (in->fd >= 0)
		close_current(in);
	free(in->buf);
	in->buf = NULL;
}

static int slurp_fd(int fd, const char *name, uint8_t **data, size_t *len, size_t *cap, char *err, size_t errlen)
{
	for (;;) {
		if (*cap - *len < CHUNK) {
			size_t ncap = *cap ? *cap * 2 : 4 * CHUNK;
			uint8_t *nb = realloc(*data, ncap);
			if (!nb) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			*data = nb;
			*cap = ncap;
		}
		ssize_t n = read(fd, *data + *len, *cap - *len);
		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", name, strerror(errno));
			return -1;
		}
		*len += (size_t)n;
	}
}

int qs_input_slurp(char **files, int nfiles, uint8_t **data, size_t *len, char *err, size_t errlen)
{
	size_t cap = 0;
	*data = NULL;
	*len = 0;
	if (nfiles == 0)
		return slurp_fd(STDIN_FILENO, "<stdin>", data, len, &cap, err, errlen);
	for (int i = 0; i < nfiles; i++) {
		int fd = open(files[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "%s: %s", files[i], strerror(errno));
			return -1;
		}
		int rv = slurp_fd(fd, files[i], data, len, &cap, err, errlen);
		close(fd);
		if (rv < 0)
			return -1;
	}
	return 0;
}

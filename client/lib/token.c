/* The bearer token a program gives the library: from a --token-file or the
 * QUICSTASH_TOKEN variable (qs_client.h, qs_client_token). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/qs_client.h"

/* One line: a trailing newline (and a CR before it) is not part of the token. */
static int take_line(const char *src, size_t n, char *out, size_t cap, size_t *len, char *err, size_t errlen,
		     const char *what)
{
	const char *nl = memchr(src, '\n', n);
	if (nl && (size_t)(nl - src) + 1 < n) {
		snprintf(err, errlen, "%s: more than one line", what);
		return -1;
	}
	if (nl)
		n = (size_t)(nl - src);
	if (n && src[n - 1] == '\r')
		n--;
	if (n == 0 || n > QS_AUTH_TOKEN_MAX || n > cap || memchr(src, 0, n)) {
		snprintf(err, errlen, "%s: expected one line of 1 to %d bytes", what, QS_AUTH_TOKEN_MAX);
		return -1;
	}
	memcpy(out, src, n);
	*len = n;
	return 0;
}

int qs_client_token(const char *file, char *out, size_t cap, size_t *len, char *err, size_t errlen)
{
	*len = 0;
	if (!file) {
		const char *env = getenv("QUICSTASH_TOKEN");
		return env ? take_line(env, strlen(env), out, cap, len, err, errlen, "QUICSTASH_TOKEN") : 0;
	}
	char buf[QS_AUTH_TOKEN_MAX + 3];
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		snprintf(err, errlen, "--token-file %s: %s", file, strerror(e));
		return -1;
	}
	char what[300];
	snprintf(what, sizeof(what), "--token-file %s", file);
	int rc = take_line(buf, (size_t)n, out, cap, len, err, errlen, what);
	memset(buf, 0, sizeof(buf));
	return rc;
}

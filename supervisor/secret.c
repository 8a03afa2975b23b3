#include "supervisor/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/secretfile.h"

static void sync_dir_of(const char *path)
{
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* A fresh secret in a temporary file, fsynced, then link()ed to its name:
 * a reader never sees part of it, and a second quicstashd racing on the same
 * path makes link() fail with EEXIST instead of replacing the first one's.
 * 0: ours is in place; 1: another was; -1: error (errno). */
static int create(const char *path)
{
	char tmp[4200];
	uint8_t s[QS_SECRET_LEN];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (gnutls_rnd(GNUTLS_RND_KEY, s, sizeof(s)) != 0) {
		errno = EIO;
		return -1;
	}
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	int ok = write(fd, s, sizeof(s)) == (ssize_t)sizeof(s) && fsync(fd) == 0;
	int saved = errno;
	close(fd);
	explicit_bzero(s, sizeof(s));
	int rc = -1;
	if (ok) {
		rc = link(tmp, path) == 0 ? 0 : errno == EEXIST ? 1 : -1;
		saved = errno;
	}
	unlink(tmp);
	if (rc == 0)
		sync_dir_of(path);
	errno = saved;
	return rc;
}

int qs_secret_ensure(const char *path)
{
	uint8_t s[QS_SECRET_LEN];
	for (int attempt = 0; attempt < 2; attempt++) {
		int rc = qs_secret_read(path, s);
		explicit_bzero(s, sizeof(s));
		if (rc == 0)
			return 0;
		if (errno != ENOENT)
			break;
		rc = create(path);
		if (rc == 0) {
			qs_info("created the QUIC secret %s (mode 0600): keep it with the key; stateless resets and "
				"address-validation tokens survive restarts through it", path);
			return 0;
		}
		if (rc < 0)
			break;
		/* another quicstashd made it first: read that one */
	}
	qs_err("secret %s: %s", path, qs_secret_strerror(errno));
	return -1;
}

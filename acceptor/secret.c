/* The secret every acceptor shares: stateless-reset tokens, Retry tokens and
 * NEW_TOKEN tokens are made from it, so any acceptor (and a restarted one)
 * recognises what another made. It lives in RUNDIR/quicstash.secret (32
 * random bytes, mode 0600), read at start before the sandbox. The first
 * acceptor to start writes it into a private temporary file and link()s that
 * into place, which fails with EEXIST when another acceptor won the race: a
 * reader therefore never sees a partial file. The runtime directory outlives
 * acceptor restarts and reloads, not a service restart with a fresh runtime
 * directory (a fixed --runtime-dir keeps it across those too). */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"

#define ACC_SECRET_FILE "quicstash.secret"

static int read_secret(const char *path, uint8_t *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < ACC_SECRET_LEN) {
		ssize_t n = read(fd, out + got, ACC_SECRET_LEN - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != ACC_SECRET_LEN) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* Writes a fresh secret to a temporary file and links it to path.
 * 0: ours is in place; 1: another acceptor's already was (EEXIST); -1 error. */
static int create_secret(const char *dir, const char *path, uint8_t *out)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s/.%s.%ld", dir, ACC_SECRET_FILE, (long)getpid());
	if (gnutls_rnd(GNUTLS_RND_KEY, out, ACC_SECRET_LEN) != 0)
		return -1;
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, out, ACC_SECRET_LEN);
	int ok = n == ACC_SECRET_LEN && fsync(fd) == 0;
	close(fd);
	int rc = -1;
	if (ok)
		rc = link(tmp, path) == 0 ? 0 : errno == EEXIST ? 1 : -1;
	int saved = errno;
	unlink(tmp);
	errno = saved;
	return rc;
}

int acc_secret_load(struct acc *a)
{
	const char *dir = a->cfg->runtime_dir;
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, ACC_SECRET_FILE);
	for (int attempt = 0; dir[0] && attempt < 5; attempt++) {
		if (read_secret(path, a->secret) == 0)
			return 0;
		if (errno != ENOENT) {
			qs_warn("%s: %s", path, strerror(errno));
			break;
		}
		int rc = create_secret(dir, path, a->secret);
		if (rc == 0) {
			qs_info("created the shared QUIC secret %s", path);
			return 0;
		}
		if (rc < 0) {
			qs_warn("cannot create %s: %s", path, strerror(errno));
			break;
		}
		/* another acceptor linked its file first: read that one */
	}
	qs_warn("using a per-process QUIC secret: stateless resets and address-validation tokens "
		"will not be recognised across acceptors");
	return gnutls_rnd(GNUTLS_RND_KEY, a->secret, sizeof(a->secret)) == 0 ? 0 : -1;
}

#include "common/secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x) /* QS_SECRET_LEN spelled in a message */

static int check_file(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	if (!S_ISREG(st.st_mode) || st.st_size != QS_SECRET_LEN) {
		errno = EINVAL;
		return -1;
	}
	if (st.st_mode & 077) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

int qs_secret_read(const char *path, uint8_t out[QS_SECRET_LEN])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -1;
	size_t got = 0;
	int rc = check_file(fd);
	while (rc == 0 && got < QS_SECRET_LEN) {
		ssize_t n = read(fd, out + got, QS_SECRET_LEN - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EINVAL; /* shrank under us */
			rc = -1;
			break;
		}
		got += (size_t)n;
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

const char *qs_secret_strerror(int err)
{
	switch (err) {
	case EINVAL: return "not a regular file of " STR(QS_SECRET_LEN) " bytes (remove it to have a new secret made)";
	case EPERM: return "group or others may access it (chmod 600 it)";
	default: return strerror(err);
	}
}

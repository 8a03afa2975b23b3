/* The --secret-path file: QS_SECRET_LEN random bytes, mode 0600. The
 * supervisor makes it when missing; every acceptor reads it. Being a file in
 * persistent state (with the certificate and key), not in the runtime directory, it
 * outlives a crash or restart of the whole service, so a restarted server
 * still answers the previous instance's connections with stateless resets
 * their clients accept, and recognises the NEW_TOKEN tokens it handed out.
 * Private keys and the configuration are read by the same bounded reader. */
#ifndef QS_SECRETFILE_H
#define QS_SECRETFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

/* Reads the whole secret. 0, or -1 with errno: ENOENT (missing), EINVAL (not
 * a regular file of exactly QS_SECRET_LEN bytes), EPERM (group or others may
 * access it), or the error of open/read. */
int qs_secret_read(const char *path, uint8_t out[QS_SECRET_LEN]);

/* A one-line reason for an errno of qs_secret_read. */
const char *qs_secret_strerror(int err);

/* Reads a whole regular file of at most max bytes into *out (malloc'ed,
 * NUL-terminated; free with qs_file_free). -1 with errno: EINVAL (not a
 * regular file: a directory, a FIFO, a device), EPERM (private_only and group
 * or others may access it: the check the secret has, for private keys too),
 * EFBIG (over max), or the error of open/read. */
int qs_file_read(const char *path, size_t max, bool private_only, char **out, size_t *len);
int qs_file_read_fd(int fd, size_t max, bool private_only, char **out, size_t *len);
/* The checks of qs_file_read without reading. */
int qs_file_check(const char *path, size_t max, bool private_only);
/* Wipes and frees what qs_file_read returned (keys must not linger in the heap). */
void qs_file_free(char *buf, size_t len);
/* A one-line reason for an errno of qs_file_read. */
const char *qs_private_strerror(int err);

#endif

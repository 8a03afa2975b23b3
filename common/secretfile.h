/* The --secret-path file: QS_SECRET_LEN random bytes, mode 0600. The
 * supervisor makes it when missing; every acceptor reads it. Being a file in
 * persistent state (with the certificate and key), not in the runtime directory, it
 * outlives a crash or restart of the whole service, so a restarted server
 * still answers the previous instance's connections with stateless resets
 * their clients accept, and recognises the NEW_TOKEN tokens it handed out. */
#ifndef QS_SECRETFILE_H
#define QS_SECRETFILE_H

#include <stdint.h>

#include "common/config.h"

/* Reads the whole secret. 0, or -1 with errno: ENOENT (missing), EINVAL (not
 * a regular file of exactly QS_SECRET_LEN bytes), EPERM (group or others may
 * access it), or the error of open/read. */
int qs_secret_read(const char *path, uint8_t out[QS_SECRET_LEN]);

/* A one-line reason for an errno of qs_secret_read. */
const char *qs_secret_strerror(int err);

#endif

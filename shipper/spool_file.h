/* Opening files inside the spool directory, the one way every spool path
 * does it (the shipper, its housekeeping thread, --check-spool --repair).
 *
 * The spool belongs to the service user, and --check-spool may run as root:
 * a symbolic link planted under a spool name (a segment, cursor.tmp,
 * repair.tmp) must never be followed (a root-owned file got truncated or
 * overwritten through one), and a FIFO must never block the caller (it froze
 * the housekeeping thread, the output and --check-spool for good). So: no
 * link is followed (O_NOFOLLOW), the open itself never blocks (O_NONBLOCK,
 * cleared once the file is known to be regular), anything but a regular file
 * is refused after an fstat of the descriptor itself (no race between a
 * check and the open), and temporaries are created exclusively after
 * whatever held their name was removed (a link is removed, not followed). */
#ifndef QS_SHIPPER_SPOOL_FILE_H
#define QS_SHIPPER_SPOOL_FILE_H

#include <stdbool.h>
#include <sys/stat.h>

/* Opens dirfd/name with flags (O_RDONLY, O_WRONLY or O_RDWR, optionally
 * O_CREAT|O_EXCL: then mode 0600). -1 with errno: ELOOP for a link, EINVAL
 * for anything else that is not a regular file (see qs_spool_file_error). */
int qs_spool_file_open(int dirfd, const char *name, int flags);
/* A fresh temporary dirfd/name, O_WRONLY: whatever had the name is unlinked
 * first, then the file is created with O_CREAT|O_EXCL. */
int qs_spool_file_temp(int dirfd, const char *name);
/* lstat-like: 0 and *st for a regular file; -1 with errno (ELOOP, EINVAL,
 * ENOENT...) otherwise. */
int qs_spool_file_stat(int dirfd, const char *name, struct stat *st);
/* The reason for a failure of the calls above, for messages. */
const char *qs_spool_file_error(int err);
/* Whether name is one the spool uses (a segment, the cursor, a temporary). */
bool qs_spool_file_known(const char *name);

#endif

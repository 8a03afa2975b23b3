#ifndef QS_SUPERVISOR_SECRET_H
#define QS_SUPERVISOR_SECRET_H

/* Makes sure the --secret-path file (common/secretfile.h) exists and is
 * usable before any acceptor starts: made when missing (random, mode 0600,
 * written whole before it appears under its name), refused with a reason when
 * the wrong size or open to group or others. 0, or -1 after logging why. */
int qs_secret_ensure(const char *path);

#endif

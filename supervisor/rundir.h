#ifndef QS_RUNDIR_H
#define QS_RUNDIR_H

#include <stdbool.h>
#include <stddef.h>

/* The private directory holding the ipc:// sockets: --runtime-dir, else
 * $RUNTIME_DIRECTORY (systemd), else a fresh mkdtemp directory. Mode 0700:
 * ipc:// endpoints obey file permissions. */
int qs_rundir_prepare(const char *configured, char *out, size_t outlen, bool *made);
/* Removes the sockets; a directory we made goes whole (the next start makes
 * a fresh one). Nothing in it must outlive the service: the QUIC secret lives
 * at --secret-path (docs/ARCHITECTURE.md, "Shared secret"). */
void qs_rundir_cleanup(const char *dir, bool made);

#endif

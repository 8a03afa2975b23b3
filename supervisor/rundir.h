#ifndef QS_RUNDIR_H
#define QS_RUNDIR_H

#include <stdbool.h>
#include <stddef.h>

/* The private directory holding the ipc:// sockets: --runtime-dir, else
 * $RUNTIME_DIRECTORY (systemd), else a fresh mkdtemp directory. Mode 0700:
 * ipc:// endpoints obey file permissions. */
int qs_rundir_prepare(const char *configured, char *out, size_t outlen, bool *made);
/* Removes the sockets. A directory we made goes whole, the shared QUIC
 * secret with it: the next start makes a fresh directory, so nothing in it
 * is of use again (and a secret must not linger in /tmp). A configured one
 * keeps the secret, so that tokens and stateless resets survive a service
 * restart (docs/ARCHITECTURE.md, "Shared secret"). */
void qs_rundir_cleanup(const char *dir, bool made);

#endif

/* One quicstashd per spool directory: an flock on DIR/quicstashd.lock.
 *
 * The supervisor takes it before anything else (before its UDP sockets, so a
 * second instance never joins the first one's port) and holds it for its
 * life: shipper restarts and reloads happen under it. The file holds the
 * holder's pid and UDP address, for the refusal's message. The directory
 * belongs to the service user and the supervisor may be root, so the file is
 * opened without following links or blocking on a FIFO, and anything but a
 * regular file with one link is refused (never truncated: a hard link to
 * another file would have been). */
#ifndef QS_SPOOL_LOCK_H
#define QS_SPOOL_LOCK_H

#include <stdbool.h>
#include <stddef.h>

#define QS_SPOOL_LOCK_FILE "quicstashd.lock"

/* Creates DIR (0700) when missing and locks it for `who` (written into the
 * file: "quicstashd (udp 127.0.0.1:4433)"). Returns the descriptor to keep
 * open (close-on-exec), or -1 with the reason in err: who holds it ("spool
 * DIR is in use by quicstashd pid 812 (udp 127.0.0.1:4433)") or what failed. */
int qs_spool_lock(const char *dir, const char *who, char *err, size_t errlen);

/* Whether a live process holds DIR's lock (1, with who in err), 0 not, -1 on
 * an error (in err). Takes nothing. */
int qs_spool_lock_probe(const char *dir, char *err, size_t errlen);

#endif

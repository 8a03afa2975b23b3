/* common/log.c's journald sink: detection, the native protocol through
 * libsystemd, and journald's socket inside a chroot. */
#ifndef QS_LOG_JOURNAL_H
#define QS_LOG_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/log.h"

/* The datagram socket sd_journal_sendv() sends to; libsystemd names it by
 * path on every send, so it must resolve in the process's root. */
#define QS_JOURNAL_SOCKET "/run/systemd/journal/socket"

/* Is stderr the journal stream systemd connected us to (JOURNAL_STREAM)? */
bool qs_journal_detect(void);

struct qs_journal_msg {
	int level;
	const char *who, *text;
	const struct qs_log_kv *kv; /* may be NULL */
	const char *file, *func;
	int line;
	unsigned suppressed; /* > 0: this is a report of suppressed messages */
};
/* 0, or -errno when journald did not take it (the caller writes to stderr). */
int qs_journal_send(const struct qs_journal_msg *m);

/* Makes QS_JOURNAL_SOCKET resolve inside ROOT for this process: a private
 * mount namespace in which the socket is bound onto ROOT/run/systemd/journal/
 * socket (created, without following links: ROOT belongs to the children's
 * user). Needs CAP_SYS_ADMIN; -1 with ERR when it cannot. */
int qs_journal_into_root(const char *root, char *err, size_t errlen);
/* Removes what qs_journal_into_root left in ROOT (an empty file, three
 * directories), for the supervisor when it cleans the runtime directory. */
void qs_journal_root_cleanup(const char *root);

#endif

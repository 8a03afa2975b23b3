/* Logging, one line per message, prefixed with the process role so that
 * interleaved child output stays readable.
 *
 * Where it goes: to journald through libsystemd's native protocol when stderr
 * is the journal stream systemd gave us (JOURNAL_STREAM names stderr's
 * device:inode), with structured fields; to stderr otherwise, as
 * "<PRIORITY>role[pid]: message" (after the time when stderr is a terminal),
 * or with --log-format json one JSON object a line (common/log_format.h).
 * Every call site may log QS_LOG_BURST lines per 10 s (common/log_limit.h);
 * the rest are counted and reported as one line "... (N similar messages
 * suppressed)".
 *
 * Fields: qs_warn_kv(QS_KV({QS_LOG_PEER, addr}, {QS_LOG_CODE, "too_large"}), fmt, ...)
 * attaches journal fields to one message (KEY: A-Z, 0-9, _; a value may hold
 * anything but NUL; a NULL value is left out). They cost a compound literal on
 * the caller's stack and are not shown on stderr's text lines, where the
 * message text says it all (JSON lines carry them). Every message also carries SYSLOG_IDENTIFIER=quicstashd,
 * QUICSTASH_ROLE, CODE_FILE/LINE/FUNC; journald adds _PID and the rest. */
#ifndef QS_LOG_H
#define QS_LOG_H

#include <stdbool.h>

enum qs_log_level { QS_LOG_ERR = 3, QS_LOG_WARN = 4, QS_LOG_INFO = 6, QS_LOG_DEBUG = 7 };

struct qs_log_kv {
	const char *key, *val;
};

/* The fields quicstash attaches (docs/ARCHITECTURE.md "Logs"). */
#define QS_LOG_PEER "QUICSTASH_PEER"     /* a client's address (IP) or Logstash's name */
#define QS_LOG_PORT "QUICSTASH_PEER_PORT"
#define QS_LOG_CODE "QUICSTASH_CODE"     /* what went wrong, as a name: a rejection code, errno's name */
#define QS_LOG_TENANT "QUICSTASH_TENANT" /* the authenticated tenant, once there are tenants */

/* A NULL-terminated field list on the caller's stack. */
#define QS_KV(...) ((const struct qs_log_kv[]){__VA_ARGS__, {0, 0}})

/* errno's name ("ECONNREFUSED") for QS_LOG_CODE; NULL for 0. */
const char *qs_log_errno_name(int err);

void qs_log_init(const char *who, bool debug);
/* --log-format json: stderr gets one JSON object a line (common/log_format.h);
 * not when stderr is the journal stream (journald's own path stays). Without
 * it, a terminal's lines start with the time. */
void qs_log_set_json(bool json);
bool qs_log_debug_enabled(void);
/* True when messages go to journald (for tests and the sandbox). */
bool qs_log_to_journal(void);
/* Before a chroot into ROOT: makes journald's socket reachable there (a
 * private mount namespace with the socket bound into ROOT), or falls back to
 * stderr when it cannot; a no-op when not logging to journald. */
void qs_log_before_chroot(const char *root);
/* Reports the suppressed counts of intervals that have ended; call it from a
 * periodic timer (every role's loop does, once a second or more). */
void qs_log_tick(void);

void qs_log(enum qs_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qs_log_at(enum qs_log_level lvl, const struct qs_log_kv *kv, const char *file, int line, const char *func,
	       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define QS_LOG_AT(lvl, kv, ...) qs_log_at(lvl, kv, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define qs_err(...) QS_LOG_AT(QS_LOG_ERR, NULL, __VA_ARGS__)
#define qs_warn(...) QS_LOG_AT(QS_LOG_WARN, NULL, __VA_ARGS__)
#define qs_info(...) QS_LOG_AT(QS_LOG_INFO, NULL, __VA_ARGS__)
#define qs_err_kv(kv, ...) QS_LOG_AT(QS_LOG_ERR, kv, __VA_ARGS__)
#define qs_warn_kv(kv, ...) QS_LOG_AT(QS_LOG_WARN, kv, __VA_ARGS__)
#define qs_info_kv(kv, ...) QS_LOG_AT(QS_LOG_INFO, kv, __VA_ARGS__)
#define qs_debug_kv(kv, ...)                                                                       \
	do {                                                                                       \
		if (qs_log_debug_enabled())                                                        \
			QS_LOG_AT(QS_LOG_DEBUG, kv, __VA_ARGS__);                                  \
	} while (0)
#define qs_debug(...) qs_debug_kv(NULL, __VA_ARGS__)

#endif

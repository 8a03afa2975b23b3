/* Logging to stderr (journald picks it up under systemd), one line per message,
 * prefixed with the process role so interleaved child output stays readable. */
#ifndef QS_LOG_H
#define QS_LOG_H

#include <stdbool.h>

enum qs_log_level { QS_LOG_ERR = 3, QS_LOG_WARN = 4, QS_LOG_INFO = 6, QS_LOG_DEBUG = 7 };

void qs_log_init(const char *who, bool debug);
bool qs_log_debug_enabled(void);
void qs_log(enum qs_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define qs_err(...) qs_log(QS_LOG_ERR, __VA_ARGS__)
#define qs_warn(...) qs_log(QS_LOG_WARN, __VA_ARGS__)
#define qs_info(...) qs_log(QS_LOG_INFO, __VA_ARGS__)
#define qs_debug(...)                                                                              \
	do {                                                                                       \
		if (qs_log_debug_enabled())                                                        \
			qs_log(QS_LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)

#endif

/* The rate limit of common/log.c, apart so that it can be tested with a clock
 * of the test's own: each call site (its format string) may log QS_LOG_BURST
 * lines per QS_LOG_INTERVAL_NS; what it logs beyond that is counted, and the
 * count is reported once, when the interval has ended. A client can make a
 * call site fire once per frame or per connection; this bounds the log, not
 * the work. */
#ifndef QS_LOG_LIMIT_H
#define QS_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define QS_LOG_BURST 20u
#define QS_LOG_INTERVAL_NS (10ull * 1000000000ull)
#define QS_LOG_SITES 128 /* call sites tracked; past that a site is not limited */
#define QS_LOG_LAST 240  /* bytes of the last suppressed message kept for the report */

struct qs_log_site {
	const void *key; /* the call site's format string; NULL: free */
	uint64_t start_ns;
	unsigned passed, suppressed;
	int level;
	char last[QS_LOG_LAST]; /* the last suppressed message, for its report */
};

struct qs_log_limit {
	struct qs_log_site site[QS_LOG_SITES];
};

/* May a message from KEY go out now? Either way, when the site's previous
 * interval ended with messages suppressed, *report is that site (its count in
 * ->suppressed, to be logged before this message and then zeroed by the
 * caller with qs_log_limit_reported); else NULL. A suppressed message's text
 * (TEXT, may be NULL) is kept as the site's last. */
bool qs_log_limit_admit(struct qs_log_limit *l, const void *key, int level, const char *text, uint64_t now_ns,
			struct qs_log_site **report);
/* The next site whose interval has ended with messages suppressed (every
 * one when FORCE, at exit), or NULL. */
struct qs_log_site *qs_log_limit_due(struct qs_log_limit *l, uint64_t now_ns, bool force);
void qs_log_limit_reported(struct qs_log_site *s);

#endif

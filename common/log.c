#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char log_who[32] = "quicstashd";
static bool log_debug;

void qs_log_init(const char *who, bool debug)
{
	snprintf(log_who, sizeof(log_who), "%s", who);
	log_debug = debug;
}

bool qs_log_debug_enabled(void)
{
	return log_debug;
}

void qs_log(enum qs_log_level lvl, const char *fmt, ...)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "<%d>%s[%d]: ", (int)lvl, log_who, (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strnlen(line, sizeof(line) - 2);
	line[len++] = '\n';
	/* One write per line so lines from several processes do not interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

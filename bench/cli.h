/* Option values for the benchmark tools: a number in all of the text, in
 * range, or a clear message on stderr. */
#ifndef QS_BENCH_CLI_H
#define QS_BENCH_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Parses s as a number within [min, max] into *out; on failure says
 * "<tool>: bad value for --<name>: <s> (<min>..<max>)" and returns false. */
bool qs_cli_number(const char *tool, const char *name, const char *s, double min, double max, double *out);
/* The same for a whole number (a count, a port): "1.5" is refused too. */
bool qs_cli_integer(const char *tool, const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif

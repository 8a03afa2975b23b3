/* Option values for the benchmark tools: a number in all of the text, in
 * range, or a clear message on stderr. */
#ifndef QS_BENCH_CLI_H
#define QS_BENCH_CLI_H

#include <stdbool.h>

/* Parses s as a number within [min, max] into *out; on failure says
 * "<tool>: bad value for --<name>: <s> (<min>..<max>)" and returns false. */
bool qs_cli_number(const char *tool, const char *name, const char *s, double min, double max, double *out);

#endif

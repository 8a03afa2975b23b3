#include "bench/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool qs_cli_number(const char *tool, const char *name, const char *s, double min, double max, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max)) {
		fprintf(stderr, "%s: bad value for --%s: %s (%g..%g)\n", tool, name, s, min, max);
		return false;
	}
	*out = v;
	return true;
}

bool qs_cli_integer(const char *tool, const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || strchr(s, '-') || v < min || v > max) {
		fprintf(stderr, "%s: bad value for --%s: %s (%llu..%llu)\n", tool, name, s, (unsigned long long)min,
			(unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

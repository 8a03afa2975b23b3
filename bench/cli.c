#include "bench/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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

/* The --config file's reader (common/config_file.c), for common/config.c:
 * the text comes from the file (the supervisor) or from the sealed copy a
 * child was handed, and is applied line by line through the option table. */
#ifndef QS_CONFIG_FILE_H
#define QS_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>

struct qs_config;

/* The options that decide where the configuration comes from. */
struct qs_config_args {
	const char *path; /* --config */
	int fd;           /* --sealed-config-fd: the sealed copy a child was handed (-2: not a number) */
	bool child;       /* --role */
	bool check;       /* --check-config */
};

/* Reads the configuration text into *text (malloc'd; NULL without a file);
 * -1 after a one-line error. */
int qs_config_load(const struct qs_config_args *a, char **text, size_t *len);
/* Applies the NAME = VALUE lines of text; errors name FILE:LINE (name: the file). */
int qs_config_apply_text(struct qs_config *cfg, const char *text, size_t len, const char *name);
/* A sealed memfd holding text, for the children; -1 after an error. With a
 * tenants file, the text handed over is the configuration's, a NUL byte (no
 * configuration line holds one) and the tenants file's. */
int qs_config_seal(const char *text, size_t len);
/* The tenants in the sealed copy fd (a reload applied in place, QS_CTL_TENANTS),
 * parsed as the file name; NULL after a one-line error. fd stays open. */
struct qs_tenants;
struct qs_tenants *qs_config_handed_tenants(int fd, const char *name);

#endif

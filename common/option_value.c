/* Values of the option table's entries: parsed, stored in their field of
 * struct qs_config, compared (the reload's check), and the defaults. */
#include "common/options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

/* Numbers and enums are stored by their field's size. */
_Static_assert(sizeof(enum qs_retry) == sizeof(uint32_t) && sizeof(unsigned) == sizeof(uint32_t) &&
		       sizeof(int) == sizeof(uint32_t),
	       "option fields of 4 bytes");

/* "FILE:LINE: " while a --config file is applied, so an error points at its line. */
static const char *where = "";

void qs_option_where(const char *prefix)
{
	where = prefix ? prefix : "";
}

int qs_option_bad(const char *name, const char *val, const char *want)
{
	fprintf(stderr, "quicstashd: %s--%s '%s': %s\n", where, name, val, want);
	return -1;
}

bool qs_option_takes_value(const struct qs_option *o)
{
	return o->type != QS_OPT_FLAG && o->type != QS_OPT_ACTION;
}

int qs_parse_u64(const char *s, uint64_t max, uint64_t *out, bool suffixes)
{
	char *end;
	errno = 0;
	if (*s == '-' || *s == 0)
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	uint64_t mul = 1;
	if (suffixes && *end) {
		switch (*end) {
		case 'k': case 'K': mul = 1024ull; break;
		case 'm': case 'M': mul = 1024ull * 1024; break;
		case 'g': case 'G': mul = 1024ull * 1024 * 1024; break;
		default: return -1;
		}
		end++;
	}
	if (*end)
		return -1;
	if (v > max / mul)
		return -1;
	*out = v * mul;
	return 0;
}

void qs_option_choices(const struct qs_option *o, char *buf, size_t len)
{
	size_t n = 0, used = 0;
	while (o->names[n])
		n++;
	buf[0] = 0;
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i == 0 ? "" : i + 1 < n ? ", " : " or ",
					 o->names[i]);
}

static void store(char *field, size_t size, uint64_t v)
{
	if (size == sizeof(uint64_t)) {
		memcpy(field, &v, sizeof(v));
	} else {
		uint32_t v32 = (uint32_t)v;
		memcpy(field, &v32, sizeof(v32));
	}
}

static int set_value(struct qs_config *cfg, const struct qs_option *o, const char *arg)
{
	char *field = (char *)cfg + o->offset, want[128] = "expected ";
	uint64_t v;
	switch (o->type) {
	case QS_OPT_STR:
		if (strlen(arg) >= o->size || *arg == 0) {
			fprintf(stderr, "quicstashd: %s--%s: value empty or too long\n", where, o->name);
			return -1;
		}
		memcpy(field, arg, strlen(arg) + 1);
		return 0;
	case QS_OPT_UINT:
	case QS_OPT_SIZE:
		if (qs_parse_u64(arg, o->max, &v, o->type == QS_OPT_SIZE) || v < o->min)
			return qs_option_bad(o->name, arg, o->bounds);
		store(field, o->size, v);
		return 0;
	case QS_OPT_ENUM:
		for (v = 0; o->names[v]; v++)
			if (!strcmp(arg, o->names[v])) {
				store(field, o->size, v);
				return 0;
			}
		qs_option_choices(o, want + strlen(want), sizeof(want) - strlen(want));
		return qs_option_bad(o->name, arg, want);
	case QS_OPT_FLAG:
		*(bool *)field = true;
		return 0;
	case QS_OPT_ACTION:
		return 0; /* the caller runs it */
	case QS_OPT_CUSTOM:
		return o->set(cfg, arg);
	}
	return -1;
}

int qs_option_apply(struct qs_config *cfg, const struct qs_option *o, const char *arg)
{
	if (set_value(cfg, o, arg) < 0)
		return -1;
	if (o->given)
		*(bool *)((char *)cfg + o->given - 1) = true;
	return 0;
}

void qs_options_defaults(struct qs_config *cfg)
{
	for (size_t i = 0; i < qs_options_count; i++)
		if (qs_options[i].def) /* tests/unit/test_options.c checks that each one parses */
			set_value(cfg, &qs_options[i], qs_options[i].def);
}

bool qs_option_same(const struct qs_option *o, const struct qs_config *a, const struct qs_config *b)
{
	const char *x = (const char *)a + o->offset, *y = (const char *)b + o->offset;
	if (o->type == QS_OPT_STR)
		return strncmp(x, y, o->size) == 0;
	return memcmp(x, y, o->size) == 0;
}

const struct qs_option *qs_options_restart_needed(const struct qs_config *running, const struct qs_config *next,
						   char *why, size_t len)
{
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		if (o->scope == QS_SCOPE_RESTART && !qs_option_same(o, running, next)) {
			snprintf(why, len, "--%s cannot change while running (restart the service for it)", o->name);
			return o;
		}
	}
	return NULL;
}

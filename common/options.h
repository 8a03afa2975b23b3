/* quicstashd's option table (common/options.c): each option declared once,
 * with its type, bounds, default, help text, whether a --config file may set
 * it and whether a SIGHUP can change it. --help, the getopt_long array, the
 * --config reader, the defaults and the reload's refusal all read it. */
#ifndef QS_OPTIONS_H
#define QS_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qs_config;

enum qs_opt_type {
	QS_OPT_STR,    /* text into a char array: a path, a name, an address resolved later */
	QS_OPT_UINT,   /* decimal, min..max */
	QS_OPT_SIZE,   /* decimal with an optional K, M or G suffix (powers of 1024), min..max */
	QS_OPT_ENUM,   /* one of .names, stored as its index */
	QS_OPT_FLAG,   /* no value: sets a bool (in a file: NAME, NAME = true or NAME = yes) */
	QS_OPT_ACTION, /* no value: .run prints something, then the program exits 0 */
	QS_OPT_CUSTOM, /* .set parses the value */
};

/* What a SIGHUP may do with a change of the option. */
enum qs_opt_scope {
	QS_SCOPE_RELOAD,  /* applied: the children are started again with the new value */
	QS_SCOPE_RESTART, /* set up once at start: a reload that changes it is refused */
	QS_SCOPE_ARGV,    /* command line only, which a reload reads again unchanged */
};

#define QS_OPT_FILE 1u   /* a --config file may set it */
#define QS_OPT_HIDDEN 2u /* the supervisor's arguments for its children: not in --help */

struct qs_option {
	const char *name; /* --NAME on the command line, NAME = VALUE in a file */
	char short_name;  /* -X, or 0 */
	enum qs_opt_type type;
	enum qs_opt_scope scope;
	unsigned flags;
	size_t offset, size; /* its field in struct qs_config */
	size_t given;        /* offset + 1 of a bool set when the option is given (0: none) */
	uint64_t min, max;   /* QS_OPT_UINT, QS_OPT_SIZE */
	const char *bounds;  /* QS_OPT_UINT, QS_OPT_SIZE: the error's "expected ..." */
	const char *const *names; /* QS_OPT_ENUM: the names of the values 0, 1, ...; NULL-terminated */
	const char *def;     /* the default as it would be written (NULL: zero, empty or computed) */
	const char *def_help; /* --help's default when it is computed */
	const char *arg;     /* --help's name for the value */
	const char *help;
	void (*run)(void);   /* QS_OPT_ACTION */
	int (*set)(struct qs_config *cfg, const char *arg); /* QS_OPT_CUSTOM */
};

extern const struct qs_option qs_options[];
extern const size_t qs_options_count;

/* getopt_long's view of the table: its option array and short option string
 * (":" first: a missing value is reported as ':'). */
const struct option *qs_options_getopt(const char **shortopts);
/* The entry getopt_long's return value c stands for, or NULL. */
const struct qs_option *qs_option_by_getopt(int c);
/* The entry of a --config file line, or NULL: only options a file may set. */
const struct qs_option *qs_option_for_file(const char *name);

/* Whether the option takes a value (getopt_long's required_argument). */
bool qs_option_takes_value(const struct qs_option *o);
/* A decimal number up to max, with a K, M or G suffix when suffixes; -1 when
 * it is not one (a sign, anything after it, too large). */
int qs_parse_u64(const char *s, uint64_t max, uint64_t *out, bool suffixes);
/* QS_OPT_ENUM: its names as "a, b or c". */
void qs_option_choices(const struct qs_option *o, char *buf, size_t len);
/* Stores a value (NULL for options without one); -1 after a one-line error on
 * stderr, prefixed by the place set with qs_option_where. */
int qs_option_apply(struct qs_config *cfg, const struct qs_option *o, const char *arg);
/* The prefix of those errors, "FILE:LINE: " while a --config file is applied
 * (NULL: none, the command line). The caller keeps the text. */
void qs_option_where(const char *prefix);
/* A one-line error naming the option, at the current place. */
int qs_option_bad(const char *name, const char *val, const char *want);
/* Every option's default ("parsers" is computed by the caller). */
void qs_options_defaults(struct qs_config *cfg);
/* Whether the option's field holds the same value in a and b. */
bool qs_option_same(const struct qs_option *o, const struct qs_config *a, const struct qs_config *b);
/* The reload's check: the first option a reload may not change that differs
 * between the running and the new configuration, its reason in why; or NULL. */
const struct qs_option *qs_options_restart_needed(const struct qs_config *running, const struct qs_config *next,
						   char *why, size_t len);
/* --help, from the table. */
void qs_options_help(void);

#endif

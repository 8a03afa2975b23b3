/* The option table (common/options.c, issue 20 item 5): every entry is
 * consistent, parses its default, rejects values out of its bounds, reads the
 * same from a --config file as from the command line, is refused by the
 * reload's check exactly when its scope says so, and --help lists it unless
 * it is hidden. In each failure report "(in NAME)" names the entry. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/config.h"
#include "common/config_file.h"
#include "common/options.h"
#include "supervisor/certgen.h"

static char dir[] = "/tmp/qs-unit-options-XXXXXX";
static struct qs_config defaults; /* qs_config_parse of an empty command line */
static char out[65536];           /* what the last quiet() call wrote to the descriptor */

/* Runs f(o, arg) with descriptor fd (1 or 2) into out. */
static int quiet(int fd, int (*f)(const struct qs_option *o, const char *arg), const struct qs_option *o,
		 const char *arg)
{
	fflush(stdout);
	fflush(stderr);
	FILE *tmp = tmpfile();
	int saved = dup(fd);
	dup2(fileno(tmp), fd);
	int rc = f(o, arg);
	fflush(stdout);
	fflush(stderr);
	dup2(saved, fd);
	close(saved);
	rewind(tmp);
	out[fread(out, 1, sizeof(out) - 1, tmp)] = 0;
	fclose(tmp);
	return rc;
}

static struct qs_config cfg;

/* Applies arg to a copy of the defaults, as the command line would. */
static int apply(const struct qs_option *o, const char *arg)
{
	cfg = defaults;
	return qs_option_apply(&cfg, o, arg);
}

/* Applies arg to a configuration of zeroes: what the value alone sets. */
static int apply_to_zeroes(const struct qs_option *o, const char *arg)
{
	memset(&cfg, 0, sizeof(cfg));
	return qs_option_apply(&cfg, o, arg);
}

static bool hidden(const struct qs_option *o)
{
	return o->flags & QS_OPT_HIDDEN;
}

static bool numeric(const struct qs_option *o)
{
	return o->type == QS_OPT_UINT || o->type == QS_OPT_SIZE;
}

/* A valid value other than the default (NULL: the option has none to test). */
static const char *other_value(const struct qs_option *o)
{
	static char buf[32];
	switch (o->type) {
	case QS_OPT_STR:
		return "127.0.0.1:7"; /* an address, and a path or a user name as well */
	case QS_OPT_UINT:
	case QS_OPT_SIZE:
		snprintf(buf, sizeof(buf), "%" PRIu64, o->min);
		if (apply(o, buf) == 0 && qs_option_same(o, &cfg, &defaults))
			snprintf(buf, sizeof(buf), "%" PRIu64, o->min + 1);
		return buf;
	case QS_OPT_ENUM:
		for (const char *const *n = o->names; *n; n++)
			if (apply(o, *n) == 0 && !qs_option_same(o, &cfg, &defaults))
				return *n;
		return NULL;
	case QS_OPT_FLAG:
		return "";
	default:
		return NULL;
	}
}

static void test_entries(void)
{
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		current_test = o->name;
		for (size_t j = 0; j < i; j++) {
			const struct qs_option *p = &qs_options[j];
			CHECK(strcmp(o->name, p->name) != 0);
			CHECK(!o->short_name || o->short_name != p->short_name);
			/* two options a file sets never write one field (--check-spool writes --spool-dir's) */
			CHECK(!(o->flags & p->flags & QS_OPT_FILE) || !o->size || !p->size || o->offset != p->offset);
		}
		/* documented for --help, or hidden: a user-facing option is not hidden by mistake */
		CHECK(hidden(o) ? o->help == NULL : o->help && *o->help);
		CHECK(!hidden(o) || (!(o->flags & QS_OPT_FILE) && o->scope == QS_SCOPE_ARGV));
		/* a file is read again on SIGHUP: what it sets has a reload scope */
		CHECK(!(o->flags & QS_OPT_FILE) || o->scope != QS_SCOPE_ARGV);
		CHECK(hidden(o) || !qs_option_takes_value(o) || o->arg); /* --help names the value */
		CHECK(o->offset + o->size <= sizeof(struct qs_config));
		CHECK(!o->given || o->given - 1 + sizeof(bool) <= sizeof(struct qs_config));
		/* a reload compares the fields of the options it refuses to change */
		CHECK(o->scope != QS_SCOPE_RESTART || o->size > 0);
		switch (o->type) {
		case QS_OPT_STR: CHECK(o->size > 1); break;
		case QS_OPT_UINT:
		case QS_OPT_SIZE:
			CHECK(o->bounds && o->min <= o->max);
			CHECK(o->size == 8 || (o->size == 4 && o->max <= UINT32_MAX));
			break;
		case QS_OPT_ENUM: CHECK(o->names && o->names[0] && o->size == 4); break;
		case QS_OPT_FLAG: CHECK(o->size == sizeof(bool)); break;
		case QS_OPT_ACTION: CHECK(o->run && o->size == 0); break;
		case QS_OPT_CUSTOM: CHECK(o->set != NULL); break;
		}
	}
}

/* getopt_long's array stands for the table, entry by entry. */
static void test_getopt(void)
{
	const char *shortopts;
	const struct option *longs = qs_options_getopt(&shortopts);
	CHECK(shortopts[0] == ':');
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		current_test = o->name;
		CHECK_STR(longs[i].name, o->name);
		CHECK(qs_option_by_getopt(longs[i].val) == o);
		CHECK_EQ(longs[i].has_arg, qs_option_takes_value(o) ? required_argument : no_argument);
		const char *s = o->short_name ? strchr(shortopts, o->short_name) : NULL;
		CHECK(!o->short_name || (s && (s[1] == ':') == qs_option_takes_value(o)));
	}
	CHECK(longs[qs_options_count].name == NULL);
}

static void test_defaults(void)
{
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		current_test = o->name;
		if (o->def) {
			CHECK(quiet(2, apply_to_zeroes, o, o->def) == 0);
			CHECK(qs_option_same(o, &cfg, &defaults)); /* and it is what a parse starts from */
		}
		CHECK(!o->def || !o->def_help); /* --help shows one of them */
	}
}

static void reject(const struct qs_option *o, const char *val, const char *want)
{
	char msg[512];
	CHECK(quiet(2, apply, o, val) < 0);
	snprintf(msg, sizeof(msg), "quicstashd: --%s '%s': %s\n", o->name, val, want);
	if (want)
		CHECK_STR(out, msg);
}

static void accept_value(const struct qs_option *o, const char *val)
{
	CHECK(quiet(2, apply, o, val) == 0);
	CHECK_STR(out, "");
}

static void test_bounds(void)
{
	char v[64];
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		current_test = o->name;
		if (numeric(o)) {
			snprintf(v, sizeof(v), "%" PRIu64, o->min);
			accept_value(o, v);
			snprintf(v, sizeof(v), "%" PRIu64, o->max);
			accept_value(o, v);
			snprintf(v, sizeof(v), "%" PRIu64, o->min - 1);
			if (o->min > 0)
				reject(o, v, o->bounds);
			snprintf(v, sizeof(v), "%" PRIu64, o->max + 1);
			if (o->max < UINT64_MAX)
				reject(o, v, o->bounds);
			reject(o, "-1", o->bounds);
			reject(o, "1x", o->bounds);
			if (o->type == QS_OPT_UINT)
				reject(o, "1K", o->bounds); /* suffixes are for sizes */
			reject(o, "", o->bounds);
		} else if (o->type == QS_OPT_ENUM) {
			for (uint32_t k = 0; o->names[k]; k++) {
				accept_value(o, o->names[k]);
				CHECK(memcmp((char *)&cfg + o->offset, &k, sizeof(k)) == 0);
			}
			char want[128] = "expected ";
			qs_option_choices(o, want + strlen(want), sizeof(want) - strlen(want));
			reject(o, "bogus", want);
		} else if (o->type == QS_OPT_STR) {
			static char longest[8192];
			memset(longest, 'x', o->size - 1);
			longest[o->size - 1] = 0;
			accept_value(o, longest);
			longest[o->size - 1] = 'x';
			longest[o->size] = 0;
			reject(o, longest, NULL);
			reject(o, "", NULL);
		}
	}
}

/* Each option a file may set is read from NAME = VALUE as from --NAME VALUE;
 * the others are unknown to a file. */
static int from_file(const struct qs_option *o, const char *val)
{
	char text[256];
	int n = snprintf(text, sizeof(text), "# a comment\n\n  %s = %s\n", o->name, val);
	cfg = defaults;
	return qs_config_apply_text(&cfg, text, (size_t)n, "t.conf");
}

static void test_file(void)
{
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		current_test = o->name;
		const char *val = other_value(o);
		if (!(o->flags & QS_OPT_FILE)) {
			CHECK(quiet(2, from_file, o, val ? val : "1") < 0);
			char want[128];
			snprintf(want, sizeof(want), "quicstashd: t.conf:3: unknown option '%s'\n", o->name);
			CHECK_STR(out, want);
			continue;
		}
		CHECK(val != NULL);
		if (!val)
			continue;
		CHECK(apply(o, val) == 0);
		struct qs_config cmdline = cfg;
		CHECK(!qs_option_same(o, &cmdline, &defaults)); /* the value tells */
		CHECK(quiet(2, from_file, o, val) == 0);
		CHECK(memcmp(&cfg, &cmdline, sizeof(cfg)) == 0);
		/* a bad value names the file's line */
		CHECK(quiet(2, from_file, o, o->type == QS_OPT_STR ? "" : "bogus") < 0);
		CHECK(!strncmp(out, "quicstashd: t.conf:3: --", 24));
	}
}

/* All of them at once through qs_config_parse: getopt_long's array, the
 * file's reader and the checks across options see the same configuration. */
static void test_file_whole(void)
{
	static char text[16384], names[64][40], values[64][32];
	static struct qs_config from_argv, from_file_cfg;
	char *argv[2 * 64 + 4] = {"quicstashd"}, *fargv[] = {"quicstashd", "--config", "all.conf", NULL};
	int argc = 1, n = 0;
	size_t len = 0;
	current_test = "all options in a file";
	for (size_t i = 0; i < qs_options_count && n < 64; i++) {
		const struct qs_option *o = &qs_options[i];
		const char *val = other_value(o);
		if (!(o->flags & QS_OPT_FILE) || !val)
			continue;
		snprintf(names[n], sizeof(names[n]), "--%s", o->name);
		if (!strcmp(o->name, "client-ca")) /* read as a certificate: one of the supervisor's making */
			val = "ca.der";
		snprintf(values[n], sizeof(values[n]), "%s", val); /* val is overwritten by the next call */
		argv[argc++] = names[n];
		if (qs_option_takes_value(o))
			argv[argc++] = values[n];
		n++;
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s = %s\n", o->name, val);
	}
	FILE *f = fopen("all.conf", "w");
	CHECK(f && fwrite(text, 1, len, f) == len);
	fclose(f);
	f = fopen("127.0.0.1:7", "w"); /* the value of every path: --tenants (empty) and --client-ca are read */
	CHECK(f != NULL);
	fclose(f);
	chmod("127.0.0.1:7", 0600); /* and --key-path, a private key */
	CHECK(qs_cert_ensure("ca.der", "ca.key") == 0);
	CHECK_EQ(qs_config_parse(argc, argv, &from_argv), QS_CONFIG_OK);
	CHECK_EQ(qs_config_parse(3, fargv, &from_file_cfg), QS_CONFIG_OK);
	close(from_file_cfg.config_fd);
	from_file_cfg.config_fd = from_argv.config_fd;
	memset(from_file_cfg.config_path, 0, sizeof(from_file_cfg.config_path));
	CHECK(memcmp(&from_argv, &from_file_cfg, sizeof(from_argv)) == 0);
	unlink("all.conf");
	unlink("127.0.0.1:7");
	unlink("ca.der");
	unlink("ca.key");
}

/* What a reload may not change: the options of issue 26's list, no more. */
static const char *const restart_needed[] = {"server-addr", "spool-dir", "runtime-dir", "user", "acceptors",
					     "parsers", "metrics-addr", NULL};

static bool listed(const char *name)
{
	for (const char *const *n = restart_needed; *n; n++)
		if (!strcmp(*n, name))
			return true;
	return false;
}

static void test_reload_scope(void)
{
	char why[256];
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		current_test = o->name;
		CHECK_EQ(o->scope == QS_SCOPE_RESTART, listed(o->name));
		const char *val = other_value(o);
		if (o->scope == QS_SCOPE_ARGV || !val)
			continue;
		CHECK(apply(o, val) == 0);
		const struct qs_option *refused = qs_options_restart_needed(&defaults, &cfg, why, sizeof(why));
		if (o->scope == QS_SCOPE_RESTART) {
			char want[128];
			snprintf(want, sizeof(want), "--%s cannot change while running", o->name);
			CHECK(refused == o && strstr(why, want));
		} else {
			CHECK(refused == NULL);
		}
	}
	current_test = "reload scope";
	CHECK(qs_options_restart_needed(&defaults, &defaults, why, sizeof(why)) == NULL);
}

static int help(const struct qs_option *o, const char *arg)
{
	(void)o;
	(void)arg;
	qs_options_help();
	return 0;
}

static void test_help(void)
{
	quiet(1, help, NULL, NULL);
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		current_test = o->name;
		char line[128], name[64];
		if (o->short_name)
			snprintf(line, sizeof(line), "\n  -%c, --%s ", o->short_name, o->name);
		else
			snprintf(line, sizeof(line), "\n      --%s ", o->name);
		snprintf(name, sizeof(name), "--%s", o->name);
		CHECK(hidden(o) ? strstr(out, name) == NULL : strstr(out, line) != NULL);
	}
	current_test = "--help width";
	for (const char *l = out; *l; l += strcspn(l, "\n") + 1)
		CHECK(strcspn(l, "\n") <= 79);
}

int main(void)
{
	if (!mkdtemp(dir) || chdir(dir) < 0) /* the default key path names no file */
		return 1;
	char *argv[] = {"quicstashd", NULL};
	if (qs_config_parse(1, argv, &defaults) != QS_CONFIG_OK)
		return 1;
	test_entries();
	test_getopt();
	test_defaults();
	test_bounds();
	test_file();
	test_file_whole();
	test_reload_scope();
	test_help();
	rmdir(dir);
	return check_report();
}

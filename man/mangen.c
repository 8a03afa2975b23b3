/* qs-mangen: writes a man page from its template, the option sections generated
 * from quicstashd's option table (common/options.c), the source --help reads too.
 *
 *   qs-mangen daemon TEMPLATE OUT   quicstashd(8): every visible option
 *   qs-mangen conf TEMPLATE OUT     quicstash.conf(5): the options a file may set
 *   qs-mangen --list                one line per option: NAME visible|hidden file|argv
 *
 * In the template, a line "@OPTIONS@" becomes the options and "@VERSION@" the
 * version. Built and run by CMake (man/CMakeLists.txt); never installed. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/options.h"

/* Text for roff: a backslash is \e, a minus \- (an option's dashes must stay
 * ASCII when rendered), and a line never starts with a control character. */
static void roff(FILE *out, const char *text)
{
	if (*text == '.' || *text == '\'')
		fputs("\\&", out);
	for (const char *p = text; *p; p++) {
		if (*p == '\\')
			fputs("\\e", out);
		else if (*p == '-')
			fputs("\\-", out);
		else
			fputc(*p, out);
	}
}

static const char *scope_text(const struct qs_option *o)
{
	switch (o->scope) {
	case QS_SCOPE_RELOAD:
		return "A reload (SIGHUP) applies a change.";
	case QS_SCOPE_RESTART:
		return "Set up at start: a reload that changes it is refused; restart to change it.";
	default:
		return "Command line only.";
	}
}

/* The help text, its choices and its default, as --help has them. */
static void describe(FILE *out, const struct qs_option *o)
{
	char choices[128], help[1024];
	snprintf(help, sizeof(help), "%s", o->help);
	help[0] = (char)toupper((unsigned char)help[0]); /* a sentence here, a phrase in --help */
	roff(out, help);
	if (o->type == QS_OPT_ENUM) {
		qs_option_choices(o, choices, sizeof(choices));
		fputs(": ", out);
		roff(out, choices);
	}
	fputs(".\n", out);
	const char *def = o->def_help ? o->def_help : o->def;
	if (def) {
		fputs("Default: ", out);
		roff(out, def);
		fputs(".\n", out);
	}
	fputs(scope_text(o), out);
	fputc('\n', out);
}

static void daemon_option(FILE *out, const struct qs_option *o)
{
	fputs(".TP\n", out);
	if (o->short_name)
		fprintf(out, "\\fB\\-%c\\fR, ", o->short_name);
	fputs("\\fB\\-\\-", out);
	roff(out, o->name);
	fputs("\\fR", out);
	if (o->arg) {
		fputs(" \\fI", out);
		roff(out, o->arg);
		fputs("\\fR", out);
	}
	fputc('\n', out);
	describe(out, o);
	if (o->flags & QS_OPT_FILE)
		fputs("A configuration file may set it (\\fBquicstash.conf\\fR(5)).\n", out);
}

static void conf_option(FILE *out, const struct qs_option *o)
{
	fputs(".TP\n\\fB", out);
	roff(out, o->name);
	fputs("\\fR = \\fI", out);
	roff(out, o->arg ? o->arg : "true");
	fputs("\\fR\n", out);
	describe(out, o);
}

static void options(FILE *out, bool conf)
{
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		if (o->flags & QS_OPT_HIDDEN)
			continue;
		if (!conf)
			daemon_option(out, o);
		else if (o->flags & QS_OPT_FILE)
			conf_option(out, o);
	}
}

static int list(void)
{
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		printf("%s %s %s\n", o->name, o->flags & QS_OPT_HIDDEN ? "hidden" : "visible",
		       o->flags & QS_OPT_FILE ? "file" : "argv");
	}
	return 0;
}

static int generate(bool conf, const char *template, const char *path)
{
	FILE *in = fopen(template, "re");
	if (!in) {
		perror(template);
		return 1;
	}
	FILE *out = fopen(path, "we");
	if (!out) {
		perror(path);
		fclose(in);
		return 1;
	}
	char line[4096];
	while (fgets(line, sizeof(line), in)) {
		char *v = strstr(line, "@VERSION@");
		if (!strcmp(line, "@OPTIONS@\n"))
			options(out, conf);
		else if (v)
			fprintf(out, "%.*s%s%s", (int)(v - line), line, QS_VERSION, v + strlen("@VERSION@"));
		else
			fputs(line, out);
	}
	int bad = ferror(in);
	fclose(in);
	if (fclose(out) != 0 || bad) {
		fprintf(stderr, "qs-mangen: cannot write %s\n", path);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--list"))
		return list();
	if (argc == 4 && (!strcmp(argv[1], "daemon") || !strcmp(argv[1], "conf")))
		return generate(!strcmp(argv[1], "conf"), argv[2], argv[3]);
	fprintf(stderr, "usage: qs-mangen daemon|conf TEMPLATE OUT | qs-mangen --list\n");
	return 2;
}

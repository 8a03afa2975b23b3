/* --help, written from the option table: each visible option with its value's
 * name, its help text, its choices and its default, wrapped to 79 columns. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/options.h"

#define HELP_COLUMN 30 /* where the descriptions start */
#define HELP_WIDTH 79

/* Prints text word by word from column col, going on at HELP_COLUMN. */
static void wrap(const char *text, int col)
{
	bool first = true;
	while (*text) {
		int word = (int)strcspn(text, " ");
		if (!first && col + 1 + word > HELP_WIDTH) {
			printf("\n%*s", HELP_COLUMN, "");
			col = HELP_COLUMN;
		} else if (!first) {
			putchar(' ');
			col++;
		}
		printf("%.*s", word, text);
		col += word;
		text += word;
		text += strspn(text, " ");
		first = false;
	}
	putchar('\n');
}

static void describe(const struct qs_option *o)
{
	char left[96], text[1024], choices[128];
	int col = snprintf(left, sizeof(left), "  %c%c%s--%s%s%s", o->short_name ? '-' : ' ',
			   o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name,
			   o->arg ? " " : "", o->arg ? o->arg : "");
	size_t n = (size_t)snprintf(text, sizeof(text), "%s", o->help);
	if (o->type == QS_OPT_ENUM) {
		qs_option_choices(o, choices, sizeof(choices));
		n += (size_t)snprintf(text + n, sizeof(text) - n, ": %s", choices);
	}
	const char *def = o->def_help ? o->def_help : o->def;
	if (def && n < sizeof(text))
		snprintf(text + n, sizeof(text) - n, " (default: %s)", def);
	int pad = col <= HELP_COLUMN - 2 ? HELP_COLUMN - col : 2;
	printf("%s%*s", left, pad, "");
	wrap(text, col + pad);
}

void qs_options_help(void)
{
	printf("Usage: quicstashd [options]\n"
	       "QUIC log ingestion server: JSON events in over QUIC, out to Logstash.\n\n");
	for (size_t i = 0; i < qs_options_count; i++)
		if (!(qs_options[i].flags & QS_OPT_HIDDEN))
			describe(&qs_options[i]);
}

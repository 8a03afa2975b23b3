#include "top/expo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* Appends c to the label text, a control character or separator as '?'. */
static bool put(char *out, size_t *o, char c)
{
	if (*o + 1 >= EXPO_LABELS_MAX)
		return false;
	out[(*o)++] = (unsigned char)c < 0x20 || c == 0x7f ? '?' : c;
	return true;
}

/* Parses {k="v",...} at *p (p < end); false if malformed or too long. */
static bool parse_labels(const char **pp, const char *end, char *out)
{
	const char *p = *pp + 1;
	size_t o = 0;
	for (;;) {
		while (p < end && (*p == ' ' || *p == ','))
			p++;
		if (p < end && *p == '}')
			break;
		const char *k = p;
		while (p < end && name_char(*p, p == k))
			p++;
		if (p == k || p + 1 >= end || *p != '=' || p[1] != '"')
			return false;
		for (; k < p; k++)
			if (!put(out, &o, *k))
				return false;
		out[o++] = '\037';
		for (p += 2; p < end && *p != '"'; p++) {
			char c = *p;
			if (c == '\\' && p + 1 < end) {
				c = *++p;
				c = c == 'n' ? '\n' : c;
			}
			if (!put(out, &o, c))
				return false;
		}
		if (p >= end || o + 1 >= EXPO_LABELS_MAX)
			return false;
		out[o++] = '\036';
		p++;
	}
	out[o] = '\0';
	*pp = p + 1;
	return true;
}

/* One line (without its newline) into s; false if it is not a sample. */
static bool parse_line(const char *p, const char *end, struct expo_sample *s)
{
	const char *n = p;
	while (p < end && name_char(*p, p == n))
		p++;
	if (p == n || (size_t)(p - n) >= EXPO_NAME_MAX)
		return false;
	memcpy(s->name, n, (size_t)(p - n));
	s->name[p - n] = '\0';
	s->labels[0] = '\0';
	if (p < end && *p == '{' && !parse_labels(&p, end, s->labels))
		return false;
	if (p >= end || (*p != ' ' && *p != '\t'))
		return false;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	char num[64];
	size_t k = 0;
	while (p < end && *p != ' ' && *p != '\t' && k + 1 < sizeof(num))
		num[k++] = *p++;
	num[k] = '\0';
	char *stop;
	s->value = strtod(num, &stop);
	/* a timestamp may follow; NaN is kept out of sums */
	return k > 0 && *stop == '\0' && !isnan(s->value);
}

size_t expo_parse(struct expo *e, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	e->n = e->skipped = e->dropped = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (le > p && le[-1] == '\r')
			le--;
		if (le == p || *p == '#') {
			/* blank or comment */
		} else if (le - p > EXPO_LINE_MAX) {
			e->skipped++;
		} else if (e->n >= EXPO_MAX_SAMPLES) {
			e->dropped++;
		} else if (parse_line(p, le, &e->s[e->n])) {
			e->n++;
		} else {
			e->skipped++;
		}
		p = nl ? nl + 1 : end;
	}
	return e->n;
}

bool expo_label(const struct expo_sample *s, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	for (const char *p = s->labels; *p;) {
		const char *sep = strchr(p, '\037'), *end = sep ? strchr(sep, '\036') : NULL;
		if (!end)
			return false;
		if ((size_t)(sep - p) == kl && !memcmp(p, key, kl)) {
			size_t vl = (size_t)(end - sep - 1);
			if (len == 0)
				return true;
			vl = vl < len - 1 ? vl : len - 1;
			memcpy(buf, sep + 1, vl);
			buf[vl] = '\0';
			return true;
		}
		p = end + 1;
	}
	return false;
}

double expo_sum(const struct expo *e, const char *name, bool *found)
{
	double v = 0;
	bool any = false;
	for (size_t i = 0; i < e->n; i++)
		if (!strcmp(e->s[i].name, name)) {
			v += e->s[i].value;
			any = true;
		}
	if (found)
		*found = any;
	return v;
}

double expo_sum_where(const struct expo *e, const char *name, const char *key, const char *value)
{
	double v = 0;
	char buf[EXPO_LABELS_MAX];
	for (size_t i = 0; i < e->n; i++)
		if (!strcmp(e->s[i].name, name) && expo_label(&e->s[i], key, buf, sizeof(buf)) && !strcmp(buf, value))
			v += e->s[i].value;
	return v;
}

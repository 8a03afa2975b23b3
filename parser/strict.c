/* Strict JSON checks cJSON does not make (see strict.h). One pass over the
 * bytes, each number against RFC 8259's grammar. */
#include "parser/strict.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

static bool digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static const char *digits(const char *p, const char *end)
{
	while (digit(p, end))
		p++;
	return p;
}

static bool hex4(const char *p, const char *end)
{
	if (end - p < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

/* Byte classes. Outside strings only a quote, a number's first byte and a
 * control byte need a look; inside, a quote, a backslash and a control byte.
 * Strings in events are mostly short keys and values, where a table beats
 * word-at-a-time tricks and their set-up. */
enum { PLAIN = 0, QUOTE, NUMBER, CONTROL, ESCAPE };
static unsigned char cls_out[256], cls_in[256];

static void init_classes(void)
{
	for (int c = 0; c < 0x20; c++)
		cls_out[c] = cls_in[c] = CONTROL;
	cls_out['"'] = cls_in['"'] = QUOTE;
	cls_in['\\'] = ESCAPE;
	cls_out['-'] = NUMBER;
	for (int c = '0'; c <= '9'; c++)
		cls_out[c] = NUMBER;
}

/* p after the opening quote; returns the byte after the closing one, or NULL
 * at a bad \u escape (*at there). */
static const char *string_end(const char *p, const char *end, struct qs_json_strict *r, const char **at)
{
	for (;;) {
		while (p < end && !cls_in[(unsigned char)*p])
			p++;
		if (p >= end)
			return end;
		switch (cls_in[(unsigned char)*p]) {
		case QUOTE: return p + 1;
		case CONTROL:
			r->control = true;
			p++;
			break;
		default:
			if (end - p >= 2 && p[1] == 'u' && !hex4(p + 2, end)) {
				*at = p;
				return NULL;
			}
			p += 2; /* the hex digits of \uXXXX are plain bytes here */
		}
	}
}

/* p at '-' or a digit; returns the end of the number, or NULL if it breaks
 * RFC 8259's grammar. */
static const char *number_end(const char *p, const char *end)
{
	if (*p == '-')
		p++;
	if (!digit(p, end))
		return NULL;
	if (*p == '0') {
		if (digit(++p, end))
			return NULL;
	} else {
		p = digits(p, end);
	}
	if (p < end && *p == '.') {
		if (!digit(++p, end))
			return NULL;
		p = digits(p, end);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!digit(p, end))
			return NULL;
		p = digits(p, end);
	}
	return p;
}

bool qs_json_strict(const char *json, size_t len, struct qs_json_strict *r)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init_classes);
	const char *p = json, *end = json + len, *at = NULL;
	r->control = false;
	while (p < end) {
		while (p < end && !cls_out[(unsigned char)*p])
			p++;
		if (p >= end)
			break;
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			const char *q = string_end(p + 1, end, r, &at);
			if (!q) {
				r->why = "\\u must be followed by four hex digits";
				break;
			}
			p = q;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			const char *q = number_end(p, end);
			if (!q) {
				at = p;
				r->why = "number not allowed by JSON (leading zero, or '.', '-', 'e' without digits)";
				break;
			}
			p = q;
		} else {
			r->control |= c < 0x20;
			p++;
		}
	}
	if (!at)
		return true;
	r->bad_at = (size_t)(at - json);
	return false;
}

/* Scanners over validated JSON text (see rawjson.h). */
#include "parser/rawjson.h"

#include <stdint.h>
#include <string.h>

const char *qs_json_skip_ws(const char *p, const char *end)
{
	while (p < end && qs_json_is_ws(*p))
		p++;
	return p;
}

/* The first '"' or '\\' in [p, end), or end: eight bytes at a time (a zero
 * byte in x ^ c..c marks a byte equal to c; (v - 1..1) & ~v & 80..80 is
 * nonzero exactly when v has a zero byte). */
static const char *find_quote_or_escape(const char *p, const char *end)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	while (end - p >= 8) {
		uint64_t x;
		memcpy(&x, p, 8);
		uint64_t q = x ^ ('"' * ones), b = x ^ ('\\' * ones);
		if (((q - ones) & ~q & highs) | ((b - ones) & ~b & highs))
			break;
		p += 8;
	}
	while (p < end && *p != '"' && *p != '\\')
		p++;
	return p;
}

/* p at the opening quote; returns the byte after the closing quote. */
static const char *skip_string(const char *p, const char *end, bool *escaped)
{
	for (p++;;) {
		p = find_quote_or_escape(p, end);
		if (p >= end)
			return NULL;
		if (*p == '"')
			return p + 1;
		*escaped = true;
		p += 2; /* the escaped byte, whatever it is */
	}
}

static const char *skip_value(const char *p, const char *end)
{
	bool esc = false;
	if (p >= end)
		return NULL;
	if (*p == '"')
		return skip_string(p, end, &esc);
	if (*p == '{' || *p == '[') {
		unsigned depth = 0;
		while (p < end) {
			char c = *p;
			if (c == '"') {
				p = skip_string(p, end, &esc);
				if (!p)
					return NULL;
				continue;
			}
			if (c == '{' || c == '[') {
				depth++;
			} else if (c == '}' || c == ']') {
				if (--depth == 0)
					return p + 1;
			}
			p++;
		}
		return NULL;
	}
	while (p < end && *p != ',' && *p != '}' && *p != ']' && !qs_json_is_ws(*p))
		p++;
	return p;
}

int qs_json_obj_next(struct qs_json_obj_it *it, struct qs_json_member *m)
{
	const char *p = qs_json_skip_ws(it->p, it->end);
	if (p >= it->end)
		return -1;
	if (*p == '}') {
		it->p = p + 1;
		return 0;
	}
	if (!it->first) {
		if (*p != ',')
			return -1;
		p = qs_json_skip_ws(p + 1, it->end);
	}
	if (p >= it->end || *p != '"')
		return -1;
	m->esc = false;
	const char *q = skip_string(p, it->end, &m->esc);
	if (!q)
		return -1;
	m->key = p + 1;
	m->klen = (size_t)(q - 1 - m->key);
	p = qs_json_skip_ws(q, it->end);
	if (p >= it->end || *p != ':')
		return -1;
	m->val = qs_json_skip_ws(p + 1, it->end);
	m->vend = skip_value(m->val, it->end);
	if (!m->vend)
		return -1;
	it->p = m->vend;
	it->first = false;
	return 1;
}

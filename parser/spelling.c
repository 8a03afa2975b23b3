/* Puts the frame's own spelling of each scalar back into cJSON's tree (see
 * spelling.h). The walk follows the text exactly as cJSON read it, so it
 * treats every byte up to 0x20 as whitespace and skips a leading UTF-8 BOM,
 * as cJSON does; tree and text go member by member in document order. */
#include "parser/spelling.h"

#include <stdbool.h>
#include <string.h>

#include "common/wire.h"

struct walk {
	const char *p, *end;
	const char *why; /* set when the event cannot be kept as sent */
	bool oom;
};

static void skip_ws(struct walk *w)
{
	while (w->p < w->end && (unsigned char)*w->p <= 0x20)
		w->p++;
}

static bool at(const struct walk *w, char c)
{
	return w->p < w->end && *w->p == c;
}

/* w->p at an opening quote: moves past the closing one. *nul: the string
 * holds U+0000, raw or as \u0000 (cJSON's C strings end there). */
static bool skip_string(struct walk *w, bool *nul)
{
	const char *p = w->p + 1;
	while (p < w->end && *p != '"') {
		if (*p == '\\') {
			if (w->end - p >= 6 && p[1] == 'u' && !memcmp(p + 2, "0000", 4))
				*nul = true;
			p += 2;
			continue;
		}
		*nul |= *p == 0;
		p++;
	}
	if (p >= w->end)
		return false;
	w->p = p + 1;
	return true;
}

/* The node becomes raw text s..e, with any raw control byte (cJSON lets them
 * through inside strings) escaped so that the printed line stays one line. */
static bool set_raw(struct walk *w, cJSON *node, const char *s, const char *e)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (const char *q = s; q < e; q++)
		n += (unsigned char)*q < 0x20 ? 6 : 1;
	char *out = cJSON_malloc(n + 1), *o = out;
	if (!out) {
		w->oom = true;
		return false;
	}
	for (const char *q = s; q < e; q++) {
		unsigned char c = (unsigned char)*q;
		if (c >= 0x20) {
			*o++ = (char)c;
			continue;
		}
		memcpy(o, "\\u00", 4);
		o[4] = hex[c >> 4];
		o[5] = hex[c & 15];
		o += 6;
	}
	*o = 0;
	cJSON_free(node->valuestring); /* a parsed node owns it (NULL for a number) */
	node->valuestring = out;
	node->type = (node->type & ~0xFF) | cJSON_Raw;
	return true;
}

static bool walk_value(struct walk *w, cJSON *node);

/* w->p at '{' or '['. */
static bool walk_children(struct walk *w, cJSON *node, bool object)
{
	w->p++;
	for (cJSON *c = node->child; c; c = c->next) {
		skip_ws(w);
		if (object) {
			bool nul = false;
			if (!at(w, '"') || !skip_string(w, &nul))
				return false;
			if (nul) {
				w->why = "a key holds U+0000, which cannot be kept in a field name";
				return false;
			}
			skip_ws(w);
			if (!at(w, ':'))
				return false;
			w->p++;
		}
		if (!walk_value(w, c))
			return false;
		skip_ws(w);
		if (c->next) {
			if (!at(w, ','))
				return false;
			w->p++;
		}
	}
	skip_ws(w);
	if (!at(w, object ? '}' : ']'))
		return false;
	w->p++;
	return true;
}

static bool skip_literal(struct walk *w, const char *word, bool type_ok)
{
	size_t n = strlen(word);
	if (!type_ok || (size_t)(w->end - w->p) < n || memcmp(w->p, word, n))
		return false;
	w->p += n;
	return true;
}

static bool walk_value(struct walk *w, cJSON *node)
{
	skip_ws(w);
	if (w->p >= w->end)
		return false;
	const char *s = w->p;
	bool nul = false;
	switch (*s) {
	case '{': return cJSON_IsObject(node) && walk_children(w, node, true);
	case '[': return cJSON_IsArray(node) && walk_children(w, node, false);
	case '"': return cJSON_IsString(node) && skip_string(w, &nul) && set_raw(w, node, s, w->p);
	case 't': return skip_literal(w, "true", cJSON_IsTrue(node));
	case 'f': return skip_literal(w, "false", cJSON_IsFalse(node));
	case 'n': return skip_literal(w, "null", cJSON_IsNull(node));
	default:
		/* the bytes cJSON's number reader takes (strtod then agreed on all
		 * of them, or the frame would not have parsed) */
		if (!cJSON_IsNumber(node))
			return false;
		while (w->p < w->end && (strchr("0123456789+-.eE", *w->p) && *w->p))
			w->p++;
		return w->p > s && set_raw(w, node, s, w->p);
	}
}

int qs_spelling_restore(cJSON *root, const char *json, size_t len, const char **why)
{
	struct walk w = {.p = json, .end = json + len};
	if (len >= 3 && !memcmp(json, "\xEF\xBB\xBF", 3))
		w.p += 3;
	if (walk_value(&w, root))
		return 0;
	if (w.why) {
		*why = w.why;
		return QS_REJ_INVALID_JSON;
	}
	*why = w.oom ? "out of memory" : "internal error: the frame's text and its parse disagree";
	return QS_REJ_INTERNAL;
}

/* Scanners over JSON text that cJSON has already validated: they only find
 * where things end (strings, values, object members), eight bytes at a time
 * where that pays. On anything unexpected they report failure, and the caller
 * falls back to cJSON's tree. */
#ifndef QS_PARSER_RAWJSON_H
#define QS_PARSER_RAWJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline bool qs_json_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The first byte in [p, end) that is no JSON whitespace, or end. */
const char *qs_json_skip_ws(const char *p, const char *end);

struct qs_json_member {
	const char *key; /* first byte after the opening quote */
	size_t klen;
	bool esc; /* the key holds an escape: its raw bytes are not its name */
	const char *val, *vend;
};

/* Walks the members of one object: p just after its '{', first = true. */
struct qs_json_obj_it {
	const char *p, *end;
	bool first;
};

/* 1: a member, 0: end of the object (it->p after its '}'), -1: unexpected. */
int qs_json_obj_next(struct qs_json_obj_it *it, struct qs_json_member *m);

static inline bool qs_json_key_is(const struct qs_json_member *m, const char *name, size_t len)
{
	return m->klen == len && !memcmp(m->key, name, len);
}

#endif

/* Validation and enrichment of one client event (see enrich.h).
 *
 * Three ways to produce the output line (cJSON validates every frame first,
 * then parser/strict.h refuses what cJSON lets through and JSON does not):
 *  - fast path: the client's object has nothing we must remove or merge and
 *    its raw bytes hold no control character, so we copy the raw bytes and
 *    splice our fields in before the closing brace (no re-serialisation, and
 *    numbers keep their exact spelling);
 *  - splice path: the client sent its own "event" and/or "source" object (once
 *    each, plain keys, no control character): the raw bytes are copied with
 *    our keys dropped from those two objects and ours appended inside them;
 *  - slow path (spoofed dotted names, duplicates, escapes in keys, control
 *    characters): edit the cJSON tree in one pass (parser/merge.h: linear
 *    however many duplicates) and print it unformatted, which escapes
 *    control characters, so the line never holds a raw newline. Numbers and
 *    strings print as the client spelled them (parser/spelling.h): through
 *    cJSON's doubles and C strings, 64-bit ids would lose digits. */
#include "parser/enrich.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/heap.h"
#include "parser/fields.h"
#include "parser/merge.h"
#include "parser/rawjson.h"
#include "parser/spelling.h"
#include "parser/strict.h"

static int reject(struct qs_enrich_result *res, uint16_t code, const char *fmt, const char *arg, size_t num)
{
	res->code = code;
	if (arg)
		snprintf(res->reason, sizeof(res->reason), fmt, arg);
	else
		snprintf(res->reason, sizeof(res->reason), fmt, num);
	return -1;
}

static int buf_reserve(struct qs_enrich_buf *b, size_t need)
{
	void *data = b->data;
	if (qs_grow(&data, &b->cap, need, 1024))
		return -1;
	b->data = data;
	return 0;
}

void qs_enrich_buf_free(struct qs_enrich_buf *b)
{
	free(b->memo);
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static const char *kind_name(const cJSON *v)
{
	if (cJSON_IsArray(v)) return "an array";
	if (cJSON_IsString(v)) return "a string";
	if (cJSON_IsNumber(v)) return "a number";
	if (cJSON_IsBool(v)) return "a boolean";
	return "null";
}

/* 0: nothing at the top level to edit; 1: the client's own "event" or
 * "source" (edited in place when possible); 2: a spoofed dotted name, or
 * with a tenant the client's own "organization" (merged by the slow path). */
static int needs_rewrite(const cJSON *root, bool tenant)
{
	int r = 0;
	for (const cJSON *c = root->child; c; c = c->next) {
		const char *k = c->string;
		if (k[0] != 'e' && k[0] != 's' && k[0] != 'o')
			continue;
		if (!strcmp(k, "event") || !strcmp(k, "source"))
			r = 1;
		else if (qs_is_spoofed_name(k) || (tenant && qs_is_org_name(k)))
			return 2;
	}
	return r;
}

static bool trees_in_arena;

void qs_enrich_trees_in_arena(bool yes)
{
	trees_in_arena = yes;
}

static void free_tree(cJSON *root)
{
	if (!trees_in_arena)
		cJSON_Delete(root);
}

/* Raw bytes may be copied as they are only if no control character (a raw
 * newline would split the line; elsewhere one is invalid JSON inside a string)
 * and no UTF-8 BOM (cJSON skips it; Logstash would not). */
static bool raw_copyable(const char *json, size_t len, const struct qs_json_strict *st)
{
	return !st->control && !(len >= 3 && !memcmp(json, "\xEF\xBB\xBF", 3));
}

static int fast_path(const char *json, const char *close, bool empty, const struct qs_fields *f,
		     struct qs_enrich_buf *out)
{
	while (qs_json_is_ws(*json))
		json++;
	size_t head = (size_t)(close - json); /* everything before the closing '}' */
	if (buf_reserve(out, head + QS_FIELDS_MAX))
		return -1;
	char *p = qs_put(out->data, json, head);
	p = qs_put_both_fields(p, !empty, f);
	p = QS_PUTS(p, "}\n");
	out->len = (size_t)(p - out->data);
	return 0;
}

/* ---- splice path: the client's own "event"/"source" objects are edited in
 * place, in the raw bytes, found with the scanners of rawjson.h; on anything
 * unexpected they give up and the slow path does the job. */

/* Copies the object [val, vend) without its members drop1/drop2 (every copy
 * of them) and with ours added at the end. NULL: not for this path. */
static char *rewrite_obj(char *o, const char *val, const char *vend, const char *drop1, size_t len1,
			 const char *drop2, size_t len2, char *(*fields)(char *, const struct qs_fields *),
			 const struct qs_fields *f)
{
	struct qs_json_obj_it it = {.p = val + 1, .end = vend, .first = true};
	struct qs_json_member m;
	int r;
	*o++ = '{';
	bool any = false;
	while ((r = qs_json_obj_next(&it, &m)) == 1) {
		if (m.esc)
			return NULL;
		if (qs_json_key_is(&m, drop1, len1) || qs_json_key_is(&m, drop2, len2))
			continue;
		if (any)
			*o++ = ',';
		o = qs_put(o, m.key - 1, (size_t)(m.vend - (m.key - 1)));
		any = true;
	}
	if (r < 0 || it.p != vend)
		return NULL;
	if (any)
		*o++ = ',';
	o = fields(o, f);
	*o++ = '}';
	return o;
}

/* "event" or "source" at the end of the output: the client's object edited,
 * or one of ours alone. NULL: not for this path. */
static char *put_server_obj(char *o, bool ev, const struct qs_json_member *m, const struct qs_fields *f)
{
	o = ev ? QS_PUTS(o, "\"event\":") : QS_PUTS(o, "\"source\":");
	if (m)
		return ev ? rewrite_obj(o, m->val, m->vend, "ingested", 8, "id", 2, qs_put_event_fields, f)
			  : rewrite_obj(o, m->val, m->vend, "ip", 2, "port", 4, qs_put_source_fields, f);
	*o++ = '{';
	o = ev ? qs_put_event_fields(o, f) : qs_put_source_fields(o, f);
	*o++ = '}';
	return o;
}

/* The client's members in their order, then "event" and "source" (as every
 * path stores them: docs/PROTOCOL.md). 0: done, 1: not for this path (use
 * the slow one), -1: out of memory. */
static int splice_path(const char *json, size_t len, const struct qs_fields *f, struct qs_enrich_buf *out)
{
	const char *end = json + len, *p = qs_json_skip_ws(json, end);
	if (p >= end || *p != '{')
		return 1;
	if (buf_reserve(out, len + 2 * QS_FIELDS_MAX + 64))
		return -1;
	char *o = out->data;
	*o++ = '{';
	struct qs_json_obj_it it = {.p = p + 1, .end = end, .first = true};
	struct qs_json_member m, ev_m, src_m;
	bool have_ev = false, have_src = false;
	int r;
	while ((r = qs_json_obj_next(&it, &m)) == 1) {
		if (m.esc)
			return 1; /* could spell "event" or a spoofed name */
		bool ev = qs_json_key_is(&m, "event", 5), src = !ev && qs_json_key_is(&m, "source", 6);
		if ((ev && have_ev) || (src && have_src) || ((ev || src) && *m.val != '{'))
			return 1; /* duplicates are merged, non-objects rejected, by the slow path */
		if (ev || src) {
			*(ev ? &ev_m : &src_m) = m;
			have_ev |= ev;
			have_src |= src;
			continue;
		}
		if (o - out->data > 1)
			*o++ = ',';
		o = qs_put(o, m.key - 1, (size_t)(m.vend - (m.key - 1)));
	}
	if (r < 0 || qs_json_skip_ws(it.p, end) != end)
		return 1;
	if (o - out->data > 1)
		*o++ = ',';
	o = put_server_obj(o, true, have_ev ? &ev_m : NULL, f);
	if (!o)
		return 1;
	*o++ = ',';
	o = put_server_obj(o, false, have_src ? &src_m : NULL, f);
	if (!o)
		return 1;
	o = qs_put_org_fields(o, f);
	o = QS_PUTS(o, "}\n");
	out->len = (size_t)(o - out->data);
	return 0;
}

static int slow_path(cJSON *root, const char *json, size_t len, const struct qs_fields *f,
		     struct qs_enrich_buf *out, struct qs_enrich_result *res)
{
	const char *why = "", *which = "";
	int rc = qs_spelling_restore(root, json, len, &why);
	if (rc) {
		res->code = (uint16_t)rc;
		snprintf(res->reason, sizeof(res->reason), "%s", why);
		return -1;
	}
	rc = qs_merge_server_fields(root, f, &which);
	if (rc > 0) {
		res->code = (uint16_t)rc;
		snprintf(res->reason, sizeof(res->reason), "field '%s' is server-owned and must be an object", which);
		return -1;
	}
	char *s = rc ? NULL : cJSON_PrintUnformatted(root);
	if (!s)
		return reject(res, QS_REJ_INTERNAL, "%s", "out of memory", 0);
	size_t n = strlen(s);
	if (buf_reserve(out, n + 2)) {
		cJSON_free(s);
		return reject(res, QS_REJ_INTERNAL, "%s", "out of memory", 0);
	}
	memcpy(out->data, s, n);
	out->data[n] = '\n';
	out->len = n + 1;
	cJSON_free(s);
	return 0;
}

int qs_enrich(const char *json, size_t len, const struct qs_enrich_meta *m, struct qs_enrich_buf *out,
	      struct qs_enrich_result *res)
{
	res->code = 0; /* not a memset: reason (200 bytes) is written only on a rejection */
	res->reason[0] = 0;
	res->fast = false;
	out->len = 0;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root)
		return reject(res, QS_REJ_INVALID_JSON, "invalid JSON at byte %zu", NULL,
			      end ? (size_t)(end - json) : 0);
	const char *after = end;
	while (after < json + len && qs_json_is_ws(*after))
		after++;
	if (after < json + len) {
		free_tree(root);
		return reject(res, QS_REJ_INVALID_JSON, "invalid JSON at byte %zu: data after the object", NULL,
			      (size_t)(after - json));
	}
	if (!cJSON_IsObject(root)) {
		const char *k = kind_name(root);
		free_tree(root);
		return reject(res, QS_REJ_NOT_OBJECT, "expected a JSON object, got %s", k, 0);
	}
	struct qs_json_strict st;
	if (!qs_json_strict(json, len, &st)) {
		free_tree(root);
		res->code = QS_REJ_INVALID_JSON;
		snprintf(res->reason, sizeof(res->reason), "invalid JSON at byte %zu: %s", st.bad_at, st.why);
		return -1;
	}
	if (!out->memo && !(out->memo = calloc(1, sizeof(*out->memo)))) {
		free_tree(root);
		return reject(res, QS_REJ_INTERNAL, "%s", "out of memory", 0);
	}
	const struct qs_fields *f = qs_fields_make(m, out->memo);
	int rc = 1;
	int edit = needs_rewrite(root, m->tenant != NULL);
	if (raw_copyable(json, len, &st)) {
		if (edit == 0) {
			res->fast = true;
			rc = fast_path(json, end - 1, root->child == NULL, f, out);
		} else if (edit == 1) {
			rc = splice_path(json, len, f, out);
		}
		if (rc < 0)
			reject(res, QS_REJ_INTERNAL, "%s", "out of memory", 0);
	}
	if (rc == 1)
		rc = slow_path(root, json, len, f, out, res);
	free_tree(root);
	return rc;
}

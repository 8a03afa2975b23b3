/* Validation and enrichment of one client event (see enrich.h).
 *
 * Three ways to produce the output line (cJSON validates every frame first):
 *  - fast path: the client's object has nothing we must remove or merge and
 *    its raw bytes hold no control character, so we copy the raw bytes and
 *    splice our fields in before the closing brace (no re-serialisation, and
 *    numbers keep their exact spelling);
 *  - splice path: the client sent its own "event" and/or "source" object (once
 *    each, plain keys, no control character): the raw bytes are copied with
 *    our keys dropped from those two objects and ours appended inside them;
 *  - slow path (spoofed dotted names, duplicates, escapes in keys, control
 *    characters): edit the cJSON tree and print it unformatted, which escapes
 *    control characters, so the line never holds a raw newline. */
#include "parser/enrich.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Top-level dotted names that would shadow our fields in Elasticsearch. */
static const char *const spoof_keys[] = {"event.id", "event.ingested", "source.ip", "source.port"};
#define N_SPOOF (sizeof(spoof_keys) / sizeof(spoof_keys[0]))

struct server_fields {
	char ingested[40];
	char id[2 * QS_SESSION_ID_LEN + 1 + 21];
	char ip[INET6_ADDRSTRLEN];
	size_t ingested_len, id_len, ip_len;
	unsigned port;
};

/* Consecutive frames mostly come from one stream within one second: they
 * share the date and time up to the second, the session and the address.
 * Those parts of the fields are formatted again only when their input
 * changes (formatting all of them was ~60 ns of every event). */
struct qs_enrich_memo {
	struct server_fields f;
	bool valid;
	uint64_t secs;
	uint8_t session[QS_SESSION_ID_LEN];
	uint8_t ip[16];
};

/* Writes v in decimal at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

/* Civil date from days since 1970-01-01 (H. Hinnant's algorithm): no gmtime_r,
 * no time zone, no locale on the hot path. */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

#define DATE_LEN 20 /* "YYYY-MM-DDTHH:MM:SS." */

/* "%04d-%02d-%02dT%02d:%02d:%02d." (recv_time_ns is unsigned: years 1970..2554) */
static void put_date(char *p, uint64_t secs)
{
	int64_t y;
	unsigned mon, day, sod = (unsigned)(secs % 86400);
	civil((int64_t)(secs / 86400), &y, &mon, &day);
	p[0] = (char)('0' + y / 1000 % 10), p[1] = (char)('0' + y / 100 % 10);
	p[2] = (char)('0' + y / 10 % 10), p[3] = (char)('0' + y % 10), p[4] = '-';
	p = put_2(p + 5, mon), *p++ = '-';
	p = put_2(p, day), *p++ = 'T';
	p = put_2(p, sod / 3600), *p++ = ':';
	p = put_2(p, sod / 60 % 60), *p++ = ':';
	p = put_2(p, sod % 60), *p = '.';
}

static void put_session(char *p, const uint8_t *session)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < QS_SESSION_ID_LEN; i++) {
		*p++ = hex[session[i] >> 4];
		*p++ = hex[session[i] & 15];
	}
	*p = '-';
}

static size_t put_ip(char *out, size_t cap, const uint8_t ip[16])
{
	struct in6_addr a;
	memcpy(&a, ip, sizeof(a));
	if (!IN6_IS_ADDR_V4MAPPED(&a)) {
		inet_ntop(AF_INET6, &a, out, (socklen_t)cap);
		return strlen(out);
	}
	char *p = out;
	for (int i = 12; i < 16; i++) {
		if (i > 12)
			*p++ = '.';
		p = put_u64(p, ip[i]);
	}
	*p = 0;
	return (size_t)(p - out);
}

/* The event's server fields, in the memo (see struct qs_enrich_memo). */
static const struct server_fields *make_fields(const struct qs_enrich_meta *m, struct qs_enrich_memo *mm)
{
	struct server_fields *f = &mm->f;
	uint64_t secs = m->recv_time_ns / 1000000000u;
	unsigned usec = (unsigned)(m->recv_time_ns % 1000000000u / 1000u);
	if (!mm->valid || secs != mm->secs)
		put_date(f->ingested, secs);
	char *p = f->ingested + DATE_LEN;
	for (unsigned div = 100000; div; div /= 10)
		*p++ = (char)('0' + usec / div % 10);
	*p++ = 'Z';
	*p = 0;
	f->ingested_len = (size_t)(p - f->ingested);

	if (!mm->valid || memcmp(m->session, mm->session, QS_SESSION_ID_LEN))
		put_session(f->id, m->session);
	p = put_u64(f->id + 2 * QS_SESSION_ID_LEN + 1, m->seq);
	*p = 0;
	f->id_len = (size_t)(p - f->id);

	if (!mm->valid || memcmp(m->ip, mm->ip, sizeof(mm->ip)))
		f->ip_len = put_ip(f->ip, sizeof(f->ip), m->ip);
	f->port = m->port;

	mm->valid = true;
	mm->secs = secs;
	memcpy(mm->session, m->session, QS_SESSION_ID_LEN);
	memcpy(mm->ip, m->ip, sizeof(mm->ip));
	return f;
}

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
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < need)
		cap *= 2;
	char *nd = realloc(b->data, cap);
	if (!nd)
		return -1;
	b->data = nd;
	b->cap = cap;
	return 0;
}

void qs_enrich_buf_free(struct qs_enrich_buf *b)
{
	free(b->memo);
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *kind_name(const cJSON *v)
{
	if (cJSON_IsArray(v)) return "an array";
	if (cJSON_IsString(v)) return "a string";
	if (cJSON_IsNumber(v)) return "a number";
	if (cJSON_IsBool(v)) return "a boolean";
	return "null";
}

static bool is_spoof(const char *k)
{
	for (size_t i = 0; i < N_SPOOF; i++)
		if (!strcmp(k, spoof_keys[i]))
			return true;
	return false;
}

/* 0: nothing at the top level to edit; 1: the client's own "event" or
 * "source" (edited in place when possible); 2: a spoofed dotted name. */
static int needs_rewrite(const cJSON *root)
{
	int r = 0;
	for (const cJSON *c = root->child; c; c = c->next) {
		const char *k = c->string;
		if (k[0] != 'e' && k[0] != 's')
			continue;
		if (!strcmp(k, "event") || !strcmp(k, "source"))
			r = 1;
		else if (is_spoof(k))
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

/* Eight bytes at a time: a byte below 0x20 in x leaves its top bit set in
 * (x - 0x20..20) & ~x (the "hasless" bit trick; exact as a yes/no). */
static bool has_control(const char *p, size_t len)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t x;
		memcpy(&x, p + i, 8);
		if ((x - 0x20 * ones) & ~x & highs)
			return true;
	}
	for (; i < len; i++)
		if ((unsigned char)p[i] < 0x20)
			return true;
	return false;
}

/* Raw bytes may be copied as they are only if no control character (a raw
 * newline would split the line; elsewhere one is invalid JSON inside a string)
 * and no UTF-8 BOM (cJSON skips it; Logstash would not). */
static bool raw_copyable(const char *json, size_t len)
{
	if (len >= 3 && !memcmp(json, "\xEF\xBB\xBF", 3))
		return false;
	return !has_control(json, len);
}

#define FIELDS_MAX 256 /* our fields with their keys, quotes and braces: well below this */

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define PUTS(p, lit) put(p, lit, sizeof(lit) - 1)

/* "ingested":"...","id":"..." */
static char *put_event_fields(char *p, const struct server_fields *f)
{
	p = PUTS(p, "\"ingested\":\"");
	p = put(p, f->ingested, f->ingested_len);
	p = PUTS(p, "\",\"id\":\"");
	p = put(p, f->id, f->id_len);
	*p++ = '"';
	return p;
}

/* "ip":"...","port":N */
static char *put_source_fields(char *p, const struct server_fields *f)
{
	p = PUTS(p, "\"ip\":\"");
	p = put(p, f->ip, f->ip_len);
	p = PUTS(p, "\",\"port\":");
	return put_u64(p, f->port);
}

static char *put_both(char *p, bool comma, const struct server_fields *f)
{
	if (comma)
		*p++ = ',';
	p = PUTS(p, "\"event\":{");
	p = put_event_fields(p, f);
	p = PUTS(p, "},\"source\":{");
	p = put_source_fields(p, f);
	*p++ = '}';
	return p;
}

static int fast_path(const char *json, const char *close, bool empty, const struct server_fields *f,
		     struct qs_enrich_buf *out)
{
	while (is_ws(*json))
		json++;
	size_t head = (size_t)(close - json); /* everything before the closing '}' */
	if (buf_reserve(out, head + FIELDS_MAX))
		return -1;
	char *p = put(out->data, json, head);
	p = put_both(p, !empty, f);
	p = PUTS(p, "}\n");
	out->len = (size_t)(p - out->data);
	return 0;
}

/* ---- splice path: the client's own "event"/"source" objects are edited in
 * place, in the raw bytes. cJSON has validated the text already, so these
 * scanners only find where things end; on anything unexpected they give up
 * and the slow path does the job. */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && is_ws(*p))
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
	while (p < end && *p != ',' && *p != '}' && *p != ']' && !is_ws(*p))
		p++;
	return p;
}

struct member {
	const char *key; /* first byte after the opening quote */
	size_t klen;
	bool esc; /* the key holds an escape: its raw bytes are not its name */
	const char *val, *vend;
};

struct obj_it {
	const char *p, *end;
	bool first;
};

/* 1: a member, 0: end of the object (it->p after its '}'), -1: unexpected. */
static int obj_next(struct obj_it *it, struct member *m)
{
	const char *p = skip_ws(it->p, it->end);
	if (p >= it->end)
		return -1;
	if (*p == '}') {
		it->p = p + 1;
		return 0;
	}
	if (!it->first) {
		if (*p != ',')
			return -1;
		p = skip_ws(p + 1, it->end);
	}
	if (p >= it->end || *p != '"')
		return -1;
	m->esc = false;
	const char *q = skip_string(p, it->end, &m->esc);
	if (!q)
		return -1;
	m->key = p + 1;
	m->klen = (size_t)(q - 1 - m->key);
	p = skip_ws(q, it->end);
	if (p >= it->end || *p != ':')
		return -1;
	m->val = skip_ws(p + 1, it->end);
	m->vend = skip_value(m->val, it->end);
	if (!m->vend)
		return -1;
	it->p = m->vend;
	it->first = false;
	return 1;
}

static bool key_is(const struct member *m, const char *name, size_t len)
{
	return m->klen == len && !memcmp(m->key, name, len);
}

/* Copies the object [val, vend) without its members drop1/drop2 (every copy
 * of them) and with ours added at the end. NULL: not for this path. */
static char *rewrite_obj(char *o, const char *val, const char *vend, const char *drop1, size_t len1,
			 const char *drop2, size_t len2, char *(*fields)(char *, const struct server_fields *),
			 const struct server_fields *f)
{
	struct obj_it it = {.p = val + 1, .end = vend, .first = true};
	struct member m;
	int r;
	*o++ = '{';
	bool any = false;
	while ((r = obj_next(&it, &m)) == 1) {
		if (m.esc)
			return NULL;
		if (key_is(&m, drop1, len1) || key_is(&m, drop2, len2))
			continue;
		if (any)
			*o++ = ',';
		o = put(o, m.key - 1, (size_t)(m.vend - (m.key - 1)));
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

/* 0: done, 1: not for this path (use the slow one), -1: out of memory. */
static int splice_path(const char *json, size_t len, const struct server_fields *f, struct qs_enrich_buf *out)
{
	const char *end = json + len, *p = skip_ws(json, end);
	if (p >= end || *p != '{')
		return 1;
	if (buf_reserve(out, len + 2 * FIELDS_MAX + 64))
		return -1;
	char *o = out->data;
	const char *copied = p;
	struct obj_it it = {.p = p + 1, .end = end, .first = true};
	struct member m;
	bool have_ev = false, have_src = false;
	unsigned members = 0;
	int r;
	while ((r = obj_next(&it, &m)) == 1) {
		members++;
		if (m.esc)
			return 1; /* could spell "event" or a spoofed name */
		bool ev = key_is(&m, "event", 5), src = !ev && key_is(&m, "source", 6);
		if (!ev && !src)
			continue;
		if ((ev && have_ev) || (src && have_src) || *m.val != '{')
			return 1; /* duplicates are merged, non-objects rejected, by the slow path */
		o = put(o, copied, (size_t)(m.val - copied));
		o = ev ? rewrite_obj(o, m.val, m.vend, "ingested", 8, "id", 2, put_event_fields, f)
		       : rewrite_obj(o, m.val, m.vend, "ip", 2, "port", 4, put_source_fields, f);
		if (!o)
			return 1;
		copied = m.vend;
		have_ev |= ev;
		have_src |= src;
	}
	if (r < 0 || skip_ws(it.p, end) != end)
		return 1;
	o = put(o, copied, (size_t)(it.p - 1 - copied)); /* up to the closing '}' */
	if (!have_ev) {
		if (members)
			*o++ = ',';
		o = PUTS(o, "\"event\":{");
		o = put_event_fields(o, f);
		*o++ = '}';
		members++;
	}
	if (!have_src) {
		if (members)
			*o++ = ',';
		o = PUTS(o, "\"source\":{");
		o = put_source_fields(o, f);
		*o++ = '}';
	}
	o = PUTS(o, "}\n");
	out->len = (size_t)(o - out->data);
	return 0;
}

static void delete_all(cJSON *obj, const char *key)
{
	while (cJSON_GetObjectItemCaseSensitive(obj, key))
		cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
}

/* Detaches every top-level `name` (duplicates included, later keys winning as
 * in most JSON readers) and merges them into one object, so no copy of the
 * key can survive to shadow ours. Returns NULL if one is not an object. */
static cJSON *take_merged(cJSON *root, const char *name, bool *bad)
{
	cJSON *merged = NULL, *it;
	*bad = false;
	while ((it = cJSON_DetachItemFromObjectCaseSensitive(root, name))) {
		if (!cJSON_IsObject(it) || *bad) {
			*bad = true;
			cJSON_Delete(it);
			continue;
		}
		if (!merged) {
			merged = it;
			continue;
		}
		cJSON *c;
		while ((c = it->child)) {
			cJSON_DetachItemViaPointer(it, c);
			delete_all(merged, c->string);
			cJSON_AddItemToObject(merged, c->string, c);
		}
		cJSON_Delete(it);
	}
	if (*bad) {
		cJSON_Delete(merged);
		return NULL;
	}
	return merged ? merged : cJSON_CreateObject();
}

static bool set_string(cJSON *obj, const char *key, const char *val)
{
	delete_all(obj, key);
	return cJSON_AddStringToObject(obj, key, val) != NULL;
}

static bool set_number(cJSON *obj, const char *key, double val)
{
	delete_all(obj, key);
	return cJSON_AddNumberToObject(obj, key, val) != NULL;
}

/* Returns 0, -1 on out of memory, or a reject code (name in *which). */
static int merge_server_fields(cJSON *root, const struct server_fields *f, const char **which)
{
	for (size_t i = 0; i < N_SPOOF; i++)
		delete_all(root, spoof_keys[i]);
	bool bad;
	cJSON *ev = take_merged(root, "event", &bad);
	if (bad) {
		*which = "event";
		return QS_REJ_SERVER_FIELD;
	}
	cJSON *src = take_merged(root, "source", &bad);
	if (bad) {
		cJSON_Delete(ev);
		*which = "source";
		return QS_REJ_SERVER_FIELD;
	}
	cJSON_AddItemToObject(root, "event", ev);
	cJSON_AddItemToObject(root, "source", src);
	if (!ev || !src || !set_string(ev, "ingested", f->ingested) || !set_string(ev, "id", f->id) ||
	    !set_string(src, "ip", f->ip) || !set_number(src, "port", f->port))
		return -1;
	return 0;
}

static int slow_path(cJSON *root, const struct server_fields *f, struct qs_enrich_buf *out,
		     struct qs_enrich_result *res)
{
	const char *which = NULL;
	int rc = merge_server_fields(root, f, &which);
	if (rc > 0)
		return reject(res, (uint16_t)rc, "field '%s' is server-owned and must be an object", which, 0);
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
	while (after < json + len && is_ws(*after))
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
	if (!out->memo && !(out->memo = calloc(1, sizeof(*out->memo)))) {
		free_tree(root);
		return reject(res, QS_REJ_INTERNAL, "%s", "out of memory", 0);
	}
	const struct server_fields *f = make_fields(m, out->memo);
	int rc = 1;
	int edit = needs_rewrite(root);
	if (raw_copyable(json, len)) {
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
		rc = slow_path(root, f, out, res);
	free_tree(root);
	return rc;
}

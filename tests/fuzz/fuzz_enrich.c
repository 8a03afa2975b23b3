/* Fuzz target: parser/enrich.c, the parser's validation and enrichment of a
 * client's frame (untrusted bytes, and hand-written raw-byte editing).
 *
 * Properties, for any input (the JSON checker here is independent of ours):
 *  - accepted only when cJSON reads it as one object whose top-level "event"
 *    and "source" members are all objects, and only when it is JSON (RFC 8259,
 *    UTF-8 included)
 *    but for what quicstash lets through on purpose (parser/strict.h: raw
 *    control bytes, a BOM); always accepted when it is strictly JSON and cJSON
 *    reads it so; otherwise rejected with the matching code and a reason;
 *  - an accepted event is one line (no byte below 0x20 but the final '\n')
 *    of strict JSON: one object with exactly one "event" and one "source", the
 *    server's four values in them once each, and no spoofed dotted name;
 *  - the raw paths (fast, splice) and the cJSON slow path give the same JSON:
 *    a UTF-8 BOM in front keeps qs_enrich off the raw paths, the BOM itself
 *    changes nothing;
 *  - the slow path's merge (parser/merge.c, linear) gives what the old
 *    key-by-key merge gave (tests/unit/merge_model.h).
 * The exception: a key holding U+0000 cannot be kept by the slow path (cJSON's
 * keys are C strings); it rejects such an event rather than cut the key. */
#include "tests/fuzz/fuzz.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <string.h>

#include "parser/enrich.h"
#include "parser/strict.h"
#include "tests/unit/merge_model.h"

static const struct qs_enrich_meta meta = {
	.session = {0xde, 0xad, 0xbe, 0xef, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	.seq = 7,
	.recv_time_ns = 1700000000123456789ull,
	.ip = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1},
	.port = 4242,
};
#define WANT_ID "deadbeef0405060708090a0b0c0d0e0f-7"
#define WANT_INGESTED "2023-11-14T22:13:20.123456Z"
#define WANT_IP "192.0.2.1"

static const char *const spoofed[] = {"event.id", "event.ingested", "source.ip", "source.port"};

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* What qs_enrich must answer, from cJSON's reading of the frame. */
static int expected_code(const uint8_t *d, size_t n)
{
	const char *end = NULL, *e = (const char *)d + n;
	cJSON *j = cJSON_ParseWithLengthOpts((const char *)d, n, &end, 0);
	if (!j)
		return QS_REJ_INVALID_JSON;
	while (end < e && is_ws(*end))
		end++;
	int code = 0;
	if (end < e)
		code = QS_REJ_INVALID_JSON;
	else if (!cJSON_IsObject(j))
		code = QS_REJ_NOT_OBJECT;
	else
		for (const cJSON *c = j->child; c; c = c->next)
			if ((!strcmp(c->string, "event") || !strcmp(c->string, "source")) && !cJSON_IsObject(c))
				code = QS_REJ_SERVER_FIELD;
	cJSON_Delete(j);
	return code;
}

/* ---- an RFC 8259 checker, written apart from parser/strict.c ---- */

struct checker {
	const unsigned char *p, *e;
	bool lenient;   /* what quicstash lets through: control bytes, BOM */
	int depth;      /* cJSON refuses nesting deeper than 1000 */
	bool long_num;  /* a number longer than 63 characters (quicstash refuses it) */
	struct tokens *tok; /* if set: collects the text of every number and string value */
};

struct token {
	const unsigned char *p;
	size_t n;
};

struct tokens {
	struct token v[4096];
	size_t n;
};

static void note(struct checker *c, const unsigned char *s)
{
	if (c->tok && c->tok->n < sizeof(c->tok->v) / sizeof(c->tok->v[0]))
		c->tok->v[c->tok->n++] = (struct token){s, (size_t)(c->p - s)};
}

static bool ck_value(struct checker *c);

static void ck_ws(struct checker *c)
{
	while (c->p < c->e && (is_ws((char)*c->p) || (c->lenient && *c->p <= 0x20)))
		c->p++;
}

static bool ck_hex4(struct checker *c, unsigned *u)
{
	*u = 0;
	for (int i = 0; i < 4; i++, c->p++) {
		if (c->p >= c->e)
			return false;
		int ch = *c->p, v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
				    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
		if (v < 0)
			return false;
		*u = *u * 16 + (unsigned)v;
	}
	return true;
}

/* One UTF-8 sequence whose lead byte ch was just read: decoded, then held
 * to RFC 3629 (shortest form, no surrogates, at most U+10FFFF). */
static bool ck_utf8(struct checker *c, unsigned char ch)
{
	static const uint32_t least[] = {0, 0x80, 0x800, 0x10000};
	int n = ch >= 0xF8 ? -1 : ch >= 0xF0 ? 3 : ch >= 0xE0 ? 2 : ch >= 0xC0 ? 1 : -1;
	if (n < 0)
		return false;
	uint32_t cp = ch & (0x3Fu >> n);
	for (int i = 0; i < n; i++, c->p++) {
		if (c->p >= c->e || (*c->p & 0xC0) != 0x80)
			return false;
		cp = cp << 6 | (*c->p & 0x3Fu);
	}
	return cp >= least[n] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

static bool ck_string(struct checker *c, bool value)
{
	const unsigned char *s = c->p++;
	while (c->p < c->e) {
		unsigned char ch = *c->p++;
		if (ch == '"') {
			if (value)
				note(c, s);
			return true;
		}
		if (ch < 0x20 && !c->lenient)
			return false;
		if (ch >= 0x80 && !ck_utf8(c, ch))
			return false;
		if (ch != '\\')
			continue;
		if (c->p >= c->e)
			return false;
		ch = *c->p++;
		if (ch && strchr("\"\\/bfnrt", ch))
			continue;
		unsigned u, lo;
		if (ch != 'u' || !ck_hex4(c, &u) || (u >= 0xDC00 && u <= 0xDFFF))
			return false; /* (a lone low surrogate: cJSON refuses it, so do we) */
		if (u >= 0xD800 && u <= 0xDBFF &&
		    (c->e - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u' || (c->p += 2, !ck_hex4(c, &lo)) ||
		     lo < 0xDC00 || lo > 0xDFFF))
			return false;
	}
	return false;
}

static bool ck_digits(struct checker *c)
{
	const unsigned char *s = c->p;
	while (c->p < c->e && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > s;
}

static bool ck_number(struct checker *c)
{
	const unsigned char *s = c->p;
	if (*c->p == '-')
		c->p++;
	if (c->p < c->e && *c->p == '0')
		c->p++;
	else if (!ck_digits(c))
		return false;
	if (c->p < c->e && *c->p == '.' && (c->p++, !ck_digits(c)))
		return false;
	if (c->p < c->e && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->e && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!ck_digits(c))
			return false;
	}
	c->long_num |= c->p - s > 63;
	note(c, s);
	return true;
}

static bool ck_word(struct checker *c, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(c->e - c->p) < n || memcmp(c->p, w, n))
		return false;
	c->p += n;
	return true;
}

static bool ck_container(struct checker *c, bool object)
{
	if (++c->depth > 1000)
		return false;
	c->p++;
	ck_ws(c);
	if (c->p < c->e && *c->p == (object ? '}' : ']')) {
		c->p++;
		c->depth--;
		return true;
	}
	for (;;) {
		ck_ws(c);
		if (object) {
			if (c->p >= c->e || *c->p != '"' || !ck_string(c, false))
				return false;
			ck_ws(c);
			if (c->p >= c->e || *c->p++ != ':')
				return false;
		}
		if (!ck_value(c))
			return false;
		ck_ws(c);
		if (c->p >= c->e)
			return false;
		unsigned char ch = *c->p++;
		if (ch == (object ? '}' : ']')) {
			c->depth--;
			return true;
		}
		if (ch != ',')
			return false;
	}
}

static bool ck_value(struct checker *c)
{
	ck_ws(c);
	if (c->p >= c->e)
		return false;
	switch (*c->p) {
	case '{': return ck_container(c, true);
	case '[': return ck_container(c, false);
	case '"': return ck_string(c, true);
	case 't': return ck_word(c, "true");
	case 'f': return ck_word(c, "false");
	case 'n': return ck_word(c, "null");
	default: return (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) && ck_number(c);
	}
}

static bool is_json(const void *d, size_t n, bool lenient, bool *cjson_limits, struct tokens *tok)
{
	struct checker c = {.p = d, .e = (const unsigned char *)d + n, .lenient = lenient, .tok = tok};
	if (lenient && n >= 3 && !memcmp(d, "\xEF\xBB\xBF", 3))
		c.p += 3;
	bool ok = ck_value(&c);
	if (ok) {
		c.lenient = false; /* after the value: JSON whitespace only, as qs_enrich */
		ck_ws(&c);
	}
	if (cjson_limits)
		*cjson_limits = c.long_num || c.depth > 1000;
	return ok && c.p == c.e;
}

/* ---- the enriched event ---- */

static int count(const cJSON *o, const char *key)
{
	int n = 0;
	for (const cJSON *c = o->child; c; c = c->next)
		n += !strcmp(c->string, key);
	return n;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static cJSON *parse_line(const struct qs_enrich_buf *o)
{
	FUZZ_CHECK(o->len >= 3 && o->data[o->len - 1] == '\n');
	for (size_t i = 0; i + 1 < o->len; i++)
		FUZZ_CHECK((unsigned char)o->data[i] >= 0x20);
	FUZZ_CHECK(is_json(o->data, o->len - 1, false, NULL, NULL));
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(o->data, o->len - 1, &end, 0);
	FUZZ_CHECK(j && cJSON_IsObject(j) && end == o->data + o->len - 1);
	return j;
}

static void check_server_fields(const cJSON *j)
{
	FUZZ_CHECK(count(j, "event") == 1 && count(j, "source") == 1);
	for (size_t i = 0; i < sizeof(spoofed) / sizeof(spoofed[0]); i++)
		FUZZ_CHECK(count(j, spoofed[i]) == 0);
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "source");
	FUZZ_CHECK(cJSON_IsObject(ev) && cJSON_IsObject(src));
	FUZZ_CHECK(count(ev, "ingested") == 1 && count(ev, "id") == 1);
	FUZZ_CHECK(count(src, "ip") == 1 && count(src, "port") == 1);
	FUZZ_CHECK(!strcmp(str(ev, "id"), WANT_ID) && !strcmp(str(ev, "ingested"), WANT_INGESTED));
	FUZZ_CHECK(!strcmp(str(src, "ip"), WANT_IP));
	const cJSON *port = cJSON_GetObjectItemCaseSensitive(src, "port");
	FUZZ_CHECK(cJSON_IsNumber(port) && port->valuedouble == 4242);
}

/* The k-th member named key (0-based), or NULL. */
static const cJSON *nth(const cJSON *o, const char *key, int k)
{
	for (const cJSON *c = o->child; c; c = c->next)
		if (!strcmp(c->string, key) && k-- == 0)
			return c;
	return NULL;
}

/* Equal JSON values; members with different names may come in any order,
 * members with the same name must come in the same order. */
static bool same(const cJSON *a, const cJSON *b)
{
	if ((a->type & 0xFF) != (b->type & 0xFF))
		return false;
	if (cJSON_IsNumber(a))
		return !memcmp(&a->valuedouble, &b->valuedouble, sizeof(double));
	if (cJSON_IsString(a))
		return !strcmp(a->valuestring, b->valuestring);
	if (!cJSON_IsArray(a) && !cJSON_IsObject(a))
		return true;
	if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
		return false;
	const cJSON *cb = b->child;
	for (const cJSON *ca = a->child; ca; ca = ca->next, cb = cb->next) {
		if (cJSON_IsObject(a)) {
			int k = 0;
			for (const cJSON *p = a->child; p != ca; p = p->next)
				k += !strcmp(p->string, ca->string);
			const cJSON *m = nth(b, ca->string, k);
			if (!m || !same(ca, m))
				return false;
		} else if (!same(ca, cb)) {
			return false;
		}
	}
	return true;
}

static int token_cmp(const void *a, const void *b)
{
	const struct token *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* The same numbers and string values, spelled the same (in any order: the
 * slow path moves "event" and "source" to the end). */
static bool same_spellings(const struct qs_enrich_buf *a, const struct qs_enrich_buf *b)
{
	static struct tokens ta, tb;
	ta.n = tb.n = 0;
	FUZZ_CHECK(is_json(a->data, a->len - 1, false, NULL, &ta) && is_json(b->data, b->len - 1, false, NULL, &tb));
	if (ta.n != tb.n)
		return false;
	qsort(ta.v, ta.n, sizeof(ta.v[0]), token_cmp);
	qsort(tb.v, tb.n, sizeof(tb.v[0]), token_cmp);
	for (size_t i = 0; i < ta.n; i++)
		if (token_cmp(&ta.v[i], &tb.v[i]))
			return false;
	return true;
}

static bool holds_nul(const uint8_t *d, size_t n)
{
	return memchr(d, 0, n) || memmem(d, n, "\\u0000", 6);
}

static bool nul_key_refused(int rc, const struct qs_enrich_result *r)
{
	return rc != 0 && r->code == QS_REJ_INVALID_JSON && strstr(r->reason, "U+0000");
}

/* parser/strict.c's implementations agree (the product uses the fastest) on
 * text cJSON has read, the only text they are given. */
static void check_strict_impls(const uint8_t *d, size_t n)
{
	struct qs_json_strict a, b;
	int ra = qs_json_strict_impl(QS_STRICT_BYTES, (const char *)d, n, &a);
	for (int i = QS_STRICT_SSE2; i <= QS_STRICT_AVX2; i++) {
		int rb = qs_json_strict_impl((enum qs_strict_impl)i, (const char *)d, n, &b);
		if (rb < 0)
			continue;
		FUZZ_CHECK(ra == rb);
		FUZZ_CHECK(ra ? a.control == b.control : a.bad_at == b.bad_at);
	}
}

/* The slow path's tree (s) is the one the old key-by-key merge made of
 * cJSON's reading of the frame (tests/unit/merge_model.h): the same members,
 * duplicates included, with the same values. */
static void check_model(const uint8_t *d, size_t n, const cJSON *s)
{
	cJSON *m = cJSON_ParseWithLength((const char *)d, n);
	FUZZ_CHECK(m && !qs_model_merge(m, WANT_INGESTED, WANT_ID, WANT_IP, meta.port));
	FUZZ_CHECK(same(m, s) && same(s, m));
	cJSON_Delete(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct qs_enrich_buf out, slow;
	struct qs_enrich_result res, sres;
	int rc = qs_enrich((const char *)d, n, &meta, &out, &res);
	if (nul_key_refused(rc, &res)) {
		FUZZ_CHECK(!res.fast && holds_nul(d, n));
		return 0;
	}
	int want = expected_code(d, n);
	if (want != QS_REJ_INVALID_JSON)
		check_strict_impls(d, n);
	/* Numbers longer than 63 characters and nesting deeper than 1000 are
	 * refused on every path, whatever else the frame holds (docs/PROTOCOL.md). */
	bool limits, strict = is_json(d, n, false, NULL, NULL), lenient = is_json(d, n, true, &limits, NULL);
	if (rc == 0)
		FUZZ_CHECK(want == 0 && lenient && !limits);
	else
		FUZZ_CHECK(res.reason[0] &&
			   (res.code == want || (res.code == QS_REJ_INVALID_JSON && (!lenient || limits))));
	if (strict && want == 0 && !limits)
		FUZZ_CHECK(rc == 0);
	cJSON *j = rc == 0 ? parse_line(&out) : NULL;
	if (j)
		check_server_fields(j);

	/* (cJSON skips a BOM only with two more bytes after it) */
	if (n < 2 || (n >= 3 && !memcmp(d, "\xEF\xBB\xBF", 3))) {
		cJSON_Delete(j);
		return 0;
	}
	uint8_t *bom = malloc(n + 3);
	FUZZ_CHECK(bom);
	memcpy(bom, "\xEF\xBB\xBF", 3);
	memcpy(bom + 3, d, n);
	int src = qs_enrich((const char *)bom, n + 3, &meta, &slow, &sres);
	free(bom);
	FUZZ_CHECK(!sres.fast);
	if (rc != 0) {
		FUZZ_CHECK(src != 0 && sres.code == res.code);
	} else if (!nul_key_refused(src, &sres)) {
		FUZZ_CHECK(src == 0);
		cJSON *s = parse_line(&slow);
		FUZZ_CHECK(same(j, s) && same(s, j) && same_spellings(&out, &slow));
		check_model(d, n, s);
		cJSON_Delete(s);
	}
	cJSON_Delete(j);
	return 0;
}

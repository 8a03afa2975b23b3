/* Validation and enrichment of one client event (see enrich.h).
 *
 * Two ways to produce the output line:
 *  - fast path: the client's object has nothing we must remove or merge and
 *    its raw bytes hold no control character, so we copy the raw bytes and
 *    splice our fields in before the closing brace (no re-serialisation, and
 *    numbers keep their exact spelling);
 *  - slow path: edit the cJSON tree and print it unformatted, which escapes
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
	char ingested[96]; /* ints of struct tm could be wide in theory: room for all of them */
	char id[2 * QS_SESSION_ID_LEN + 1 + 21];
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
};

static void make_fields(const struct qs_enrich_meta *m, struct server_fields *f)
{
	time_t secs = (time_t)(m->recv_time_ns / 1000000000u);
	unsigned usec = (unsigned)(m->recv_time_ns % 1000000000u / 1000u);
	struct tm tm;
	gmtime_r(&secs, &tm);
	/* Not strftime: it calls tzset(), which may open /etc/localtime, and the
	 * confined parser may open no file (its seccomp filter kills it). */
	snprintf(f->ingested, sizeof(f->ingested), "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);

	for (int i = 0; i < QS_SESSION_ID_LEN; i++)
		snprintf(f->id + 2 * i, 3, "%02x", m->session[i]);
	snprintf(f->id + 2 * QS_SESSION_ID_LEN, sizeof(f->id) - 2 * QS_SESSION_ID_LEN, "-%" PRIu64, m->seq);

	struct in6_addr a;
	memcpy(&a, m->ip, sizeof(a));
	if (IN6_IS_ADDR_V4MAPPED(&a))
		inet_ntop(AF_INET, &a.s6_addr[12], f->ip, sizeof(f->ip));
	else
		inet_ntop(AF_INET6, &a, f->ip, sizeof(f->ip));
	f->port = m->port;
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

/* True when the top level holds something the slow path must edit. */
static bool needs_rewrite(const cJSON *root)
{
	for (const cJSON *c = root->child; c; c = c->next)
		if (!strcmp(c->string, "event") || !strcmp(c->string, "source") || is_spoof(c->string))
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
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)json[i] < 0x20)
			return false;
	return true;
}

static int fast_path(const char *json, const char *close, bool empty, const struct server_fields *f,
		     struct qs_enrich_buf *out)
{
	while (is_ws(*json))
		json++;
	size_t head = (size_t)(close - json); /* everything before the closing '}' */
	char tail[256];
	int n = snprintf(tail, sizeof(tail),
			 "%s\"event\":{\"ingested\":\"%s\",\"id\":\"%s\"},\"source\":{\"ip\":\"%s\",\"port\":%u}}\n",
			 empty ? "" : ",", f->ingested, f->id, f->ip, f->port);
	if (buf_reserve(out, head + (size_t)n + 1))
		return -1;
	memcpy(out->data, json, head);
	memcpy(out->data + head, tail, (size_t)n);
	out->len = head + (size_t)n;
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
	memset(res, 0, sizeof(*res));
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
		cJSON_Delete(root);
		return reject(res, QS_REJ_INVALID_JSON, "invalid JSON at byte %zu: data after the object", NULL,
			      (size_t)(after - json));
	}
	if (!cJSON_IsObject(root)) {
		const char *k = kind_name(root);
		cJSON_Delete(root);
		return reject(res, QS_REJ_NOT_OBJECT, "expected a JSON object, got %s", k, 0);
	}
	struct server_fields f;
	make_fields(m, &f);
	int rc;
	if (!needs_rewrite(root) && raw_copyable(json, len)) {
		res->fast = true;
		rc = fast_path(json, end - 1, root->child == NULL, &f, out);
		if (rc)
			reject(res, QS_REJ_INTERNAL, "%s", "out of memory", 0);
	} else {
		rc = slow_path(root, &f, out, res);
	}
	cJSON_Delete(root);
	return rc;
}

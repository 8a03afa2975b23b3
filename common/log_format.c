#include "common/log_format.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *level_name(int lvl)
{
	switch (lvl) {
	case 3: return "error";
	case 4: return "warning";
	case 6: return "info";
	case 7: return "debug";
	default: return "notice";
	}
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (!n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

void qs_utf8_clean(char *out, size_t cap, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0;
	while (*s) {
		size_t n = utf8_seq(s);
		const char *put = n ? (const char *)s : "\xef\xbf\xbd";
		size_t len = n ? n : 3;
		if (o + len >= cap)
			break;
		memcpy(out + o, put, len);
		o += len;
		s += n ? n : 1;
	}
	out[o] = '\0';
}

static void put_time(char *out, size_t cap, uint64_t time_ns)
{
	time_t secs = (time_t)(time_ns / 1000000000u);
	struct tm tm;
	char base[32] = "1970-01-01T00:00:00";
	if (gmtime_r(&secs, &tm))
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, cap, "%s.%03uZ", base, (unsigned)(time_ns / 1000000u % 1000u));
}

/* "QUICSTASH_PEER_PORT" -> "peer_port" */
static void field_name(char *out, size_t cap, const char *key)
{
	static const char prefix[] = "QUICSTASH_";
	if (!strncmp(key, prefix, sizeof(prefix) - 1))
		key += sizeof(prefix) - 1;
	size_t i = 0;
	for (; key[i] && i + 1 < cap; i++)
		out[i] = (char)tolower((unsigned char)key[i]);
	out[i] = '\0';
}

static bool add_clean(cJSON *o, const char *name, const char *val)
{
	char clean[4096]; /* a 1 KiB message, every byte turned into U+FFFD */
	qs_utf8_clean(clean, sizeof(clean), val);
	return cJSON_AddStringToObject(o, name, clean) != NULL;
}

static cJSON *json_object(const struct qs_journal_msg *m, int pid, uint64_t time_ns)
{
	char when[40];
	put_time(when, sizeof(when), time_ns);
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddStringToObject(o, "time", when) && cJSON_AddStringToObject(o, "level", level_name(m->level)) &&
		  add_clean(o, "role", m->who) && cJSON_AddNumberToObject(o, "pid", pid) &&
		  add_clean(o, "message", m->text);
	for (const struct qs_log_kv *kv = m->kv; ok && kv && kv->key; kv++) {
		char name[64];
		field_name(name, sizeof(name), kv->key);
		if (kv->val && !cJSON_GetObjectItemCaseSensitive(o, name))
			ok = add_clean(o, name, kv->val);
	}
	if (ok && m->suppressed)
		ok = cJSON_AddNumberToObject(o, "suppressed", m->suppressed) != NULL;
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static size_t format_json(char *out, size_t cap, const struct qs_journal_msg *m, int pid, uint64_t time_ns)
{
	cJSON *o = json_object(m, pid, time_ns);
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	size_t len = s ? strlen(s) : 0;
	if (s && len + 2 <= cap) {
		memcpy(out, s, len);
	} else {
		/* No memory, or too long for a line: a line that still parses. */
		char when[40];
		put_time(when, sizeof(when), time_ns);
		int n = snprintf(out, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"message\":\"(unprintable)\"}",
				 when, level_name(m->level), pid);
		len = n < 0 ? 0 : (size_t)n < cap - 1 ? (size_t)n : cap - 2;
	}
	out[len++] = '\n';
	cJSON_free(s);
	cJSON_Delete(o);
	return len;
}

size_t qs_log_format(char *out, size_t cap, enum qs_log_style style, const struct qs_journal_msg *m, int pid,
		     uint64_t time_ns)
{
	if (style == QS_LOG_STYLE_JSON)
		return format_json(out, cap, m, pid, time_ns);
	char when[40] = "";
	if (style == QS_LOG_STYLE_TEXT_TIME) {
		put_time(when, sizeof(when) - 1, time_ns);
		strcat(when, " ");
	}
	int n = snprintf(out, cap, "%s<%d>%s[%d]: %s", when, m->level, m->who, pid, m->text);
	size_t len = n < 0 ? 0 : (size_t)n < cap - 1 ? (size_t)n : cap - 2;
	out[len++] = '\n';
	return len;
}

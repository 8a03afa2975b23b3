/* common/log_format.c: the stderr line in its three forms. The JSON form must
 * stay one valid JSON object on one line whatever the message holds: quotes,
 * backslashes, control bytes, bytes that are not UTF-8 (a client's text), a
 * field named like a fixed one; parsed back with cJSON. */
#include <cjson/cJSON.h>
#include <string.h>

#include "common/log_format.h"
#include "tests/unit/check.h"

#define FFFD "\xef\xbf\xbd"
#define T_NS 123000000ull /* 1970-01-01T00:00:00.123Z */

static char out[16384];

static size_t fmt(enum qs_log_style style, const struct qs_journal_msg *m)
{
	size_t n = qs_log_format(out, sizeof(out), style, m, 12, T_NS);
	out[n] = '\0';
	return n;
}

static void test_text(void)
{
	current_test = "text";
	struct qs_journal_msg m = {.level = 4, .who = "tester", .text = "hello"};
	fmt(QS_LOG_STYLE_TEXT, &m);
	CHECK_STR(out, "<4>tester[12]: hello\n");
	m.level = 6;
	fmt(QS_LOG_STYLE_TEXT_TIME, &m);
	CHECK_STR(out, "1970-01-01T00:00:00.123Z <6>tester[12]: hello\n");
}

/* One line: no raw byte below 0x20 but the final newline; valid UTF-8. */
static void check_one_line(size_t n)
{
	CHECK(n > 2 && out[n - 1] == '\n');
	for (size_t i = 0; i + 1 < n; i++)
		if ((unsigned char)out[i] < 0x20) {
			CHECK(!"raw control byte in a JSON line");
			break;
		}
	static char again[sizeof(out) * 2];
	qs_utf8_clean(again, sizeof(again), out);
	CHECK_STR(again, out);
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

static void test_json_hostile(void)
{
	current_test = "json-hostile";
	const char *msg = "q\" b\\ nl\n tab\t bell\x07 esc\x1b del\x7f ff\xff over\xc0\xaf sur\xed\xa0\x80 ok\xe2\x82\xac cut\xe2\x82";
	const char *want = "q\" b\\ nl\n tab\t bell\x07 esc\x1b del\x7f ff" FFFD " over" FFFD FFFD " sur" FFFD FFFD FFFD
			   " ok\xe2\x82\xac cut" FFFD FFFD;
	struct qs_log_kv kv[] = {{"QUICSTASH_PEER", "192.0.2.7\"}"}, {"QUICSTASH_PEER_PORT", "443"},
				 {"QUICSTASH_CODE", "x\x01y"}, {"QUICSTASH_TENANT", "t\xfe"},
				 {"MESSAGE", "not the message"}, {"QUICSTASH_SKIPPED", NULL}, {0, 0}};
	struct qs_journal_msg m = {.level = 4, .who = "acceptor", .text = msg, .kv = kv};
	size_t n = fmt(QS_LOG_STYLE_JSON, &m);
	check_one_line(n);
	cJSON *o = cJSON_Parse(out);
	CHECK(cJSON_IsObject(o));
	CHECK_STR(str(o, "time"), "1970-01-01T00:00:00.123Z");
	CHECK_STR(str(o, "level"), "warning");
	CHECK_STR(str(o, "role"), "acceptor");
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "pid")) == 12);
	CHECK_STR(str(o, "message"), want);
	CHECK_STR(str(o, "peer"), "192.0.2.7\"}");
	CHECK_STR(str(o, "peer_port"), "443");
	CHECK_STR(str(o, "code"), "x\x01y");
	CHECK_STR(str(o, "tenant"), "t" FFFD);
	CHECK(!cJSON_GetObjectItemCaseSensitive(o, "skipped"));
	CHECK(!cJSON_GetObjectItemCaseSensitive(o, "suppressed"));
	cJSON_Delete(o);
}

/* The longest message log.c makes, every byte a control byte (6 bytes each
 * in JSON), and a report of suppressed messages. */
static void test_json_long(void)
{
	current_test = "json-long";
	char msg[1024];
	memset(msg, 0x01, sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	struct qs_journal_msg m = {.level = 3, .who = "parser", .text = msg, .suppressed = 7};
	size_t n = fmt(QS_LOG_STYLE_JSON, &m);
	check_one_line(n);
	cJSON *o = cJSON_Parse(out);
	CHECK(cJSON_IsObject(o));
	CHECK_EQ(strlen(str(o, "message")), sizeof(msg) - 1);
	CHECK_STR(str(o, "level"), "error");
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "suppressed")) == 7);
	cJSON_Delete(o);
	/* every byte not UTF-8: each becomes U+FFFD, none is lost */
	memset(msg, 0xff, sizeof(msg) - 1);
	n = fmt(QS_LOG_STYLE_JSON, &m);
	check_one_line(n);
	o = cJSON_Parse(out);
	CHECK_EQ(strlen(str(o, "message")), 3 * (sizeof(msg) - 1));
	cJSON_Delete(o);
}

int main(void)
{
	test_text();
	test_json_hostile();
	test_json_long();
	return check_report();
}

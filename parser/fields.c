/* The server-owned fields (see fields.h). */
#include "parser/fields.h"

#include <arpa/inet.h>
#include <string.h>

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

const struct qs_fields *qs_fields_make(const struct qs_enrich_meta *m, struct qs_enrich_memo *mm)
{
	struct qs_fields *f = &mm->f;
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
	f->tenant = m->tenant;
	f->tenant_len = m->tenant ? strnlen(m->tenant, 64) : 0;

	mm->valid = true;
	mm->secs = secs;
	memcpy(mm->session, m->session, QS_SESSION_ID_LEN);
	memcpy(mm->ip, m->ip, sizeof(mm->ip));
	return f;
}

char *qs_put_event_fields(char *p, const struct qs_fields *f)
{
	p = QS_PUTS(p, "\"ingested\":\"");
	p = qs_put(p, f->ingested, f->ingested_len);
	p = QS_PUTS(p, "\",\"id\":\"");
	p = qs_put(p, f->id, f->id_len);
	*p++ = '"';
	return p;
}

char *qs_put_source_fields(char *p, const struct qs_fields *f)
{
	p = QS_PUTS(p, "\"ip\":\"");
	p = qs_put(p, f->ip, f->ip_len);
	p = QS_PUTS(p, "\",\"port\":");
	return put_u64(p, f->port);
}

char *qs_put_both_fields(char *p, bool comma, const struct qs_fields *f)
{
	if (comma)
		*p++ = ',';
	p = QS_PUTS(p, "\"event\":{");
	p = qs_put_event_fields(p, f);
	p = QS_PUTS(p, "},\"source\":{");
	p = qs_put_source_fields(p, f);
	*p++ = '}';
	return qs_put_org_fields(p, f);
}

char *qs_put_org_fields(char *p, const struct qs_fields *f)
{
	if (!f->tenant)
		return p;
	p = QS_PUTS(p, ",\"organization\":{\"id\":\"");
	p = qs_put(p, f->tenant, f->tenant_len); /* a tenant name needs no escaping */
	return QS_PUTS(p, "\"}");
}


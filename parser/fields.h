/* The server-owned fields of an event (event.ingested, event.id, source.ip,
 * source.port): formatted from the frame's metadata, and written out as JSON
 * members by the enrichment paths (parser/enrich.c). */
#ifndef QS_PARSER_FIELDS_H
#define QS_PARSER_FIELDS_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parser/enrich.h"

struct qs_fields {
	char ingested[40];
	char id[2 * QS_SESSION_ID_LEN + 1 + 21];
	char ip[INET6_ADDRSTRLEN];
	size_t ingested_len, id_len, ip_len;
	unsigned port;
	const char *tenant; /* organization.id, or NULL */
	size_t tenant_len;
};

/* Consecutive frames mostly come from one stream within one second: they
 * share the date and time up to the second, the session and the address.
 * Those parts of the fields are formatted again only when their input
 * changes (formatting all of them was ~60 ns of every event). */
struct qs_enrich_memo {
	struct qs_fields f;
	bool valid;
	uint64_t secs;
	uint8_t session[QS_SESSION_ID_LEN];
	uint8_t ip[16];
};

/* The event's fields, formatted into the memo (in part: see above). */
const struct qs_fields *qs_fields_make(const struct qs_enrich_meta *m, struct qs_enrich_memo *mm);

#define QS_FIELDS_MAX 384 /* our fields with their keys, quotes and braces: well below this */

/* "ingested":"...","id":"..." */
char *qs_put_event_fields(char *p, const struct qs_fields *f);
/* "ip":"...","port":N */
char *qs_put_source_fields(char *p, const struct qs_fields *f);
/* ,"organization":{"id":"..."} with a tenant, else nothing */
char *qs_put_org_fields(char *p, const struct qs_fields *f);
/* [,]"event":{...},"source":{...}[,"organization":{...}] */
char *qs_put_both_fields(char *p, bool comma, const struct qs_fields *f);

static inline char *qs_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define QS_PUTS(p, lit) qs_put(p, lit, sizeof(lit) - 1)

#endif

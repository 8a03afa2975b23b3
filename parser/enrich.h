/* Event enrichment: validates one client frame and adds the server-owned
 * fields (event.ingested, event.id, source.ip, source.port, and with a tenant
 * organization.id). Pure: no I/O,
 * no globals, so it is unit-tested directly (tests/unit/test_enrich.c). */
#ifndef QS_PARSER_ENRICH_H
#define QS_PARSER_ENRICH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"

struct qs_enrich_meta {
	uint8_t session[QS_SESSION_ID_LEN]; /* event.id's session part, already keyed by the acceptor */
	uint64_t seq;
	uint64_t recv_time_ns; /* CLOCK_REALTIME */
	uint8_t ip[16];        /* IPv4 as v4-mapped IPv6 */
	uint16_t port;
	/* The tenant (organization.id), a name of A-Z a-z 0-9 . _ - (common/tenants.h)
	 * the parser took from its own tenants file; NULL: none, the client's
	 * organization is left alone. */
	const char *tenant;
};

/* A growable output buffer, reused across events to avoid an allocation each. */
struct qs_enrich_buf {
	char *data;
	size_t len;
	size_t cap;
	struct qs_enrich_memo *memo; /* the last event's server fields, reused in part (parser/fields.h) */
};

struct qs_enrich_result {
	uint16_t code;                  /* 0: ok, else enum qs_reject_code */
	char reason[QS_REASON_MAX + 1]; /* when code != 0 */
	bool fast;                      /* took the no-rewrite path (for tests and stats) */
};

/* Turns json[0..len) into one enriched JSON line ending in exactly one '\n'
 * in out (replacing its content). Returns 0, or -1 with res->code/reason set
 * (rejection) or res->code == QS_REJ_INTERNAL (out of memory). */
int qs_enrich(const char *json, size_t len, const struct qs_enrich_meta *m, struct qs_enrich_buf *out,
	      struct qs_enrich_result *res);

void qs_enrich_buf_free(struct qs_enrich_buf *b);

/* The caller's cJSON allocator is an arena it resets after each qs_enrich
 * (parser/arena.h): the tree of a frame then needs no walk to free it. */
void qs_enrich_trees_in_arena(bool yes);

#endif

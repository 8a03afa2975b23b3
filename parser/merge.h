/* The slow path's edit of the cJSON tree (parser/enrich.c): removes the
 * spoofed dotted names, merges every top-level "event" and every "source"
 * object into one each and puts the server-owned fields in them; with a
 * tenant, "organization" too (organization.id).
 *
 * Work is linear in the tree, or n log n in the keys of merged objects (one
 * sort), whatever the client sent: cJSON's lookups by name walk the whole
 * object, so deleting or merging key by key was quadratic (issue 26: 40,000
 * repeated "event.id" keys after 100,000 others took 29 s of CPU). */
#ifndef QS_PARSER_MERGE_H
#define QS_PARSER_MERGE_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "parser/fields.h"

/* Returns 0, -1 when out of memory, or QS_REJ_SERVER_FIELD with the name of
 * the top-level key that is not an object in *which. */
int qs_merge_server_fields(cJSON *root, const struct qs_fields *f, const char **which);

/* A top-level dotted name that would shadow our fields in Elasticsearch. */
bool qs_is_spoofed_name(const char *k);
/* "organization" or "organization.id": the server's own when there is a tenant. */
bool qs_is_org_name(const char *k);

#endif

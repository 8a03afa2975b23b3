/* The slow path's merge of the server-owned objects (see merge.h).
 *
 * What it produces is what deleting and re-adding key by key produced (that
 * earlier code is the model in tests/unit/merge_model.h): of all the "event"
 * objects' members taken in document order, a member of the first object
 * stays unless a later object has its key (so a key repeated within the first
 * object alone stays repeated), a member of a later object stays unless a
 * still later one has its key (the last wins), survivors keep their order,
 * members named as ours go, and our two fields come last. Which members
 * survive is decided on one sorted array instead of a lookup per member. */
#include "parser/merge.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"

/* Top-level dotted names that would shadow our fields in Elasticsearch. */
static const char *const spoof_keys[] = {"event.id", "event.ingested", "source.ip", "source.port"};
#define N_SPOOF (sizeof(spoof_keys) / sizeof(spoof_keys[0]))

bool qs_is_spoofed_name(const char *k)
{
	for (size_t i = 0; i < N_SPOOF; i++)
		if (!strcmp(k, spoof_keys[i]))
			return true;
	return false;
}

bool qs_is_org_name(const char *k)
{
	return !strcmp(k, "organization") || !strcmp(k, "organization.id");
}

/* The top-level objects of one name, detached, chained through ->next. */
struct group {
	cJSON *head, *tail;
	size_t members; /* of all of them */
	bool bad;       /* one is not an object */
};

static void group_add(struct group *g, cJSON *c)
{
	g->bad |= !cJSON_IsObject(c);
	if (g->tail)
		g->tail->next = c;
	else
		g->head = c;
	g->tail = c;
	for (const cJSON *m = c->child; m; m = m->next)
		g->members++;
}

/* One pass over the top level: spoofed names go, "event" and "source" (and
 * "organization" when org is given) are detached into their groups. */
static void take_top(cJSON *root, struct group *ev, struct group *src, struct group *org)
{
	cJSON *next;
	for (cJSON *c = root->child; c; c = next) {
		next = c->next;
		const char *k = c->string;
		if (k[0] != 'e' && k[0] != 's' && k[0] != 'o')
			continue;
		bool is_ev = !strcmp(k, "event"), is_src = !is_ev && !strcmp(k, "source");
		bool is_org = org && !strcmp(k, "organization");
		if (!is_ev && !is_src && !is_org && !qs_is_spoofed_name(k) && !(org && qs_is_org_name(k)))
			continue;
		cJSON_DetachItemViaPointer(root, c);
		if (is_ev || is_src || is_org)
			group_add(is_ev ? ev : is_src ? src : org, c);
		else
			cJSON_Delete(c);
	}
}

struct member {
	cJSON *node;
	bool later; /* from an object after the first */
	bool keep;
};

/* By key, then by place in the document (the array is in document order). */
static int by_key(const void *a, const void *b)
{
	const struct member *x = *(const struct member *const *)a, *y = *(const struct member *const *)b;
	int c = strcmp(x->node->string, y->node->string);
	return c ? c : (x > y) - (x < y);
}

/* Sets keep on each member as the header comment says: in a run of one key,
 * sorted by place, only the last survives if it comes from a later object;
 * if none does, the first object's copies all stay (it was never deduplicated). */
static void decide(struct member **ord, size_t n)
{
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && !strcmp(ord[j]->node->string, ord[i]->node->string); j++)
			;
		bool last_wins = ord[j - 1]->later;
		for (size_t k = i; k < j; k++)
			ord[k]->keep = !last_wins || k == j - 1;
	}
}

/* keep[] for the members of a group of two objects or more; NULL for one
 * (everything stays) or out of memory (*oom). */
static struct member *survivors(const struct group *g, bool *oom)
{
	*oom = false;
	if (g->head == g->tail || !g->members)
		return NULL;
	struct member *m = malloc(g->members * sizeof(*m));
	struct member **ord = malloc(g->members * sizeof(*ord));
	if (!m || !ord) {
		free(m);
		free(ord);
		*oom = true;
		return NULL;
	}
	size_t n = 0;
	for (cJSON *o = g->head; o; o = o->next)
		for (cJSON *c = o->child; c; c = c->next, n++) {
			m[n] = (struct member){c, o != g->head, true};
			ord[n] = &m[n];
		}
	qsort(ord, n, sizeof(*ord), by_key);
	decide(ord, n);
	free(ord);
	return m;
}

static void drop_node(cJSON *c)
{
	c->next = c->prev = NULL; /* cJSON_Delete would follow ->next */
	cJSON_Delete(c);
}

/* The group made into its first object, holding the survivors in document
 * order without the names ours replace. NULL: out of memory (group freed). */
static cJSON *merge(struct group *g, const char *ours1, const char *ours2)
{
	if (!g->head)
		return cJSON_CreateObject();
	bool oom;
	struct member *m = survivors(g, &oom);
	if (oom) {
		cJSON_Delete(g->head);
		return NULL;
	}
	cJSON *merged = g->head, *o = g->head, *next_o, *next;
	size_t i = 0;
	for (; o; o = next_o) {
		next_o = o->next;
		cJSON *c = o->child;
		o->child = NULL;
		for (; c; c = next, i++) {
			next = c->next;
			c->next = c->prev = NULL;
			if ((!m || m[i].keep) && strcmp(c->string, ours1) && strcmp(c->string, ours2))
				cJSON_AddItemToArray(merged, c); /* appends, key untouched, O(1) */
			else
				cJSON_Delete(c);
		}
		if (o != merged)
			drop_node(o);
	}
	merged->next = merged->prev = NULL;
	free(m);
	return merged;
}

/* The client's organization objects merged, its "id" replaced by the tenant. */
static int add_org(cJSON *root, struct group *org, const struct qs_fields *f)
{
	cJSON *o = merge(org, "id", "id");
	if (!o || !cJSON_AddItemToObject(root, "organization", o)) {
		cJSON_Delete(o);
		return -1;
	}
	char name[64];
	snprintf(name, sizeof(name), "%.*s", (int)f->tenant_len, f->tenant);
	return cJSON_AddStringToObject(o, "id", name) ? 0 : -1;
}

int qs_merge_server_fields(cJSON *root, const struct qs_fields *f, const char **which)
{
	struct group ev = {0}, src = {0}, org = {0};
	take_top(root, &ev, &src, f->tenant ? &org : NULL);
	if (ev.bad || src.bad || org.bad) {
		*which = ev.bad ? "event" : src.bad ? "source" : "organization";
		cJSON_Delete(ev.head);
		cJSON_Delete(src.head);
		cJSON_Delete(org.head);
		return QS_REJ_SERVER_FIELD;
	}
	cJSON *e = merge(&ev, "ingested", "id");
	cJSON *s = merge(&src, "ip", "port");
	if (!e || !s || !cJSON_AddItemToObject(root, "event", e)) {
		cJSON_Delete(e);
		cJSON_Delete(s);
		return -1;
	}
	if (!cJSON_AddItemToObject(root, "source", s)) {
		cJSON_Delete(s);
		return -1;
	}
	if (!cJSON_AddStringToObject(e, "ingested", f->ingested) || !cJSON_AddStringToObject(e, "id", f->id) ||
	    !cJSON_AddStringToObject(s, "ip", f->ip) || !cJSON_AddNumberToObject(s, "port", f->port))
		return -1;
	return f->tenant ? add_org(root, &org, f) : 0;
}

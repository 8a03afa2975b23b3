/* A model of the slow path's merge as it was before issue 26: spoofed dotted
 * names deleted, every top-level "event" (then "source") detached and merged
 * key by key, each key deleted before it is added, our fields set last, all
 * through cJSON's lookups by name (quadratic: for small inputs only). The
 * linear parser/merge.c must give the same tree; tests/unit/test_enrich.c and
 * tests/fuzz/fuzz_enrich.c compare them. */
#ifndef QS_TEST_MERGE_MODEL_H
#define QS_TEST_MERGE_MODEL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

static inline void qs_model_delete_all(cJSON *obj, const char *key)
{
	while (cJSON_GetObjectItemCaseSensitive(obj, key))
		cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
}

static inline cJSON *qs_model_take_merged(cJSON *root, const char *name, bool *bad)
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
			qs_model_delete_all(merged, c->string);
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

static inline void qs_model_set(cJSON *obj, const char *key, cJSON *v)
{
	qs_model_delete_all(obj, key);
	cJSON_AddItemToObject(obj, key, v);
}

/* Edits root (a cJSON object) as the old code did. NULL, or the name of the
 * top-level key that is not an object (then root is left half edited). */
static inline const char *qs_model_merge(cJSON *root, const char *ingested, const char *id, const char *ip,
					 unsigned port)
{
	static const char *const spoof[] = {"event.id", "event.ingested", "source.ip", "source.port"};
	for (int i = 0; i < 4; i++)
		qs_model_delete_all(root, spoof[i]);
	bool bad_ev, bad_src;
	cJSON *ev = qs_model_take_merged(root, "event", &bad_ev), *src = qs_model_take_merged(root, "source", &bad_src);
	if (bad_ev || bad_src) {
		cJSON_Delete(ev);
		cJSON_Delete(src);
		return bad_ev ? "event" : "source";
	}
	cJSON_AddItemToObject(root, "event", ev);
	cJSON_AddItemToObject(root, "source", src);
	qs_model_set(ev, "ingested", cJSON_CreateString(ingested));
	qs_model_set(ev, "id", cJSON_CreateString(id));
	qs_model_set(src, "ip", cJSON_CreateString(ip));
	qs_model_set(src, "port", cJSON_CreateNumber(port));
	return NULL;
}

#endif

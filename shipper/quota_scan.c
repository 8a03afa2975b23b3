/* Per-tenant spool counts rebuilt at start (issue 21, item 5): a tenant over
 * its spool-quota before a shipper restart (a crash, kill -9, a reload) is
 * still over it after, and still held. The records carry no tenant id, but
 * their events carry the tenant the parser wrote, organization.id: read from
 * the tail the parser's fast path writes, `,"organization":{"id":"NAME"}}`,
 * or else (an event the slow path rewrote) by parsing the line. */
#include "shipper/quota_scan.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/tenants.h"
#include "shipper/record.h"
#include "shipper/spool.h"
#include "shipper/tenant_quota.h"

struct scan {
	struct qs_tquota *q;
	uint64_t seg;
	char last[QS_TENANT_NAME_MAX + 1]; /* the previous record's tenant, and its index */
	long last_idx;
	uint64_t bytes, records;
};

/* The name in the fast path's tail, or NULL. A quote inside a client's string
 * is escaped, so these bytes unescaped are the server's own member. */
static const char *tail_name(const char *line, size_t len, size_t *nlen)
{
	static const char head[] = ",\"organization\":{\"id\":\"";
	if (len < sizeof(head) + 4 || memcmp(line + len - 4, "\"}}\n", 4))
		return NULL;
	size_t end = len - 4, start = end;
	while (start > 0 && end - start <= QS_TENANT_NAME_MAX && line[start - 1] != '"')
		start--;
	if (start < sizeof(head) - 1 || line[start - 1] != '"' ||
	    memcmp(line + start - (sizeof(head) - 1), head, sizeof(head) - 1))
		return NULL;
	*nlen = end - start;
	return line + start;
}

/* The tenant's index in the table, or -1. */
static long tenant_of(struct scan *sc, const char *line, size_t len)
{
	size_t nlen = 0;
	const char *name = tail_name(line, len, &nlen);
	char buf[QS_TENANT_NAME_MAX + 1];
	if (!name) {
		cJSON *root = cJSON_ParseWithLength(line, len);
		const cJSON *org = cJSON_GetObjectItemCaseSensitive(root, "organization");
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(org, "id"));
		if (s && strlen(s) <= QS_TENANT_NAME_MAX) {
			nlen = strlen(s);
			memcpy(buf, s, nlen);
			name = buf;
		}
		cJSON_Delete(root);
	}
	if (!name || !nlen || nlen > QS_TENANT_NAME_MAX)
		return -1;
	if (strlen(sc->last) == nlen && !memcmp(sc->last, name, nlen))
		return sc->last_idx;
	const struct qs_tenants *ts = sc->q->ts;
	long idx = -1;
	for (size_t i = 0; i < ts->n && idx < 0; i++)
		if (strlen(ts->t[i].name) == nlen && !memcmp(ts->t[i].name, name, nlen))
			idx = (long)i;
	memcpy(sc->last, name, nlen);
	sc->last[nlen] = 0;
	sc->last_idx = idx;
	return idx;
}

static void on_record(const struct qs_scan_item *it, bool damage, void *arg)
{
	struct scan *sc = arg;
	if (damage)
		return;
	long idx = tenant_of(sc, (const char *)it->data, it->len);
	if (idx < 0)
		return;
	struct qs_pos end = {.seg = sc->seg, .off = it->off + it->size};
	if (qs_tquota_add(sc->q, (uint32_t)idx, it->size, end) == 0) {
		sc->bytes += it->size;
		sc->records++;
	}
}

void qs_tquota_scan(struct qs_tquota *q, const struct qs_spool *s)
{
	if (!q->ts)
		return;
	uint64_t t0 = qs_now_ns();
	struct scan sc = {.q = q, .last_idx = -1};
	for (size_t i = 0; i < s->nsegs; i++) {
		const struct qs_spool_seg *g = &s->segs[i];
		uint64_t from = g->id == s->cursor.seg ? s->cursor.off : 0;
		if (g->id < s->cursor.seg || from >= g->size)
			continue;
		int fd = qs_spool_open_seg(s, g->id);
		sc.seg = g->id;
		if (fd < 0 || qs_seg_walk(fd, qs_seg_key(g->id), from, g->size, on_record, &sc) != 0)
			qs_warn("spool quotas: segment %016" PRIx64 " not read: its tenants' records are not counted",
				g->id);
		if (fd >= 0)
			close(fd);
	}
	qs_tquota_shipped(q, s->cursor);
	if (sc.records)
		qs_info("spool quotas: %" PRIu64 " unshipped records (%" PRIu64 " bytes) of tenants counted from "
			"the spool in %" PRIu64 " ms; %zu tenant(s) over their spool-quota",
			sc.records, sc.bytes, (qs_now_ns() - t0) / 1000000, q->nover);
}

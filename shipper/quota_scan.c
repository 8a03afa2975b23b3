/* Per-tenant spool counts rebuilt at start (issue 21, item 5): a tenant over
 * its spool-quota before a shipper restart (a crash, kill -9, a reload) is
 * still over it after, and still held. The records carry no tenant id, but
 * their events carry the tenant the parser wrote, organization.id, read from
 * the line's tail: with tenants every event's last member is "organization"
 * and its last member the parser's "id" (parser/merge.c add_org, fields.c), so
 * the line ends `"id":"NAME"}}`, whether the fast path wrote
 * `,"organization":{"id":"NAME"}}` or the slow path merged the client's own
 * organization object (`{"name":"Acme","id":"NAME"}}`). Only a line without
 * that tail (none the parser writes) is parsed whole: the slow path's lines
 * were, at 4-130 ns a byte against ~0.2, which made a restart after an outage
 * with ECS events (their own organization.name) wait seconds to minutes per
 * GiB of backlog before READY. */
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
	uint64_t parsed; /* lines without the tail, parsed whole (none the parser writes) */
};

/* The name in the tail `"id":"NAME"}}\n` of the root's last member, or NULL.
 * A quote inside a client's string is escaped, so these bytes unescaped are
 * structure: the last member's last member, the parser's own. */
static const char *tail_name(const char *line, size_t len, size_t *nlen)
{
	static const char head[] = "\"id\":\"";
	if (len < sizeof(head) + 5 || memcmp(line + len - 4, "\"}}\n", 4))
		return NULL;
	size_t end = len - 4, start = end;
	while (start > 0 && end - start <= QS_TENANT_NAME_MAX && line[start - 1] != '"' && line[start - 1] != '\\')
		start--;
	size_t h = sizeof(head) - 1;
	if (start < h + 1 || line[start - 1] != '"' || memcmp(line + start - h, head, h) ||
	    (line[start - h - 1] != '{' && line[start - h - 1] != ','))
		return NULL;
	*nlen = end - start;
	return line + start;
}

/* The organization.id of a line without the tail, parsed whole. */
static const char *parsed_name(const char *line, size_t len, char *buf, size_t *nlen)
{
	cJSON *root = cJSON_ParseWithLength(line, len);
	const cJSON *org = cJSON_GetObjectItemCaseSensitive(root, "organization");
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(org, "id"));
	const char *name = NULL;
	if (s && strlen(s) <= QS_TENANT_NAME_MAX) {
		*nlen = strlen(s);
		memcpy(buf, s, *nlen);
		name = buf;
	}
	cJSON_Delete(root);
	return name;
}

/* The tenant's index in the table, or -1. */
static long tenant_of(struct scan *sc, const char *line, size_t len)
{
	size_t nlen = 0;
	char buf[QS_TENANT_NAME_MAX + 1];
	const char *name = tail_name(line, len, &nlen);
	if (!name) {
		sc->parsed++;
		name = parsed_name(line, len, buf, &nlen);
	}
	if (!name || !nlen || nlen > QS_TENANT_NAME_MAX)
		return -1;
	if (strlen(sc->last) == nlen && !memcmp(sc->last, name, nlen))
		return sc->last_idx;
	memcpy(sc->last, name, nlen);
	sc->last[nlen] = 0;
	/* by id (a binary search), not a scan of every tenant at each change */
	const struct qs_tenants *ts = sc->q->ts;
	const struct qs_tenant *t = qs_tenants_by_id(ts, qs_tenant_id(sc->last));
	sc->last_idx = t && !strcmp(t->name, sc->last) ? (long)(t - ts->t) : -1;
	return sc->last_idx;
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
			"the spool in %" PRIu64 " ms (%" PRIu64 " parsed whole); %zu tenant(s) over their spool-quota",
			sc.records, sc.bytes, (qs_now_ns() - t0) / 1000000, sc.parsed, q->nover);
}

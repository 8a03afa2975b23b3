#include "shipper/backlog.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "shipper/record.h"
#include "shipper/spool.h"

/* Only the head of the backlog is read: a first record longer than this
 * (or damage as long) leaves the time unknown rather than reading a segment. */
#define PEEK_BYTES (4u * 1024 * 1024)

struct first {
	bool found;
	uint64_t time_ns;
};

static void take_first(const struct qs_scan_item *it, bool damage, void *arg)
{
	struct first *f = arg;
	if (!damage && !f->found) {
		f->found = true;
		f->time_ns = it->time_ns;
	}
}

/* time_ns of the first valid record at or after pos, or 0. */
static uint64_t oldest(const struct qs_spool *s, struct qs_pos pos)
{
	struct first f = {0};
	for (size_t i = 0; i < s->nsegs && !f.found; i++) {
		const struct qs_spool_seg *g = &s->segs[i];
		uint64_t from = g->id == pos.seg ? pos.off : 0;
		if (g->id < pos.seg || from >= g->size)
			continue;
		int fd = qs_spool_open_seg(s, g->id);
		if (fd < 0)
			return 0;
		uint64_t to = g->size - from > PEEK_BYTES ? from + PEEK_BYTES : g->size;
		int rc = qs_seg_walk(fd, qs_seg_key(g->id), from, to, take_first, &f);
		close(fd);
		if (rc != 0 || !f.found)
			return 0;
	}
	return f.found ? f.time_ns : 0;
}

void qs_backlog_report(const struct qs_spool *s, const char *output)
{
	uint64_t bytes = qs_spool_bytes_after(s, s->cursor);
	if (!bytes)
		return;
	size_t segs = 0;
	for (size_t i = 0; i < s->nsegs; i++)
		segs += s->segs[i].id >= s->cursor.seg;
	char when[64] = "at an unknown time";
	uint64_t t = oldest(s, s->cursor);
	struct tm tm;
	time_t secs = (time_t)(t / 1000000000u);
	if (t && gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "at %Y-%m-%dT%H:%M:%SZ", &tm);
	qs_info("spool: %" PRIu64 " bytes in %zu segment(s) not yet shipped, the oldest spooled %s: "
		"shipping them to %s first",
		bytes, segs, when, output);
}

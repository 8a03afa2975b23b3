/* quicstashd --check-spool DIR [--repair]: an offline look at a spool, with
 * the same record scanner as the shipper. Damage is reported with file and
 * offset; --repair cuts torn tails, rewrites a segment without its damaged
 * regions (through a temp file and rename, mapping the cursor), deletes
 * already shipped leftovers and makes the cursor sane. Exit 0 sound or
 * repaired, 1 damage, 2 error. Must not run while the shipper does. */
#include "shipper/spool_check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/spool_lock.h"
#include "shipper/cursor.h"
#include "shipper/record.h"
#include "shipper/spool.h"
#include "shipper/spool_file.h"

struct check {
	const char *dir;
	int dirfd;
	bool repair;
	uint64_t *ids;
	size_t n;
	struct qs_pos cursor;
	int cursor_rc;
	bool cursor_dirty; /* repair must rewrite it */
	unsigned damage, errors;
	uint64_t records, bytes, pending, oldest_ns;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* A spool name held by a link, a FIFO, a directory...: reported and left
 * alone (never followed, never opened, never repaired). */
static bool refused(struct check *c, const char *name)
{
	struct stat st;
	if (!qs_spool_file_known(name) || qs_spool_file_stat(c->dirfd, name, &st) == 0 || errno == ENOENT)
		return false;
	printf("error: %s/%s is %s\n", c->dir, name, qs_spool_file_error(errno));
	c->errors++;
	return true;
}

static int list(struct check *c)
{
	DIR *d = fdopendir(dup(c->dirfd));
	if (!d)
		return -1;
	struct dirent *e;
	uint64_t id;
	size_t cap = 0;
	while ((e = readdir(d))) {
		if (refused(c, e->d_name) || !qs_seg_parse_name(e->d_name, &id))
			continue;
		if (c->n == cap) {
			cap = cap ? cap * 2 : 64;
			uint64_t *n = realloc(c->ids, cap * sizeof(*n));
			if (!n) {
				closedir(d);
				return -1;
			}
			c->ids = n;
		}
		c->ids[c->n++] = id;
	}
	closedir(d);
	if (c->n)
		qsort(c->ids, c->n, sizeof(*c->ids), cmp_u64);
	return 0;
}

struct rewrite {
	int fd;
	uint64_t cursor_off; /* old offset of the cursor in this segment, or UINT64_MAX */
	uint64_t new_cursor;
	uint64_t written;
	int err;
};

static void rewrite_cb(const struct qs_scan_item *it, bool damage, void *arg)
{
	struct rewrite *rw = arg;
	if (damage || rw->err)
		return;
	if (write(rw->fd, it->data - QS_REC_HDR, it->size) != (ssize_t)it->size)
		rw->err = errno ? errno : EIO;
	rw->written += it->size;
	if (it->off + it->size <= rw->cursor_off)
		rw->new_cursor = rw->written;
}

/* Copies the valid records of a segment to a new file that replaces it. */
static int rewrite_segment(struct check *c, const char *name, int fd, uint64_t size)
{
	struct rewrite rw = {.cursor_off = UINT64_MAX};
	uint64_t id;
	qs_seg_parse_name(name, &id);
	if (c->cursor_rc == 0 && c->cursor.seg == id)
		rw.cursor_off = c->cursor.off;
	rw.fd = qs_spool_file_temp(c->dirfd, QS_REPAIR_TMP);
	if (rw.fd < 0 || qs_seg_walk(fd, qs_seg_key(id), 0, size, rewrite_cb, &rw) != 0 || rw.err || fsync(rw.fd) != 0 ||
	    renameat(c->dirfd, QS_REPAIR_TMP, c->dirfd, name) != 0 || fsync(c->dirfd) != 0) {
		printf("error: cannot rewrite %s/%s: %s\n", c->dir, name,
		       qs_spool_file_error(rw.err ? rw.err : errno));
		if (rw.fd >= 0)
			close(rw.fd);
		unlinkat(c->dirfd, QS_REPAIR_TMP, 0);
		return -1;
	}
	close(rw.fd);
	if (rw.cursor_off != UINT64_MAX) {
		c->cursor.off = rw.new_cursor;
		c->cursor_dirty = true;
	}
	printf("repaired: %s/%s rewritten without its damaged regions (%" PRIu64 " bytes kept)\n", c->dir, name,
	       rw.written);
	return 0;
}

static int repair_segment(struct check *c, const char *name, int fd, const struct qs_seg_summary *s,
			  uint64_t size)
{
	if (s->damaged_regions)
		return rewrite_segment(c, name, fd, size);
	if (ftruncate(fd, (off_t)s->good_end) != 0 || fsync(fd) != 0) {
		printf("error: cannot cut %s/%s: %s\n", c->dir, name, strerror(errno));
		return -1;
	}
	printf("repaired: %s/%s cut to %" PRIu64 " bytes\n", c->dir, name, s->good_end);
	return 0;
}

static void check_segment(struct check *c, uint64_t id)
{
	char name[32];
	qs_seg_name(name, sizeof(name), id);
	int fd = qs_spool_file_open(c->dirfd, name, c->repair ? O_RDWR : O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		printf("error: cannot open %s/%s: %s\n", c->dir, name, qs_spool_file_error(errno));
		c->errors++;
		if (fd >= 0)
			close(fd);
		return;
	}
	uint64_t size = (uint64_t)st.st_size;
	bool before = c->cursor_rc == 0 && id < c->cursor.seg;
	uint64_t from = before ? size : (c->cursor_rc == 0 && id == c->cursor.seg ? c->cursor.off : 0);
	struct qs_seg_summary s;
	if (qs_seg_summarize(fd, qs_seg_key(id), size, from, &s) != 0) {
		printf("error: cannot read %s/%s: %s\n", c->dir, name, strerror(errno));
		c->errors++;
		close(fd);
		return;
	}
	printf("segment %s: %" PRIu64 " records, %" PRIu64 " bytes, %" PRIu64 " pending%s\n", name, s.records,
	       size, s.records_after, before ? " (already shipped: deleted at the next start)" : "");
	c->records += s.records;
	c->bytes += size;
	c->pending += s.records_after;
	if (s.records_after && (!c->oldest_ns || s.first_time_after < c->oldest_ns))
		c->oldest_ns = s.first_time_after;
	/* After a crash the newest segment may end in zeros laid ahead of its
	 * records, or in its reused file's earlier records: not damage. */
	enum qs_seg_tail kind = s.good_end < size ? qs_seg_tail_kind(fd, id, s.good_end, size) : QS_TAIL_TORN;
	bool zeros = kind == QS_TAIL_ZEROS, stale = kind != QS_TAIL_TORN;
	bool damaged = s.damaged_regions || (s.good_end < size && !stale);
	if (stale) {
		printf("segment %s: the %" PRIu64 " bytes after offset %" PRIu64 " are %s (not damage; the shipper "
		       "cuts them at its next start)\n", name, size - s.good_end, s.good_end,
		       zeros ? "zeros laid ahead of its records" : "records of the file's earlier use as another segment");
		if (c->repair && !s.damaged_regions && repair_segment(c, name, fd, &s, size) != 0)
			c->errors++;
	}
	if (s.damaged_regions)
		printf("DAMAGE: %s/%s: %" PRIu64 " damaged bytes in %" PRIu64 " region(s), first at offset %" PRIu64
		       "\n", c->dir, name, s.damaged_bytes, s.damaged_regions, s.first_damage);
	if (s.good_end < size && !stale)
		printf("DAMAGE: %s/%s: torn or corrupt tail of %" PRIu64 " bytes at offset %" PRIu64 "\n", c->dir,
		       name, size - s.good_end, s.good_end);
	if (damaged && (!c->repair || repair_segment(c, name, fd, &s, size) != 0))
		c->damage++;
	close(fd);
}

/* Damage in the cursor, or a cursor that points nowhere sane. */
static void check_cursor(struct check *c)
{
	if (c->cursor_rc > 0) {
		printf("cursor: none (the whole spool will be shipped)\n");
		return;
	}
	if (c->cursor_rc < 0) {
		printf("DAMAGE: %s/%s: cursor unreadable or corrupt\n", c->dir, QS_CURSOR_FILE);
		c->cursor = (struct qs_pos){.seg = c->n ? c->ids[0] : 0, .off = 0};
		c->cursor_dirty = true;
		return;
	}
	printf("cursor: segment %016" PRIx64 " offset %" PRIu64 "\n", c->cursor.seg, c->cursor.off);
	char name[32];
	struct stat st;
	qs_seg_name(name, sizeof(name), c->cursor.seg);
	if (qs_spool_file_stat(c->dirfd, name, &st) == 0 && c->cursor.off > (uint64_t)st.st_size) {
		printf("DAMAGE: cursor offset is past the end of %s (%lld bytes)\n", name, (long long)st.st_size);
		c->cursor.off = (uint64_t)st.st_size;
		c->cursor_dirty = true;
	}
}

static void finish_repair(struct check *c, bool cursor_bad)
{
	if (!c->repair)
		return;
	for (size_t i = 0; i < c->n && c->cursor_rc == 0 && c->ids[i] < c->cursor.seg; i++) {
		char name[32];
		qs_seg_name(name, sizeof(name), c->ids[i]);
		if (unlinkat(c->dirfd, name, 0) == 0)
			printf("repaired: deleted shipped segment %s\n", name);
	}
	if (c->cursor_dirty) {
		if (qs_cursor_store(c->dirfd, &c->cursor) != 0) {
			printf("error: cannot write the cursor: %s\n", strerror(errno));
			c->damage++;
			return;
		}
		printf("repaired: cursor set to segment %016" PRIx64 " offset %" PRIu64 "\n", c->cursor.seg,
		       c->cursor.off);
		if (cursor_bad)
			c->damage--; /* the cursor damage counted before is fixed */
	}
}

static void print_summary(const struct check *c)
{
	/* Counted while checking, so with --repair they describe the spool as found. */
	printf("total%s: %zu segment(s), %" PRIu64 " records, %" PRIu64 " bytes, %" PRIu64 " pending\n",
	       c->repair ? " as found (before the repairs above)" : "", c->n, c->records, c->bytes, c->pending);
	if (c->oldest_ns) {
		time_t t = (time_t)(c->oldest_ns / 1000000000u);
		struct tm tm;
		char buf[32];
		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("oldest pending event spooled at %s\n", buf);
	}
}

/* --repair takes the spool's lock (a running quicstashd's spool is refused);
 * a check only reads, and says when the spool is live. The lock's descriptor,
 * -2 (none taken) or -1 (refused). */
static int in_use(struct check *c)
{
	char why[600];
	if (c->repair) {
		int fd = qs_spool_lock(c->dir, "quicstashd --check-spool --repair", why, sizeof(why));
		if (fd < 0)
			fprintf(stderr, "quicstashd: --check-spool --repair: %s: not repairing\n", why);
		return fd;
	}
	int held = qs_spool_lock_probe(c->dir, why, sizeof(why));
	if (held != 0)
		printf("note: %s%s\n", why, held > 0 ? ": its newest segment may be growing" : "");
	return -2;
}

int spool_check_main(const struct qs_config *cfg)
{
	struct check c = {.dir = cfg->spool_dir, .repair = cfg->repair};
	c.dirfd = open(c.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.dirfd < 0 || list(&c) != 0) {
		fprintf(stderr, "quicstashd: --check-spool %s: %s\n", c.dir, strerror(errno));
		if (c.dirfd >= 0)
			close(c.dirfd);
		return 2;
	}
	int lock = in_use(&c);
	if (lock == -1) {
		close(c.dirfd);
		free(c.ids);
		return 2;
	}
	c.cursor_rc = qs_cursor_load(c.dirfd, &c.cursor);
	check_cursor(&c);
	bool cursor_bad = c.cursor_dirty;
	for (size_t i = 0; i < c.n; i++)
		check_segment(&c, c.ids[i]);
	if (cursor_bad)
		c.damage++;
	finish_repair(&c, cursor_bad);
	print_summary(&c);
	close(c.dirfd);
	if (lock >= 0)
		close(lock);
	free(c.ids);
	if (c.errors)
		return 2;
	printf("%s\n", c.damage ? "spool is damaged (run with --repair)" : c.repair ? "spool is usable" : "spool is sound");
	return c.damage ? 1 : 0;
}

#include "shipper/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "shipper/reaper.h"
#include "shipper/record.h"
#include "shipper/spool_file.h"
#include "shipper/stage.h"

void qs_seg_name(char *out, size_t len, uint64_t id)
{
	snprintf(out, len, "%016" PRIx64 ".seg", id);
}

bool qs_seg_parse_name(const char *name, uint64_t *id)
{
	if (strlen(name) != 20 || strcmp(name + 16, ".seg"))
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*id = v;
	return true;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct qs_spool_seg *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int push_seg(struct qs_spool *s, uint64_t id, uint64_t size)
{
	if (s->nsegs == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct qs_spool_seg *n = realloc(s->segs, cap * sizeof(*n));
		if (!n)
			return -1;
		s->segs = n;
		s->cap = cap;
	}
	s->segs[s->nsegs++] = (struct qs_spool_seg){.id = id, .size = size};
	s->total += size;
	return 0;
}

static int list_segments(struct qs_spool *s)
{
	DIR *d = fdopendir(dup(s->dirfd));
	if (!d)
		return -1;
	struct dirent *e;
	uint64_t id;
	while ((e = readdir(d))) {
		struct stat st;
		bool seg = qs_seg_parse_name(e->d_name, &id);
		if (seg && id > s->max_seen_id)
			s->max_seen_id = id; /* never reuse the name, whatever holds it */
		if (!qs_spool_file_known(e->d_name))
			continue;
		if (qs_spool_file_stat(s->dirfd, e->d_name, &st) != 0) {
			if (errno != ENOENT)
				qs_warn("spool: %s/%s is %s: ignored", s->dir, e->d_name, qs_spool_file_error(errno));
			continue;
		}
		if (seg && push_seg(s, id, (uint64_t)st.st_size)) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	if (s->nsegs)
		qsort(s->segs, s->nsegs, sizeof(*s->segs), seg_cmp);
	return 0;
}

/* Whether a shipped segment's file may become the next segment's. Only a
 * full-sized one written by this process: its records are all keyed
 * (record.h), so none of them can pass for a record of the next segment.
 * Not while the disk refuses writes: then its space must be freed. */
static bool recyclable(const struct qs_spool *s, size_t idx)
{
	const struct qs_spool_seg *g = &s->segs[idx];
	return !s->spare_bytes && !s->write_failed && g->id >= s->first_new_id && g->size >= s->seg_max &&
	       idx + 1 < s->nsegs;
}

/* 0 = gone (queued for deletion, or kept as the spare), 1 = not now (the
 * reaper's queue is full: it may still hold the cursor write this deletion
 * must follow, so never delete it here instead), -1 = error. */
static int unlink_seg(struct qs_spool *s, size_t idx)
{
	char name[32];
	qs_seg_name(name, sizeof(name), s->segs[idx].id);
	if (s->reaper && recyclable(s, idx) && qs_reaper_recycle(s->reaper, s->segs[idx].id)) {
		s->spare_bytes = s->segs[idx].size;
	} else if (s->reaper) {
		if (!qs_reaper_add(s->reaper, s->segs[idx].id))
			return 1;
	} else if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT) {
		qs_err("spool: cannot delete shipped segment %s/%s: %s", s->dir, name, strerror(errno));
		return -1;
	}
	s->total -= s->segs[idx].size;
	memmove(s->segs + idx, s->segs + idx + 1, (s->nsegs - idx - 1) * sizeof(*s->segs));
	s->nsegs--;
	return 0;
}

/* Segments before the cursor's were shipped; a crash between persisting the
 * cursor and deleting them leaves them behind. */
static void delete_leftovers(struct qs_spool *s)
{
	while (s->nsegs && s->segs[0].id < s->cursor.seg && unlink_seg(s, 0) == 0)
		s->replay.leftovers++;
	if (s->replay.leftovers)
		qs_info("spool: deleted %" PRIu64 " already shipped segment(s) left by an interrupted retirement",
			s->replay.leftovers);
}

static void load_cursor(struct qs_spool *s)
{
	int rc = qs_cursor_load(s->dirfd, &s->cursor);
	uint64_t first = s->nsegs ? s->segs[0].id : 0;
	if (rc != 0) {
		/* Without a trustworthy cursor, ship everything again: duplicates, never losses. */
		s->replay.cursor_missing = rc > 0;
		s->replay.cursor_corrupt = rc < 0;
		if (rc < 0)
			qs_warn("spool: cursor file %s/%s is corrupt: shipping the whole spool again", s->dir,
				QS_CURSOR_FILE);
		s->cursor = (struct qs_pos){.seg = first, .off = 0};
	}
	unlinkat(s->dirfd, QS_CURSOR_TMP, 0); /* a crash while replacing the cursor */
	s->persisted = rc == 0 ? s->cursor : (struct qs_pos){UINT64_MAX, UINT64_MAX};
}

/* Places the cursor on an existing segment and inside it. */
static void clamp_cursor(struct qs_spool *s)
{
	if (!s->nsegs)
		return;
	int64_t size = qs_spool_seg_size(s, s->cursor.seg);
	if (size < 0 && s->cursor.seg < s->segs[s->nsegs - 1].id) {
		s->cursor = (struct qs_pos){.seg = s->segs[0].id, .off = 0};
		s->replay.cursor_clamped = true;
	} else if (size >= 0 && s->cursor.off > (uint64_t)size) {
		qs_warn("spool: cursor offset %" PRIu64 " is past the end of segment %016" PRIx64
			" (%" PRId64 " bytes): that segment counts as shipped",
			s->cursor.off, s->cursor.seg, size);
		s->cursor.off = (uint64_t)size;
		s->replay.cursor_clamped = true;
	}
}

/* Checks the newest segment (the only one a crash can have torn) and cuts
 * whatever follows its last valid record. */
static int verify_tail(struct qs_spool *s)
{
	if (!s->nsegs)
		return 0;
	struct qs_spool_seg *last = &s->segs[s->nsegs - 1];
	char name[32];
	qs_seg_name(name, sizeof(name), last->id);
	int fd = qs_spool_file_open(s->dirfd, name, O_RDWR);
	struct qs_seg_summary sum;
	if (fd < 0 || qs_seg_summarize(fd, qs_seg_key(last->id), last->size, 0, &sum) != 0) {
		qs_err("spool: cannot read %s/%s: %s", s->dir, name, qs_spool_file_error(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	s->replay.damaged_bytes = sum.damaged_bytes;
	if (sum.damaged_bytes)
		qs_warn("spool: %s/%s has %" PRIu64 " damaged bytes from offset %" PRIu64
			" in %" PRIu64 " region(s): they will be skipped",
			s->dir, name, sum.damaged_bytes, sum.first_damage, sum.damaged_regions);
	if (sum.good_end < last->size) {
		s->replay.torn_bytes = last->size - sum.good_end;
		enum qs_seg_tail kind = qs_seg_tail_kind(fd, last->id, sum.good_end, last->size);
		if (kind == QS_TAIL_ZEROS)
			qs_info("spool: %s/%s: the %" PRIu64 " bytes after offset %" PRIu64 " are zeros laid ahead "
				"of the records: cut", s->dir, name, s->replay.torn_bytes, sum.good_end);
		else if (kind == QS_TAIL_STALE)
			qs_info("spool: %s/%s: %" PRIu64 " bytes after offset %" PRIu64 " are records of the file's "
				"earlier use as another segment: cut", s->dir, name, s->replay.torn_bytes, sum.good_end);
		else
			qs_warn("spool: %s/%s ends in %" PRIu64 " bytes of torn or corrupt data at offset %" PRIu64
				": cut (those events were never acknowledged)",
				s->dir, name, s->replay.torn_bytes, sum.good_end);
		if (ftruncate(fd, (off_t)sum.good_end) != 0 || fsync(fd) != 0) {
			qs_err("spool: cannot cut %s/%s: %s", s->dir, name, strerror(errno));
			close(fd);
			return -1;
		}
		s->total -= s->replay.torn_bytes;
		last->size = sum.good_end;
	}
	close(fd);
	return 0;
}

/* A segment is retired only once it is shipped and writing moved on, so on a
 * file system smaller than the spool limit, segments of limit/8 would fill
 * the disk before ever being rolled: segments are kept to 1/8 of the file
 * system too (at least 64 KiB), and shipping frees space as it goes. */
static uint64_t fit_seg_max(int dirfd, uint64_t seg_max)
{
	struct statvfs fs;
	if (fstatvfs(dirfd, &fs) != 0 || !fs.f_blocks)
		return seg_max;
	uint64_t cap = (uint64_t)fs.f_blocks * fs.f_frsize / 8;
	cap = cap < 65536 ? 65536 : cap;
	return cap < seg_max ? cap : seg_max;
}

/* The cursor file is made ready now, while there is room: every later write
 * is in place and allocates nothing. On a full disk, the cursor write that
 * retires a shipped segment must not need space itself (it would wait for
 * the deletion that waits for it). */
static void ready_cursor(struct qs_spool *s)
{
	if (qs_cursor_writer_open(&s->cw, s->dirfd, &s->cursor) == 0)
		s->persisted = s->cursor;
	else
		qs_warn("spool: cannot write the cursor in %s: %s (tried again when it moves)", s->dir,
			qs_spool_file_error(errno));
}

int qs_spool_open(struct qs_spool *s, const struct qs_spool_opts *o)
{
	memset(s, 0, sizeof(*s));
	s->wfd = -1;
	qs_cursor_writer_init(&s->cw);
	snprintf(s->dir, sizeof(s->dir), "%s", o->dir);
	s->max_bytes = o->max_bytes;
	s->seg_max = o->seg_max;
	s->fsync = o->fsync;
	if (o->have_dirfd) {
		s->dirfd = o->dirfd;
	} else {
		if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
			qs_err("spool: cannot create %s: %s", s->dir, strerror(errno));
			return -1;
		}
		s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (s->dirfd >= 0)
		s->seg_max = fit_seg_max(s->dirfd, s->seg_max);
	if (s->dirfd < 0 || list_segments(s) != 0) {
		qs_err("spool: cannot read %s: %s", s->dir, strerror(errno));
		qs_spool_close(s);
		return -1;
	}
	load_cursor(s);
	delete_leftovers(s);
	clamp_cursor(s);
	unlinkat(s->dirfd, QS_SPARE_FILE, 0); /* kept by a run that crashed */
	if (verify_tail(s) != 0) {
		qs_spool_close(s);
		return -1;
	}
	clamp_cursor(s); /* the cut may have moved the end below the cursor */
	uint64_t newest = s->max_seen_id;
	s->next_id = (newest > s->cursor.seg ? newest : s->cursor.seg) + 1;
	s->first_new_id = s->next_id;
	ready_cursor(s);
	return 0;
}

/* A reused file still holds its earlier records past what this segment
 * wrote, and zeros may be laid ahead of it (zeros_ahead): cut them when
 * writing moves on, so that only the newest segment can ever end in them
 * (and the next open cuts those, as a torn tail). Normally a few KiB, at
 * most ZERO_AHEAD: a segment is rolled once it reached seg_max. */
static void trim_write_segment(struct qs_spool *s)
{
	uint64_t size = s->segs[s->nsegs - 1].size;
	if (s->walloc > size && ftruncate(s->wfd, (off_t)size) != 0)
		qs_warn("spool: cannot cut what follows the end of the write segment: %s (cut at the "
			"next start, or skipped as damage)", strerror(errno));
	s->walloc = 0;
}

/* A spare still being renamed belongs to the reaper; a ready one is ours. */
static void drop_spare(struct qs_spool *s)
{
	if (!s->spare_bytes || (s->reaper && qs_reaper_spare_state(s->reaper) == QS_SPARE_PENDING))
		return;
	unlinkat(s->dirfd, QS_SPARE_FILE, 0);
	if (s->reaper)
		qs_reaper_spare_reset(s->reaper);
	s->spare_bytes = 0;
}

void qs_spool_close(struct qs_spool *s)
{
	qs_cursor_writer_close(&s->cw);
	if (s->wfd >= 0 && !s->pending)
		trim_write_segment(s);
	if (s->dirfd >= 0)
		drop_spare(s);
	if (s->wfd >= 0)
		close(s->wfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->segs);
	s->segs = NULL;
	s->nsegs = s->cap = 0;
	s->wfd = s->dirfd = -1;
}

static bool spare_is_ready(const struct qs_spool *s)
{
	return s->spare_bytes && s->reaper && qs_reaper_spare_state(s->reaper) == QS_SPARE_READY;
}

uint64_t qs_spool_room(const struct qs_spool *s)
{
	/* A ready spare's space is there for a commit that needs it (want_roll
	 * moves writing into it); one still waiting to be renamed is not yet. */
	uint64_t used = s->total + (spare_is_ready(s) ? 0 : s->spare_bytes);
	return used < s->max_bytes ? s->max_bytes - used : 0;
}

size_t qs_spool_take(const struct qs_spool *s, const struct qs_stage *st)
{
	size_t k = qs_stage_fit(st, qs_spool_room(s));
	return k == 0 && st->n && s->total == 0 ? 1 : k;
}

/* Ready to be the next segment's file; a spare that became a deletion is forgotten. */
static bool spare_ready(struct qs_spool *s)
{
	if (!s->spare_bytes || !s->reaper)
		return false;
	enum qs_spare_state st = qs_reaper_spare_state(s->reaper);
	if (st == QS_SPARE_FAILED) {
		qs_reaper_spare_reset(s->reaper);
		s->spare_bytes = 0;
	}
	return st == QS_SPARE_READY;
}

/* The next segment's file: the spare renamed into place, or a new one.
 * *walloc: the reused file's size (0 for a new file). */
static int create_segment(struct qs_spool *s, const char *name, uint64_t *walloc)
{
	*walloc = 0;
	if (spare_ready(s)) {
		qs_reaper_spare_reset(s->reaper);
		s->spare_bytes = 0;
		struct stat st;
		if (renameat(s->dirfd, QS_SPARE_FILE, s->dirfd, name) == 0) {
			int fd = qs_spool_file_open(s->dirfd, name, O_WRONLY);
			if (fd >= 0 && fstat(fd, &st) == 0) {
				*walloc = (uint64_t)st.st_size;
				return fd;
			}
			if (fd >= 0)
				close(fd);
			unlinkat(s->dirfd, name, 0);
		} else {
			unlinkat(s->dirfd, QS_SPARE_FILE, 0);
		}
	}
	return qs_spool_file_open(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL);
}

/* Every open starts a fresh segment, so we never append after a tail that a
 * crash may have left in an unknown state. */
static int new_segment(struct qs_spool *s)
{
	char name[32];
	qs_seg_name(name, sizeof(name), s->next_id);
	if (s->wfd >= 0)
		trim_write_segment(s); /* rides on the directory fsync below */
	uint64_t walloc;
	int fd = create_segment(s, name, &walloc);
	if (fd < 0)
		return -1;
	/* The new name must be durable before any record in it is acknowledged. */
	if ((s->fsync && fsync(s->dirfd) != 0) || push_seg(s, s->next_id, 0) != 0) {
		int e = errno;
		close(fd);
		unlinkat(s->dirfd, name, 0);
		errno = e;
		return -1;
	}
	if (s->wfd >= 0)
		close(s->wfd);
	s->wfd = fd;
	s->walloc = walloc;
	s->no_zeros = false;
	s->next_id++;
	return 0;
}

/* Time for the next segment: this one is full, or len needs the space a
 * ready spare holds (a nearly full spool). Never earlier: a segment cut
 * short cannot be reused (recyclable), and each reuse needs the one before. */
static bool want_roll(struct qs_spool *s, size_t len)
{
	if (s->wfd < 0)
		return true;
	uint64_t size = s->segs[s->nsegs - 1].size;
	if (size >= s->seg_max)
		return true;
	return size > 0 && size + len > s->walloc && s->total + s->spare_bytes + len > s->max_bytes &&
	       spare_ready(s);
}

static int write_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Back to the last committed end: a later retry rewrites the whole batch. */
static void cut_back(struct qs_spool *s)
{
	if (ftruncate(s->wfd, (off_t)s->segs[s->nsegs - 1].size) != 0)
		qs_err("spool: cannot cut the failed write back: %s", strerror(errno));
	s->walloc = 0; /* the reused space went with it: later commits append */
}

/* Zeros laid ahead of small commits, as PostgreSQL zero-fills its WAL files
 * (wal_init_zero). An fdatasync of bytes written over blocks the file already
 * has, inside its size, writes them and flushes the disk's cache; one that
 * grows the file must also make its new size and blocks durable (ext4: the
 * inode and the allocation's metadata, each a synchronous write and a wait;
 * with a journal, a journal commit). At everyday rates every group commit
 * grew the file (docs/PERFORMANCE.md "Round 21"). A commit that grows it by
 * a small group now also writes zeros up to ZERO_AHEAD past its end, under
 * the same fdatasync: the next commits write inside the file. Large groups
 * (load) would double what is written for little: they grow the file as
 * before. The zeros are cut when writing moves on (trim_write_segment), at a
 * clean stop, and after a crash at the next open (verify_tail: not damage). */
#define ZERO_AHEAD (256u * 1024)
#define ZERO_AHEAD_GROUP (16u * 1024)

static void zeros_ahead(struct qs_spool *s, uint64_t end, size_t len)
{
	static uint8_t zeros[ZERO_AHEAD]; /* (.bss: the zero page, no memory of its own) */
	if (!s->fsync || s->no_zeros || len > ZERO_AHEAD_GROUP || end < s->walloc || end >= s->seg_max)
		return;
	/* Never past where the segment rolls, nor past the spool's limit. */
	uint64_t n = s->seg_max - end, room = qs_spool_room(s);
	n = n < sizeof(zeros) ? n : sizeof(zeros);
	n = room > len + n ? n : room > len ? room - len : 0;
	if (n < 4096)
		return;
	if (write_all(s->wfd, zeros, n, end) == 0) {
		s->walloc = end + n;
		return;
	}
	/* A full disk: the commit goes on without them, and this segment lays
	 * none again (each try would fill the disk for a moment). */
	if (ftruncate(s->wfd, (off_t)end) != 0)
		qs_warn("spool: cannot cut zeros written ahead: %s", strerror(errno));
	s->walloc = 0;
	s->no_zeros = true;
}

int qs_spool_write(struct qs_spool *s, uint8_t *buf, size_t len)
{
	if (s->pending) {
		errno = EBUSY;
		return -1;
	}
	if (want_roll(s, len) && new_segment(s) != 0)
		return -1;
	struct qs_spool_seg *w = &s->segs[s->nsegs - 1];
	qs_rec_seal(buf, len, qs_seg_key(w->id));
	if (write_all(s->wfd, buf, len, w->size) == 0) {
		zeros_ahead(s, w->size + len, len);
		s->pending = len;
		s->write_failed = false;
		s->written = (struct qs_pos){.seg = w->id, .off = w->size};
		return 0;
	}
	int e = errno;
	cut_back(s);
	s->write_failed = true;
	errno = e;
	return -1;
}

void qs_spool_sync_done(struct qs_spool *s, bool ok)
{
	struct qs_spool_seg *w = &s->segs[s->nsegs - 1];
	if (!s->pending)
		return;
	if (ok) {
		w->size += s->pending;
		s->total += s->pending;
	} else {
		cut_back(s);
		s->write_failed = true;
	}
	s->pending = 0;
}

int qs_spool_append(struct qs_spool *s, uint8_t *buf, size_t len)
{
	if (qs_spool_write(s, buf, len) != 0)
		return -1;
	int rc = s->fsync ? fdatasync(s->wfd) : 0, e = errno;
	qs_spool_sync_done(s, rc == 0);
	errno = e;
	return rc;
}

int64_t qs_spool_seg_size(const struct qs_spool *s, uint64_t id)
{
	for (size_t i = 0; i < s->nsegs; i++)
		if (s->segs[i].id == id)
			return (int64_t)s->segs[i].size;
	return -1;
}

bool qs_spool_seg_after(const struct qs_spool *s, uint64_t id, uint64_t *next)
{
	for (size_t i = 0; i < s->nsegs; i++)
		if (s->segs[i].id > id) {
			*next = s->segs[i].id;
			return true;
		}
	return false;
}

int qs_spool_open_seg(const struct qs_spool *s, uint64_t id)
{
	char name[32];
	qs_seg_name(name, sizeof(name), id);
	return qs_spool_file_open(s->dirfd, name, O_RDONLY);
}

void qs_spool_advance(struct qs_spool *s, struct qs_pos pos)
{
	if (qs_pos_after(pos, s->cursor))
		s->cursor = pos;
}

void qs_spool_rewind(struct qs_spool *s, struct qs_pos pos)
{
	bool known = s->persisted.seg != UINT64_MAX; /* else no cursor file holds a position yet */
	s->cursor = known && qs_pos_after(s->persisted, pos) ? s->persisted : pos;
}

struct qs_pos qs_spool_end(const struct qs_spool *s)
{
	if (!s->nsegs)
		return s->cursor;
	const struct qs_spool_seg *w = &s->segs[s->nsegs - 1];
	return (struct qs_pos){.seg = w->id, .off = w->size};
}

/* A fully shipped write segment can only be retired once writing has moved
 * on: without this a spool whose one big segment is shipped stays full. The
 * same when a write into it failed (a full disk): it may never reach its full
 * size, and kept, it held the disk full for good (issue 26). */
static void roll_if_shipped(struct qs_spool *s)
{
	if (s->write_failed)
		drop_spare(s); /* a full disk: the spare's blocks are what the next write needs */
	if (!s->nsegs || s->wfd < 0 || s->pending)
		return; /* the sync thread may be flushing the write segment */
	const struct qs_spool_seg *w = &s->segs[s->nsegs - 1];
	bool shipped = s->cursor.seg == w->id && s->cursor.off == w->size && w->size > 0;
	bool stuck = w->size >= s->seg_max || s->total >= s->max_bytes || s->write_failed;
	if (shipped && stuck && new_segment(s) == 0)
		s->cursor = (struct qs_pos){.seg = s->segs[s->nsegs - 1].id, .off = 0};
}

int qs_spool_persist(struct qs_spool *s)
{
	roll_if_shipped(s);
	if (s->cursor.seg != s->persisted.seg || s->cursor.off != s->persisted.off) {
		if (s->reaper) {
			/* Written on the reaper's thread, ahead of the deletions below. */
			if (!qs_reaper_cursor(s->reaper, &s->cw, &s->cursor))
				return 0; /* queue full: the next round */
		} else if (qs_cursor_update(&s->cw, s->dirfd, &s->cursor) != 0) {
			qs_err("spool: cannot write the cursor in %s: %s", s->dir, strerror(errno));
			return -1;
		}
		s->persisted = s->cursor;
	}
	/* Only now may what lies before the persisted cursor go. The write
	 * segment stays: its fd is still appended to. */
	while (s->nsegs > 1 && s->segs[0].id < s->persisted.seg) {
		int rc = unlink_seg(s, 0);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	return 0;
}

uint64_t qs_spool_bytes_after(const struct qs_spool *s, struct qs_pos p)
{
	uint64_t n = 0;
	for (size_t i = 0; i < s->nsegs; i++) {
		const struct qs_spool_seg *g = &s->segs[i];
		if (g->id > p.seg)
			n += g->size;
		else if (g->id == p.seg && g->size > p.off)
			n += g->size - p.off;
	}
	return n;
}

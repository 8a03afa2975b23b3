/* Unit tests for the shipper's spool: group commit and replay, torn tails,
 * damage in the middle of a segment, the cursor and retirement at every
 * crash point (files left exactly as a crash would leave them), the size
 * limit, and --check-spool / --repair. */
#include "tests/unit/check.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/crc32c.h"
#include "shipper/cursor.h"
#include "shipper/reader.h"
#include "shipper/reaper.h"
#include "shipper/record.h"
#include "shipper/spool.h"
#include "shipper/spool_check.h"
#include "shipper/spool_file.h"
#include "shipper/stage.h"
#include "shipper/syncer.h"

#include <event2/event.h>


#define MAXREC 4096
static int got[MAXREC]; /* record numbers read back */

static char *new_dir(void)
{
	static char buf[64];
	snprintf(buf, sizeof(buf), "/tmp/qs-test-spool-XXXXXX");
	char *d = mkdtemp(buf);
	if (!d)
		abort();
	return strdup(d);
}

static void rm_dir(char *d)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", d);
	free(d);
}

static int open_spool(struct qs_spool *s, const char *dir, uint64_t max, uint64_t seg_max)
{
	struct qs_spool_opts o = {.dir = dir, .max_bytes = max, .seg_max = seg_max, .fsync = true};
	return qs_spool_open(s, &o);
}

/* Stages records first..first+n-1 ({"n":i}) in st. */
static void stage_records(struct qs_stage *st, int first, int n)
{
	char line[64];
	for (int i = first; i < first + n; i++) {
		int len = snprintf(line, sizeof(line), "{\"n\":%d}\n", i);
		qs_stage_add(st, (uint64_t)i, 0, line, (uint32_t)len, 1000u + (uint64_t)i);
	}
}

/* Stages records first..first+n-1 and hands them to commit_fn. */
static int with_records(struct qs_spool *s, int first, int n,
			int (*commit_fn)(struct qs_spool *, uint8_t *, size_t))
{
	struct qs_stage st = {0};
	stage_records(&st, first, n);
	int rc = commit_fn(s, st.buf, st.len);
	qs_stage_free(&st);
	return rc;
}

/* Appends records first..first+n-1 in one group commit. */
static int append(struct qs_spool *s, int first, int n)
{
	return with_records(s, first, n, qs_spool_append);
}

/* Writes them without committing (the shipper's first step). */
static int write_pending(struct qs_spool *s, int first, int n)
{
	return with_records(s, first, n, qs_spool_write);
}

/* Reads what r's window and the spool after it hold, advancing r (and the
 * spool's cursor, as the output does, if advance); returns the number of
 * records, their numbers in got[]. */
static int drain(struct qs_reader *r, struct qs_spool *s, bool advance)
{
	int n = 0;
	while (qs_reader_fill(r, s) > 0) {
		struct iovec iov[64];
		int k = qs_reader_iov(r, iov, 64);
		size_t bytes = 0;
		for (int i = 0; i < k; i++) {
			int v = -1;
			sscanf(iov[i].iov_base, "{\"n\":%d}", &v);
			if (n < MAXREC)
				got[n++] = v;
			bytes += iov[i].iov_len;
		}
		qs_reader_consume(r, bytes);
		if (advance)
			qs_spool_advance(s, qs_reader_done(r));
	}
	if (advance)
		qs_spool_advance(s, qs_reader_done(r));
	return n;
}

/* Reads everything after the cursor, advancing it. */
static int read_all(struct qs_spool *s, uint64_t *damaged)
{
	struct qs_reader r;
	qs_reader_init(&r, s->cursor);
	int n = drain(&r, s, true);
	if (damaged)
		*damaged = r.damaged_bytes;
	qs_reader_free(&r);
	return n;
}

static bool got_range(int n, int first, int count)
{
	if (n != count)
		return false;
	for (int i = 0; i < count; i++)
		if (got[i] != first + i)
			return false;
	return true;
}

static char *seg_path(const char *dir, uint64_t id)
{
	static char p[512];
	char name[32];
	qs_seg_name(name, sizeof(name), id);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static ino_t inode_of(const char *p);

static off_t file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : -1;
}

static void test_append_replay(void)
{
	char *d = new_dir();
	struct qs_spool s;
	char cur[512];
	snprintf(cur, sizeof(cur), "%s/%s", d, QS_CURSOR_FILE);
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(s.replay.cursor_missing);
	/* written at open, while there is room: later writes are in place (a full disk cannot stop them) */
	CHECK(file_size(cur) == QS_CURSOR_FILE_SIZE && s.cw.fd >= 0);
	CHECK(append(&s, 0, 10) == 0 && append(&s, 10, 5) == 0);
	uint64_t total = s.total;
	CHECK(s.nsegs == 1 && file_size(seg_path(d, 1)) >= (off_t)total); /* (zeros laid ahead) */
	qs_spool_close(&s);
	CHECK(file_size(seg_path(d, 1)) == (off_t)total);
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(!s.replay.cursor_missing && s.replay.torn_bytes == 0);
	CHECK(got_range(read_all(&s, NULL), 0, 15));
	CHECK(qs_spool_persist(&s) == 0);
	CHECK(append(&s, 15, 3) == 0); /* a new segment: every open starts one */
	CHECK(s.nsegs == 2);
	qs_spool_close(&s);
	ino_t cur_ino = inode_of(cur);
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(!s.replay.cursor_missing);
	CHECK(inode_of(cur) == cur_ino && s.cw.fd >= 0); /* a sound cursor file is kept and written in place */
	CHECK(got_range(read_all(&s, NULL), 15, 3)); /* nothing shipped twice, nothing lost */
	qs_spool_close(&s);
	rm_dir(d);
}

/* A committed group offered to a caught-up reader ships from memory: the
 * file is not read back (its bytes are overwritten here to prove it), and
 * the position after it is the segment's end. A reader that is not caught
 * up, or not exactly at the group, refuses and reads the file as before. */
static void test_reader_offer(void)
{
	char *d = new_dir();
	struct qs_spool s;
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(append(&s, 0, 10) == 0);
	struct qs_reader r;
	qs_reader_init(&r, s.cursor);
	CHECK(got_range(drain(&r, &s, false), 0, 10));
	uint64_t reads = r.reads;
	CHECK(reads >= 1);

	struct qs_stage st = {0};
	stage_records(&st, 10, 10);
	CHECK(qs_spool_append(&s, st.buf, st.len) == 0);
	CHECK(!qs_reader_offer(&r, s.written.seg, s.written.off + 1, st.buf, st.len)); /* not where it ends */
	/* Spoil the copy on disk: only a reader that takes the group from
	 * memory still ships records 10..19. */
	int fd = open(seg_path(d, s.written.seg), O_WRONLY);
	uint8_t junk[64];
	memset(junk, 0x5a, sizeof(junk));
	CHECK(fd >= 0 && pwrite(fd, junk, sizeof(junk), (off_t)s.written.off) == (ssize_t)sizeof(junk));
	close(fd);
	CHECK(qs_reader_offer(&r, s.written.seg, s.written.off, st.buf, st.len));
	CHECK(got_range(drain(&r, &s, false), 10, 10));
	CHECK_EQ(r.reads, reads);
	CHECK(qs_reader_done(&r).seg == s.written.seg && qs_reader_done(&r).off == s.written.off + st.len);
	qs_stage_free(&st);

	/* Not caught up (the output lingers, or Logstash reads slowly): a group
	 * right after the unwritten records joins the window, from memory too. */
	CHECK(append(&s, 20, 5) == 0);
	CHECK(qs_reader_fill(&r, &s) == 5);
	reads = r.reads;
	struct qs_stage st2 = {0};
	stage_records(&st2, 25, 5);
	CHECK(qs_spool_append(&s, st2.buf, st2.len) == 0);
	uint64_t at = s.written.off;
	CHECK(qs_reader_offer(&r, s.written.seg, at, st2.buf, st2.len));
	qs_stage_free(&st2);
	fd = open(seg_path(d, s.written.seg), O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, junk, sizeof(junk), (off_t)at) == (ssize_t)sizeof(junk));
	close(fd);
	CHECK(got_range(drain(&r, &s, false), 20, 10));
	CHECK_EQ(r.reads, reads);
	qs_reader_free(&r);
	qs_spool_close(&s);
	rm_dir(d);
}

/* A window with records still to write takes a following group only up to
 * 1 MiB in all: past it the group stays in the file, read later as usual. */
static void test_reader_offer_cap(void)
{
	char *d = new_dir();
	struct qs_spool s;
	CHECK(open_spool(&s, d, 64 << 20, 16 << 20) == 0);
	CHECK(append(&s, 0, 5) == 0);
	struct qs_reader r;
	qs_reader_init(&r, s.cursor);
	CHECK(qs_reader_fill(&r, &s) == 5);
	struct qs_stage st = {0};
	stage_records(&st, 5, 60000); /* ~1.5 MiB of records */
	CHECK(st.len > (1u << 20));
	CHECK(qs_spool_append(&s, st.buf, st.len) == 0);
	CHECK(!qs_reader_offer(&r, s.written.seg, s.written.off, st.buf, st.len));
	qs_stage_free(&st);
	CHECK(qs_reader_fill(&r, &s) == 5); /* the window is as it was */
	qs_reader_free(&r);
	qs_spool_close(&s);
	rm_dir(d);
}

struct sync_result {
	int calls, rc;
};

static void on_sync(void *arg, int rc, int err, uint64_t ns)
{
	(void)err;
	(void)ns;
	struct sync_result *r = arg;
	r->calls++;
	r->rc = rc;
}

/* The shipper's two-step commit: written bytes are invisible (to readers,
 * the size, the room, retirement) until their sync is reported; a failed
 * sync cuts them off the file; the sync thread reports through the loop. */
static void test_pending_write(void)
{
	char *d = new_dir();
	struct qs_spool s;
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(append(&s, 0, 4) == 0);
	uint64_t committed = s.total;
	CHECK(write_pending(&s, 4, 3) == 0);
	uint64_t group = s.pending;
	CHECK(s.pending > 0 && s.total == committed && qs_spool_seg_size(&s, 1) == (int64_t)committed);
	CHECK(file_size(seg_path(d, 1)) >= (off_t)(committed + s.pending));
	CHECK(write_pending(&s, 7, 1) == -1); /* one group at a time */
	CHECK(got_range(read_all(&s, NULL), 0, 4)); /* the reader stops at the committed end */
	qs_spool_sync_done(&s, false);             /* a failed fdatasync: cut off */
	CHECK(s.pending == 0 && file_size(seg_path(d, 1)) == (off_t)committed);

	struct event_base *base = event_base_new();
	struct qs_syncer sy;
	struct sync_result res = {0, -7};
	CHECK(qs_syncer_init(&sy, base, on_sync, &res) == 0);
	CHECK(write_pending(&s, 4, 3) == 0);
	qs_syncer_start(&sy, s.wfd, 3);
	CHECK(sy.busy);
	CHECK(event_base_loop(base, EVLOOP_ONCE) == 0); /* the eventfd wakes the loop */
	CHECK(res.calls == 1 && res.rc == 0 && !sy.busy);
	qs_spool_sync_done(&s, res.rc == 0);
	CHECK(got_range(read_all(&s, NULL), 4, 3));
	qs_syncer_start(&sy, -1, 1); /* fdatasync(-1) fails: reported, not hidden */
	qs_syncer_wait(&sy);
	CHECK(res.calls == 2 && res.rc == -1);
	qs_syncer_free(&sy);
	event_base_free(base);
	qs_spool_close(&s);
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(s.replay.torn_bytes == 0 && s.total == committed + group);
	qs_spool_close(&s);
	rm_dir(d);
}

/* Full load: the next group is started from the last one's done callback,
 * after acknowledgements that take longer than the idle mark (200 us). It
 * goes to the sync thread, so that the loop keeps reading while the disk
 * flushes; only a group that comes to a quiet loop is synced on the loop. */
struct chain {
	struct qs_syncer *sy;
	int fd, calls;
	bool next_here; /* the group started from the first done was synced on the loop */
};

static void on_sync_chain(void *arg, int rc, int err, uint64_t ns)
{
	(void)rc;
	(void)err;
	(void)ns;
	struct chain *c = arg;
	if (++c->calls > 1)
		return;
	usleep(2000); /* acknowledging a large group */
	qs_syncer_start(c->sy, c->fd, 1);
	c->next_here = c->sy->here;
}

static void test_sync_under_load(void)
{
	char *d = new_dir();
	char path[512];
	snprintf(path, sizeof(path), "%s/f", d);
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	struct event_base *base = event_base_new();
	struct qs_syncer sy;
	struct chain c = {.sy = &sy, .fd = fd};
	CHECK(qs_syncer_init(&sy, base, on_sync_chain, &c) == 0);
	qs_syncer_start(&sy, fd, 1); /* a quiet loop: synced here, reported on the next pass */
	CHECK(sy.here && sy.busy);
	CHECK(event_base_loop(base, EVLOOP_ONCE) == 0);
	CHECK(c.calls == 1 && !c.next_here && sy.busy); /* the next group: on the thread */
	qs_syncer_wait(&sy);
	CHECK(c.calls == 2 && !sy.busy);
	usleep(1000); /* quiet again */
	qs_syncer_start(&sy, fd, 1);
	CHECK(sy.here);
	qs_syncer_wait(&sy);
	CHECK(c.calls == 3);
	usleep(1000); /* quiet, but a full-load group (read in one long pass): the thread */
	qs_syncer_start(&sy, fd, 256 * 1024);
	CHECK(!sy.here && sy.busy);
	qs_syncer_wait(&sy);
	CHECK(c.calls == 4);
	qs_syncer_free(&sy);
	event_base_free(base);
	close(fd);
	unlink(path);
	rm_dir(d);
}

static void test_torn_tail(void)
{
	char *d = new_dir();
	struct qs_spool s;
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(append(&s, 0, 5) == 0);
	qs_spool_close(&s);
	off_t good = file_size(seg_path(d, 1));
	/* a crash in the middle of a write: a header and half a payload */
	uint8_t rec[QS_REC_HDR + 8];
	qs_rec_header(rec, "{\"n\":5}\n", 8, 1, qs_seg_key(1));
	memcpy(rec + QS_REC_HDR, "{\"n\":5}\n", 8);
	int fd = open(seg_path(d, 1), O_WRONLY | O_APPEND);
	CHECK(write(fd, rec, QS_REC_HDR + 3) == QS_REC_HDR + 3);
	close(fd);
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(s.replay.torn_bytes == QS_REC_HDR + 3);
	CHECK(file_size(seg_path(d, 1)) == good);
	CHECK(got_range(read_all(&s, NULL), 0, 5));
	qs_spool_close(&s);
	rm_dir(d);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	CHECK(pread(fd, &b, 1, off) == 1);
	b ^= 0x40;
	CHECK(pwrite(fd, &b, 1, off) == 1);
	close(fd);
}

static void test_mid_segment_damage(void)
{
	char *d = new_dir();
	struct qs_spool s;
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(append(&s, 0, 10) == 0);
	size_t rec = QS_REC_HDR + strlen("{\"n\":0}\n");
	qs_spool_close(&s);
	flip_byte(seg_path(d, 1), (off_t)(3 * rec + QS_REC_HDR + 2)); /* payload of record 3 */
	flip_byte(seg_path(d, 1), (off_t)(6 * rec + 5));              /* length of record 6 */
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(s.replay.torn_bytes == 0 && s.replay.damaged_bytes == 2 * rec);
	uint64_t damaged = 0;
	int n = read_all(&s, &damaged);
	CHECK(n == 8 && damaged == 2 * rec);
	CHECK(got[0] == 0 && got[2] == 2 && got[3] == 4 && got[5] == 7 && got[7] == 9);
	qs_spool_close(&s);
	rm_dir(d);
}

/* A damaged length at the start of a reader's chunk that claims more than
 * the rest of the segment (but less than any record's limit): the reader
 * used to try to read that much, got a short read and failed with EIO on
 * every retry, so the output could never get past it. */
static void test_damaged_length_past_segment(void)
{
	enum { N = 120000 }; /* ~3.4 MB: more than the reader's 1 MiB chunk after record 0 */
	char *d = new_dir();
	struct qs_spool s;
	CHECK(open_spool(&s, d, 1ull << 30, 64ull << 20) == 0);
	CHECK(append(&s, 0, N) == 0);
	qs_spool_close(&s);
	int fd = open(seg_path(d, 1), O_WRONLY);
	uint8_t len[4] = {0x01, 0x00, 0x00, 0x00}; /* 16 MiB */
	CHECK(fd >= 0 && pwrite(fd, len, 4, 4) == 4);
	close(fd);
	CHECK(open_spool(&s, d, 1ull << 30, 64ull << 20) == 0);
	uint64_t damaged = 0;
	int n = read_all(&s, &damaged);
	CHECK(n == MAXREC && got[0] == 1 && got[MAXREC - 1] == MAXREC); /* got[] keeps the first ones */
	CHECK(s.cursor.seg == 1 && s.cursor.off == (uint64_t)file_size(seg_path(d, 1))); /* read to the end */
	CHECK(damaged == QS_REC_HDR + strlen("{\"n\":0}\n"));
	qs_spool_close(&s);
	rm_dir(d);
}

static void write_cursor(const char *dir, uint64_t seg, uint64_t off)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	struct qs_pos p = {seg, off};
	CHECK(qs_cursor_store(dfd, &p) == 0);
	close(dfd);
}

/* In-place updates: the newest valid slot wins; a torn newest slot falls
 * back to the one before (never ahead of what was shipped); the old one-slot
 * format is still read. */
static void test_cursor_slots(void)
{
	char *d = new_dir();
	int dfd = open(d, O_RDONLY | O_DIRECTORY);
	struct qs_cursor_writer w;
	qs_cursor_writer_init(&w);
	struct qs_pos p, got_pos = {0, 0};
	for (uint64_t i = 1; i <= 5; i++) {
		p = (struct qs_pos){.seg = i, .off = 100 * i};
		CHECK(qs_cursor_update(&w, dfd, &p) == 0);
		CHECK(qs_cursor_load(dfd, &got_pos) == 0 && got_pos.seg == i && got_pos.off == 100 * i);
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", d, QS_CURSOR_FILE);
	CHECK(file_size(path) == QS_CURSOR_FILE_SIZE);
	/* seq 1 came from the atomic store, seqs 2..5 in place: seq 5 is in slot 1 */
	flip_byte(path, QS_CURSOR_SLOT_GAP + 20);
	CHECK(qs_cursor_load(dfd, &got_pos) == 0 && got_pos.seg == 4 && got_pos.off == 400);
	flip_byte(path, 20);
	CHECK(qs_cursor_load(dfd, &got_pos) == -1);
	/* a failed writer reopens by replacing the file whole */
	qs_cursor_writer_close(&w);
	p = (struct qs_pos){.seg = 9, .off = 9};
	CHECK(qs_cursor_update(&w, dfd, &p) == 0);
	CHECK(qs_cursor_load(dfd, &got_pos) == 0 && got_pos.seg == 9 && got_pos.off == 9);
	qs_cursor_writer_close(&w);
	/* version 1: 32 bytes, one slot */
	uint8_t v1[32] = {0x51, 0x53, 0x43, 0x31, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 70};
	uint32_t c = qs_crc32c(0, v1, 24);
	v1[24] = (uint8_t)(c >> 24), v1[25] = (uint8_t)(c >> 16), v1[26] = (uint8_t)(c >> 8), v1[27] = (uint8_t)c;
	int fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, v1, sizeof(v1)) == (ssize_t)sizeof(v1));
	close(fd);
	CHECK(qs_cursor_load(dfd, &got_pos) == 0 && got_pos.seg == 7 && got_pos.off == 70);
	close(dfd);
	rm_dir(d);
}

/* The deletion thread: a queued segment is gone once the reaper stops (it
 * drains its queue first); a reaper that is not running refuses, so the
 * spool deletes by itself. */
static void test_reaper(void)
{
	char *d = new_dir();
	int dfd = open(d, O_RDONLY | O_DIRECTORY);
	struct qs_reaper r;
	memset(&r, 0, sizeof(r));
	CHECK(!qs_reaper_add(&r, 1));
	CHECK(qs_reaper_start(&r, dfd, d) == 0);
	for (uint64_t id = 1; id <= 3; id++) {
		int fd = open(seg_path(d, id), O_WRONLY | O_CREAT, 0600);
		CHECK(fd >= 0 && ftruncate(fd, 5 * 1024 * 1024 + 7) == 0); /* several shrink steps */
		close(fd);
		CHECK(qs_reaper_add(&r, id));
	}
	CHECK(qs_reaper_add(&r, 99)); /* missing already: not an error */
	qs_reaper_stop(&r);
	for (uint64_t id = 1; id <= 3; id++)
		CHECK(access(seg_path(d, id), F_OK) != 0);
	CHECK(!qs_reaper_add(&r, 4));
	close(dfd);
	rm_dir(d);
}

/* Three segments 1..3 with 4 records each (seg_max is tiny). */
static void make_three(const char *d)
{
	struct qs_spool s;
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	for (int i = 0; i < 3; i++)
		CHECK(append(&s, i * 4, 4) == 0);
	CHECK(s.nsegs == 3);
	qs_spool_close(&s);
}

static void test_retirement(void)
{
	char *d = new_dir();
	struct qs_spool s;
	make_three(d);
	/* normal retirement: cursor persisted first, then older segments deleted */
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(got_range(read_all(&s, NULL), 0, 12));
	CHECK(s.cursor.seg == 3);
	CHECK(qs_spool_persist(&s) == 0);
	CHECK(s.nsegs == 1 && access(seg_path(d, 1), F_OK) != 0 && access(seg_path(d, 2), F_OK) != 0);
	qs_spool_close(&s);
	rm_dir(d);

	/* crash after the cursor moved past segments 1-2 but before they were deleted */
	d = new_dir();
	make_three(d);
	write_cursor(d, 3, 0);
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(s.replay.leftovers == 2 && access(seg_path(d, 1), F_OK) != 0);
	CHECK(got_range(read_all(&s, NULL), 8, 4));
	qs_spool_close(&s);
	rm_dir(d);

	/* crash before the cursor was persisted: everything after the old cursor again */
	d = new_dir();
	make_three(d);
	write_cursor(d, 1, 0);
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(s.replay.leftovers == 0 && got_range(read_all(&s, NULL), 0, 12));
	qs_spool_close(&s);
	rm_dir(d);

	/* crash while replacing the cursor: a half-written temp file, old cursor intact */
	d = new_dir();
	make_three(d);
	size_t rec = QS_REC_HDR + strlen("{\"n\":0}\n");
	write_cursor(d, 2, 2 * rec);
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", d, QS_CURSOR_TMP);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	CHECK(write(fd, "QSC", 3) == 3);
	close(fd);
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(access(p, F_OK) != 0);
	CHECK(got_range(read_all(&s, NULL), 6, 6));
	qs_spool_close(&s);

	/* a corrupt cursor (both slots): ship everything still present again (duplicates, never losses) */
	snprintf(p, sizeof(p), "%s/%s", d, QS_CURSOR_FILE);
	flip_byte(p, 12);
	flip_byte(p, QS_CURSOR_SLOT_GAP + 12);
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(s.replay.cursor_corrupt && s.cursor.seg == 2 && s.cursor.off == 0);
	CHECK(got_range(read_all(&s, NULL), 4, 8));
	qs_spool_close(&s);

	/* a cursor past the end of its segment (the tail was cut): segment counts as shipped */
	write_cursor(d, 2, 1000000);
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(s.replay.cursor_clamped && got_range(read_all(&s, NULL), 8, 4));
	qs_spool_close(&s);
	rm_dir(d);
}

/* Retirement through the helper thread: persist only queues the cursor and
 * the deletions behind it; once the thread has run them the cursor file
 * holds the new position and the shipped segments are gone. A second
 * persist before the thread ran replaces the waiting cursor write. With the
 * thread stopped (queue refused), persist deletes nothing behind the
 * cursor's back. */
static void test_retirement_on_thread(void)
{
	char *d = new_dir();
	struct qs_spool s;
	struct qs_reaper r;
	make_three(d);
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(qs_reaper_start(&r, s.dirfd, d) == 0);
	s.reaper = &r;
	CHECK(got_range(read_all(&s, NULL), 0, 12));
	CHECK(qs_spool_persist(&s) == 0);
	CHECK(s.nsegs == 1 && s.persisted.seg == 3);
	qs_reaper_stop(&r); /* runs what is queued, in order */
	struct qs_pos on_disk;
	CHECK(qs_cursor_load(s.dirfd, &on_disk) == 0 && on_disk.seg == 3 && on_disk.off == s.cursor.off);
	CHECK(access(seg_path(d, 1), F_OK) != 0 && access(seg_path(d, 2), F_OK) != 0);
	CHECK(access(seg_path(d, 3), F_OK) == 0);

	/* a stopped thread refuses: no cursor write, no deletion, nothing marked persisted */
	CHECK(append(&s, 12, 4) == 0 && append(&s, 16, 4) == 0 && s.nsegs == 3);
	CHECK(got_range(read_all(&s, NULL), 12, 8));
	struct qs_pos before = s.persisted;
	CHECK(qs_spool_persist(&s) == 0);
	CHECK(s.persisted.seg == before.seg && s.persisted.off == before.off);
	CHECK(access(seg_path(d, 3), F_OK) == 0 && access(seg_path(d, 4), F_OK) == 0 && s.segs[0].id == 3);
	s.reaper = NULL;
	qs_spool_close(&s);

	/* coalescing: two cursor writes queued behind a slow job leave one write of the newer */
	int dfd = open(d, O_RDONLY | O_DIRECTORY);
	struct qs_cursor_writer w;
	qs_cursor_writer_init(&w);
	memset(&r, 0, sizeof(r));
	CHECK(qs_reaper_start(&r, dfd, d) == 0);
	int fd = open(seg_path(d, 77), O_WRONLY | O_CREAT, 0600);
	/* allocated, not sparse: its 32 shrink steps free real extents and keep the thread busy */
	CHECK(fd >= 0 && posix_fallocate(fd, 0, 64 * 1024 * 1024) == 0);
	close(fd);
	CHECK(qs_reaper_add(&r, 77));
	struct qs_pos p1 = {.seg = 5, .off = 1}, p2 = {.seg = 5, .off = 2};
	CHECK(qs_reaper_cursor(&r, &w, &p1));
	CHECK(qs_reaper_cursor(&r, &w, &p2));
	qs_reaper_stop(&r);
	CHECK(qs_cursor_load(dfd, &on_disk) == 0 && on_disk.seg == 5 && on_disk.off == 2);
	CHECK(w.seq == 1); /* one write (the first, which replaces the file), not two */
	qs_cursor_writer_close(&w);
	close(dfd);
	rm_dir(d);
}

/* A cursor write that fails on the thread holds the deletions behind it
 * (the segments stay on disk) and is retried by itself; once it succeeds
 * the cursor is on disk and the held segments go. */
static void test_cursor_write_fails(void)
{
	char *d = new_dir();
	struct qs_spool s;
	struct qs_reaper r;
	char tmp[4200];
	make_three(d);
	snprintf(tmp, sizeof(tmp), "%s/%s", d, QS_CURSOR_FILE);
	CHECK(unlink(tmp) == 0);
	snprintf(tmp, sizeof(tmp), "%s/%s", d, QS_CURSOR_TMP);
	CHECK(mkdir(tmp, 0700) == 0); /* creating the cursor file (at open, then at the persist) now fails */
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(qs_reaper_start(&r, s.dirfd, d) == 0);
	s.reaper = &r;
	CHECK(got_range(read_all(&s, NULL), 0, 12));
	CHECK(qs_spool_persist(&s) == 0);
	struct timespec pause = {0, 200 * 1000000L};
	nanosleep(&pause, NULL);
	CHECK(access(seg_path(d, 1), F_OK) == 0 && access(seg_path(d, 2), F_OK) == 0);
	struct qs_pos on_disk;
	CHECK(qs_cursor_load(s.dirfd, &on_disk) != 0); /* still no cursor file */
	CHECK(rmdir(tmp) == 0);
	for (int i = 0; i < 40 && access(seg_path(d, 2), F_OK) == 0; i++)
		nanosleep(&pause, NULL); /* the retry comes within ~500 ms */
	CHECK(access(seg_path(d, 1), F_OK) != 0 && access(seg_path(d, 2), F_OK) != 0);
	CHECK(qs_cursor_load(s.dirfd, &on_disk) == 0 && on_disk.seg == 3);
	qs_reaper_stop(&r);
	CHECK(!r.cursor_lost);
	s.reaper = NULL;
	qs_spool_close(&s);
	rm_dir(d);
}

static int check_spool(const char *dir, bool repair);

/* Records are keyed with their segment: sealed for segment 1, a record is
 * damage when read as segment 2's; a plain one (written before keys) passes. */
static void test_record_keys(void)
{
	uint8_t rec[QS_REC_HDR + 8];
	memcpy(rec + QS_REC_HDR, "{\"n\":1}\n", 8);
	struct qs_scan_item it;
	qs_rec_header(rec, rec + QS_REC_HDR, 8, 1, qs_seg_key(1));
	struct qs_scan sc = {.buf = rec, .len = sizeof(rec), .at_end = true, .key = qs_seg_key(1)};
	CHECK(qs_scan_next(&sc, &it) == QS_SCAN_RECORD && it.len == 8);
	sc = (struct qs_scan){.buf = rec, .len = sizeof(rec), .at_end = true, .key = qs_seg_key(2)};
	CHECK(qs_scan_next(&sc, &it) == QS_SCAN_DAMAGE && it.size == sizeof(rec));
	qs_rec_header(rec, rec + QS_REC_HDR, 8, 1, 0);
	sc = (struct qs_scan){.buf = rec, .len = sizeof(rec), .at_end = true, .key = qs_seg_key(2)};
	CHECK(qs_scan_next(&sc, &it) == QS_SCAN_RECORD);
	CHECK(qs_seg_key(1) != qs_seg_key(2) && qs_seg_key(0) != 0 && qs_seg_key(1) != 0);
}

static bool wait_spare(struct qs_reaper *r)
{
	for (int i = 0; i < 400 && qs_reaper_spare_state(r) == QS_SPARE_PENDING; i++)
		usleep(5000);
	return qs_reaper_spare_state(r) == QS_SPARE_READY;
}

static ino_t inode_of(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? st.st_ino : 0;
}

/* Builds: segment 1 (records 0-199) shipped and kept as the spare, segment
 * 2 (200-409) filled, segment 3 = segment 1's file holding records 410-414
 * and, behind them, the rest of segment 1's old records. */
static void make_recycled(const char *d, struct qs_spool *s, struct qs_reaper *r, off_t *old_size)
{
	CHECK(open_spool(s, d, 1 << 20, 4096) == 0);
	CHECK(qs_reaper_start(r, s->dirfd, d) == 0);
	s->reaper = r;
	CHECK(append(s, 0, 200) == 0 && append(s, 200, 10) == 0 && s->nsegs == 2);
	*old_size = file_size(seg_path(d, 1));
	ino_t ino = inode_of(seg_path(d, 1));
	CHECK(got_range(read_all(s, NULL), 0, 210));
	CHECK(qs_spool_persist(s) == 0 && s->spare_bytes == (uint64_t)*old_size);
	CHECK(wait_spare(r));
	CHECK(access(seg_path(d, 1), F_OK) != 0);
	/* a ready spare's space counts as room: it is the next segment's */
	CHECK(qs_spool_room(s) == (1 << 20) - s->total);
	CHECK(append(s, 210, 200) == 0 && s->nsegs == 1);
	CHECK(append(s, 410, 5) == 0 && s->nsegs == 2 && s->spare_bytes == 0);
	CHECK(inode_of(seg_path(d, 3)) == ino && file_size(seg_path(d, 3)) == *old_size);
	CHECK(s->segs[1].size < (uint64_t)*old_size / 10);
	/* the old records behind the new ones are never read */
	CHECK(got_range(read_all(s, NULL), 210, 205));
}

/* A shipped full segment's file becomes a later segment (no deletion, no
 * new file); the records of its first use never come back: not while
 * running, not after a clean stop (the rest is cut), not after a crash
 * that left them behind the new ones (cut at the next start). */
static void test_recycle(void)
{
	char *d = new_dir();
	struct qs_spool s;
	struct qs_reaper r;
	off_t old_size;
	make_recycled(d, &s, &r, &old_size);
	uint64_t committed = s.segs[1].size;
	CHECK(qs_spool_persist(&s) == 0);
	qs_reaper_stop(&r);
	s.reaper = NULL;
	qs_spool_close(&s);
	CHECK(file_size(seg_path(d, 3)) == (off_t)committed);
	CHECK(open_spool(&s, d, 1 << 20, 4096) == 0);
	CHECK(s.replay.torn_bytes == 0 && s.replay.damaged_bytes == 0);
	CHECK(read_all(&s, NULL) == 0);
	qs_spool_close(&s);
	rm_dir(d);

	/* a crash: nothing cut, cursor still at the end of record 209 */
	d = new_dir();
	make_recycled(d, &s, &r, &old_size);
	committed = s.segs[1].size;
	qs_reaper_stop(&r);
	s.reaper = NULL;
	close(s.wfd);
	s.wfd = -1;
	qs_spool_close(&s);
	CHECK(file_size(seg_path(d, 3)) == old_size);
	CHECK(check_spool(d, false) == 0); /* the old records are no damage */
	CHECK(file_size(seg_path(d, 3)) == old_size);
	CHECK(open_spool(&s, d, 1 << 20, 4096) == 0);
	CHECK(s.replay.torn_bytes == (uint64_t)old_size - committed && s.replay.damaged_bytes == 0);
	CHECK(file_size(seg_path(d, 3)) == (off_t)committed);
	CHECK(got_range(read_all(&s, NULL), 210, 205));
	qs_spool_close(&s);
	rm_dir(d);
}

static off_t dir_bytes(const char *d)
{
	off_t sum = 0;
	char p[512];
	for (uint64_t id = 1; id < 16; id++)
		sum += file_size(seg_path(d, id)) > 0 ? file_size(seg_path(d, id)) : 0;
	snprintf(p, sizeof(p), "%s/%s", d, QS_SPARE_FILE);
	return sum + (file_size(p) > 0 ? file_size(p) : 0);
}

/* Nearly full: a ready spare's space counts as room, and the commit that
 * needs it moves writing into the spare before the write segment is full;
 * the files never hold more than the limit. */
static void test_recycle_full(void)
{
	char *d = new_dir();
	struct qs_spool s;
	struct qs_reaper r;
	const uint64_t max = 8192;
	CHECK(open_spool(&s, d, max, 4096) == 0);
	CHECK(qs_reaper_start(&r, s.dirfd, d) == 0);
	s.reaper = &r;
	CHECK(append(&s, 0, 150) == 0 && append(&s, 150, 10) == 0 && s.nsegs == 2);
	ino_t ino = inode_of(seg_path(d, 1));
	CHECK(got_range(read_all(&s, NULL), 0, 160));
	CHECK(qs_spool_persist(&s) == 0 && wait_spare(&r));
	CHECK(append(&s, 160, 100) == 0 && s.nsegs == 1 && s.segs[0].size < 4096);
	uint64_t need = 40 * (QS_REC_HDR + strlen("{\"n\":260}\n"));
	CHECK(s.total + s.spare_bytes + need > max);       /* does not fit beside the spare... */
	CHECK(qs_spool_room(&s) == max - s.total && qs_spool_room(&s) >= need); /* ...but in it */
	CHECK(append(&s, 260, 40) == 0 && s.nsegs == 2 && s.segs[1].id == 3 && s.spare_bytes == 0);
	CHECK(inode_of(seg_path(d, 3)) == ino);
	CHECK(dir_bytes(d) <= (off_t)max);
	CHECK(got_range(read_all(&s, NULL), 160, 140));
	qs_reaper_stop(&r);
	s.reaper = NULL;
	qs_spool_close(&s);
	rm_dir(d);
}

static void test_spool_full(void)
{
	char *d = new_dir();
	struct qs_spool s;
	size_t rec = QS_REC_HDR + strlen("{\"n\":0}\n");
	CHECK(open_spool(&s, d, 10 * rec, 4 * rec) == 0);
	CHECK(qs_spool_room(&s) == 10 * rec);
	CHECK(append(&s, 0, 4) == 0 && append(&s, 4, 4) == 0);
	CHECK(qs_spool_room(&s) == 2 * rec);
	struct qs_stage st = {0};
	for (int i = 0; i < 3; i++)
		qs_stage_add(&st, (uint64_t)i, 0, "{\"n\":8}\n", 8, 1);
	CHECK(qs_stage_fit(&st, qs_spool_room(&s)) == 2); /* only what fits is committed */
	CHECK(qs_spool_append(&s, st.buf, st.t[1].end) == 0);
	qs_stage_drop(&st, 2);
	CHECK(qs_spool_room(&s) == 0 && qs_stage_fit(&st, 0) == 0); /* full: refused */
	/* shipping and retiring frees room again */
	CHECK(read_all(&s, NULL) == 10);
	CHECK(qs_spool_persist(&s) == 0);
	CHECK(qs_spool_room(&s) >= rec && qs_stage_fit(&st, qs_spool_room(&s)) == 1);
	qs_stage_free(&st);
	qs_spool_close(&s);
	rm_dir(d);

	/* one big write segment, fully shipped: persisting moves writing on, so it can be retired */
	d = new_dir();
	CHECK(open_spool(&s, d, 10 * rec, 1 << 20) == 0);
	CHECK(append(&s, 0, 10) == 0 && qs_spool_room(&s) == 0);
	CHECK(read_all(&s, NULL) == 10 && qs_spool_persist(&s) == 0);
	CHECK(qs_spool_room(&s) == 10 * rec && access(seg_path(d, 1), F_OK) != 0);
	CHECK(append(&s, 10, 1) == 0);
	qs_spool_close(&s);
	CHECK(open_spool(&s, d, 10 * rec, 1 << 20) == 0);
	CHECK(got_range(read_all(&s, NULL), 10, 1));
	qs_spool_close(&s);
	rm_dir(d);

	/* an empty spool takes one event even beyond the limit, so it never wedges; but only one:
	 * a whole batch would overshoot the limit by as much as the batch */
	d = new_dir();
	CHECK(open_spool(&s, d, rec - 1, rec) == 0);
	st = (struct qs_stage){0};
	for (int i = 0; i < 3; i++)
		qs_stage_add(&st, (uint64_t)i, 0, "{\"n\":8}\n", 8, 1);
	CHECK(qs_spool_room(&s) == rec - 1 && qs_spool_take(&s, &st) == 1);
	CHECK(qs_spool_append(&s, st.buf, st.t[0].end) == 0);
	qs_stage_drop(&st, 1);
	CHECK(qs_spool_room(&s) == 0 && qs_spool_take(&s, &st) == 0);
	qs_stage_free(&st);
	qs_spool_close(&s);
	rm_dir(d);
}

static int check_spool(const char *dir, bool repair)
{
	static struct qs_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.spool_dir, sizeof(cfg.spool_dir), "%s", dir);
	cfg.check_spool = true;
	cfg.repair = repair;
	fflush(stdout);
	return spool_check_main(&cfg);
}

static void test_check_repair(void)
{
	CHECK(check_spool("/nonexistent/qs-spool", false) == 2);
	char *d = new_dir();
	make_three(d);
	size_t rec = QS_REC_HDR + strlen("{\"n\":0}\n");
	write_cursor(d, 2, 3 * rec); /* records 0..6 shipped */
	CHECK(check_spool(d, false) == 0);

	/* damage: a flipped byte in record 5 (shipped) and a torn tail on segment 3 */
	flip_byte(seg_path(d, 2), (off_t)(1 * rec + QS_REC_HDR));
	off_t seg3 = file_size(seg_path(d, 3));
	int fd = open(seg_path(d, 3), O_WRONLY | O_APPEND);
	CHECK(write(fd, "\xffQSRgarbage", 11) == 11);
	close(fd);
	CHECK(check_spool(d, false) == 1);
	CHECK(check_spool(d, true) == 0);
	CHECK(check_spool(d, false) == 0);
	CHECK(file_size(seg_path(d, 3)) == seg3);
	/* the cursor was mapped into the rewritten segment: 7..11 still pending, nothing lost */
	struct qs_spool s;
	CHECK(open_spool(&s, d, 1 << 20, 1) == 0);
	CHECK(s.replay.torn_bytes == 0 && s.replay.damaged_bytes == 0);
	CHECK(got_range(read_all(&s, NULL), 7, 5));
	qs_spool_close(&s);

	/* a corrupt cursor: damage; repair points it at the oldest segment */
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", d, QS_CURSOR_FILE);
	flip_byte(p, 20);
	flip_byte(p, QS_CURSOR_SLOT_GAP + 20);
	CHECK(check_spool(d, false) == 1);
	CHECK(check_spool(d, true) == 0 && check_spool(d, false) == 0);
	rm_dir(d);
}

/* A write into the write segment failed (a full disk): once shipped, that
 * segment is retired although it never reached its full size, and writing
 * moves on. Before, it stayed for good and the disk stayed full (issue 26). */
static void failed_write(struct qs_spool *s, const char *d, int first);

static void test_roll_after_failed_write(void)
{
	char *d = new_dir();
	struct qs_spool s;
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(append(&s, 0, 10) == 0);
	failed_write(&s, d, 10);
	CHECK(got_range(read_all(&s, NULL), 0, 10));
	CHECK(qs_spool_persist(&s) == 0);
	CHECK(s.nsegs == 1 && s.segs[0].id == 2 && access(seg_path(d, 1), F_OK) != 0);
	CHECK(append(&s, 10, 5) == 0 && !s.write_failed);
	qs_spool_close(&s);
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(got_range(read_all(&s, NULL), 10, 5));
	qs_spool_close(&s);
	rm_dir(d);
}

/* Makes the next write into the write segment fail (EBADF standing in for ENOSPC). */
static void failed_write(struct qs_spool *s, const char *d, int first)
{
	int wfd = s->wfd, ro = open(seg_path(d, s->segs[s->nsegs - 1].id), O_RDONLY);
	CHECK(ro >= 0);
	s->wfd = ro;
	CHECK(append(s, first, 5) == -1 && s->write_failed);
	s->wfd = wfd;
	close(ro);
}

/* While the disk refuses writes the spare is not kept: its blocks are what
 * the next write needs (kept, a full disk stayed full with nothing pending). */
static void test_no_spare_on_full_disk(void)
{
	char *d = new_dir(), p[600];
	struct qs_spool s;
	struct qs_reaper r;
	CHECK(open_spool(&s, d, 1 << 20, 4096) == 0);
	CHECK(qs_reaper_start(&r, s.dirfd, d) == 0);
	s.reaper = &r;
	CHECK(append(&s, 0, 200) == 0 && append(&s, 200, 10) == 0 && s.nsegs == 2);
	CHECK(got_range(read_all(&s, NULL), 0, 210));
	CHECK(qs_spool_persist(&s) == 0 && s.spare_bytes && wait_spare(&r));
	CHECK(append(&s, 210, 5) == 0); /* not shipped: writing does not move on into the spare */
	failed_write(&s, d, 215);
	CHECK(qs_spool_persist(&s) == 0 && s.spare_bytes == 0);
	snprintf(p, sizeof(p), "%s/%s", d, QS_SPARE_FILE);
	CHECK(access(p, F_OK) != 0);
	qs_reaper_stop(&r);
	s.reaper = NULL;
	qs_spool_close(&s);
	rm_dir(d);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "FAIL: a spool file open blocked (FIFO)\n";
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(1);
}

/* Links and FIFOs under spool names: never followed, never blocking, refused;
 * a temporary replaces a planted link instead of writing through it; the
 * housekeeping thread does not hang on a FIFO; the spool skips such entries
 * (and never reuses their ids). Guarded by an alarm: the old code blocked. */
static void test_planted_entries(void)
{
	char *d = new_dir(), victim[600], p[600];
	snprintf(victim, sizeof(victim), "%s.victim", d);
	int fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, "precious\n", 9) == 9);
	close(fd);
	signal(SIGALRM, on_alarm);
	alarm(20);
	int dfd = open(d, O_RDONLY | O_DIRECTORY);
	const char *names[] = {"0000000000000005.seg", QS_CURSOR_TMP, QS_REPAIR_TMP};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", d, names[i]);
		CHECK(symlink(victim, p) == 0);
		for (int f = 0; f < 3; f++) {
			int flags[] = {O_RDONLY, O_WRONLY, O_RDWR};
			CHECK(qs_spool_file_open(dfd, names[i], flags[f]) == -1 && errno == ELOOP);
		}
	}
	fd = qs_spool_file_temp(dfd, QS_CURSOR_TMP); /* the link goes, a new file comes */
	CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	close(fd);
	CHECK(mkfifo(seg_path(d, 3), 0600) == 0);
	CHECK(qs_spool_file_open(dfd, "0000000000000003.seg", O_RDONLY) == -1 && errno == EINVAL);
	CHECK(qs_spool_file_open(dfd, "0000000000000003.seg", O_WRONLY) == -1 && errno == EINVAL);
	struct stat st;
	CHECK(qs_spool_file_stat(dfd, "0000000000000003.seg", &st) == -1 && errno == EINVAL);
	struct qs_reaper r;
	CHECK(qs_reaper_start(&r, dfd, d) == 0);
	CHECK(qs_reaper_add(&r, 3));
	qs_reaper_stop(&r); /* used to block in open(O_WRONLY) of the FIFO for good */
	CHECK(access(seg_path(d, 3), F_OK) != 0);
	CHECK(mkfifo(seg_path(d, 3), 0600) == 0);
	snprintf(p, sizeof(p), "%s/%s", d, QS_CURSOR_FILE);
	CHECK(mkfifo(p, 0600) == 0);
	struct qs_pos pos;
	CHECK(qs_cursor_load(dfd, &pos) == -1);
	struct qs_spool s; /* the FIFO segment and the linked one are skipped; the FIFO cursor counts as corrupt */
	CHECK(open_spool(&s, d, 1 << 20, 1 << 20) == 0);
	CHECK(s.nsegs == 0 && s.replay.cursor_corrupt && s.next_id == 6);
	CHECK(append(&s, 0, 3) == 0 && s.segs[0].id == 6);
	qs_spool_close(&s);
	CHECK(check_spool(d, false) == 2); /* refused entries are an error */
	CHECK(check_spool(d, true) == 2);
	alarm(0);
	fd = open(victim, O_RDONLY);
	char buf[32] = {0};
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 9 && !memcmp(buf, "precious\n", 9));
	close(fd);
	unlink(victim);
	close(dfd);
	rm_dir(d);
}

static bool zeros_between(const char *path, off_t from, off_t to)
{
	int fd = open(path, O_RDONLY);
	uint8_t b[4096];
	bool zero = fd >= 0;
	for (off_t off = from; zero && off < to; off += (off_t)sizeof(b)) {
		size_t n = to - off < (off_t)sizeof(b) ? (size_t)(to - off) : sizeof(b);
		zero = pread(fd, b, n, off) == (ssize_t)n;
		for (size_t i = 0; zero && i < n; i++)
			zero = !b[i];
	}
	if (fd >= 0)
		close(fd);
	return zero;
}

/* Zeros laid ahead of small commits (spool.c zeros_ahead): the next small
 * commits write inside the file; never past seg_max or the spool's limit, not
 * for a large group; cut at a clean close, and after a crash at the next
 * open, as not damage. */
static void test_zeros_ahead(void)
{
	char *d = new_dir();
	struct qs_spool s;
	CHECK(open_spool(&s, d, 4 << 20, 1 << 20) == 0);
	CHECK(append(&s, 0, 3) == 0);
	off_t ahead = file_size(seg_path(d, 1));
	CHECK(ahead == (off_t)s.total + 256 * 1024 && zeros_between(seg_path(d, 1), (off_t)s.total, ahead));
	CHECK(append(&s, 3, 3) == 0 && file_size(seg_path(d, 1)) == ahead); /* written inside */
	CHECK(got_range(read_all(&s, NULL), 0, 6));
	/* a crash: the descriptors go, nothing is cut */
	close(s.wfd);
	s.wfd = -1;
	qs_spool_close(&s);
	CHECK(file_size(seg_path(d, 1)) == ahead);
	CHECK(open_spool(&s, d, 4 << 20, 1 << 20) == 0);
	CHECK(s.total == 6 * (QS_REC_HDR + strlen("{\"n\":0}\n")) && s.replay.damaged_bytes == 0);
	CHECK(s.replay.torn_bytes == (uint64_t)ahead - s.total && file_size(seg_path(d, 1)) == (off_t)s.total);
	CHECK(got_range(read_all(&s, NULL), 0, 6));
	/* a large group grows the file by itself only */
	CHECK(append(&s, 6, 2000) == 0 && s.nsegs == 2);
	CHECK(file_size(seg_path(d, 2)) == (off_t)s.segs[1].size);
	qs_spool_close(&s);
	/* bounded by where the segment rolls, and by the spool's limit */
	char *d2 = new_dir();
	CHECK(open_spool(&s, d2, 1 << 20, 8192) == 0);
	CHECK(append(&s, 0, 3) == 0 && file_size(seg_path(d2, 1)) == 8192);
	qs_spool_close(&s);
	char *d3 = new_dir();
	CHECK(open_spool(&s, d3, 64 * 1024, 1 << 20) == 0);
	CHECK(append(&s, 0, 3) == 0 && file_size(seg_path(d3, 1)) == 64 * 1024);
	qs_spool_close(&s);
	/* zeros that do not fit (a full disk; here a file size limit): cut, the
	 * commit goes on, and the segment lays none again */
	char *d4 = new_dir();
	CHECK(open_spool(&s, d4, 4 << 20, 1 << 20) == 0);
	struct rlimit old, lim = {.rlim_cur = 128 * 1024, .rlim_max = RLIM_INFINITY};
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	lim.rlim_max = old.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	CHECK(append(&s, 0, 3) == 0 && s.no_zeros && file_size(seg_path(d4, 1)) == (off_t)s.total);
	CHECK(append(&s, 3, 3) == 0 && file_size(seg_path(d4, 1)) == (off_t)s.total);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	signal(SIGXFSZ, SIG_DFL);
	CHECK(got_range(read_all(&s, NULL), 0, 6));
	qs_spool_close(&s);
	rm_dir(d);
	rm_dir(d2);
	rm_dir(d3);
	rm_dir(d4);
}

int main(void)
{
	test_append_replay();
	test_reader_offer();
	test_reader_offer_cap();
	test_pending_write();
	test_sync_under_load();
	test_cursor_slots();
	test_reaper();
	test_torn_tail();
	test_mid_segment_damage();
	test_damaged_length_past_segment();
	test_retirement();
	test_retirement_on_thread();
	test_record_keys();
	test_recycle();
	test_recycle_full();
	test_cursor_write_fails();
	test_spool_full();
	test_check_repair();
	test_roll_after_failed_write();
	test_no_spare_on_full_disk();
	test_planted_entries();
	test_zeros_ahead();
	return check_report();
}

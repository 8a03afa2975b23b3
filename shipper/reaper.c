#include "shipper/reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "shipper/spool.h"
#include "shipper/spool_file.h"

/* Shrinks the file in steps before the unlink: freeing a whole 64 MiB
 * segment at once holds one ext4 journal handle for ~20 ms, and every
 * fdatasync of the write segment (a journal commit) waits for it. In steps,
 * a commit waits for one small step at most. */
#define SHRINK_STEP (2 * 1024 * 1024)

static void shrink(int dirfd, const char *name)
{
	int fd = qs_spool_file_open(dirfd, name, O_WRONLY); /* a FIFO here blocked the thread for good */
	if (fd < 0)
		return; /* not a regular file (or gone): the unlink removes the name itself */
	off_t size = lseek(fd, 0, SEEK_END);
	while (size > 0) {
		size = size > SHRINK_STEP ? size - SHRINK_STEP : 0;
		if (ftruncate(fd, size) != 0)
			break;
	}
	close(fd);
}

static void delete_seg(struct qs_reaper *r, uint64_t id)
{
	char name[32];
	qs_seg_name(name, sizeof(name), id);
	shrink(r->dirfd, name);
	/* A failure leaves a shipped segment behind: the next start deletes it. */
	if (unlinkat(r->dirfd, name, 0) != 0 && errno != ENOENT)
		qs_err("spool: cannot delete shipped segment %s/%s: %s (deleted at the next start)", r->dir, name,
		       strerror(errno));
}

/* While a cursor write keeps failing, the deletions behind it wait here and
 * the write is retried every CURSOR_RETRY_MS (a newer cursor job replaces
 * the position to write). */
#define CURSOR_RETRY_MS 500
#define DEFERRED_MAX 256

struct backlog {
	bool failed;
	struct qs_pos pos; /* to write again */
	uint64_t ids[DEFERRED_MAX];
	unsigned n;
};

static void write_cursor(struct qs_reaper *r, struct backlog *b, const struct qs_pos *pos)
{
	b->pos = *pos;
	if (qs_cursor_update(r->cw, r->dirfd, pos) != 0) {
		if (!b->failed)
			qs_err("spool: cannot write the cursor in %s: %s (retrying every %d ms; shipped segments "
			       "are kept until it is written)", r->dir, strerror(errno), CURSOR_RETRY_MS);
		b->failed = true;
		return;
	}
	if (b->failed)
		qs_info("spool: cursor written again; deleting %u shipped segment(s) that waited for it", b->n);
	b->failed = false;
	for (unsigned i = 0; i < b->n; i++)
		delete_seg(r, b->ids[i]);
	b->n = 0;
}

static void set_spare(struct qs_reaper *r, enum qs_spare_state st)
{
	pthread_mutex_lock(&r->mu);
	r->spare = st;
	pthread_mutex_unlock(&r->mu);
}

/* Only a segment the cursor has passed, durably, gets here (queue order). */
static void recycle(struct qs_reaper *r, uint64_t id)
{
	char name[32];
	qs_seg_name(name, sizeof(name), id);
	if (renameat(r->dirfd, name, r->dirfd, QS_SPARE_FILE) == 0) {
		set_spare(r, QS_SPARE_READY);
		return;
	}
	qs_warn("spool: cannot keep %s/%s as the spare segment: %s (deleted instead)", r->dir, name,
		strerror(errno));
	set_spare(r, QS_SPARE_FAILED);
	delete_seg(r, id);
}

static void run_job(struct qs_reaper *r, struct backlog *b, const struct qs_reap_job *job)
{
	if (job->kind == QS_REAP_CURSOR) {
		write_cursor(r, b, &job->pos);
		return;
	}
	if (!b->failed) {
		if (job->kind == QS_REAP_RECYCLE)
			recycle(r, job->id);
		else
			delete_seg(r, job->id);
		return;
	}
	/* Held behind the failing cursor write. A spare held that long is of no
	 * use to the loop: it waits as a deletion like the others. */
	if (job->kind == QS_REAP_RECYCLE)
		set_spare(r, QS_SPARE_FAILED);
	if (b->n < DEFERRED_MAX)
		b->ids[b->n++] = job->id;
	/* else: left on disk; the next start deletes what lies before the cursor */
}

/* Called with the lock held and the queue empty: waits for work, or for the
 * time to retry a failed cursor write (then does so, without the lock). */
static void wait_for_work(struct qs_reaper *r, struct backlog *b)
{
	if (!b->failed) {
		pthread_cond_wait(&r->cv, &r->mu);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += CURSOR_RETRY_MS * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT && !r->count) {
		pthread_mutex_unlock(&r->mu);
		write_cursor(r, b, &b->pos);
		pthread_mutex_lock(&r->mu);
	}
}

static void *reaper_thread(void *p)
{
	struct qs_reaper *r = p;
	struct backlog b = {0};
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->count && !r->quit)
			wait_for_work(r, &b);
		if (!r->count)
			break; /* quit, and nothing left */
		struct qs_reap_job job = r->q[r->head];
		r->working = true;
		pthread_mutex_unlock(&r->mu);
		run_job(r, &b, &job);
		pthread_mutex_lock(&r->mu);
		r->working = false;
		r->head = (r->head + 1) % QS_REAPER_QUEUE;
		r->count--;
	}
	if (b.failed) {
		pthread_mutex_unlock(&r->mu);
		write_cursor(r, &b, &b.pos); /* a last try */
		pthread_mutex_lock(&r->mu);
	}
	r->cursor_lost = b.failed;
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int qs_reaper_start(struct qs_reaper *r, int dirfd, const char *dir)
{
	memset(r, 0, sizeof(*r));
	r->dirfd = dirfd;
	snprintf(r->dir, sizeof(r->dir), "%s", dir);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	int e = pthread_create(&r->thread, NULL, reaper_thread, r);
	if (e != 0) {
		qs_err("spool: cannot start the segment deletion thread: %s", strerror(e));
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cv);
		return -1;
	}
	r->started = true;
	return 0;
}

static bool enqueue(struct qs_reaper *r, const struct qs_reap_job *job)
{
	if (!r->started)
		return false;
	pthread_mutex_lock(&r->mu);
	struct qs_reap_job *last = r->count ? &r->q[(r->head + r->count - 1) % QS_REAPER_QUEUE] : NULL;
	bool waiting = last && (r->count > 1 || !r->working);
	bool ok = true;
	if (job->kind == QS_REAP_CURSOR && waiting && last->kind == QS_REAP_CURSOR) {
		last->pos = job->pos; /* not started yet: write the newer position instead */
	} else if (r->count < QS_REAPER_QUEUE) {
		r->q[(r->head + r->count) % QS_REAPER_QUEUE] = *job;
		r->count++;
		pthread_cond_signal(&r->cv);
	} else {
		ok = false;
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}

bool qs_reaper_add(struct qs_reaper *r, uint64_t id)
{
	struct qs_reap_job job = {.kind = QS_REAP_DELETE, .id = id};
	return enqueue(r, &job);
}

bool qs_reaper_cursor(struct qs_reaper *r, struct qs_cursor_writer *cw, const struct qs_pos *pos)
{
	struct qs_reap_job job = {.kind = QS_REAP_CURSOR, .pos = *pos};
	if (!r->started)
		return false;
	pthread_mutex_lock(&r->mu);
	if (!r->cw)
		r->cw = cw; /* set once: always the spool's one writer */
	pthread_mutex_unlock(&r->mu);
	return enqueue(r, &job);
}

bool qs_reaper_recycle(struct qs_reaper *r, uint64_t id)
{
	if (!r->started)
		return false;
	pthread_mutex_lock(&r->mu);
	bool busy = r->spare != QS_SPARE_NONE;
	if (!busy)
		r->spare = QS_SPARE_PENDING; /* before the thread can see the job */
	pthread_mutex_unlock(&r->mu);
	struct qs_reap_job job = {.kind = QS_REAP_RECYCLE, .id = id};
	if (busy)
		return false;
	if (enqueue(r, &job))
		return true;
	qs_reaper_spare_reset(r);
	return false;
}

enum qs_spare_state qs_reaper_spare_state(struct qs_reaper *r)
{
	if (!r->started)
		return r->spare; /* the thread is gone (or never ran): final */
	pthread_mutex_lock(&r->mu);
	enum qs_spare_state st = r->spare;
	pthread_mutex_unlock(&r->mu);
	return st;
}

void qs_reaper_spare_reset(struct qs_reaper *r)
{
	if (r->started)
		pthread_mutex_lock(&r->mu);
	r->spare = QS_SPARE_NONE;
	if (r->started)
		pthread_mutex_unlock(&r->mu);
}

void qs_reaper_stop(struct qs_reaper *r)
{
	if (!r->started)
		return;
	pthread_mutex_lock(&r->mu);
	r->quit = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	r->started = false;
}

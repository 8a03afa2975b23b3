#include "shipper/reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "shipper/spool.h"

/* Shrinks the file in steps before the unlink: freeing a whole 64 MiB
 * segment at once holds one ext4 journal handle for ~20 ms, and every
 * fdatasync of the write segment (a journal commit) waits for it. In steps,
 * a commit waits for one small step at most. */
#define SHRINK_STEP (2 * 1024 * 1024)

static void shrink(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
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

static bool write_cursor(struct qs_reaper *r, const struct qs_pos *pos)
{
	if (qs_cursor_update(r->cw, r->dirfd, pos) == 0)
		return true;
	qs_err("spool: cannot write the cursor in %s: %s (shipped segments are kept until it is written)", r->dir,
	       strerror(errno));
	return false;
}

static void *reaper_thread(void *p)
{
	struct qs_reaper *r = p;
	bool cursor_ok = true; /* the newest cursor write succeeded: deletions may follow */
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->count && !r->quit)
			pthread_cond_wait(&r->cv, &r->mu);
		if (!r->count)
			break; /* quit, and nothing left */
		struct qs_reap_job job = r->q[r->head];
		r->working = true;
		pthread_mutex_unlock(&r->mu);
		if (job.cursor)
			cursor_ok = write_cursor(r, &job.pos);
		else if (cursor_ok)
			delete_seg(r, job.id);
		pthread_mutex_lock(&r->mu);
		r->working = false;
		r->head = (r->head + 1) % QS_REAPER_QUEUE;
		r->count--;
	}
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
	if (job->cursor && waiting && last->cursor) {
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
	struct qs_reap_job job = {.cursor = false, .id = id};
	return enqueue(r, &job);
}

bool qs_reaper_cursor(struct qs_reaper *r, struct qs_cursor_writer *cw, const struct qs_pos *pos)
{
	struct qs_reap_job job = {.cursor = true, .pos = *pos};
	if (!r->started)
		return false;
	pthread_mutex_lock(&r->mu);
	r->cw = cw; /* the same writer every time */
	pthread_mutex_unlock(&r->mu);
	return enqueue(r, &job);
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

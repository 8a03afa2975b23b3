/* Persists the cursor and deletes retired spool segments on a helper
 * thread, in the order they were asked for.
 *
 * Unlinking a 64 MiB segment costs ext4 ~20 ms of freeing extents; done on
 * the shipper's event loop it stalled receiving, committing and
 * acknowledging for that long once per segment (the whole p99 tail at high
 * load). The deletion itself has no urgency: the cursor that retired the
 * segment is already persisted, and a crash before the unlink only leaves a
 * leftover that the next start deletes.
 *
 * The cursor's in-place write + fdatasync (1-1.5 ms on a busy disk, five
 * times a second) stalled the loop the same way. Queued here ahead of the
 * deletions it allows, it is still durable before any of them happens. If
 * it fails, the thread retries it every 500 ms (or writes a newer one that
 * arrives) and holds the deletions behind it until one succeeds.
 *
 * Instead of deleting a shipped segment it may keep its file as the spare
 * (QS_SPARE_FILE) that the spool turns into its next segment: no blocks
 * freed now, none allocated later (spool.c says why that matters). That
 * rename waits behind the cursor write exactly like a deletion. */
#ifndef QS_SHIPPER_REAPER_H
#define QS_SHIPPER_REAPER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "shipper/cursor.h"

#define QS_REAPER_QUEUE 64

struct qs_reaper {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started, quit;
	int dirfd;
	char dir[256]; /* for messages */
	struct qs_cursor_writer *cw; /* used by the thread only, once handed over */
	struct qs_reap_job {
		enum { QS_REAP_DELETE, QS_REAP_CURSOR, QS_REAP_RECYCLE } kind;
		uint64_t id;   /* DELETE, RECYCLE: the segment */
		struct qs_pos pos;
	} q[QS_REAPER_QUEUE];
	unsigned head, count;
	bool working; /* the thread is on q[head] */
	bool cursor_lost; /* after stop: the last cursor write failed (the file holds an older one) */
	enum qs_spare_state { QS_SPARE_NONE, QS_SPARE_PENDING, QS_SPARE_READY, QS_SPARE_FAILED } spare;
};

/* dirfd stays the caller's and must outlive qs_reaper_stop. 0, or -1 (logged). */
int qs_reaper_start(struct qs_reaper *r, int dirfd, const char *dir);
/* Queues segment id for deletion; false when the queue is full or the
 * thread is not running (the caller then deletes it itself). */
bool qs_reaper_add(struct qs_reaper *r, uint64_t id);
/* Queues a cursor write: from now on cw belongs to the thread. A cursor
 * write still waiting at the end of the queue is replaced instead. false
 * when the queue is full or the thread is not running. */
bool qs_reaper_cursor(struct qs_reaper *r, struct qs_cursor_writer *cw, const struct qs_pos *pos);
#define QS_SPARE_FILE "spare-segment.tmp"

/* Queues renaming segment id to QS_SPARE_FILE instead of deleting it; false
 * when a spare is already pending or ready, the queue is full or the thread
 * is not running. Held behind a failing cursor write, it becomes a deletion
 * (state FAILED). */
bool qs_reaper_recycle(struct qs_reaper *r, uint64_t id);
/* Where the spare stands; the caller may rename or delete the file only
 * once it is READY, and then says so with qs_reaper_spare_reset (also after
 * FAILED). */
enum qs_spare_state qs_reaper_spare_state(struct qs_reaper *r);
void qs_reaper_spare_reset(struct qs_reaper *r);
/* Does what is still queued (one last try of a failing cursor write), then
 * joins the thread; cursor_lost then says whether that last write failed. */
void qs_reaper_stop(struct qs_reaper *r);

#endif

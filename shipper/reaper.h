/* Deletes retired spool segments on a helper thread.
 *
 * Unlinking a 64 MiB segment costs ext4 ~20 ms of freeing extents; done on
 * the shipper's event loop it stalled receiving, committing and
 * acknowledging for that long once per segment (the whole p99 tail at high
 * load). The deletion itself has no urgency: the cursor that retired the
 * segment is already persisted, and a crash before the unlink only leaves a
 * leftover that the next start deletes. */
#ifndef QS_SHIPPER_REAPER_H
#define QS_SHIPPER_REAPER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define QS_REAPER_QUEUE 64

struct qs_reaper {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started, quit;
	int dirfd;
	char dir[256]; /* for messages */
	uint64_t q[QS_REAPER_QUEUE];
	unsigned head, count;
};

/* dirfd stays the caller's and must outlive qs_reaper_stop. 0, or -1 (logged). */
int qs_reaper_start(struct qs_reaper *r, int dirfd, const char *dir);
/* Queues segment id for deletion; false when the queue is full or the
 * thread is not running (the caller then deletes it itself). */
bool qs_reaper_add(struct qs_reaper *r, uint64_t id);
/* Deletes what is still queued, then joins the thread. */
void qs_reaper_stop(struct qs_reaper *r);

#endif

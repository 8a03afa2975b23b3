/* The shipper's fdatasync runs on a helper thread, so that the event loop
 * keeps draining its PULL socket, staging the next group and shipping while
 * the disk flushes the current one. Exactly one sync is in flight at a time;
 * the group that arrives meanwhile becomes the next one, so the group size
 * follows the load and the disk's speed without any timer.
 *
 * The thread touches nothing but the descriptor it is handed: the spool's
 * bookkeeping stays with the event loop, which learns the result through an
 * eventfd.
 *
 * At everyday rates there is nothing to overlap: the loop sat idle before
 * the group came and will sit idle until its acknowledgements leave. Then
 * the hand-over costs more than it saves (two thread wake-ups and four
 * system calls per group, expensive on a VM), so a group that follows a
 * quiet loop is synced on the loop itself and reported on its next pass,
 * exactly as the thread would report it. A group started from the previous
 * group's done callback, or larger than a few dozen events, is load, however
 * long the loop took since the last result (at full load acknowledging or
 * reading a group alone takes longer than the idle mark): the thread, so
 * that the loop keeps reading while the disk flushes. */
#ifndef QS_SHIPPER_SYNCER_H
#define QS_SHIPPER_SYNCER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct event;

/* rc: 0, or -1 with err = the errno of fdatasync; ns: how long it took. */
typedef void (*qs_sync_done_fn)(void *arg, int rc, int err, uint64_t ns);

struct qs_syncer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int efd;           /* the thread signals a finished sync here */
	struct event *ev;
	struct event *here_ev; /* reports a sync made on the loop itself */
	bool here;             /* the sync in flight was made on the loop */
	int here_rc, here_err;
	uint64_t here_ns;
	uint64_t last_done_ns; /* when the loop last finished with a result (done returned) */
	bool in_done;          /* inside done: a group started now is load, never idle */
	bool started;      /* the thread exists */
	bool busy;         /* a sync was handed over and its result not yet taken (loop side) */
	bool request, quit;  /* under mu */
	int fd;              /* under mu: what to sync */
	int rc, err;         /* under mu: the result */
	uint64_t ns;
	qs_sync_done_fn done;
	void *arg;
};

/* 0, or -1 (logged). */
int qs_syncer_init(struct qs_syncer *sy, struct event_base *base, qs_sync_done_fn done, void *arg);
/* Hands fd over for one fdatasync of a group of `bytes`; the caller keeps
 * fd open and unchanged until done has run. Only when !busy. */
void qs_syncer_start(struct qs_syncer *sy, int fd, size_t bytes);
/* Blocks until the sync in flight (if any) has finished and its done ran. */
void qs_syncer_wait(struct qs_syncer *sy);
void qs_syncer_free(struct qs_syncer *sy);

#endif

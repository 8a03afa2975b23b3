#include "shipper/syncer.h"

#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/clock.h"

static void *sync_thread(void *p)
{
	struct qs_syncer *sy = p;
	pthread_mutex_lock(&sy->mu);
	for (;;) {
		while (!sy->request && !sy->quit)
			pthread_cond_wait(&sy->cv, &sy->mu);
		if (sy->quit)
			break;
		int fd = sy->fd;
		sy->request = false;
		pthread_mutex_unlock(&sy->mu);
		uint64_t t0 = qs_now_ns();
		int rc = fdatasync(fd), err = rc ? errno : 0;
		uint64_t ns = qs_now_ns() - t0;
		pthread_mutex_lock(&sy->mu);
		sy->rc = rc;
		sy->err = err;
		sy->ns = ns;
		pthread_mutex_unlock(&sy->mu);
		/* Signalled with the lock released, as in qs_syncer_start: the
		 * loop wakes and takes the mutex at once instead of waking only
		 * to sleep on it until this thread lets go (a second wake-up
		 * per group, expensive on a VM). */
		uint64_t one = 1;
		while (write(sy->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		pthread_mutex_lock(&sy->mu);
	}
	pthread_mutex_unlock(&sy->mu);
	return NULL;
}

/* A group that comes this long after the loop finished with the last result
 * found the loop idle: synced on the loop (syncer.h). Under load the next group is
 * ready the moment a sync ends: it is started from inside done (after the
 * acknowledgements of the last group, which take longer than this at full
 * load) and goes to the thread. */
#define QS_SYNC_HERE_IDLE_NS 200000ull
/* A group larger than this is load whatever the clock says: at full load a
 * group (~250 KB here) can start from a read of events that took longer
 * than the idle mark, and an fdatasync on the loop would stop reading,
 * staging and shipping for its whole length. At everyday rates groups are
 * a few events (5,000 events/s: a few KB). */
#define QS_SYNC_HERE_MAX_BYTES (64u * 1024)

static void report(struct qs_syncer *sy, int rc, int err, uint64_t ns)
{
	sy->busy = false;
	sy->in_done = true;
	sy->done(sy->arg, rc, err, ns);
	sy->in_done = false;
	sy->last_done_ns = qs_now_ns(); /* the loop's work for the result is not idleness */
}

static void on_here(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_syncer *sy = arg;
	if (!sy->busy || !sy->here)
		return;
	sy->here = false;
	report(sy, sy->here_rc, sy->here_err, sy->here_ns);
}

/* Takes the finished sync's result (the eventfd must be readable or about to be). */
static void collect(struct qs_syncer *sy)
{
	if (sy->here)
		return on_here(-1, 0, sy);
	uint64_t v;
	while (read(sy->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&sy->mu);
	int rc = sy->rc, err = sy->err;
	uint64_t ns = sy->ns;
	pthread_mutex_unlock(&sy->mu);
	report(sy, rc, err, ns);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_syncer *sy = arg;
	if (sy->busy && !sy->here)
		collect(sy);
}

int qs_syncer_init(struct qs_syncer *sy, struct event_base *base, qs_sync_done_fn done, void *arg)
{
	memset(sy, 0, sizeof(*sy));
	sy->done = done;
	sy->arg = arg;
	sy->fd = -1;
	/* Blocking on purpose: qs_syncer_wait reads it to sleep until the thread is done. */
	sy->efd = eventfd(0, EFD_CLOEXEC);
	if (sy->efd < 0) {
		qs_err("syncer: eventfd: %s", strerror(errno));
		return -1;
	}
	sy->ev = event_new(base, sy->efd, EV_READ | EV_PERSIST, on_signal, sy);
	sy->here_ev = event_new(base, -1, 0, on_here, sy);
	pthread_mutex_init(&sy->mu, NULL);
	pthread_cond_init(&sy->cv, NULL);
	int e = sy->ev && sy->here_ev ? pthread_create(&sy->thread, NULL, sync_thread, sy) : ENOMEM;
	if (e != 0) {
		qs_err("syncer: cannot start the fdatasync thread: %s", strerror(e));
		return -1;
	}
	sy->started = true;
	event_add(sy->ev, NULL);
	return 0;
}

/* On the loop: fdatasync now, the result reported on the next loop pass. */
static void sync_here(struct qs_syncer *sy, int fd)
{
	uint64_t t0 = qs_now_ns();
	int rc = fdatasync(fd);
	sy->here_err = rc ? errno : 0;
	sy->here_rc = rc;
	sy->here_ns = qs_now_ns() - t0;
	sy->here = true;
	sy->busy = true;
	event_active(sy->here_ev, 0, 0);
}

void qs_syncer_start(struct qs_syncer *sy, int fd, size_t bytes)
{
	if (!sy->in_done && bytes <= QS_SYNC_HERE_MAX_BYTES && qs_now_ns() - sy->last_done_ns >= QS_SYNC_HERE_IDLE_NS)
		return sync_here(sy, fd);
	pthread_mutex_lock(&sy->mu);
	sy->fd = fd;
	sy->request = true;
	sy->busy = true;
	pthread_mutex_unlock(&sy->mu);
	/* after the unlock: the thread then wakes once, not twice (it would
	 * wake on the condition and sleep again on the mutex we still held) */
	pthread_cond_signal(&sy->cv);
}

void qs_syncer_wait(struct qs_syncer *sy)
{
	if (sy->busy)
		collect(sy);
}

void qs_syncer_free(struct qs_syncer *sy)
{
	if (!sy->done)
		return; /* never initialised */
	if (sy->started) {
		qs_syncer_wait(sy);
		pthread_mutex_lock(&sy->mu);
		sy->quit = true;
		pthread_cond_signal(&sy->cv);
		pthread_mutex_unlock(&sy->mu);
		pthread_join(sy->thread, NULL);
		pthread_mutex_destroy(&sy->mu);
		pthread_cond_destroy(&sy->cv);
	}
	if (sy->ev)
		event_free(sy->ev);
	if (sy->here_ev)
		event_free(sy->here_ev);
	if (sy->efd >= 0)
		close(sy->efd);
	memset(sy, 0, sizeof(*sy));
}

/* What every parser/shipper process does around its own work: a fresh
 * libevent base after exec, PR_SET_PDEATHSIG, the control socket
 * to the supervisor (ipc/ctl.h) and the stop signals. The shipper reuses it. */
#ifndef QS_IPC_CHILD_H
#define QS_IPC_CHILD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h" /* qs_now_ns, qs_realtime_ns: its users got them here */

struct qs_config;
struct qs_ctl_msg;
struct event_base;
struct event;

/* Called once on SIGTERM/SIGINT/QS_CTL_SHUTDOWN (urgent = false) or when the
 * supervisor's end of the control socket closes (urgent = true: it is gone,
 * finish as fast as possible). */
typedef void (*qs_child_stop_fn)(void *arg, bool urgent);

struct qs_child {
	struct event_base *base;
	int ctl_fd;
	struct event *ctl_ev;
	struct event *sig_ev[2];
	struct event *log_ev; /* once a second: qs_log_tick() */
	qs_child_stop_fn on_stop;
	void *arg;
	bool stop_called;
	/* Other messages from the supervisor, when set (called with arg). */
	void (*on_msg)(void *arg, const struct qs_ctl_msg *m);
};

int qs_child_init(struct qs_child *c, const struct qs_config *cfg, qs_child_stop_fn on_stop, void *arg);
/* Tells the supervisor we are serving. */
void qs_child_ready(struct qs_child *c, const struct qs_config *cfg);
void qs_child_free(struct qs_child *c);


#endif

/* What every child process does around its own work, whatever its role: a
 * fresh libevent base after exec, PR_SET_PDEATHSIG, the stop signals, the
 * control socket to the supervisor (ipc/ctl.h) with its ready/stop protocol,
 * and the status reports. It knows no role: what a role does with a control
 * message is a handler the role registers (qs_runtime_on); the runtime's own
 * table (qs_child_accepts) says which messages a child takes at all, and
 * only from the supervisor. */
#ifndef QS_IPC_RUNTIME_H
#define QS_IPC_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h" /* qs_now_ns, qs_realtime_ns: its users got them here */
#include "ipc/ctl.h"

struct qs_config;
struct event_base;
struct event;

/* Called once on SIGTERM/SIGINT/QS_CTL_SHUTDOWN (urgent = false) or when the
 * supervisor's end of the control socket closes (urgent = true: it is gone,
 * finish as fast as possible); why says which, for the log. */
typedef void (*qs_runtime_stop_fn)(void *arg, bool urgent, const char *why);
/* A control message for the role (arg: the one given to qs_runtime_init).
 * 0: acted on it; -1: refused. */
typedef int (*qs_runtime_msg_fn)(void *arg, const void *msg);

struct qs_runtime {
	struct event_base *base;
	const struct qs_config *cfg;
	int ctl_fd;
	struct event *ctl_ev;
	struct event *sig_ev[2];
	struct event *log_ev; /* once a second: qs_log_tick() (reports suppressed lines) */
	qs_runtime_stop_fn on_stop;
	void *arg;
	bool stop_called;
	qs_runtime_msg_fn on_msg[QS_CTL_LAST + 1]; /* the role's handlers, by type */
	unsigned refused; /* control messages refused (logged) */
};

/* Every control message a child takes (runtime.c; also read by tests). */
extern const struct qs_ctl_rule qs_child_accepts[];
extern const size_t qs_child_accepts_n;

int qs_runtime_init(struct qs_runtime *rt, const struct qs_config *cfg, qs_runtime_stop_fn on_stop, void *arg);
/* The role's reaction to a control message the runtime's table lets through
 * (QS_CTL_DRAIN, QS_CTL_PEER_RESTART, QS_CTL_RESOLVED): without one, such a
 * message is refused. */
void qs_runtime_on(struct qs_runtime *rt, enum qs_ctl_type type, qs_runtime_msg_fn fn);
/* QS_CTL_TENANTS (a reload applied in place): parses the tenants of the
 * sealed copy the message carries and puts them in the configuration in
 * place of the old table, which it returns for the role to free once it has
 * moved its state to the new one. NULL (nothing changed) after a logged error. */
struct qs_tenants;
struct qs_tenants *qs_runtime_take_tenants(struct qs_runtime *rt, const void *msg);
/* Handles the control messages waiting now, before the loop would: for a
 * decision that a message already sent may change (the keyholder's signers). */
void qs_runtime_poll_ctl(struct qs_runtime *rt);
/* Tells the supervisor we are serving. */
void qs_runtime_ready(struct qs_runtime *rt);
/* QS_CTL_STATUS (text: a name for it, or NULL); a report that cannot go now
 * is skipped (the next follows). */
void qs_runtime_report(struct qs_runtime *rt, const struct qs_ctl_status *st, const char *text);
void qs_runtime_free(struct qs_runtime *rt);

#endif

/* The service's one-line status: sd_notify STATUS=, which `systemctl status`
 * shows. Children report once a second (QS_CTL_STATUS); the supervisor adds
 * them up: processes running, open connections, events per second
 * acknowledged and rejected, the output's state, the spool's backlog. The
 * same line goes to the log every --stats-interval, with the events counted
 * since the last one (for those who run it without systemd, and for history). */
#ifndef QS_SUPERVISOR_STATUS_H
#define QS_SUPERVISOR_STATUS_H

#include "ipc/ctl.h"
#include "supervisor/proc.h"

struct event_base;

/* Starts the once-a-second update. 0, or -1. */
int qs_status_init(const struct qs_config *cfg, struct qs_procs *p, struct event_base *base,
		   const unsigned *restarts);
/* Takes the options it uses (at start, and from a reload's configuration). */
void qs_status_configure(const struct qs_config *cfg);
/* A child's report (from its current process). */
void qs_status_report(struct qs_proc *c, const struct qs_ctl_status_msg *m);
/* The child's process ended: what it held is gone with it. */
void qs_status_gone(struct qs_proc *c);
/* Sends the line now (a child started, stopped or became ready). */
void qs_status_notify(void);
/* The line, for tests and logs. */
void qs_status_format(char *buf, size_t len);
void qs_status_free(void);

#endif

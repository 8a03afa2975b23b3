/* The supervisor's part of the metrics endpoint (--metrics-addr): the TCP
 * listening socket, the metrics pages of every process slot (two each: a
 * reload's overlap runs two processes of a slot) and its own page, with the
 * directory that tells the metrics process whose page is whose. The pages
 * are made without the option too (the supervisor logs the acceptors'
 * tenant rows); then there is no listening socket and no metrics process. */
#ifndef QS_SUPERVISOR_METRICS_H
#define QS_SUPERVISOR_METRICS_H

#include "supervisor/proc.h"

/* Before any child starts. 0, or -1 with the reason logged (exit 1). */
int qs_sup_metrics_init(struct qs_procs *p, const struct qs_config *cfg);
/* The ready processes of each role, after any change. */
void qs_sup_metrics_ready(const struct qs_procs *p);
/* A child ended unexpectedly and is restarted. */
void qs_sup_metrics_restart(enum qs_role role);
/* The queues between processes (docs/ARCHITECTURE.md "Queues between
 * processes"): c's process ended or starts, so what waited in a hop with
 * it at one end is written off; or (c NULL, once a second) a hop that reads
 * below 0 is raised to 0 (what was written off arrived after all). */
void qs_sup_metrics_queues(const struct qs_procs *p, const struct qs_proc *c);

#endif

#ifndef QS_SUPERVISOR_H
#define QS_SUPERVISOR_H

struct qs_config;
struct qs_proc;

/* Runs the supervisor: prepares certificates, sockets and the runtime
 * directory, starts and restarts the children. Returns the exit status. */
int supervisor_main(const struct qs_config *cfg, int argc, char **argv);

/* Child c reported QS_CTL_READY (supervisor/control.c). */
void qs_supervisor_child_ready(struct qs_proc *c);

#endif

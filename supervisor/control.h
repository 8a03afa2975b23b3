/* The control messages the supervisor accepts from its children: one table
 * (control.c) of type, the roles that may send it, its exact size and what
 * the supervisor does with it. A child's role is its entry's in the table of
 * children (the socketpair the message came on), never what the message
 * says. Anything else is logged and its sender taken for compromised: it is
 * killed and restarted like a child that crashed. */
#ifndef QS_SUPERVISOR_CONTROL_H
#define QS_SUPERVISOR_CONTROL_H

#include "supervisor/proc.h"

#include <stddef.h>

#include "ipc/ctl.h"

/* The table (also read by tests/unit/test_ctl_dispatch.c). */
extern const struct qs_ctl_rule qs_sup_accepts[];
extern const size_t qs_sup_accepts_n;

/* Reads and handles what child c sent (qs_procs.on_ctl). */
void qs_control_read(struct qs_procs *p, struct qs_proc *c);

#endif

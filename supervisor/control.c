#include "supervisor/control.h"

#include "common/config.h"
#include "common/log.h"
#include "ipc/ctl.h"
#include "supervisor/resolve.h"
#include "supervisor/status.h"
#include "supervisor/supervisor.h"

#define QS_CTL_READ_BUDGET 64

#define ANY_CHILD                                                                                          \
	(QS_CTL_FROM(QS_ROLE_KEYHOLDER) | QS_CTL_FROM(QS_ROLE_SHIPPER) | QS_CTL_FROM(QS_ROLE_PARSER) |    \
	 QS_CTL_FROM(QS_ROLE_ACCEPTOR) | QS_CTL_FROM(QS_ROLE_METRICS))

/* A process says READY once: again is no state it can be in (a flood of
 * them, each an sd_notify and messages to the other children, held the
 * supervisor for seconds). */
static int ready(void *c, const void *m)
{
	(void)m;
	struct qs_proc *p = c;
	if (p->ready) {
		qs_warn("%s %u said READY twice", qs_role_name(p->role), p->slot);
		return -1;
	}
	qs_supervisor_child_ready(c);
	return 0;
}

static int status(void *c, const void *m)
{
	qs_status_report(c, m);
	return 0;
}

static int resolve(void *c, const void *m)
{
	qs_resolve_request(c, m);
	return 0;
}

/* Everything the supervisor accepts. */
const struct qs_ctl_rule qs_sup_accepts[] = {
	QS_CTL_RULE(QS_CTL_READY, struct qs_ctl_hdr, ANY_CHILD, ready),
	QS_CTL_RULE(QS_CTL_STATUS, struct qs_ctl_status_msg,
		    QS_CTL_FROM(QS_ROLE_ACCEPTOR) | QS_CTL_FROM(QS_ROLE_SHIPPER), status),
	QS_CTL_RULE(QS_CTL_RESOLVE, struct qs_ctl_resolve, QS_CTL_FROM(QS_ROLE_SHIPPER), resolve),
};
const size_t qs_sup_accepts_n = sizeof(qs_sup_accepts) / sizeof(qs_sup_accepts[0]);

void qs_control_read(struct qs_procs *p, struct qs_proc *c)
{
	(void)p;
	const struct qs_ctl_hdr from = {.role = c->role, .slot = c->slot, .generation = c->generation};
	union qs_ctl_any m;
	ssize_t n;
	const char *why;
	/* A bounded number per wake-up: the event stays readable, and the loop's
	 * other events (SIGCHLD, the other children) come between. A child that
	 * kept its socket full held the supervisor here for good. */
	for (unsigned k = 0; k < QS_CTL_READ_BUDGET && (n = qs_ctl_recv(c->ctl, &m)) > 0; k++) {
		int rc = qs_ctl_dispatch(qs_sup_accepts, qs_sup_accepts_n, &from, &m, (size_t)n, c, &why);
		qs_ctl_release(&m, (size_t)n); /* a child passes the supervisor no descriptor */
		if (rc == 0)
			continue;
		qs_warn("%s %u sent control message %s (%zd bytes), %s: taking it for compromised, killing it",
			qs_role_name(c->role), c->slot, qs_ctl_name(m.h.type), n, why);
		qs_proc_kill(c);
		return;
	}
}

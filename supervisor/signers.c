#include "supervisor/signers.h"

#include <stdbool.h>

#include "common/config.h"
#include "common/log.h"
#include "ipc/ctl.h"
#include "supervisor/proc.h"

static bool dirty; /* the last list did not reach every keyholder */

/* Sends m to every keyholder process; false if one could not take it. */
static bool to_keyholders(const struct qs_procs *p, const struct qs_ctl_signers *m)
{
	bool ok = true;
	for (unsigned i = 0; i < p->n; i++) {
		const struct qs_proc *c = &p->proc[i];
		if (c->role != QS_ROLE_KEYHOLDER)
			continue;
		if (c->pid && c->ctl >= 0)
			ok &= qs_ctl_send(c->ctl, m, sizeof(*m)) == 0;
		if (c->old_pid && c->old_ctl >= 0)
			ok &= qs_ctl_send(c->old_ctl, m, sizeof(*m)) == 0;
	}
	return ok;
}

static void update(struct qs_procs *p)
{
	static struct qs_ctl_signers m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_SIGNERS, NULL);
	m.all = 1;
	for (unsigned i = 0; i < p->n; i++) {
		const struct qs_proc *c = &p->proc[i];
		if (c->role != QS_ROLE_ACCEPTOR)
			continue;
		if (c->pid && m.n < QS_SIGNERS_MAX)
			m.pid[m.n++] = (int32_t)c->pid;
		if (c->old_pid && m.n < QS_SIGNERS_MAX)
			m.pid[m.n++] = (int32_t)c->old_pid;
	}
	dirty = !to_keyholders(p, &m);
	if (dirty)
		qs_warn("the keyholder's list of acceptors could not be sent now: again in a second");
}

void qs_signers_changed(struct qs_procs *p, const struct qs_proc *c)
{
	if (c->role == QS_ROLE_ACCEPTOR || c->role == QS_ROLE_KEYHOLDER)
		update(p);
}

void qs_signers_retry(struct qs_procs *p)
{
	if (dirty)
		update(p);
}

void qs_signers_announce(const struct qs_procs *p, const struct qs_proc *c, pid_t self)
{
	if (c->role != QS_ROLE_ACCEPTOR)
		return;
	struct qs_ctl_signers m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_SIGNERS, NULL);
	m.n = 1;
	m.pid[0] = (int32_t)self;
	(void)to_keyholders(p, &m);
}

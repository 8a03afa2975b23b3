/* Applies a role's sandbox from its table entry with the mechanisms of
 * common/sandbox.c. The entry comes from the --role dispatch, not from the
 * table itself: the role libraries call this file, and the table names their
 * entry functions. */
#include "roles/confine.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/hoptrace.h"
#include "common/log.h"
#include "common/sandbox.h"
#include "roles/roles.h"

static const struct qs_role_def *self;

void qs_confine_init(const struct qs_role_def *def)
{
	self = def;
}

/* The dispatch sets the role before any entry function runs. */
static const struct qs_role_sandbox *policy(void)
{
	if (!self)
		qs_err("sandbox: no role to confine as");
	return self ? &self->sandbox : NULL;
}

int qs_confine_enter(const struct qs_config *cfg, const char **rundir)
{
	char err[256] = "";
	const struct qs_role_sandbox *p = policy();
	if (!p)
		return -1;
	struct qs_sandbox sb = {.user = p->user && cfg->user[0] ? cfg->user : NULL,
				.chroot_dir = p->chroot ? cfg->runtime_dir : NULL,
				.new_netns = p->new_netns, .no_dump = !p->dumpable};
	if (self->hops) /* QS_HOPTRACE_DIR: its file is opened while the path is reachable */
		qs_hop_open(qs_role_name(self->role));
	if (qs_sandbox_enter(&sb, err, sizeof(err)) < 0) {
		qs_err("sandbox: %s", err);
		return -1;
	}
	*rundir = sb.chrooted ? "" : cfg->runtime_dir;
	return 0;
}

#ifdef QS_TEST_HOOKS
/* Test-only: QS_TEST_SANDBOX_PROBE=<role>-open proves that a confined process
 * of that role cannot open a file (test_privsep: the kernel kills it). */
static int probe(void)
{
	char want[64];
	const char *v = getenv("QS_TEST_SANDBOX_PROBE");
	snprintf(want, sizeof(want), "%s-open", qs_role_name(self->role));
	if (!v || strcmp(v, want))
		return 0;
	qs_warn("QS_TEST_SANDBOX_PROBE: opening a file, the kernel should kill this %s", qs_role_name(self->role));
	int fd = open("/etc/passwd", O_RDONLY);
	qs_err("QS_TEST_SANDBOX_PROBE: open() returned %d: the seccomp filter did not stop it", fd);
	return -1;
}
#endif

int qs_confine_seccomp(void)
{
	char err[256] = "";
	const struct qs_role_sandbox *p = policy();
	if (!p)
		return -1;
	if (qs_seccomp_allow(p->syscalls, p->families, p->tsync, err, sizeof(err)) < 0) {
		qs_err("seccomp: %s", err);
		return -1;
	}
#ifdef QS_TEST_HOOKS
	return probe();
#else
	return 0;
#endif
}

int qs_confine(const struct qs_config *cfg, const char **rundir)
{
	return qs_confine_enter(cfg, rundir) || qs_confine_seccomp() ? -1 : 0;
}

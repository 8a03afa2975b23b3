/* The parser's confinement: it parses untrusted JSON, so it gets the least:
 * an empty network namespace, chrooted into the runtime directory (its ZeroMQ
 * endpoints are the only files it can reach), the unprivileged user, and a
 * seccomp allow-list with no open() and no sockets but AF_UNIX. */
#include "parser/sandbox_policy.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/hoptrace.h"
#include "common/log.h"
#include "common/sandbox.h"

/* Beyond qs_seccomp_base: ZeroMQ's ipc:// and the channels' connects and reconnects. */
static const char *const parser_syscalls[] = {
	"connect", "socketpair", "sched_getparam", "sched_getscheduler", "sched_setscheduler", NULL,
};

int parser_sandbox_enter(const struct qs_config *cfg, const char **ep_dir)
{
	char err[256] = "";
	struct qs_sandbox sb = {.user = cfg->user[0] ? cfg->user : NULL, .chroot_dir = cfg->runtime_dir,
				.new_netns = true};
	qs_hop_open("parser"); /* QS_HOPTRACE_DIR: its file is opened while the path is reachable */
	if (qs_sandbox_enter(&sb, err, sizeof(err)) < 0) {
		qs_err("sandbox: %s", err);
		return -1;
	}
	/* Chrooted into the runtime directory: its endpoints are at the root. */
	*ep_dir = sb.chrooted ? "" : cfg->runtime_dir;
	return 0;
}

int parser_seccomp(void)
{
	char err[256] = "";
	if (qs_seccomp_allow(parser_syscalls, false, err, sizeof(err)) < 0) {
		qs_err("seccomp: %s", err);
		return -1;
	}
#ifdef QS_TEST_HOOKS
	/* Test-only: prove that a confined parser cannot open a file. */
	const char *probe = getenv("QS_TEST_SANDBOX_PROBE");
	if (probe && !strcmp(probe, "parser-open")) {
		qs_warn("QS_TEST_SANDBOX_PROBE: opening a file, the kernel should kill this parser");
		int fd = open("/etc/passwd", O_RDONLY);
		qs_err("QS_TEST_SANDBOX_PROBE: open() returned %d: the seccomp filter did not stop it", fd);
		return -1;
	}
#endif
	return 0;
}

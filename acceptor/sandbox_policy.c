/* The acceptor's confinement: it holds TLS session secrets and talks to the
 * network, so it runs chrooted in the runtime directory as the unprivileged
 * user, not dumpable, under a seccomp allow-list. Entered after everything is
 * opened (UDP socket inherited, ZeroMQ sockets bound, certificate read). */
#include <stdbool.h>
#include <unistd.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/hoptrace.h"
#include "common/log.h"
#include "common/sandbox.h"

/* Beyond qs_seccomp_base: packet batches, ZeroMQ and the answers channel
 * accepting connections (and unlinking the ipc path at exit), the
 * keyholder socket. */
static const char *const acceptor_syscalls[] = {
	"recvmmsg", "sendmmsg", "accept4", "connect", "socketpair", "unlink",
	"sched_getparam", "sched_getscheduler", "sched_setscheduler", NULL,
};

int acc_sandbox(struct acc *a, bool *chrooted)
{
	char err[256] = "";
	struct qs_sandbox sb = {.user = a->cfg->user[0] ? a->cfg->user : NULL,
				.chroot_dir = a->cfg->runtime_dir, .no_dump = true};
	qs_hop_open("acceptor"); /* QS_HOPTRACE_DIR: its file is opened while the path is reachable */
	if (qs_sandbox_enter(&sb, err, sizeof(err)) < 0 ||
	    qs_seccomp_allow(acceptor_syscalls, false, err, sizeof(err)) < 0) {
		qs_err("sandbox: %s", err);
		return -1;
	}
	*chrooted = sb.chrooted;
	return 0;
}

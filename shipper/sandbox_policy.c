/* The shipper's confinement: it needs the spool directory and one outbound
 * connection. It keeps the host network, is chrooted into the runtime
 * directory (its ipc endpoints), reaches the spool only through the
 * directory descriptor it opened before, runs as the unprivileged user with
 * no capabilities, and has a seccomp list of the file and socket calls the
 * spool and the output make. */
#include "shipper/sandbox_policy.h"

#include <stdbool.h>
#include <unistd.h>

#include "common/config.h"
#include "common/hoptrace.h"
#include "common/log.h"
#include "common/sandbox.h"

static const char *const shipper_syscalls[] = {
	/* spool */
	"openat", "open", "unlinkat", "unlink", "renameat", "renameat2", "rename", "fsync", "fdatasync",
	"ftruncate", "pread64", "pwrite64", "preadv", "pwritev", "getdents64", "statx", "stat", "lstat",
	"mkdir", "mkdirat", "fallocate", "sync_file_range",
	/* Logstash and the answers channels (connect), the events channel (accept4);
	 * no ZeroMQ here, so none of its thread and signalling calls */
	"connect", "accept4", NULL,
};

int shipper_sandbox_enter(const struct qs_config *cfg, const char **ep_dir)
{
	char err[256] = "";
	struct qs_sandbox sb = {.user = cfg->user[0] ? cfg->user : NULL, .chroot_dir = cfg->runtime_dir};
	qs_hop_open("shipper"); /* QS_HOPTRACE_DIR: its file is opened while the path is reachable */
	if (qs_sandbox_enter(&sb, err, sizeof(err)) < 0) {
		qs_err("sandbox: %s", err);
		return -1;
	}
	*ep_dir = sb.chrooted ? "" : cfg->runtime_dir;
	return 0;
}

int shipper_seccomp(void)
{
	char err[256] = "";
	if (qs_seccomp_allow(shipper_syscalls, true, err, sizeof(err)) < 0) {
		qs_err("seccomp: %s", err);
		return -1;
	}
	return 0;
}

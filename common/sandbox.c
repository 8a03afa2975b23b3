#include "common/sandbox.h"

#include <cap-ng.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

const char *const qs_seccomp_base[] = {
	"read", "write", "readv", "writev", "close", "brk", "mmap", "munmap", "mremap", "mprotect",
	"madvise", "futex", "set_robust_list", "get_robust_list", "rseq", "sched_yield",
	"sched_getaffinity", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday", "getpid", "gettid", "getuid",
	"geteuid", "getgid", "getegid", "getppid", "tgkill", "exit", "exit_group", "restart_syscall",
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "poll", "ppoll", "select",
	"pselect6", "eventfd2", "pipe2", "fcntl", "getrandom", "prctl", "uname", "fstat", "newfstatat",
	"lseek", "dup", "dup3", "getsockopt", "setsockopt", "getsockname", "getpeername", "recvfrom",
	"sendto", "recvmsg", "sendmsg", "shutdown", "ioctl", "timerfd_create", "timerfd_settime",
	"set_tid_address", "membarrier", "sysinfo",
	/* journald (common/log_journal.c): sd_journal_sendv() sends with sendmsg() on an AF_UNIX
	 * datagram socket it makes on first use, and passes a line the socket will not take
	 * (ENOBUFS, EMSGSIZE) as a sealed memfd instead: without this a log line could kill. */
	"memfd_create", NULL,
};

static int drop_user(const char *user, const char *root, char *err, size_t errlen)
{
	/* Look the user up before chroot: NSS needs /etc. */
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		snprintf(err, errlen, "unknown user '%s'", user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "--user '%s' is root: refusing to run children as root", user);
		return -1;
	}
	if (root && (chroot(root) != 0 || chdir("/") != 0)) {
		snprintf(err, errlen, "chroot %s: %s", root, strerror(errno));
		return -1;
	}
	/* Leaving uid 0 without KEEPCAPS clears the permitted, effective and
	 * ambient capability sets; the bounding set no longer matters under
	 * no-new-privs. */
	if (setgroups(0, NULL) != 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0) {
		snprintf(err, errlen, "cannot become user '%s': %s", user, strerror(errno));
		return -1;
	}
	return 0;
}

bool qs_sandbox_leak_check(void)
{
#if defined(QS_SANITIZE_BUILD) && defined(QS_TEST_HOOKS)
	const char *v = getenv("QS_TEST_CHILD_LEAKS");
	return v && !strcmp(v, "1");
#else
	return false;
#endif
}

int qs_caps_applicable(void)
{
	capng_get_caps_process();
	return capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP) ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS;
}

int qs_sandbox_enter(struct qs_sandbox *sb, char *err, size_t errlen)
{
	bool root = geteuid() == 0;
	bool leak_check = qs_sandbox_leak_check();
	const char *chroot_dir = leak_check ? NULL : sb->chroot_dir;
	sb->chrooted = root && sb->user && chroot_dir;
	if (leak_check)
		qs_warn("child leak check (sanitizer build): no chroot, no seccomp filter, dumpable, "
			"for LeakSanitizer's check at exit");
	/* glibc loads the time zone lazily on the first gmtime_r/localtime call;
	 * do it now, while /etc is reachable and open() is allowed. */
	tzset();
	if (sb->new_netns && root && unshare(CLONE_NEWNET) != 0) {
		snprintf(err, errlen, "unshare(CLONE_NEWNET): %s", strerror(errno));
		return -1;
	}
	if (sb->no_dump && !leak_check) {
		struct rlimit none = {0, 0};
		setrlimit(RLIMIT_CORE, &none);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	}
	/* journald's socket is named by a path: bound into the chroot first. */
	if (sb->chrooted)
		qs_log_before_chroot(chroot_dir);
	if (root && sb->user && drop_user(sb->user, chroot_dir, err, errlen) != 0)
		return -1;
	/* Changing user cleared the dumpable flag, and LeakSanitizer's tracer
	 * (a clone of this process, not a thread) must ptrace us. */
	if (leak_check)
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	if (!root || !sb->user) {
		/* Not root, or staying root: still give up every capability. */
		int what = qs_caps_applicable();
		capng_clear(CAPNG_SELECT_BOTH);
		capng_apply(what);
	}
	return 0;
}

static int allow_names(scmp_filter_ctx ctx, const char *const *names, char *err, size_t errlen)
{
	for (size_t i = 0; names && names[i]; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) != 0) {
			snprintf(err, errlen, "seccomp rule for %s failed", names[i]);
			return -1;
		}
	}
	return 0;
}

/* socket() for the given families only (bit 1 << AF_x each). */
static int allow_families(scmp_filter_ctx ctx, uint32_t families)
{
	for (int af = 0; af < 32; af++)
		if ((families & (1u << af)) &&
		    seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)af)) != 0)
			return -1;
	return 0;
}

int qs_seccomp_allow(const char *const *extra, uint32_t families, bool tsync, char *err, size_t errlen)
{
	if (qs_sandbox_leak_check())
		return 0;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	int rc = -1;
	if (tsync)
		seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (allow_names(ctx, qs_seccomp_base, err, errlen) || allow_names(ctx, extra, err, errlen))
		goto out;
	/* Threads only: a new process could escape the role's confinement. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) != 0 ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0 ||
	    allow_families(ctx, families) != 0)
		goto out;
	if (seccomp_load(ctx) != 0) {
		snprintf(err, errlen, "seccomp_load failed");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0 && !err[0])
		snprintf(err, errlen, "seccomp rule failed");
	seccomp_release(ctx);
	return rc;
}

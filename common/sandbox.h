/* Mechanisms to confine a process; each role's policy is its entry in the
 * role table (roles/table.c), applied by roles/confine.c. Order in a child:
 * open what it needs, then qs_sandbox_enter() (namespace, chroot, user,
 * no-new-privs), then qs_seccomp_allow(). */
#ifndef QS_SANDBOX_H
#define QS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qs_sandbox {
	const char *user;       /* become this user when started as root (NULL: stay) */
	const char *chroot_dir; /* chroot here when started as root (NULL: none) */
	bool new_netns;         /* an empty network namespace: no network at all, AF_UNIX paths still work */
	bool no_dump;           /* no core dumps, no ptrace by the same uid (holders of secrets) */
	bool chrooted;          /* set by qs_sandbox_enter: the process's root is now chroot_dir */
};

/* Returns 0, or -1 with a one-line reason in err. Always sets no-new-privs
 * and clears capabilities, even when not root. */
int qs_sandbox_enter(struct qs_sandbox *sb, char *err, size_t errlen);

/* Sanitizer builds with QS_TEST_HOOKS only (false in every other build): QS_TEST_CHILD_LEAKS=1
 * in the environment leaves children unchrooted, dumpable and without a
 * seccomp filter, so that LeakSanitizer's exit-time check (ptrace, /proc)
 * can run in them. The test suite's ASan run uses it for every test but the
 * ones that check the confinement itself. */
bool qs_sandbox_leak_check(void);

/* What capng_apply() may change in this process: the capabilities, and the
 * bounding set too when the process holds CAP_SETPCAP. Without it (systemd's
 * CapabilityBoundingSet= leaves it out: the unit bounds the set itself)
 * libcap-ng would fail the whole apply, saying so on stderr. Reads the
 * process's capabilities into libcap-ng's state: call before capng_clear(). */
int qs_caps_applicable(void);

/* Syscalls every process of ours needs whatever its role (memory, time,
 * signals, threads, epoll/eventfd for libevent and ZeroMQ, exit). */
extern const char *const qs_seccomp_base[];

/* Installs a seccomp allow-list: the base list plus `extra` (NULL-terminated
 * names); anything else kills the process (SIGSYS, which the supervisor
 * reports). socket() is allowed for the families in `families` only (bit
 * 1 << AF_x for each); clone() only for threads; clone3 fails with ENOSYS so
 * glibc falls back to clone. With tsync the filter goes on every thread of
 * the process (SECCOMP_FILTER_FLAG_TSYNC), else on the calling one only. */
int qs_seccomp_allow(const char *const *extra, uint32_t families, bool tsync, char *err, size_t errlen);

#endif

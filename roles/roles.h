/* The role table: every child role of quicstashd declared once (roles/table.c),
 * in the manner of OpenBSD relayd's privsep_proc tables. What the supervisor
 * needs to run a role (how many, in which order it starts, is reloaded and is
 * stopped, which descriptors it inherits) and what the child needs to confine
 * itself (user, chroot, namespace, dumpable, socket families, system calls)
 * and the control messages it may exchange all come from here; nothing else
 * in the tree names a role's properties. docs/ARCHITECTURE.md opens with this
 * table, printed from it (tests/unit/test_roles.c checks that they agree).
 *
 * Adding a role: a value in enum qs_role and its name (common/config.h/.c),
 * an entry in roles/table.c, and its own directory with its entry function. */
#ifndef QS_ROLES_H
#define QS_ROLES_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "ipc/ctl.h"

/* A set of control message types (enum qs_ctl_type) as a bit mask. */
#ifndef QS_CTL_BIT
#define QS_CTL_BIT(type) (1u << (type))
#endif

/* The descriptors a child finds open after exec (common/config.h has their
 * numbers); the supervisor places only those its role takes. */
enum qs_role_fd {
	QS_FD_CTL = 1u << 0,    /* QS_CHILD_CTL_FD: the control socketpair to the supervisor */
	QS_FD_UDP = 1u << 1,    /* QS_CHILD_UDP_FD: the UDP socket of its slot */
	QS_FD_CONFIG = 1u << 2, /* QS_CHILD_CONFIG_FD: the sealed --config text, when there is one */
	QS_FD_PAGE = 1u << 3,   /* QS_CHILD_PAGE_FD: its slot's metrics page, writable (--metrics-addr) */
	QS_FD_LISTEN = 1u << 4, /* QS_CHILD_LISTEN_FD: the metrics listening socket */
	QS_FD_PAGES = 1u << 5,  /* QS_CHILD_PAGE_FD on: the supervisor's page, then every page, read-only */
	QS_FD_LIMITS = 1u << 6, /* QS_CHILD_LIMITS_FD: the tenants' shared limit state (common/shared_limits.h);
				 * not with QS_FD_PAGES (whose pages take 6 on) */
};

/* How many processes of a role the supervisor runs. */
enum qs_role_count {
	QS_COUNT_ONE = 0,
	QS_COUNT_PARSERS,   /* --parsers */
	QS_COUNT_ACCEPTORS, /* --acceptors (1 when connection-ID steering is unavailable) */
	QS_COUNT_METRICS,   /* 1 with --metrics-addr, else none */
};

/* How a reload replaces a role's processes. */
enum qs_role_reload {
	QS_RELOAD_RESTART = 0, /* ask it to stop, start it again when it has exited (it owns
				* something only one process may hold) */
	QS_RELOAD_OVERLAP,     /* start the new one beside it, ask the old one to stop once the new serves */
	QS_RELOAD_GENERATION,  /* all slots at once, on new sockets in the other steering bank;
				* the old generation drains (QS_RELOAD_RESTART without steering) */
};

/* A socket family for qs_role_sandbox.families. */
#define QS_AF(family) (1u << (family))

struct qs_role_sandbox {
	bool user;          /* become --user when started as root */
	bool chroot;        /* chroot into the runtime directory (with user) */
	bool new_netns;     /* a network namespace of its own: no network, AF_UNIX paths still work */
	bool dumpable;      /* false: no core dumps, no ptrace by the same user (holds secrets) */
	uint32_t families;  /* socket(): QS_AF(AF_x) bits it may create */
	bool tsync;         /* other threads run when the filter goes on: install it on all (TSYNC) */
	const char *const *syscalls; /* allowed beyond qs_seccomp_base, NULL-terminated */
};

struct qs_role_def {
	enum qs_role role;
	int (*main)(const struct qs_config *cfg); /* the entry function, after --role */
	const char *main_name;                    /* its name, for the docs */
	enum qs_role_count count;
	/* Orders, 1 first. Start: downstream first, so nothing is sent towards a role
	 * not yet there. Reload: one process at a time in this order. Stop: one
	 * phase per rank, the next when every process of this one has exited. */
	unsigned start, reload, stop;
	enum qs_role_reload reload_how;
	uint32_t fds;            /* enum qs_role_fd bits */
	bool umask0;             /* exec with umask 0: it binds ipc sockets that others must reach,
				  * before it becomes --user (the runtime dir keeps others out) */
	bool huge_heap;          /* exec with glibc's malloc on transparent huge pages
				  * (glibc.malloc.hugetlb=1): its heap grows in storms */
	bool holds_frames;       /* frames in flight die with it: when it is replaced, the roles that
				  * receive QS_CTL_PEER_RESTART are told to resend */
	bool hands_over;         /* holds frames, but a clean stop (exit status 0 after SHUTDOWN)
				  * answers or hands on all of them: the resend is only for its death */
	bool hops;               /* opens its hop trace file (QS_HOPTRACE_DIR) before confinement */
	struct qs_role_sandbox sandbox;
	uint32_t ctl_sends;      /* QS_CTL_BIT()s it may send to the supervisor */
	uint32_t ctl_receives;   /* QS_CTL_BIT()s the supervisor may send it */
};

extern const struct qs_role_def qs_roles[];
extern const unsigned qs_roles_n;

/* The entry of a child role; NULL for the supervisor. */
const struct qs_role_def *qs_role_def(enum qs_role role);

#endif

/* Every child role, declared once (roles/roles.h says what each field means).
 * Data flows acceptor -> parser -> shipper; the keyholder signs for the
 * acceptors. Each role confines itself right after it has opened what it
 * needs (roles/confine.c), as its entry here says. */
#include "roles/roles.h"

#include <sys/socket.h>

#include "acceptor/acceptor.h"
#include "keyholder/keyholder.h"
#include "metrics/metrics.h"
#include "parser/parser.h"
#include "shipper/shipper.h"

#define BIT QS_CTL_BIT
#define ENTRY(fn) .main = fn, .main_name = #fn

/* The keyholder: accepts the acceptors on its socket and answers their sign requests. */
static const char *const keyholder_syscalls[] = {"accept4", "accept", NULL}; /* recv/send and epoll: the base */

/* The shipper: file operations on the spool (through the directory descriptor it
 * opened before), Logstash and the answers channels (connect), the events
 * channel (accept4); no ZeroMQ here, so none of its thread and signalling calls. */
static const char *const shipper_syscalls[] = {
	"openat", "open", "unlinkat", "unlink", "renameat", "renameat2", "rename", "fsync", "fdatasync",
	"ftruncate", "pread64", "pwrite64", "preadv", "pwritev", "getdents64", "statx", "stat", "lstat",
	"mkdir", "mkdirat", "fallocate", "sync_file_range", "connect", "accept4", NULL,
};

/* The parser parses untrusted JSON, so it gets the least: ZeroMQ's ipc:// and
 * the channels' connects and reconnects; no open(). */
static const char *const parser_syscalls[] = {
	"connect", "socketpair", "sched_getparam", "sched_getscheduler", "sched_setscheduler", NULL,
};

/* The acceptor: packet batches, ZeroMQ and the answers channel accepting
 * connections (and unlinking the ipc path at exit), the keyholder socket; no open(). */
static const char *const acceptor_syscalls[] = {
	"recvmmsg", "sendmmsg", "accept4", "connect", "socketpair", "unlink",
	"sched_getparam", "sched_getscheduler", "sched_setscheduler", NULL,
};

/* The metrics endpoint: HTTP on its inherited listening socket (libevent's evhttp). */
static const char *const metrics_syscalls[] = {"accept4", "accept", NULL};

const struct qs_role_def qs_roles[] = {
	{
		.role = QS_ROLE_KEYHOLDER, ENTRY(keyholder_main), .count = QS_COUNT_ONE,
		.start = 2, .reload = 2, .stop = 4, .reload_how = QS_RELOAD_OVERLAP,
		.fds = QS_FD_CTL | QS_FD_CONFIG | QS_FD_PAGE,
		/* holds the TLS private key: no network at all, not dumpable; one thread */
		.sandbox = {.user = true, .chroot = true, .new_netns = true, .dumpable = false,
			    .families = QS_AF(AF_UNIX), .tsync = false, .syscalls = keyholder_syscalls},
		.ctl_sends = BIT(QS_CTL_READY),
		.ctl_receives = BIT(QS_CTL_SHUTDOWN) | BIT(QS_CTL_SIGNERS),
	},
	{
		.role = QS_ROLE_SHIPPER, ENTRY(shipper_main), .count = QS_COUNT_ONE,
		.start = 3, .reload = 3, .stop = 3, .reload_how = QS_RELOAD_RESTART,
		.fds = QS_FD_CTL | QS_FD_CONFIG | QS_FD_PAGE, .holds_frames = true, .hands_over = true, .hops = true,
		/* the host network (Logstash), the spool; its sync and housekeeping threads */
		.sandbox = {.user = true, .chroot = true, .new_netns = false, .dumpable = true,
			    .families = QS_AF(AF_UNIX) | QS_AF(AF_INET) | QS_AF(AF_INET6), .tsync = true,
			    .syscalls = shipper_syscalls},
		.ctl_sends = BIT(QS_CTL_READY) | BIT(QS_CTL_STATUS) | BIT(QS_CTL_RESOLVE),
		.ctl_receives = BIT(QS_CTL_SHUTDOWN) | BIT(QS_CTL_RESOLVED) | BIT(QS_CTL_ACCEPTOR),
	},
	{
		.role = QS_ROLE_PARSER, ENTRY(parser_main), .count = QS_COUNT_PARSERS,
		/* restart, not overlap: a slot's parsers share the acceptors' PUSH socket
		 * of that slot, and a stopping one reads up to the acceptors' end of its
		 * frames, which must reach it and nobody else (docs/ARCHITECTURE.md,
		 * "Planned operations"); the other slots serve meanwhile */
		.start = 4, .reload = 4, .stop = 2, .reload_how = QS_RELOAD_RESTART,
		.fds = QS_FD_CTL | QS_FD_CONFIG | QS_FD_PAGE, .holds_frames = true, .hands_over = true, .hops = true,
		/* untrusted JSON: no network, AF_UNIX only; ZeroMQ's I/O thread */
		.sandbox = {.user = true, .chroot = true, .new_netns = true, .dumpable = true,
			    .families = QS_AF(AF_UNIX), .tsync = true, .syscalls = parser_syscalls},
		.ctl_sends = BIT(QS_CTL_READY),
		.ctl_receives = BIT(QS_CTL_SHUTDOWN) | BIT(QS_CTL_TENANTS) | BIT(QS_CTL_ACCEPTOR),
	},
	{
		.role = QS_ROLE_ACCEPTOR, ENTRY(acceptor_main), .count = QS_COUNT_ACCEPTORS,
		.start = 5, .reload = 5, .stop = 1, .reload_how = QS_RELOAD_GENERATION,
		.fds = QS_FD_CTL | QS_FD_UDP | QS_FD_CONFIG | QS_FD_PAGE | QS_FD_LIMITS, .umask0 = true, .hops = true,
		.huge_heap = true, /* thousands of connections' state at once in a storm */
		/* the network through its inherited UDP socket only; TLS session secrets: not
		 * dumpable; ZeroMQ's I/O thread */
		.sandbox = {.user = true, .chroot = true, .new_netns = false, .dumpable = false,
			    .families = QS_AF(AF_UNIX), .tsync = true, .syscalls = acceptor_syscalls},
		.ctl_sends = BIT(QS_CTL_READY) | BIT(QS_CTL_STATUS),
		.ctl_receives = BIT(QS_CTL_SHUTDOWN) | BIT(QS_CTL_DRAIN) | BIT(QS_CTL_PEER_RESTART) |
				BIT(QS_CTL_TENANTS),
	},
	{
		.role = QS_ROLE_METRICS, ENTRY(metrics_main), .count = QS_COUNT_METRICS,
		.start = 1, .reload = 1, .stop = 5, .reload_how = QS_RELOAD_RESTART,
		.fds = QS_FD_CTL | QS_FD_CONFIG | QS_FD_LISTEN | QS_FD_PAGES,
		/* reads the pages, holds neither key nor spool: no network of its own (its
		 * listening socket was made outside), not on the data path */
		.sandbox = {.user = true, .chroot = true, .new_netns = true, .dumpable = true,
			    .families = QS_AF(AF_UNIX), .tsync = false, .syscalls = metrics_syscalls},
		.ctl_sends = BIT(QS_CTL_READY),
		.ctl_receives = BIT(QS_CTL_SHUTDOWN),
	},
};

const unsigned qs_roles_n = sizeof(qs_roles) / sizeof(qs_roles[0]);

const struct qs_role_def *qs_role_def(enum qs_role role)
{
	for (unsigned i = 0; i < qs_roles_n; i++)
		if (qs_roles[i].role == role)
			return &qs_roles[i];
	return NULL;
}

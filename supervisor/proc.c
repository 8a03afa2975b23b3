#include "supervisor/proc.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics_page.h"
#include "common/sandbox.h"
#include "common/shared_limits.h"
#include "ipc/ctl.h"
#include "ipc/zsock.h"
#include "supervisor/metrics.h"
#include "supervisor/signers.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define HEALTHY_MS 30000

static void ctl_cb(evutil_socket_t fd, short what, void *arg);
static void restart_cb(evutil_socket_t fd, short what, void *arg);

static struct qs_procs *cb_procs; /* for the libevent callbacks (one table per process) */

/* How many slots of a role run. */
static unsigned role_slots(const struct qs_role_def *d, const struct qs_config *cfg, unsigned acceptors)
{
	switch (d->count) {
	case QS_COUNT_PARSERS: return cfg->parsers;
	case QS_COUNT_ACCEPTORS: return acceptors;
	case QS_COUNT_METRICS: return cfg->metrics_addr[0] ? 1 : 0;
	case QS_COUNT_ONE: break;
	}
	return 1;
}

/* Appends every slot of the roles of this start rank; returns the new count. */
static unsigned add_rank(struct qs_procs *p, unsigned n, unsigned rank, const struct qs_config *cfg,
			 const int *udp_fds)
{
	for (unsigned r = 0; r < qs_roles_n; r++) {
		const struct qs_role_def *d = &qs_roles[r];
		unsigned slots = d->start == rank ? role_slots(d, cfg, p->acceptors) : 0;
		for (unsigned s = 0; s < slots; s++)
			p->proc[n++] = (struct qs_proc){.role = d->role, .def = d, .slot = s, .key = s,
							 .udp_fd = d->fds & QS_FD_UDP ? udp_fds[s] : -1};
	}
	return n;
}

/* The entries' indices, roles in their reload order (slots in table order). */
static void order_reload(struct qs_procs *p)
{
	unsigned k = 0;
	for (unsigned rank = 1; rank <= qs_roles_n; rank++)
		for (unsigned i = 0; i < p->n; i++)
			if (p->proc[i].def->reload == rank)
				p->reload_order[k++] = i;
}

int qs_procs_init(struct qs_procs *p, const struct qs_config *cfg, unsigned acceptors, int argc,
		  char **argv, const int *udp_fds, struct event_base *base)
{
	p->acceptors = acceptors;
	p->n = 0;
	for (unsigned r = 0; r < qs_roles_n; r++) {
		p->n += role_slots(&qs_roles[r], cfg, acceptors);
		if (qs_roles[r].stop > p->stop_phases)
			p->stop_phases = qs_roles[r].stop;
	}
	p->proc = calloc(p->n, sizeof(*p->proc));
	p->reload_order = calloc(p->n, sizeof(*p->reload_order));
	if (!p->proc || !p->reload_order)
		return -1;
	p->argc = argc;
	p->argv = argv;
	p->config_fd = cfg->config_fd;
	p->base = base;
	cb_procs = p;
	unsigned n = 0;
	for (unsigned rank = 1; rank <= qs_roles_n; rank++)
		n = add_rank(p, n, rank, cfg, udp_fds);
	order_reload(p);
	for (unsigned i = 0; i < p->n; i++) {
		p->proc[i].ctl = -1;
		p->proc[i].old_ctl = -1;
		p->proc[i].old_udp_fd = -1;
		p->proc[i].backoff_ms = BACKOFF_MIN_MS;
		p->proc[i].restart_ev = evtimer_new(base, restart_cb, &p->proc[i]);
		p->proc[i].page_fd[0] = p->proc[i].page_fd[1] = -1;
	}
	p->listen_fd = p->sup_page_ro = p->limits_fd = -1;
	return 0;
}

/* In the child, between fork and exec: those of the control socket (fd 3),
 * the UDP or listening socket (fd 4), the configuration's sealed copy (fd 5)
 * and the metrics pages (fd 6 on) that its role takes (each moved high first,
 * so that none overwrites another), nothing else. */
static void place_fds(struct qs_procs *p, struct qs_proc *c, int ctl)
{
	static int src[QS_MP_DIR_MAX + 5], dst[QS_MP_DIR_MAX + 5], hi[QS_MP_DIR_MAX + 5];
	const uint32_t fds = c->def->fds;
	int n = 0, last = QS_CHILD_CTL_FD;
	src[n] = fds & QS_FD_CTL ? ctl : -1, dst[n++] = QS_CHILD_CTL_FD;
	src[n] = fds & QS_FD_UDP ? c->udp_fd : fds & QS_FD_LISTEN ? p->listen_fd : -1, dst[n++] = QS_CHILD_UDP_FD;
	src[n] = fds & QS_FD_CONFIG ? p->config_fd : -1, dst[n++] = QS_CHILD_CONFIG_FD;
	src[n] = fds & QS_FD_PAGE ? c->page_fd[c->lane] : fds & QS_FD_PAGES ? p->sup_page_ro : -1;
	dst[n++] = QS_CHILD_PAGE_FD;
	for (unsigned i = 0; (fds & QS_FD_PAGES) && i < p->npages_ro; i++)
		src[n] = p->pages_ro[i], dst[n] = QS_CHILD_PAGE_FD + n - 3, n++;
	if (fds & QS_FD_LIMITS) /* never with QS_FD_PAGES (test_roles): after the own page */
		src[n] = p->limits_fd, dst[n++] = QS_CHILD_LIMITS_FD;
	for (int i = 0; i < n; i++)
		if ((hi[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD, dst[n - 1] + 1) : -1) < 0 && src[i] >= 0)
			_exit(127);
	for (int i = 0; i < n; i++) {
		if (hi[i] < 0) {
			close(dst[i]); /* a hole: never another child's descriptor */
			continue;
		}
		if (dup2(hi[i], dst[i]) < 0)
			_exit(127);
		last = dst[i];
	}
	closefrom(last + 1);
}

/* In the child, between fork and exec: glibc's malloc on transparent huge
 * pages for a role whose heap grows by thousands of connections at once (the
 * acceptor in a connection storm, docs/PERFORMANCE.md "Round 21"): each new
 * 4 KiB page is a fault, and on a virtual machine a fault and its first touch
 * are dear. glibc reads the tunable at exec; an operator's own
 * glibc.malloc.hugetlb setting is kept. With THP off ("never") it does
 * nothing. */
static void huge_heap_env(void)
{
	static const char tunable[] = "glibc.malloc.hugetlb=1";
	const char *cur = getenv("GLIBC_TUNABLES");
	if (cur && strstr(cur, "glibc.malloc.hugetlb="))
		return;
	char v[1024];
	if (snprintf(v, sizeof(v), "%s%s%s", cur ? cur : "", cur && *cur ? ":" : "", tunable) < (int)sizeof(v))
		setenv("GLIBC_TUNABLES", v, 1);
}

/* In the child, between fork and exec: place the descriptors, scrub what a
 * child must not inherit, exec ourselves. */
static void exec_child(struct qs_procs *p, struct qs_proc *c, int ctl)
{
	place_fds(p, c, ctl);

	/* systemd's variables are the supervisor's alone. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");

	/* A role that binds its ipc:// sockets while still root and only then
	 * becomes the children's user (the acceptor): the socket files must stay
	 * connectable by that user. The runtime directory (0700, owned by that
	 * user) is what keeps everyone else out. */
	if (c->def->umask0)
		umask(0);
	if (c->def->huge_heap)
		huge_heap_env();

#ifdef QS_SANITIZE_BUILD
	/* LeakSanitizer's exit-time check stops the world with ptrace and reads
	 * /proc: a confined child's seccomp filter kills it for that. Confined
	 * children keep every other ASan/UBSan check; the test suite runs them
	 * unconfined (qs_sandbox_leak_check) to check their leaks too. */
	if (!qs_sandbox_leak_check()) {
		const char *asan = getenv("ASAN_OPTIONS");
		char opts[1024];
		snprintf(opts, sizeof(opts), "%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif

	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	char slot[16], gen[16], ctlfd[16], key[16], cfgfd[16];
	snprintf(cfgfd, sizeof(cfgfd), "%d", QS_CHILD_CONFIG_FD);
	snprintf(key, sizeof(key), "%u", c->key);
	snprintf(slot, sizeof(slot), "%u", c->slot);
	snprintf(gen, sizeof(gen), "%u", c->generation);
	snprintf(ctlfd, sizeof(ctlfd), "%d", QS_CHILD_CTL_FD);
	char **av = calloc((size_t)p->argc + 19, sizeof(char *));
	if (!av)
		_exit(127);
	int k = 0;
	for (int i = 0; i < p->argc; i++)
		av[k++] = p->argv[i];
	av[k++] = "--runtime-dir";
	av[k++] = p->runtime_dir;
	av[k++] = "--user";
	av[k++] = p->user;
	/* The effective count (the supervisor may have fallen back to one). */
	char nacc[16];
	snprintf(nacc, sizeof(nacc), "%u", p->acceptors);
	av[k++] = "--acceptors";
	av[k++] = nacc;
	av[k++] = "--role";
	av[k++] = (char *)qs_role_name(c->role);
	av[k++] = "--slot";
	av[k++] = slot;
	av[k++] = "--generation";
	av[k++] = gen;
	if (c->def->fds & QS_FD_CTL) {
		av[k++] = "--ctl-fd";
		av[k++] = ctlfd;
	}
	av[k++] = "--steer-key";
	av[k++] = key;
	if (p->config_fd >= 0 && (c->def->fds & QS_FD_CONFIG)) { /* the child parses this, never the --config path */
		av[k++] = "--sealed-config-fd";
		av[k++] = cfgfd;
	}
	av[k] = NULL;
	execv("/proc/self/exe", av);
	_exit(127);
}

int qs_proc_start(struct qs_procs *p, struct qs_proc *c)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		qs_err("socketpair: %s", strerror(errno));
		return -1;
	}
	c->generation++;
	qs_sup_metrics_queues(p, c); /* (what a send raced into its predecessor's end counted) */
	pid_t pid = fork();
	if (pid < 0) {
		qs_err("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		qs_signers_announce(p, c, getpid());
		exec_child(p, c, sv[1]);
	}
	close(sv[1]);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	c->pid = pid;
	c->ctl = sv[0];
	c->ready = false;
	c->starts++;
	c->started_ms = qs_now_ms();
	c->ctl_ev = event_new(p->base, c->ctl, EV_READ | EV_PERSIST, ctl_cb, c);
	event_add(c->ctl_ev, NULL);
	qs_debug("started %s %u (pid %d, generation %u)", qs_role_name(c->role), c->slot, (int)pid,
		 c->generation);
	qs_signers_changed(p, c);
	return 0;
}

int qs_proc_start_overlapping(struct qs_procs *p, struct qs_proc *c)
{
	if (c->old_pid)
		return -1; /* one overlap at a time */
	/* The old process is only asked to stop and reaped: nothing to listen to. */
	if (c->ctl_ev) {
		event_free(c->ctl_ev);
		c->ctl_ev = NULL;
	}
	c->old_pid = c->pid;
	c->old_ctl = c->ctl;
	c->old_lane = c->lane;
	c->lane ^= 1; /* its own metrics page: the old process still writes the other */
	c->pid = 0;
	c->ctl = -1;
	if (qs_proc_start(p, c) == 0)
		return 0;
	c->lane = c->old_lane;
	c->pid = c->old_pid; /* could not fork: keep the old one as the current */
	c->ctl = c->old_ctl;
	c->old_pid = 0;
	c->old_ctl = -1;
	c->ctl_ev = event_new(p->base, c->ctl, EV_READ | EV_PERSIST, ctl_cb, c);
	event_add(c->ctl_ev, NULL);
	return -1;
}

static void ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cb_procs->on_ctl(cb_procs, arg);
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_proc *c = arg;
	if (cb_procs->stopping || c->pid)
		return;
	if (qs_proc_start(cb_procs, c) < 0)
		qs_proc_schedule_restart(cb_procs, c);
}

void qs_proc_schedule_restart(struct qs_procs *p, struct qs_proc *c)
{
	(void)p;
	uint64_t lived = qs_now_ms() - c->started_ms;
	if (lived >= HEALTHY_MS)
		c->backoff_ms = BACKOFF_MIN_MS;
	struct timeval tv = {.tv_sec = c->backoff_ms / 1000, .tv_usec = (c->backoff_ms % 1000) * 1000};
	qs_warn("restarting %s %u in %u ms", qs_role_name(c->role), c->slot, c->backoff_ms);
	evtimer_add(c->restart_ev, &tv);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

struct qs_proc *qs_procs_find_pid(struct qs_procs *p, pid_t pid)
{
	for (unsigned i = 0; i < p->n; i++)
		if (p->proc[i].pid == pid || p->proc[i].old_pid == pid)
			return &p->proc[i];
	return NULL;
}

_Static_assert(QS_SL_COLUMNS == QS_ACCEPTOR_CHANNELS_MAX, "a column per steering key");

int qs_procs_limits_init(struct qs_procs *p)
{
	if ((p->limits_fd = qs_sl_create()) < 0 || !(p->limits = qs_sl_map(p->limits_fd))) {
		qs_err("the tenants' shared limits: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* An acceptor's connections ended with it: its column of the tenants' open
 * counts goes back to 0 (a write only; the region's values are not read). A
 * reload's old one had the other bank's key. */
static void gone_limits(struct qs_procs *p, const struct qs_proc *c, bool old)
{
	if (!p->limits || !(c->def->fds & QS_FD_LIMITS))
		return;
	qs_sl_clear_column(p->limits, old ? (c->key + QS_KEY_BANK) % QS_ACCEPTOR_CHANNELS_MAX : c->key);
}

void qs_procs_reap(struct qs_procs *p)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct qs_proc *c = qs_procs_find_pid(p, pid);
		if (!c)
			continue;
		if (c->old_pid == pid) {
			close(c->old_ctl);
			c->old_ctl = -1;
			c->old_pid = 0;
			if (c->page[c->old_lane]) /* its gauges described it; its counters stay */
				qs_mp_clear_gauges(c->page[c->old_lane]);
			gone_limits(p, c, true);
			qs_sup_metrics_queues(p, c);
			qs_signers_changed(p, c);
			p->on_old_exit(p, c, status);
			continue;
		}
		c->pid = 0;
		c->ready = false;
		if (c->page[c->lane])
			qs_mp_clear_gauges(c->page[c->lane]);
		gone_limits(p, c, false);
		qs_sup_metrics_queues(p, c);
		if (c->ctl_ev) {
			event_free(c->ctl_ev);
			c->ctl_ev = NULL;
		}
		close(c->ctl);
		c->ctl = -1;
		qs_signers_changed(p, c);
		p->on_exit(p, c, status);
	}
}

void qs_proc_ask_stop(struct qs_proc *c)
{
	struct qs_ctl_hdr m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_SHUTDOWN, NULL);
	if (c->pid && qs_ctl_send(c->ctl, &m, sizeof(m)) != 0)
		kill(c->pid, SIGTERM);
	qs_proc_ask_old_stop(c);
}

static void ask_old(struct qs_proc *c, uint32_t type)
{
	struct qs_ctl_hdr m;
	qs_ctl_init(&m, sizeof(m), type, NULL);
	if (c->old_pid && qs_ctl_send(c->old_ctl, &m, sizeof(m)) != 0)
		kill(c->old_pid, SIGTERM);
}

void qs_proc_ask_old_stop(struct qs_proc *c)
{
	ask_old(c, QS_CTL_SHUTDOWN);
}

void qs_proc_ask_old_drain(struct qs_proc *c)
{
	ask_old(c, QS_CTL_DRAIN);
}

void qs_proc_kill(struct qs_proc *c)
{
	if (c->ctl_ev)
		event_del(c->ctl_ev); /* nothing more from it is read */
	if (c->pid)
		kill(c->pid, SIGKILL);
}

unsigned qs_procs_running(const struct qs_procs *p, int role)
{
	unsigned n = 0;
	for (unsigned i = 0; i < p->n; i++)
		if (role < 0 || (int)p->proc[i].role == role)
			n += (p->proc[i].pid != 0) + (p->proc[i].old_pid != 0);
	return n;
}

unsigned qs_procs_running_in_phase(const struct qs_procs *p, unsigned phase)
{
	unsigned n = 0;
	for (unsigned i = 0; i < p->n; i++)
		if (p->proc[i].def->stop == phase)
			n += (p->proc[i].pid != 0) + (p->proc[i].old_pid != 0);
	return n;
}

unsigned qs_procs_count(const struct qs_procs *p, enum qs_role role)
{
	unsigned n = 0;
	for (unsigned i = 0; i < p->n; i++)
		n += p->proc[i].role == role;
	return n;
}

bool qs_procs_all_ready(const struct qs_procs *p)
{
	for (unsigned i = 0; i < p->n; i++)
		if (!p->proc[i].ready)
			return false;
	return true;
}

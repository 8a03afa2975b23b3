/* The supervisor: prepares what needs privileges or must outlive children
 * (certificates, UDP sockets, the runtime directory), starts every child,
 * restarts those that die, tells acceptors when the pipeline behind them was
 * restarted, and stops everything in order. It never creates a ZeroMQ context. */
#include "common/evbase.h"
#include "supervisor/supervisor.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/spool_lock.h"
#include "ipc/ctl.h"
#include "ipc/zsock.h"
#include "supervisor/certgen.h"
#include "supervisor/control.h"
#include "supervisor/metrics.h"
#include "supervisor/privs.h"
#include "supervisor/proc.h"
#include "supervisor/reload.h"
#include "supervisor/resolve.h"
#include "supervisor/rundir.h"
#include "supervisor/secret.h"
#include "supervisor/sockets.h"
#include "supervisor/status.h"

#define STOP_PHASE_TIMEOUT_S 15

struct sup {
	const struct qs_config *cfg;
	struct qs_procs procs;
	struct event_base *base;
	struct event *phase_timer;
	struct event *watchdog;
	unsigned stop_phase; /* 0 running; 1..procs.stop_phases: stopping the roles of that stop rank */
	bool notified_ready;
	bool clean;     /* every child stopped with status 0 */
	unsigned restarts;
};

static struct sup S;

/* A role that holds frames (a parser, the shipper) is gone and the frames it
 * held with it, so the acceptors (the roles that receive QS_CTL_PEER_RESTART)
 * must re-send what is unresolved. Every acceptor, the previous generation's
 * too while a reload overlaps them: those still wait for the answers their
 * clients are draining for. Not when it stopped cleanly and its role hands
 * over (the shipper: it answered what it took and left the rest with the
 * parsers, docs/ARCHITECTURE.md "Planned operations"): a resend then stores
 * every frame still on its way through the others twice (issue 25). (Nor
 * after a keyholder's restart: it holds no frames.) */
static void tell_acceptors_peer_restart(const struct qs_proc *c)
{
	if (!c->def->holds_frames)
		return;
	struct qs_ctl_peer m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_PEER_RESTART, NULL);
	m.role = c->role;
	m.slot = c->slot;
	m.generation = c->generation;
	for (unsigned i = 0; i < S.procs.n; i++) {
		struct qs_proc *a = &S.procs.proc[i];
		if (!(a->def->ctl_receives & QS_CTL_BIT(QS_CTL_PEER_RESTART)))
			continue;
		if (a->pid)
			qs_ctl_send(a->ctl, &m, sizeof(m));
		if (a->old_pid)
			qs_ctl_send(a->old_ctl, &m, sizeof(m));
	}
}

/* Tells the roles that connect to the acceptors' channels (the receivers of
 * QS_CTL_ACCEPTOR: parsers, shipper) that the acceptor with steering key
 * key serves now, or is gone for good. Serving: they connect at once instead
 * of at their next retry, which backs off to 1 s so that the channels
 * without an acceptor (half of them) cost an idle server few wake-ups. */
static void tell_acceptor_channel(unsigned key, bool serving)
{
	struct qs_ctl_acceptor m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_ACCEPTOR, NULL);
	m.channel = qs_acceptor_channel(key, S.procs.acceptors);
	m.serving = serving;
	for (unsigned i = 0; i < S.procs.n; i++) {
		struct qs_proc *r = &S.procs.proc[i];
		if (!(r->def->ctl_receives & QS_CTL_BIT(QS_CTL_ACCEPTOR)))
			continue;
		/* Not now (its socket is full): it finds the acceptor at its next retry
		 * (<= 1 s). Gone: its successor connects to every channel at start. */
		if (r->pid && qs_ctl_send(r->ctl, &m, sizeof(m)) == 1)
			qs_warn("%s %u did not take the news of acceptor channel %u (it retries within 1 s)",
				qs_role_name(r->role), r->slot, m.channel);
		if (r->old_pid)
			qs_ctl_send(r->old_ctl, &m, sizeof(m));
	}
}

void qs_supervisor_child_ready(struct qs_proc *c)
{
	if (c->role == QS_ROLE_ACCEPTOR)
		tell_acceptor_channel(c->key, true);
	c->ready = true;
	/* A restart after a death: the old process's frames are lost. After a
	 * clean exit (a reload's restart) nothing was lost. A reload's
	 * replacement that runs beside its predecessor (parsers) waits for that
	 * one to exit (on_old_exit): until then it still answers its frames. */
	if (c->ever_ready && !c->old_pid && c->lost_frames)
		tell_acceptors_peer_restart(c);
	c->lost_frames = false;
	c->ever_ready = true;
	if (!S.notified_ready && qs_procs_all_ready(&S.procs)) {
		S.notified_ready = true;
		qs_info("ready: %u acceptors, %u parsers, 1 shipper", qs_procs_count(&S.procs, QS_ROLE_ACCEPTOR),
			S.cfg->parsers);
		sd_notify(0, "READY=1");
	}
	qs_reload_child_ready(c);
	qs_sup_metrics_ready(&S.procs);
	qs_status_notify();
}

static void describe_exit(const struct qs_proc *c, int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		snprintf(buf, len, "was killed by its seccomp filter (forbidden system call)");
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended (status 0x%x)", status);
	(void)c;
}

static void advance_stop(void);

/* Exited with status 0 when asked to (a reload's stop): it finished what it held. */
static bool exited_clean(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* It was asked to stop and did so cleanly, and its role leaves nothing behind then. */
static bool handed_over(const struct qs_proc *c, bool asked, int status)
{
	return asked && c->def->hands_over && exited_clean(status);
}

static void on_exit_child(struct qs_procs *p, struct qs_proc *c, int status)
{
	char how[128];
	describe_exit(c, status, how, sizeof(how));
	qs_status_gone(c);
	qs_sup_metrics_ready(p);
	if (p->stopping) {
		if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			S.clean = false;
			qs_warn("%s %u %s while stopping", qs_role_name(c->role), c->slot, how);
		}
		advance_stop();
		return;
	}
	bool asked = c->replacing;
	c->lost_frames = !handed_over(c, asked, status);
	if (qs_reload_child_exited(c)) {
		qs_info("%s %u stopped for reload (%s); started again", qs_role_name(c->role), c->slot, how);
		return;
	}
	S.restarts++;
	qs_sup_metrics_restart(c->role);
	qs_warn("%s %u %s", qs_role_name(c->role), c->slot, how);
	qs_proc_schedule_restart(p, c);
	qs_status_notify();
}

/* The previous process of a reloaded entry finished (reload overlap). */
static void on_old_exit(struct qs_procs *p, struct qs_proc *c, int status)
{
	char how[128];
	describe_exit(c, status, how, sizeof(how));
	qs_sup_metrics_ready(p);
	if (p->stopping) {
		if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			S.clean = false;
		advance_stop();
		return;
	}
	qs_info("previous %s %u %s after its replacement took over", qs_role_name(c->role), c->slot, how);
	if (c->role == QS_ROLE_ACCEPTOR) /* (before the reload can end and another start on its channel) */
		tell_acceptor_channel((c->key + QS_KEY_BANK) % (QS_ACCEPTOR_BANKS * QS_KEY_BANK), false);
	qs_reload_old_exited(c);
	if (c->old_udp_fd >= 0) { /* its socket leaves the steering map as it closes */
		close(c->old_udp_fd);
		c->old_udp_fd = -1;
	}
	/* Frames queued to it are gone with it (unless it handed them over): the
	 * acceptors re-send. */
	if (!handed_over(c, true, status))
		tell_acceptors_peer_restart(c);
}

/* Stops one phase at a time, in the role table's stop order, upstream
 * first: acceptors finish answering their clients while parsers and the
 * shipper still run, then parsers, then the shipper (which commits and
 * acknowledges what it holds), then the keyholder. */
/* Asks every process of the phase's roles to stop and arms the phase's deadline. */
static void start_phase(unsigned phase)
{
	S.stop_phase = phase;
	for (unsigned i = 0; i < S.procs.n; i++) {
		struct qs_proc *c = &S.procs.proc[i];
		if ((c->pid || c->old_pid) && c->def->stop == phase)
			qs_proc_ask_stop(c);
	}
	struct timeval tv = {STOP_PHASE_TIMEOUT_S, 0};
	evtimer_add(S.phase_timer, &tv);
}

static void advance_stop(void)
{
	const unsigned last = S.procs.stop_phases;
	while (S.stop_phase >= 1 && S.stop_phase <= last && qs_procs_running_in_phase(&S.procs, S.stop_phase) == 0) {
		if (S.stop_phase == last) {
			S.stop_phase++;
			break;
		}
		start_phase(S.stop_phase + 1);
	}
	if (S.stop_phase > last)
		event_base_loopexit(S.base, NULL);
}

static void begin_stop(void)
{
	if (S.procs.stopping)
		return;
	qs_info("stopping");
	sd_notify(0, "STOPPING=1");
	S.procs.stopping = true;
	for (unsigned i = 0; i < S.procs.n; i++)
		evtimer_del(S.procs.proc[i].restart_ev);
	start_phase(1);
	advance_stop(); /* skips phases with nothing running */
}

static void phase_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	for (unsigned i = 0; i < S.procs.n; i++) {
		struct qs_proc *c = &S.procs.proc[i];
		if ((c->pid || c->old_pid) && c->def->stop == S.stop_phase) {
			qs_warn("%s %u did not stop in %d s: killing it", qs_role_name(c->role), c->slot,
				STOP_PHASE_TIMEOUT_S);
			if (c->pid)
				kill(c->pid, SIGKILL);
			if (c->old_pid)
				kill(c->old_pid, SIGKILL);
		}
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	if (sig == SIGCHLD)
		qs_procs_reap(&S.procs);
	else if (sig == SIGHUP)
		qs_reload_request();
	else
		begin_stop();
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	/* Only claim health while every child is serving. */
	if (qs_procs_all_ready(&S.procs))
		sd_notify(0, "WATCHDOG=1");
}

static void start_watchdog(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	S.watchdog = event_new(S.base, -1, EV_PERSIST, on_watchdog, NULL);
	struct timeval tv = {.tv_sec = (time_t)(usec / 2 / 1000000), .tv_usec = (suseconds_t)(usec / 2 % 1000000)};
	event_add(S.watchdog, &tv);
}

static int add_signals(void)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct event *ev = evsignal_new(S.base, sigs[i], on_signal, NULL);
		if (!ev || event_add(ev, NULL) != 0)
			return -1;
	}
	return 0;
}

int supervisor_main(const struct qs_config *cfg, int argc, char **argv)
{
	static int udp_fds[QS_MAX_ACCEPTORS];
	S.cfg = cfg;
	S.clean = true;
	umask(027);
	/* First: a second instance on this spool must change nothing (it used to
	 * join the first one's UDP port and stall its clients). Held until exit. */
	char who[340], why[600];
	snprintf(who, sizeof(who), "quicstashd (udp %s)", cfg->server_addr_text);
	if (qs_spool_lock(cfg->spool_dir, who, why, sizeof(why)) < 0) {
		qs_err("%s: not starting", why);
		return 1;
	}
	if (qs_output_tls_check(cfg) < 0 || qs_cert_ensure(cfg->cert_path, cfg->key_path) < 0 ||
	    qs_secret_ensure(cfg->secret_path) < 0)
		return 1;
	unsigned acceptors = cfg->acceptors;
	int urc = qs_udp_open(cfg, udp_fds, acceptors);
	if (urc < 0)
		return 1;
	if (urc > 0) {
		qs_warn("connection-ID steering is unavailable: running 1 acceptor instead of %u", acceptors);
		acceptors = 1;
	}
	char rundir[4096];
	bool made_rundir = false;
	if (qs_rundir_prepare(cfg->runtime_dir, rundir, sizeof(rundir), &made_rundir) < 0)
		return 1;
	S.base = qs_event_base_new();
	if (!S.base || add_signals() < 0) {
		qs_err("cannot set up the event loop");
		return 1;
	}
	S.phase_timer = evtimer_new(S.base, phase_timeout, NULL);
	if (qs_procs_init(&S.procs, cfg, acceptors, argc, argv, udp_fds, S.base) < 0 ||
	    qs_sup_metrics_init(&S.procs, cfg) < 0 || qs_procs_limits_init(&S.procs) < 0)
		return 1;
	snprintf(S.procs.runtime_dir, sizeof(S.procs.runtime_dir), "%s", rundir);
	qs_child_user(cfg, S.procs.user, sizeof(S.procs.user));
	if (qs_own_dir(rundir, S.procs.user, 0) < 0 || qs_own_dir(cfg->spool_dir, S.procs.user, 1) < 0)
		return 1;
	qs_supervisor_drop_caps();
	S.procs.on_ctl = qs_control_read;
	S.procs.on_exit = on_exit_child;
	S.procs.on_old_exit = on_old_exit;
	qs_reload_init(&S.procs, cfg, S.base);
	if (qs_status_init(cfg, &S.procs, S.base, &S.restarts) < 0 || qs_resolve_init(cfg, &S.procs, S.base) < 0)
		return 1;
	qs_info("quicstashd %s starting: udp %s, output %s, spool %s", QS_VERSION, cfg->server_addr_text,
		cfg->logstash_text, cfg->spool_dir);
	for (unsigned i = 0; i < S.procs.n; i++)
		if (qs_proc_start(&S.procs, &S.procs.proc[i]) < 0)
			qs_proc_schedule_restart(&S.procs, &S.procs.proc[i]);
	start_watchdog();
	event_base_dispatch(S.base);
	qs_status_free();
	qs_resolve_free();
	qs_procs_reap(&S.procs);
	qs_rundir_cleanup(rundir, made_rundir);
	qs_info("stopped%s", S.clean ? "" : " (some children did not stop cleanly)");
	return S.clean ? 0 : 1;
}

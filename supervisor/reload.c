#include "supervisor/reload.h"

#include <event2/event.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "common/options.h"
#include "ipc/ctl.h"
#include "supervisor/certgen.h"
#include "supervisor/metrics.h"
#include "supervisor/proc.h"
#include "supervisor/resolve.h"
#include "supervisor/secret.h"
#include "supervisor/sockets.h"
#include "supervisor/status.h"
#include "supervisor/steer.h"
#include "supervisor/tenant_reload.h"
#include "ipc/zsock.h"

#define STEP_TIMEOUT_S 30

static struct {
	struct qs_procs *procs;
	const struct qs_config *running; /* the configuration at start: what cannot change */
	struct event *step_timer;
	bool active;
	bool again;       /* another SIGHUP came during a reload */
	bool overlapping; /* the step's new process runs beside the old one */
	bool in_place;    /* only the tenants changed: the roles taking QS_CTL_TENANTS keep running */
	unsigned bank;    /* steering key bank of the running acceptor generation */
	unsigned gen_waiting; /* new acceptors not yet ready (0: no generation switch under way) */
	unsigned old_waiting; /* old acceptors still draining after the switch */
	unsigned step;
	unsigned generation;
} R;

static void step_timeout(evutil_socket_t fd, short what, void *arg);

/* The entry replaced at a step: steps follow the role table's reload order. */
static struct qs_proc *at(unsigned step)
{
	return &R.procs->proc[R.procs->reload_order[step]];
}

/* Its role is replaced a generation at a time (the acceptors, with steering). */
static bool by_generation(const struct qs_proc *c)
{
	return c->def->reload_how == QS_RELOAD_GENERATION;
}

void qs_reload_init(struct qs_procs *p, const struct qs_config *running, struct event_base *base)
{
	R.procs = p;
	R.running = running;
	R.step_timer = evtimer_new(base, step_timeout, NULL);
	qs_tenant_reload_applied(running);
}

bool qs_reload_active(void)
{
	return R.active;
}

/* What the supervisor set up once at start (the UDP sockets, the spool and
 * runtime directories it made for the children's user before it dropped its
 * privileges, its table of children) cannot change on a reload: the option
 * table marks those options QS_SCOPE_RESTART, and a reload changing one is
 * refused with its name. The rest is applied in full: each child is started
 * again with the new text, and the supervisor's own parts (status, Logstash
 * names, log level) are reconfigured. */
static bool check(const struct qs_config *cfg)
{
	char why[256];
	if (qs_options_restart_needed(R.running, cfg, why, sizeof(why))) {
		qs_err("reload: %s; the running generation stays", why);
		return false;
	}
	if (qs_cert_check(cfg->cert_path, cfg->key_path) < 0) {
		qs_err("reload: the certificate or key is unusable; the running generation stays");
		return false;
	}
	if (qs_secret_ensure(cfg->secret_path) < 0) {
		qs_err("reload: the secret is unusable; the running generation stays");
		return false;
	}
	if (qs_output_tls_check(cfg) < 0) {
		qs_err("reload: the Logstash TLS files are unusable; the running generation stays");
		return false;
	}
	return true;
}

/* Only the tenants changed: the acceptors and parsers take the new copy in
 * place (supervisor/tenant_reload.c), keeping every connection whose
 * credential stays; the log says what changed. */
static void decide_in_place(const struct qs_config *cfg, int old_fd)
{
	char why[128], what[256];
	R.in_place = old_fd >= 0 && cfg->config_fd >= 0 && qs_tenant_reload_in_place(cfg, why, sizeof(why));
	if (R.in_place) {
		qs_tenant_reload_summary(old_fd, cfg->config_fd, cfg->tenants_path, what, sizeof(what));
		qs_info("reload %u: tenants applied in place: %s", R.generation + 1, what);
	} else if (cfg->tenants_path[0]) {
		qs_info("reload %u: %s: replacing every child", R.generation + 1, why);
	}
	qs_tenant_reload_applied(cfg);
}

/* Reads the file once: what passes is what every child started from now on
 * runs (its sealed copy replaces the previous one); what fails changes nothing. */
static bool validate(void)
{
	static struct qs_config cfg;
	/* Prints its own one-line reason (FILE:LINE) on a bad value. */
	if (qs_config_parse(R.procs->argc, R.procs->argv, &cfg) != QS_CONFIG_OK) {
		qs_err("reload: the configuration is invalid; the running generation stays");
		return false;
	}
	if (!check(&cfg)) {
		if (cfg.config_fd >= 0)
			close(cfg.config_fd);
		return false;
	}
	decide_in_place(&cfg, R.procs->config_fd);
	if (R.procs->config_fd >= 0)
		close(R.procs->config_fd);
	R.procs->config_fd = cfg.config_fd;
	qs_log_init(qs_role_name(QS_ROLE_SUPERVISOR), cfg.debug);
	qs_log_set_json(cfg.log_format == QS_LOG_FMT_JSON);
	qs_status_configure(&cfg);
	qs_resolve_configure(&cfg);
	return true;
}

static void finish(void)
{
	evtimer_del(R.step_timer);
	R.active = false;
	qs_info("reload %u complete", R.generation);
	sd_notify(0, "READY=1\nSTATUS=reloaded");
	if (R.again) {
		R.again = false;
		qs_reload_request();
	}
}

/* Starts the next acceptor generation beside the running one: for each slot a
 * new socket at the other bank's key and a new acceptor on it. Returns false
 * (nothing changed) when that cannot be done: then acceptors are replaced in
 * place, one at a time. */
static bool start_acceptor_generation(void)
{
	struct qs_steer *st = qs_steer_main();
	char err[256];
	if (!st)
		return false;
	unsigned bank = 1 - R.bank, started = 0;
	for (unsigned i = R.step; i < R.procs->n; i++) {
		struct qs_proc *c = at(i);
		if (!by_generation(c) || !c->pid || c->old_pid)
			continue;
		int fd = qs_udp_bind_like(c->udp_fd);
		unsigned key = bank * QS_KEY_BANK + c->slot;
		if (fd < 0 || qs_steer_set_socket(st, key, fd, err, sizeof(err)) < 0) {
			if (fd >= 0) {
				qs_err("reload: steering key %u: %s", key, err);
				close(fd);
			}
			if (started == 0)
				return false;
			continue; /* this slot keeps its old acceptor */
		}
		int old_fd = c->udp_fd;
		unsigned old_key = c->key;
		c->udp_fd = fd;
		c->key = key;
		if (qs_proc_start_overlapping(R.procs, c) < 0) {
			c->udp_fd = old_fd;
			c->key = old_key;
			close(fd);
			continue;
		}
		c->old_udp_fd = old_fd;
		started++;
	}
	if (started == 0)
		return false;
	R.gen_waiting = started;
	qs_info("reload %u: %u acceptor(s) of the next generation starting (steering keys %u..)", R.generation,
		started, bank * QS_KEY_BANK);
	return true;
}

/* Every new acceptor serves: new connections go to them; the old ones drain. */
static void switch_acceptor_generation(void)
{
	char err[256];
	unsigned bank = 1 - R.bank;
	R.gen_waiting = 0;
	if (qs_steer_set_current(qs_steer_main(), bank * QS_KEY_BANK, R.procs->acceptors, err, sizeof(err)) < 0)
		qs_err("reload: cannot switch new connections to the new acceptors: %s", err);
	R.bank = bank;
	R.old_waiting = 0;
	for (unsigned i = 0; i < R.procs->n; i++) {
		struct qs_proc *c = &R.procs->proc[i];
		if (by_generation(c) && c->old_pid) {
			qs_proc_ask_old_drain(c); /* go-away to its clients now, finish, exit */
			R.old_waiting++;
		}
	}
	/* The new generation serves: systemd may consider the reload done. The
	 * log says "complete" once the old generation is gone. */
	sd_notify(0, "READY=1\nSTATUS=new acceptor generation serving");
	struct timeval tv = {STEP_TIMEOUT_S, 0};
	evtimer_add(R.step_timer, &tv);
	if (R.old_waiting == 0)
		finish();
}

/* Stops the child at R.step (or finishes); it is restarted when it exits. */
static void run_step(void)
{
	/* not running (crash backoff): its restart picks up the new config; in
	 * place: it took the new tenants already */
	while (R.step < R.procs->n && (!at(R.step)->pid || (R.in_place && qs_tenant_reload_takes(at(R.step)))))
		R.step++;
	if (R.step >= R.procs->n) {
		finish();
		return;
	}
	struct qs_proc *c = at(R.step);
	struct timeval tv = {STEP_TIMEOUT_S, 0};
	evtimer_add(R.step_timer, &tv);
	if (by_generation(c) && start_acceptor_generation())
		return;
	/* Parsers bind nothing, and a new keyholder renames its socket over the
	 * old one's, so two of one slot can run at once: the new one serves
	 * before the old one is asked to stop (a handshake never finds no
	 * keyholder). The others own something only one process may hold (the
	 * spool, an acceptor's ipc endpoints): stop first, then start. */
	if (c->def->reload_how == QS_RELOAD_OVERLAP && qs_proc_start_overlapping(R.procs, c) == 0) {
		R.overlapping = true;
		return;
	}
	c->replacing = true;
	c->planned = true;
	qs_proc_ask_stop(c);
}

static void next_step(void)
{
	R.step++;
	run_step();
}

static void step_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (R.gen_waiting) {
		qs_warn("reload: %u new acceptor(s) not ready after %d s; switching anyway", R.gen_waiting,
			STEP_TIMEOUT_S);
		switch_acceptor_generation();
		return;
	}
	if (R.old_waiting) {
		qs_warn("reload: %u old acceptor(s) still draining after %d s: killing them", R.old_waiting,
			STEP_TIMEOUT_S);
		for (unsigned i = 0; i < R.procs->n; i++)
			if (by_generation(&R.procs->proc[i]) && R.procs->proc[i].old_pid)
				kill(R.procs->proc[i].old_pid, SIGKILL);
		return; /* their exits finish the reload */
	}
	struct qs_proc *c = at(R.step);
	qs_warn("reload: %s %u not ready after %d s; going on", qs_role_name(c->role), c->slot, STEP_TIMEOUT_S);
	c->planned = false;
	qs_sup_metrics_ready(R.procs);
	if (c->replacing && c->pid)
		kill(c->pid, SIGKILL);
	if (R.overlapping) {
		R.overlapping = false;
		qs_proc_ask_old_stop(c);
	}
	next_step();
}

void qs_reload_request(void)
{
	if (R.procs->stopping)
		return;
	if (R.active) {
		R.again = true;
		return;
	}
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)(qs_now_ns() / 1000));
	if (!validate()) {
		sd_notify(0, "READY=1\nSTATUS=reload refused: bad configuration or certificate");
		qs_mp_add(QS_M_RELOADS_REFUSED, 1);
		return;
	}
	qs_mp_add(QS_M_RELOADS, 1);
	R.active = true;
	R.generation++;
	R.step = 0;
	if (R.in_place) {
		unsigned n = qs_tenant_reload_send(R.procs, R.procs->config_fd);
		qs_info("reload %u: %u acceptor(s) and parser(s) took the new tenants; replacing the other children",
			R.generation, n);
	} else {
		qs_info("reload %u: replacing children one at a time", R.generation);
	}
	run_step();
}

void qs_reload_child_ready(struct qs_proc *c)
{
	if (R.active && R.gen_waiting && by_generation(c) && c->old_pid) {
		if (--R.gen_waiting == 0) {
			evtimer_del(R.step_timer);
			switch_acceptor_generation();
		}
		return;
	}
	if (R.active && R.step < R.procs->n && c == at(R.step) && !c->replacing) {
		evtimer_del(R.step_timer);
		c->planned = false;
		if (R.overlapping) {
			R.overlapping = false;
			qs_proc_ask_old_stop(c); /* the new one serves: the old one finishes */
		}
		next_step();
	}
}

bool qs_reload_child_exited(struct qs_proc *c)
{
	if (!c->replacing)
		return false;
	c->replacing = false;
	if (R.procs->stopping) {
		evtimer_del(R.step_timer);
		R.active = false;
		return false;
	}
	if (qs_proc_start(R.procs, c) < 0)
		qs_proc_schedule_restart(R.procs, c);
	return true;
}

void qs_reload_old_exited(struct qs_proc *c)
{
	if (R.active && R.old_waiting && by_generation(c) && --R.old_waiting == 0)
		finish();
}

#include "common/evbase.h"
#include "ipc/runtime.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "common/config.h"
#include "common/config_file.h"
#include "common/log.h"
#include "common/tenants.h"

#define SUP QS_CTL_FROM(QS_ROLE_SUPERVISOR)

static void stop_once(struct qs_runtime *rt, bool urgent, const char *why)
{
	if (rt->stop_called && !urgent)
		return;
	rt->stop_called = true;
	rt->on_stop(rt->arg, urgent, why);
}

static int on_shutdown(void *ctx, const void *msg)
{
	(void)msg;
	stop_once(ctx, false, "shutdown requested");
	return 0;
}

static int to_role(void *ctx, const void *msg)
{
	struct qs_runtime *rt = ctx;
	qs_runtime_msg_fn fn = rt->on_msg[((const struct qs_ctl_hdr *)msg)->type];
	return fn ? fn(rt->arg, msg) : -1;
}

/* Every control message a child takes, all from the supervisor alone (the
 * only process at the other end of its control socket). */
const struct qs_ctl_rule qs_child_accepts[] = {
	QS_CTL_RULE(QS_CTL_SHUTDOWN, struct qs_ctl_hdr, SUP, on_shutdown),
	QS_CTL_RULE(QS_CTL_DRAIN, struct qs_ctl_hdr, SUP, to_role),
	QS_CTL_RULE(QS_CTL_PEER_RESTART, struct qs_ctl_peer, SUP, to_role),
	QS_CTL_RULE(QS_CTL_RESOLVED, struct qs_ctl_resolved, SUP, to_role),
	QS_CTL_RULE(QS_CTL_TENANTS, struct qs_ctl_fd, SUP, to_role),
	QS_CTL_RULE(QS_CTL_ACCEPTOR, struct qs_ctl_acceptor, SUP, to_role),
	QS_CTL_RULE(QS_CTL_SIGNERS, struct qs_ctl_signers, SUP, to_role),
};
const size_t qs_child_accepts_n = sizeof(qs_child_accepts) / sizeof(qs_child_accepts[0]);

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct qs_runtime *rt = arg;
	static const struct qs_ctl_hdr supervisor = {.role = QS_ROLE_SUPERVISOR};
	union qs_ctl_any m;
	ssize_t n;
	const char *why;
	while ((n = qs_ctl_recv((int)fd, &m)) > 0) {
		if (qs_ctl_dispatch(qs_child_accepts, qs_child_accepts_n, &supervisor, &m, (size_t)n, rt, &why) != 0) {
			rt->refused++;
			qs_warn("control message %s (%zd bytes) refused: %s", qs_ctl_name(m.h.type), n, why);
		}
		qs_ctl_release(&m, (size_t)n); /* a handler reads a descriptor it was given, never keeps it */
	}
	if (n < 0) {
		qs_warn("control socket closed: the supervisor is gone, exiting");
		event_del(rt->ctl_ev);
		stop_once(rt, true, "supervisor gone");
	}
}

void qs_runtime_poll_ctl(struct qs_runtime *rt)
{
	if (rt->ctl_ev)
		on_ctl(rt->ctl_fd, EV_READ, rt);
}

static void on_log_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	qs_log_tick();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	qs_info("signal %d: stopping", (int)sig);
	stop_once(arg, false, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

int qs_runtime_init(struct qs_runtime *rt, const struct qs_config *cfg, qs_runtime_stop_fn on_stop, void *arg)
{
	memset(rt, 0, sizeof(*rt));
	rt->cfg = cfg;
	rt->ctl_fd = cfg->ctl_fd;
	rt->on_stop = on_stop;
	rt->arg = arg;
	/* Die with the supervisor even if it is killed without a chance to tell us. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	rt->base = qs_event_base_new();
	if (!rt->base) {
		qs_err("cannot create the event loop");
		return -1;
	}
	rt->sig_ev[0] = evsignal_new(rt->base, SIGTERM, on_signal, rt);
	rt->sig_ev[1] = evsignal_new(rt->base, SIGINT, on_signal, rt);
	for (int i = 0; i < 2; i++)
		if (!rt->sig_ev[i] || event_add(rt->sig_ev[i], NULL) != 0)
			return -1;
	static const struct timeval second = {1, 0};
	rt->log_ev = event_new(rt->base, -1, EV_PERSIST, on_log_tick, NULL);
	if (rt->log_ev)
		event_add(rt->log_ev, &second);
	if (rt->ctl_fd >= 0) {
		rt->ctl_ev = event_new(rt->base, rt->ctl_fd, EV_READ | EV_PERSIST, on_ctl, rt);
		if (!rt->ctl_ev || event_add(rt->ctl_ev, NULL) != 0)
			return -1;
	}
	return 0;
}

void qs_runtime_on(struct qs_runtime *rt, enum qs_ctl_type type, qs_runtime_msg_fn fn)
{
	if (type >= QS_CTL_READY && type <= QS_CTL_LAST)
		rt->on_msg[type] = fn;
}

struct qs_tenants *qs_runtime_take_tenants(struct qs_runtime *rt, const void *msg)
{
	const struct qs_ctl_fd *m = msg;
	if (m->fd < 0 || !rt->cfg->tenants) {
		qs_err("reload: tenants to apply in place, but %s", m->fd < 0 ? "no copy came with them"
									     : "this process runs without tenants");
		return NULL;
	}
	struct qs_tenants *ts = qs_config_handed_tenants(m->fd, rt->cfg->tenants_path);
	if (!ts)
		return NULL;
	/* The one place the configuration changes after start: the role's own
	 * (non-const) copy, which roles/main.c parsed and the role reads only. */
	struct qs_config *cfg = (struct qs_config *)rt->cfg;
	struct qs_tenants *old = cfg->tenants;
	cfg->tenants = ts;
	return old;
}

#ifdef QS_TEST_HOOKS
/* The hook's kind if QS_TEST_CTL_FORBIDDEN (ROLE or ROLE:KIND) names this
 * process (the first of slot 0 of ROLE), else NULL; "" for ROLE alone. */
static const char *test_hook_kind(const struct qs_runtime *rt)
{
	const char *v = getenv("QS_TEST_CTL_FORBIDDEN");
	const struct qs_config *cfg = rt->cfg;
	const char *name = qs_role_name(cfg->role);
	size_t n = strlen(name);
	if (!v || strncmp(v, name, n) || (v[n] && v[n] != ':') || cfg->slot != 0 || cfg->generation != 1)
		return NULL;
	return v[n] ? v + n + 1 : "";
}

/* test_ctl_forbidden: the first process of slot 0 of the role named by
 * QS_TEST_CTL_FORBIDDEN sends what only the shipper may (or, as the shipper,
 * what no child may): the supervisor must take it for compromised. With
 * ROLE:ready it says READY again and again (a flood that held the
 * supervisor before a second READY was refused). */
static void test_send_forbidden(struct qs_runtime *rt)
{
	const char *kind = test_hook_kind(rt);
	const struct qs_config *cfg = rt->cfg;
	if (!kind || !strcmp(kind, "status"))
		return;
	if (!strcmp(kind, "ready")) {
		struct qs_ctl_hdr r;
		qs_ctl_init(&r, sizeof(r), QS_CTL_READY, cfg);
		qs_warn("test hook: saying READY again, 100000 times at most");
		for (int i = 0; i < 100000 && qs_ctl_send(rt->ctl_fd, &r, sizeof(r)) == 0; i++)
			;
		return;
	}
	struct qs_ctl_resolve m;
	qs_ctl_init(&m, sizeof(m), cfg->role == QS_ROLE_SHIPPER ? QS_CTL_SHUTDOWN : QS_CTL_RESOLVE, cfg);
	snprintf(m.text, sizeof(m.text), "%s", "forbidden.example:5044");
	qs_warn("test hook: sending a forbidden %s", qs_ctl_name(m.h.type));
	(void)qs_ctl_send(rt->ctl_fd, &m, sizeof(m));
}
#endif

void qs_runtime_ready(struct qs_runtime *rt)
{
	struct qs_ctl_hdr m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_READY, rt->cfg);
	if (rt->ctl_fd >= 0 && qs_ctl_send(rt->ctl_fd, &m, sizeof(m)) != 0)
		qs_warn("could not send READY to the supervisor");
#ifdef QS_TEST_HOOKS
	test_send_forbidden(rt);
#endif
}

void qs_runtime_report(struct qs_runtime *rt, const struct qs_ctl_status *st, const char *text)
{
	struct qs_ctl_status_msg m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_STATUS, rt->cfg);
	m.st = *st;
	if (text)
		snprintf(m.text, sizeof(m.text), "%s", text);
#ifdef QS_TEST_HOOKS
	/* ROLE:status: a text that would start sd_notify assignments of its own */
	const char *kind = test_hook_kind(rt);
	if (kind && !strcmp(kind, "status"))
		snprintf(m.text, sizeof(m.text), "%s\nWATCHDOG_USEC=1\nSTATUS=injected", text ? text : "");
#endif
	(void)qs_ctl_send(rt->ctl_fd, &m, sizeof(m));
}

void qs_runtime_free(struct qs_runtime *rt)
{
	if (rt->ctl_ev)
		event_free(rt->ctl_ev);
	if (rt->log_ev)
		event_free(rt->log_ev);
	for (int i = 0; i < 2; i++)
		if (rt->sig_ev[i])
			event_free(rt->sig_ev[i]);
	if (rt->base)
		event_base_free(rt->base);
	memset(rt, 0, sizeof(*rt));
}

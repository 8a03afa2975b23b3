#include "ipc/child.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "ipc/ctl.h"

static void stop_once(struct qs_child *c, bool urgent)
{
	if (c->stop_called && !urgent)
		return;
	c->stop_called = true;
	c->on_stop(c->arg, urgent);
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct qs_child *c = arg;
	struct qs_ctl_msg m;
	int rc;
	while ((rc = qs_ctl_recv((int)fd, &m)) == 0)
		if (m.type == QS_CTL_SHUTDOWN)
			stop_once(c, false);
		else if (c->on_msg)
			c->on_msg(c->arg, &m);
	if (rc < 0) {
		qs_warn("control socket closed: the supervisor is gone, exiting");
		event_del(c->ctl_ev);
		stop_once(c, true);
	}
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
	stop_once(arg, false);
}

int qs_child_init(struct qs_child *c, const struct qs_config *cfg, qs_child_stop_fn on_stop, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->ctl_fd = cfg->ctl_fd;
	c->on_stop = on_stop;
	c->arg = arg;
	/* Die with the supervisor even if it is killed without a chance to tell us. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	c->base = event_base_new();
	if (!c->base) {
		qs_err("cannot create the event loop");
		return -1;
	}
	c->sig_ev[0] = evsignal_new(c->base, SIGTERM, on_signal, c);
	c->sig_ev[1] = evsignal_new(c->base, SIGINT, on_signal, c);
	for (int i = 0; i < 2; i++)
		event_add(c->sig_ev[i], NULL);
	static const struct timeval second = {1, 0};
	c->log_ev = event_new(c->base, -1, EV_PERSIST, on_log_tick, NULL);
	if (c->log_ev)
		event_add(c->log_ev, &second);
	if (c->ctl_fd >= 0) {
		c->ctl_ev = event_new(c->base, c->ctl_fd, EV_READ | EV_PERSIST, on_ctl, c);
		event_add(c->ctl_ev, NULL);
	}
	return 0;
}

void qs_child_ready(struct qs_child *c, const struct qs_config *cfg)
{
	struct qs_ctl_msg m = {.type = QS_CTL_READY, .role = cfg->role, .slot = cfg->slot,
			       .generation = cfg->generation};
	snprintf(m.text, sizeof(m.text), "%s %u ready", qs_role_name(cfg->role), cfg->slot);
	if (c->ctl_fd >= 0 && qs_ctl_send(c->ctl_fd, &m) != 0)
		qs_warn("could not send READY to the supervisor");
}

void qs_child_free(struct qs_child *c)
{
	if (c->ctl_ev)
		event_free(c->ctl_ev);
	if (c->log_ev)
		event_free(c->log_ev);
	for (int i = 0; i < 2; i++)
		if (c->sig_ev[i])
			event_free(c->sig_ev[i]);
	if (c->base)
		event_base_free(c->base);
	memset(c, 0, sizeof(*c));
}

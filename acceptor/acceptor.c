/* The acceptor process: setup, the event loop, the control channel and the
 * orderly shutdown. See docs/ARCHITECTURE.md for its place in the pipeline. */
#include <errno.h>
#include <event2/event.h>
#include <gnutls/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "acceptor/acc.h"
#include "acceptor/acceptor.h"
#include "common/config.h"
#include "common/heap.h"
#include "common/log.h"
#include "ipc/ctl.h"
#include "ipc/keysign.h"

#define ACC_GOAWAY_MS 1000
#define ACC_GOAWAY_WAIT_NS (1000ull * 1000000)

void acc_schedule_flush(struct acc *a)
{
	if (a->flush_ev)
		event_active(a->flush_ev, EV_TIMEOUT, 0);
}

/* Runs once per loop iteration after anything changed: decode held-back
 * bytes, hand frames to ZeroMQ, return deferred credit, write coalesced
 * answers and packets. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acc *a = arg;
	/* Connections whose answers freed some of their frame cap decode what they held back. */
	for (struct acc_conn *c = a->dirty; c; c = c->dirty_next)
		acc_pending_drain(c);
	acc_frames_send(a);
	acc_owed_grant(a);
	struct acc_conn *list = a->dirty;
	a->dirty = NULL;
	while (list) {
		struct acc_conn *c = list;
		list = c->dirty_next;
		c->dirty = false;
		for (struct acc_stream *s = c->streams; s; s = s->next)
			acc_stream_flush_answers(s);
		acc_conn_write(c);
	}
	acc_udp_flush(a);
	a->pass_real_ns = 0; /* the next frames belong to a later pass */
}

static void close_all(struct acc *a)
{
	for (struct acc_conn *c = a->conns; c; c = c->next)
		acc_conn_close(c, 0);
}

static bool all_answers_acked(const struct acc *a)
{
	for (const struct acc_conn *c = a->conns; c; c = c->next)
		for (const struct acc_stream *s = c->streams; c->state == ACC_CONN_ACTIVE && s; s = s->next)
			if (s->tx.acked < s->tx.end)
				return false;
	return true;
}

static void goaway_all(struct acc *a)
{
	for (struct acc_conn *c = a->conns; c; c = c->next)
		for (struct acc_stream *s = c->streams; s; s = s->next)
			acc_stream_goaway(s, ACC_GOAWAY_MS);
	a->goaway_sent = true;
}

/* Shutdown in steps: wait (<= 5 s) for answers of frames in flight, tell open
 * streams to go away (unless a drain told them at once), give that ~1 s to
 * arrive, then close with NO_ERROR. */
static void stop_step(struct acc *a)
{
	uint64_t now = qs_now_ns();
	if (a->stopping == 1 && (acc_frames_unresolved(a) == 0 || now >= a->stop_deadline)) {
		if (acc_frames_unresolved(a))
			qs_info("shutdown: %u frames still unresolved, clients will resend them",
				acc_frames_unresolved(a));
		if (!a->goaway_sent)
			goaway_all(a);
		a->stopping = 2;
		a->stop_deadline = now + ACC_GOAWAY_WAIT_NS;
	} else if (a->stopping == 2 && (all_answers_acked(a) || now >= a->stop_deadline)) {
		close_all(a);
		a->stopping = 3;
		event_base_loopexit(a->base, NULL);
	}
}

/* A drain (a new generation serves already) tells clients to move at once, so
 * they stop sending here and continue on a new connection while this one
 * still delivers the answers of what it holds; a plain stop first waits for
 * those answers, so clients leave with less to resend. */
static void begin_stop(struct acc *a, const char *why, bool drain)
{
	if (a->stopping)
		return;
	qs_info("stopping (%s): %u connections, %u frames in flight", why, a->nconns, acc_frames_unresolved(a));
	if (drain)
		goaway_all(a);
	a->stopping = 1;
	a->stop_deadline = qs_now_ns() + ACC_SHUTDOWN_WAIT_NS;
	stop_step(a);
}

/* Once a second: what this acceptor did, for the service's status line. */
static void report(struct acc *a)
{
	uint64_t now = qs_now_ns();
	if (a->cfg->ctl_fd < 0 || now - a->report_mono < 1000000000ull)
		return;
	a->report_mono = now;
	struct qs_ctl_status st = {.acked = a->n_acked, .rejected = a->n_rejected, .connections = a->nconns};
	qs_ctl_report(a->cfg->ctl_fd, QS_ROLE_ACCEPTOR, a->cfg->slot, a->cfg->generation, &st, NULL);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acc *a = arg;
	acc_dispatch_stats(a);
	report(a);
	qs_log_tick();
	if (a->stopping)
		stop_step(a);
	else
		acc_frames_tick(a);
}

static void sig_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	begin_stop(arg, sig == SIGTERM ? "SIGTERM" : "SIGINT", false);
}

static void ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct acc *a = arg;
	struct qs_ctl_msg m;
	int rc;
	while ((rc = qs_ctl_recv(fd, &m)) == 0) {
		switch (m.type) {
		case QS_CTL_PEER_RESTART: acc_frames_resend_all(a); break;
		case QS_CTL_SHUTDOWN: begin_stop(a, "shutdown requested", false); break;
		case QS_CTL_DRAIN: begin_stop(a, "drain requested", true); break;
		default: qs_warn("unexpected control message %u", m.type); break;
		}
	}
	if (rc < 0) {
		qs_info("control channel closed: supervisor gone, exiting");
		close_all(a);
		event_base_loopexit(a->base, NULL);
	}
}

static void ready_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acc *a = arg;
	struct qs_ctl_msg m;
	memset(&m, 0, sizeof(m));
	m.type = QS_CTL_READY;
	m.role = QS_ROLE_ACCEPTOR;
	m.slot = a->cfg->slot;
	m.generation = a->cfg->generation;
	/* Logged before READY: the supervisor may act on READY at once. */
	qs_info("serving QUIC (slot %u, key %u, generation %u)", a->cfg->slot, a->cfg->steer_key,
		a->cfg->generation);
	if (a->cfg->ctl_fd >= 0 && qs_ctl_send(a->cfg->ctl_fd, &m) != 0)
		qs_warn("could not send READY to the supervisor");
}

static int setup_events(struct acc *a)
{
	static const struct timeval step = {0, 100000}, zero = {0, 0};
	a->flush_ev = event_new(a->base, -1, 0, flush_cb, a);
	a->tick_ev = event_new(a->base, -1, EV_PERSIST, tick_cb, a);
	a->sig_ev[0] = evsignal_new(a->base, SIGTERM, sig_cb, a);
	a->sig_ev[1] = evsignal_new(a->base, SIGINT, sig_cb, a);
	if (!a->flush_ev || !a->tick_ev || !a->sig_ev[0] || !a->sig_ev[1])
		return -1;
	event_add(a->tick_ev, &step); /* 100 ms: shutdown steps; resend scan is cheap */
	event_add(a->sig_ev[0], NULL);
	event_add(a->sig_ev[1], NULL);
	if (a->cfg->ctl_fd >= 0) {
		a->ctl_ev = event_new(a->base, a->cfg->ctl_fd, EV_READ | EV_PERSIST, ctl_cb, a);
		if (!a->ctl_ev || event_add(a->ctl_ev, NULL))
			return -1;
	}
	return event_base_once(a->base, -1, EV_TIMEOUT, ready_cb, a, &zero);
}

static void teardown(struct acc *a)
{
	if (a->udp_ev)
		acc_udp_flush(a); /* CONNECTION_CLOSEs queued by the last loop pass */
	while (a->conns)
		acc_conn_free(a->conns);
	acc_ipc_free(a);
	acc_cidmap_free(&a->map);
	acc_src_free(a);
	struct event *evs[] = {a->udp_ev, a->flush_ev, a->tick_ev, a->ctl_ev, a->sig_ev[0], a->sig_ev[1]};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	if (a->cred)
		gnutls_certificate_free_credentials(a->cred);
	if (a->base)
		event_base_free(a->base);
}

/* Confines the process, then connects the key (its socket path is inside the chroot). */
static int enter_sandbox(struct acc *a)
{
	bool chrooted;
	char path[4200];
	if (acc_sandbox(a, &chrooted))
		return -1;
	snprintf(path, sizeof(path), "%s/%s", chrooted ? "" : a->cfg->runtime_dir, QS_KEYSIGN_SOCKET);
	return acc_tls_keyholder(a, path);
}

int acceptor_main(const struct qs_config *cfg)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	static struct acc a;
	a.cfg = cfg;
	qs_heap_tune();
	a.free_head = a.q_head = a.q_tail = ACC_NONE;
	a.start_mono = qs_now_ns();
	uint64_t w = 2ull * cfg->max_message_size + 64 * 1024;
	a.stream_window = w > 4ull * 1024 * 1024 ? w : 4ull * 1024 * 1024;
	a.conn_window = 4 * a.stream_window;
	a.conn_frames_cap = (uint32_t)(a.conn_window / 512);
	a.incomplete_cap = qs_config_acceptor_share(cfg, cfg->max_incomplete_bytes);
	int rc = 1;
	/* Shared by all acceptors (acceptor/secret.c); read before the chroot. */
	if (acc_secret_load(&a) != 0)
		goto out;
	a.base = event_base_new();
	if (!a.base || acc_src_init(&a) || acc_tls_load(&a) || acc_udp_init(&a) || acc_ipc_init(&a) || enter_sandbox(&a) ||
	    setup_events(&a)) {
		qs_err("acceptor setup failed");
		goto out;
	}
	event_base_dispatch(a.base);
	rc = 0;
out:
	teardown(&a);
	return rc;
}

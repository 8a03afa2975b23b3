/* The acceptor process: setup, the event loop, the control channel and the
 * orderly shutdown. See docs/ARCHITECTURE.md for its place in the pipeline. */
#include <errno.h>
#include <event2/event.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acceptor/acc.h"
#include "acceptor/acceptor.h"
#include "common/config.h"
#include "common/heap.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "ipc/keysign.h"
#include "roles/confine.h"

#define ACC_GOAWAY_WAIT_NS (1000ull * 1000000)
/* What G tells clients: how long this acceptor may still take to answer
 * and close (the wait for answers, then for their acknowledgement). A client
 * that gave up sooner resent frames this acceptor was about to answer:
 * stored twice (issue 25). */
#define ACC_GOAWAY_MS ((ACC_SHUTDOWN_WAIT_NS + ACC_GOAWAY_WAIT_NS) / 1000000)
/* Frames a client wrote before it read G are still on their way: they are
 * read and answered while the connection stays, at least this long. */
#define ACC_GOAWAY_GRACE_NS (200ull * 1000000)
/* The tick: stats, tenant buckets, the resend scan, the stop's steps. Every
 * 100 ms while there is something to tick for; once a second on an idle
 * acceptor (no connection, no frame in flight, no stop), so that an idle
 * server does not wake ten times a second (docs/PERFORMANCE.md, "Idle"). */
#define ACC_TICK_BUSY_US 100000
#define ACC_TICK_IDLE_US 1000000

static bool tick_busy(struct acc *a)
{
	return a->nconns || a->stopping || acc_frames_unresolved(a);
}

/* (Re)arms the tick at the pace the state asks for; a busy acceptor whose
 * tick is at the idle pace gets it within 100 ms again. */
static void tick_arm(struct acc *a)
{
	bool busy = tick_busy(a);
	if (evtimer_pending(a->tick_ev, NULL)) {
		if (!busy || a->tick_fast)
			return;
		event_del(a->tick_ev);
	}
	struct timeval tv = {0, busy ? ACC_TICK_BUSY_US : 0};
	if (!busy)
		tv.tv_sec = ACC_TICK_IDLE_US / 1000000;
	a->tick_fast = busy;
	evtimer_add(a->tick_ev, &tv);
}

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
		acc_conn_flush(c);
	}
	acc_udp_flush(a);
	a->pass_real_ns = 0; /* the next frames belong to a later pass */
	if (!a->tick_fast)
		tick_arm(a); /* a connection came while idle: tick at its pace again */
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
	for (struct acc_conn *c = a->conns; c; c = c->next) {
		for (struct acc_stream *s = c->streams; !c->revoked && s; s = s->next) /* revoked: closed, not moved */
			acc_stream_goaway(s, ACC_GOAWAY_MS);
		/* Its tenant's place goes with the move: a client told G sends
		 * nothing new here and reconnects at once, and must not find its
		 * own old connection still counted (max-connections). */
		acc_limit_gone(c);
	}
}

/* Shutdown in steps: G to every open stream at once, then wait (<= 5 s)
 * until every frame read is resolved (frames still arriving are read and
 * answered too, at least ACC_GOAWAY_GRACE_NS), then (<= 1 s) until the
 * clients acknowledged the answers, then close with NO_ERROR. A client that
 * gets every answer has nothing to resend, so a planned stop or reload
 * stores nothing twice. */
static void stop_step(struct acc *a)
{
	uint64_t now = qs_now_ns();
	bool resolved = acc_frames_unresolved(a) == 0;
	if (a->stopping == 1 && ((resolved && now >= a->stop_began + ACC_GOAWAY_GRACE_NS) || now >= a->stop_deadline)) {
		if (!resolved)
			qs_info("shutdown: %u frames still unresolved, clients will resend them",
				acc_frames_unresolved(a));
		a->stopping = 2;
		a->stop_deadline = now + ACC_GOAWAY_WAIT_NS;
	} else if (a->stopping == 2 && ((resolved && all_answers_acked(a)) || now >= a->stop_deadline)) {
		a->stopping = 3;
		close_all(a);
		event_base_loopexit(a->base, NULL);
	}
}

/* A stop and a drain (a new generation serves already) alike: clients are
 * told to move at once; they stop sending here and this acceptor still
 * answers what they sent before they knew. */
static void begin_stop(struct acc *a, const char *why)
{
	if (a->stopping)
		return;
	qs_info("stopping (%s): %u connections, %u frames in flight", why, a->nconns, acc_frames_unresolved(a));
	goaway_all(a);
	a->stopping = 1;
	a->stop_began = qs_now_ns();
	a->stop_deadline = a->stop_began + ACC_SHUTDOWN_WAIT_NS;
	tick_arm(a);
	stop_step(a);
}

/* Once a second: what this acceptor did, for the service's status line. */
static void report(struct acc *a)
{
	uint64_t now = qs_now_ns();
	/* (950 ms: an idle tick a second apart may come a hair early) */
	if (now - a->report_mono < 950000000ull)
		return;
	a->report_mono = now;
	struct qs_ctl_status st = {.acked = a->n_acked, .rejected = a->n_rejected, .connections = a->nconns};
	qs_mp_set(QS_M_CONN_OPEN, a->nconns);
	qs_mp_set(QS_M_ACC_UNRESOLVED, acc_frames_unresolved(a));
	qs_mp_set(QS_M_ACC_HELD_BYTES, a->held);
	qs_mp_set(QS_M_ACC_QUEUED, a->q_frames);
	qs_mp_set(QS_M_ACC_QUEUED_BYTES, a->q_bytes);
	qs_runtime_report(&a->rt, &st, NULL);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acc *a = arg;
	acc_dispatch_stats(a);
	acc_limit_tick(a);
	report(a);
	if (a->stopping)
		stop_step(a);
	else
		acc_frames_tick(a);
	if (a->stopping < 3)
		tick_arm(a);
}

/* The supervisor is gone (urgent): close at once; else stop in steps. */
static void on_stop(void *arg, bool urgent, const char *why)
{
	struct acc *a = arg;
	if (!urgent) {
		begin_stop(a, why);
		return;
	}
	close_all(a);
	event_base_loopexit(a->base, NULL);
}

static int on_drain(void *arg, const void *msg)
{
	(void)msg;
	begin_stop(arg, "drain requested");
	return 0;
}

static int on_peer_restart(void *arg, const void *msg)
{
	(void)msg;
	acc_frames_resend_all(arg);
	return 0;
}

static int on_tenants(void *arg, const void *msg)
{
	struct acc *a = arg;
	struct qs_tenants *old = qs_runtime_take_tenants(&a->rt, msg);
	if (old)
		acc_tenants_reload(a, old);
	return 0; /* an unusable copy is logged; the old tenants stay */
}

static void ready_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acc *a = arg;
	/* Logged before READY: the supervisor may act on READY at once. */
	qs_info("serving QUIC (slot %u, key %u, generation %u)", a->cfg->slot, a->cfg->steer_key,
		a->cfg->generation);
	qs_runtime_ready(&a->rt);
}

static int setup_events(struct acc *a)
{
	static const struct timeval zero = {0, 0};
	a->flush_ev = event_new(a->base, -1, 0, flush_cb, a);
	a->tick_ev = evtimer_new(a->base, tick_cb, a);
	if (!a->flush_ev || !a->tick_ev)
		return -1;
	tick_arm(a);
	qs_runtime_on(&a->rt, QS_CTL_DRAIN, on_drain);
	qs_runtime_on(&a->rt, QS_CTL_PEER_RESTART, on_peer_restart);
	qs_runtime_on(&a->rt, QS_CTL_TENANTS, on_tenants);
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
	acc_attempts_free(a);
	acc_src_free(a);
	acc_tenant_count_free(a);
	acc_limit_free(a);
	free(a->limits_own);
	struct event *evs[] = {a->udp_ev, a->rx_gather_ev, a->flush_ev, a->tick_ev};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	if (a->cred)
		gnutls_certificate_free_credentials(a->cred);
	if (a->prio)
		gnutls_priority_deinit(a->prio);
	qs_runtime_free(&a->rt);
}

/* Confines the process, then connects the key (its socket path is inside the chroot). */
static int enter_sandbox(struct acc *a)
{
	const char *rundir;
	char path[4200];
	if (qs_confine(a->cfg, &rundir))
		return -1;
	snprintf(path, sizeof(path), "%s/%s", rundir, QS_KEYSIGN_SOCKET);
	return acc_tls_keyholder(a, path);
}

int acceptor_main(const struct qs_config *cfg)
{
	static struct acc a;
	a.cfg = cfg;
	qs_heap_tune();
	a.hs_cap = ACC_MAX_HANDSHAKING;
	a.retry_ans_pct = 100;
#ifdef QS_TEST_HOOKS
	const char *cap = getenv("QS_TEST_MAX_HANDSHAKING"); /* test_storm "admission" */
	if (cap && strtoul(cap, NULL, 10) > 0)
		a.hs_cap = (unsigned)strtoul(cap, NULL, 10);
#endif
	a.free_head = a.q_head = a.q_tail = ACC_NONE;
	a.ticket_epoch = cfg->generation & 0xffu; /* another than its predecessor's on the channel */
	a.start_mono = qs_now_ns();
	uint64_t w = 2ull * cfg->max_message_size + 64 * 1024;
	a.stream_window = w > 4ull * 1024 * 1024 ? w : 4ull * 1024 * 1024;
	a.conn_window = 4 * a.stream_window;
	a.conn_frames_cap = (uint32_t)(a.conn_window / 512);
	a.incomplete_cap = qs_config_acceptor_share(cfg, cfg->max_incomplete_bytes);
	int rc = 1;
	if (qs_runtime_init(&a.rt, cfg, on_stop, &a) != 0)
		goto out;
	a.base = a.rt.base;
	/* Shared by all acceptors (acceptor/secret.c); read before the chroot. */
	if (acc_secret_load(&a) != 0)
		goto out;
	if (acc_cidmap_init(&a.map) || acc_src_init(&a) || acc_attempts_init(&a) || acc_tls_load(&a) || acc_udp_init(&a) || acc_ipc_init(&a) || enter_sandbox(&a) ||
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

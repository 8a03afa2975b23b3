/* The parser process: FRAMES from every acceptor in, enriched EVENTS out to
 * the shipper, rejections straight back to the owning acceptor.
 *
 * Frames arrive over ZeroMQ; events and answers leave over channels
 * (ipc/chan.h). Backpressure: when the shipper does not take EVENTS (its
 * channel is at its limit), the batch is kept and the frames socket is no
 * longer read, so frames queue in ZeroMQ and then in the acceptors.
 * Rejections never stop us: an acceptor that cannot take them for 2 s is
 * treated as gone (it re-sends unresolved frames when it comes back). */
#include "parser/parser.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/heap.h"
#include "common/hoptrace.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "common/tenants.h"
#include "common/wire.h"
#include "ipc/answers.h"
#include "ipc/chan.h"
#include "ipc/fair.h"
#include "ipc/runtime.h"
#include "ipc/msg.h"
#include "ipc/sendq.h"
#include "ipc/zsock.h"
#include "parser/arena.h"
#include "parser/enrich.h"
#include "roles/confine.h"

#define RECV_BUDGET 64          /* FRAMES messages per wake-up */
#define HWM 64                  /* FRAMES messages */
#define EVENTS_LIMIT (4u << 20) /* bytes waiting for the shipper before we hold back */
#define RETRY_MS 20             /* held events are retried at least this often */
#define STOP_FLUSH_MS 2000      /* clean stop: how long to read up to the ends and hand over events */
#define HELLO_MS 1000           /* HELLO to every acceptor this often (a new one learns us) */

struct parser {
	const struct qs_config *cfg;
	const struct qs_tenant *last_tenant; /* the last frame's, looked up again when the id changes */
	uint64_t last_tenant_id, last_credential;
	struct qs_runtime rt;
	void *zctx, *pull;
	struct qs_chan_out *events_out;
	struct qs_answers *answers; /* rejections, to each acceptor's channel */
	struct qs_sendq events_q;
	struct qs_batch ev_batch;
	struct qs_zwatch *pull_w;
	struct qs_fair *fair; /* tenants' fair share of our work (fair.h) */
	struct event *flow_ev, *retry_ev, *stop_ev, *serve_ev;
	struct qs_enrich_buf line;
	size_t max_event;   /* largest enriched line we send */
	size_t max_batch;   /* hard limit of one EVENTS message (what the shipper accepts) */
	bool stopping;
	bool draining;      /* said BYE: reading up to every acceptor's end of frames */
	unsigned ends_left; /* acceptors whose end has not come yet */
	bool end_wanted[QS_ACCEPTOR_CHANNELS_MAX];
	/* The frames socket is connected to that channel's endpoint: only once an
	 * acceptor was found there (its answers channel took our connection),
	 * and until the supervisor says it is gone for good, so that ZeroMQ does
	 * not retry an endpoint nobody binds ten times a second. */
	bool frames_on[QS_ACCEPTOR_CHANNELS_MAX];
	const char *ep_dir;
	struct event *hello_ev;
	int exit_code;
#ifdef QS_TEST_HOOKS
	unsigned test_delay_us; /* QS_TEST_PARSER_DELAY_US: each frame takes this much longer */
#endif
};

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Applies the reading state on the next loop pass: a zwatch must not be
 * freed from inside its own callback. */
static void flow_update(struct parser *p)
{
	event_active(p->flow_ev, 0, 0);
}

static void flush_events(struct parser *p)
{
	if (!p->ev_batch.count)
		return;
	qs_hop(QS_HOP_P_SENT, 0, 0);
	if (qs_sendq_push(&p->events_q, &p->ev_batch) == 1)
		qs_debug("shipper is not taking events: holding them, not reading frames");
}

static void add_event(struct parser *p, const struct qs_frame_rec *fr, bool tenant)
{
	struct qs_event_rec er = {.ticket = fr->ticket, .acceptor = fr->acceptor, .len = (uint32_t)p->line.len,
				  .tenant = tenant ? fr->tenant : 0};
	size_t need = pad8(sizeof(er)) + pad8(er.len);
	if (p->ev_batch.len && p->ev_batch.len + need > p->max_batch)
		flush_events(p);
	if (!p->ev_batch.len)
		qs_batch_begin(&p->ev_batch, QS_MSG_EVENTS, p->cfg->slot);
	if (qs_batch_add(&p->ev_batch, &er, sizeof(er), p->line.data, p->line.len))
		qs_err("out of memory batching an event: dropped (the acceptor will resend)");
	if (p->ev_batch.len >= QS_BATCH_SOFT_BYTES)
		flush_events(p);
}

/* --debug: a line per rejected frame (rate-limited like every line), with the
 * client's address and the code as journal fields. */
static void log_rejected(const struct qs_frame_rec *fr, const struct qs_enrich_result *res)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(fr->port)};
	memcpy(&sa.sin6_addr, fr->ip, sizeof(sa.sin6_addr));
	char ip[64], port[8];
	unsigned p = 0;
	qs_addr_ip_string((const struct sockaddr *)&sa, ip, sizeof(ip), &p);
	snprintf(port, sizeof(port), "%u", p);
	qs_debug_kv(QS_KV({QS_LOG_PEER, ip}, {QS_LOG_PORT, port}, {QS_LOG_CODE, qs_reject_name(res->code)}),
		    "frame %llu from acceptor %u (client %s port %u) rejected: %s", (unsigned long long)fr->seq,
		    fr->acceptor, ip, p, res->reason);
}

/* The frame's tenant, by the id the acceptor gives, from this parser's own
 * tenants file: the acceptor names a tenant, the name written is ours. -1:
 * a tenant this file does not have (removed by a reload while the acceptor
 * that authenticated it still runs), a credential it no longer lists (revoked),
 * or none where one is required. */
static int frame_tenant(struct parser *p, const struct qs_frame_rec *fr, const char **name)
{
	*name = NULL;
	if (p->cfg->auth == QS_AUTH_NONE)
		return 0;
	if (fr->tenant && fr->tenant == p->last_tenant_id && fr->credential == p->last_credential) {
		*name = p->last_tenant->name;
		return 0;
	}
	const struct qs_tenant *t = fr->tenant ? qs_tenants_by_id(p->cfg->tenants, fr->tenant) : NULL;
	if (!t || !qs_tenant_has_credential(t, fr->credential))
		return -1;
	p->last_tenant = t;
	p->last_tenant_id = t->id;
	p->last_credential = fr->credential;
	*name = t->name;
	return 0;
}

static void handle_frame(struct parser *p, const struct qs_frame_rec *fr, const uint8_t *payload)
{
	struct qs_enrich_meta m = {.seq = fr->seq, .recv_time_ns = fr->recv_time_ns, .port = fr->port};
	if (frame_tenant(p, fr, &m.tenant) < 0) {
		qs_answers_add(p->answers, fr->acceptor, fr->ticket, QS_REJ_UNAUTHENTICATED,
			       "unauthenticated: the tenant or its credential is no longer configured");
		return;
	}
#ifdef QS_TEST_HOOKS
	if (p->test_delay_us)
		usleep(p->test_delay_us);
#endif
	memcpy(m.session, fr->session, sizeof(m.session));
	memcpy(m.ip, fr->ip, sizeof(m.ip));
	struct qs_enrich_result res;
	qs_hop(QS_HOP_P_RECV, fr->acceptor, fr->ticket);
	qs_mp_add(QS_M_PARSED, 1);
	if (qs_enrich((const char *)payload, fr->len, &m, &p->line, &res) != 0) {
		if (qs_log_debug_enabled())
			log_rejected(fr, &res);
		qs_mp_add(QS_M_PARSE_REJECTED, 1);
		qs_answers_add(p->answers, fr->acceptor, fr->ticket, res.code, res.reason);
	} else if (p->line.len > p->max_event) {
		qs_answers_add(p->answers, fr->acceptor, fr->ticket, QS_REJ_TOO_LARGE,
			       "event too large after enrichment");
	} else {
		add_event(p, fr, m.tenant != NULL);
	}
	qs_json_arena_reset(); /* the frame's cJSON tree is gone now */
}

static void close_frames(struct parser *p);
static void flow_update(struct parser *p);

static void take_frame(struct parser *p, const struct qs_frame_rec *fr, const uint8_t *payload)
{
	if (fr->acceptor >= qs_acceptor_channels(p->cfg->acceptors)) {
		qs_warn("frame names acceptor %u, which does not exist: dropped", fr->acceptor);
		return;
	}
	handle_frame(p, fr, payload);
}

static void serve_frame(void *arg, const void *rec, const uint8_t *payload)
{
	struct qs_frame_rec fr;
	memcpy(&fr, rec, sizeof(fr));
	take_frame(arg, &fr, payload);
}

/* Every acceptor's end came (or none was awaited): nothing more can arrive,
 * so the frames socket closes with nothing in it. */
static void drained(struct parser *p)
{
	p->stopping = true; /* on_flow closes the socket: we may be inside its reader now */
	flow_update(p);
}

/* An empty FRAMES batch: the acceptor on that channel sends us nothing more. */
static void on_end(struct parser *p, uint32_t chan)
{
	if (!p->draining || chan >= QS_ACCEPTOR_CHANNELS_MAX || !p->end_wanted[chan])
		return;
	p->end_wanted[chan] = false;
	if (--p->ends_left == 0)
		drained(p);
}

/* Our word to every acceptor, in order with our rejections (ipc/msg.h). */
static void tell_acceptors(struct parser *p, uint16_t code)
{
	for (unsigned i = 0; i < qs_acceptor_channels(p->cfg->acceptors); i++)
		if (qs_answers_connected(p->answers, i)) /* (half the channels have no acceptor) */
			qs_answers_add(p->answers, i, p->cfg->generation, code, NULL);
	qs_answers_flush(p->answers);
}

static void on_hello(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct parser *p = arg;
	if (p->draining)
		return;
	tell_acceptors(p, QS_ANSWER_PARSER_HELLO);
	struct timeval tv = {HELLO_MS / 1000, 0};
	evtimer_add(p->hello_ev, &tv);
}

static void handle_message(void *arg, const void *msg, size_t len)
{
	struct parser *p = arg;
	struct qs_batch_iter it;
	const char *why;
	if (qs_batch_receive(&it, QS_INBOX_FRAMES, msg, len, &why) != 0) {
		qs_warn("dropping a malformed message on the frames socket: %s", why);
		return;
	}
	if (it.remaining == 0) {
		on_end(p, it.sender);
		return;
	}
	qs_mp_queue_recv(QS_QL_FRAMES + p->cfg->slot, it.remaining, len);
	/* Draining, frames from an acceptor that did not get our BYE (or sends
	 * after its end): it may send more, which would be lost with our socket;
	 * a non-zero exit has the acceptors resend. */
	if (p->draining && (it.sender >= QS_ACCEPTOR_CHANNELS_MAX || !p->end_wanted[it.sender]) && !p->exit_code) {
		qs_warn("frames from acceptor channel %u, which was not told that we stop", it.sender);
		p->exit_code = 3;
	}
	if (qs_fair_take(p->fair, &it, msg, len))
		return; /* in the look-ahead: served by on_frames and on_serve */
	struct qs_frame_rec fr;
	const uint8_t *payload;
	int rc;
	while ((rc = qs_batch_next(&it, &fr, sizeof(fr), qs_frame_rec_payload, &payload)) == 1) {
		bool shared = qs_fair_count(p->fair, fr.tenant, sizeof(fr) + fr.len);
		take_frame(p, &fr, payload);
		if (shared && it.remaining && qs_fair_take(p->fair, &it, msg, len))
			break; /* a newcomer: the rest in the look-ahead, served by on_serve */
	}
	if (rc < 0)
		qs_warn("malformed FRAMES message from acceptor %u: rest dropped", it.sender);
	/* Each acceptor batch goes on as soon as it is done: holding it for the
	 * rest of the burst would make its first events wait for all of them. */
	flush_events(p);
	qs_answers_flush(p->answers);
}

/* Frames are read only while the shipper takes what they become, and while
 * the look-ahead has room. */
static bool may_read(void *arg)
{
	struct parser *p = arg;
	return !p->stopping && !qs_sendq_pending(&p->events_q) && qs_fair_room(p->fair);
}

static bool shipper_takes(void *arg)
{
	struct parser *p = arg;
	return !qs_sendq_pending(&p->events_q);
}

/* A pass's share of the look-ahead's frames, by tenant (fair.h), while the
 * shipper takes events; the rest on the next loop pass. */
static void serve(struct parser *p)
{
	if (qs_fair_empty(p->fair) || qs_sendq_pending(&p->events_q))
		return;
	/* a pass's share (ipc/fair.h): one quantum a pass flushed events and
	 * answers a quantum at a time, three times the system calls of the
	 * parser without tenants at full load (PERFORMANCE round 16) */
	if (qs_fair_serve_pass(p->fair, shipper_takes, serve_frame, p))
		qs_fair_later(p->serve_ev);
	flush_events(p);
	qs_answers_flush(p->answers);
	flow_update(p); /* the look-ahead's room may have changed */
}

static void on_serve(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	serve(arg);
}

static int on_frames(void *sock, void *arg)
{
	struct parser *p = arg;
	int n = qs_zrecv_each(sock, RECV_BUDGET, may_read, handle_message, p);
	serve(p);
	if (!may_read(p))
		flow_update(p);
	return n == RECV_BUDGET ? QS_ZWATCH_MORE : 0;
}

static void on_events_writable(void *arg)
{
	struct parser *p = arg;
	if (qs_sendq_pending(&p->events_q) && !qs_sendq_flush(&p->events_q))
		flow_update(p);
}

static bool can_read(struct parser *p)
{
	return may_read(p);
}

static void on_flow(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct parser *p = arg;
	if (p->stopping && p->pull)
		close_frames(p);
	if (can_read(p) && !p->pull_w) { /* never after a stop closed p->pull */
		qs_debug("reading frames again");
		p->pull_w = qs_zwatch_new(p->rt.base, p->pull, on_frames, p);
	} else if (!can_read(p) && p->pull_w) {
		qs_zwatch_free(p->pull_w);
		p->pull_w = NULL;
	}
	/* A clean stop also waits (up to STOP_FLUSH_MS) for the events the
	 * channel still holds: the shipper would otherwise only get them from
	 * the acceptors' resend. */
	bool unsent = qs_chan_unsent(p->events_out) > 0 || (p->stopping && qs_answers_unsent(p->answers));
	bool pending = qs_sendq_pending(&p->events_q) || (p->stopping && unsent);
	if (!qs_fair_empty(p->fair) && !qs_sendq_pending(&p->events_q))
		qs_fair_later(p->serve_ev);
	if (pending && !evtimer_pending(p->retry_ev, NULL)) {
		struct timeval tv = {0, RETRY_MS * 1000};
		evtimer_add(p->retry_ev, &tv);
	}
	if (p->stopping && !qs_sendq_pending(&p->events_q) && !unsent && qs_fair_empty(p->fair))
		event_base_loopexit(p->rt.base, NULL);
}

/* Retries the events that are held (answers retry on their own: ipc/answers.h). */
static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct parser *p = arg;
	qs_sendq_flush(&p->events_q);
	on_flow(-1, 0, p);
}

static void on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct parser *p = arg;
	/* A non-zero status tells the supervisor that frames may be lost here,
	 * so that it has the acceptors resend (a clean exit gets no resend). */
	if (p->ends_left) {
		qs_warn("%u acceptor(s) did not end their frames before the deadline (they resend)", p->ends_left);
		p->exit_code = 3;
	}
	if (qs_sendq_pending(&p->events_q) || qs_chan_unsent(p->events_out) || qs_answers_unsent(p->answers) ||
	    !qs_fair_empty(p->fair)) {
		qs_warn("the shipper or an acceptor did not take the last events or rejections before the "
			"deadline (the acceptors resend)");
		p->exit_code = 3;
	}
	event_base_loopexit(p->rt.base, NULL);
}

/* Takes no more frames: closing the PULL socket drops what ZeroMQ still
 * holds for us, so it is closed only once every acceptor sent its end. */
static void close_frames(struct parser *p)
{
	qs_zwatch_free(p->pull_w);
	p->pull_w = NULL;
	if (p->pull)
		zmq_close(p->pull);
	p->pull = NULL;
}

/* A clean stop loses nothing: BYE to every acceptor we reach (it sends no
 * more frames here, then an end), frames read and handled up to each end,
 * the events handed to the shipper and the rejections to the acceptors;
 * then exit 0, and the supervisor has nobody resend (issue 25). Bounded by
 * STOP_FLUSH_MS; what is left then is resent after the exit status says so. */
static void on_stop(void *arg, bool urgent, const char *why)
{
	(void)why;
	struct parser *p = arg;
	if (urgent) {
		p->stopping = true;
		close_frames(p);
		event_base_loopexit(p->rt.base, NULL);
		return;
	}
	if (p->draining || p->stopping)
		return;
	p->draining = true;
	for (unsigned i = 0; i < qs_acceptor_channels(p->cfg->acceptors); i++)
		if (qs_answers_connected(p->answers, i) && !p->end_wanted[i]) {
			p->end_wanted[i] = true;
			p->ends_left++;
		}
	tell_acceptors(p, QS_ANSWER_PARSER_BYE);
	struct timeval tv = {STOP_FLUSH_MS / 1000, (STOP_FLUSH_MS % 1000) * 1000};
	evtimer_add(p->stop_ev, &tv);
	if (p->ends_left == 0)
		drained(p);
}

static int frames_endpoint(struct parser *p, unsigned chan, char *ep, size_t len)
{
	return qs_ipc_endpoint(ep, len, p->ep_dir, QS_EP_ACCEPTOR_FRAMES, qs_frames_endpoint_id(chan, p->cfg->slot));
}

/* An acceptor listens on channel chan: take its frames (ZeroMQ keeps the
 * endpoint from now on, reconnecting every 100 ms if that acceptor dies and
 * is restarted there). */
static void on_acceptor_up(void *arg, unsigned chan)
{
	struct parser *p = arg;
	char ep[256];
	if (chan >= QS_ACCEPTOR_CHANNELS_MAX || p->frames_on[chan] || !p->pull || frames_endpoint(p, chan, ep, sizeof(ep)))
		return;
	if (qs_zsock_connect(p->pull, ep) == 0)
		p->frames_on[chan] = true;
}

/* The supervisor's word about an acceptor channel: served now (connect at
 * once), or gone for good (an old generation that finished: its endpoint is
 * left alone until a later generation is announced there). */
static int on_acceptor(void *arg, const void *msg)
{
	struct parser *p = arg;
	const struct qs_ctl_acceptor *m = msg;
	char ep[256];
	if (m->channel >= qs_acceptor_channels(p->cfg->acceptors))
		return -1;
	if (m->serving) {
		qs_answers_retry(p->answers, m->channel);
		return 0;
	}
	if (p->frames_on[m->channel] && p->pull && !frames_endpoint(p, m->channel, ep, sizeof(ep)) &&
	    zmq_disconnect(p->pull, ep) == 0)
		p->frames_on[m->channel] = false;
	return 0;
}

static int connect_all(struct parser *p, const char *dir)
{
	const struct qs_config *cfg = p->cfg;
	long long maxmsg = (long long)cfg->max_message_size + 1024 * 1024;
	struct event_base *base = p->rt.base;
	char ep[256];
	p->zctx = zmq_ctx_new();
	p->pull = p->zctx ? qs_zsock_new(p->zctx, ZMQ_PULL, HWM, maxmsg) : NULL;
	if (!p->pull)
		return -1;
	p->ep_dir = dir;
	for (unsigned i = 0; i < qs_acceptor_channels(cfg->acceptors); i++)
		if (frames_endpoint(p, i, ep, sizeof(ep))) {
			qs_err("acceptor channel %u: endpoint name too long", i);
			return -1;
		}
	p->answers = qs_answers_new(base, dir, qs_acceptor_channels(cfg->acceptors), cfg->slot);
	if (!p->answers)
		return -1;
	qs_answers_count(p->answers, QS_QL_REJECTIONS);
	qs_answers_on_up(p->answers, on_acceptor_up, p); /* the acceptors there already */
	if (qs_chan_path(ep, sizeof(ep), dir, QS_EP_SHIPPER_EVENTS, 0) ||
	    !(p->events_out = qs_chan_connect(base, ep, EVENTS_LIMIT, on_events_writable, p)))
		return -1;
	qs_chan_out_keep(p->events_out); /* a shipper replaced by a reload loses none (chan.h) */
	qs_sendq_init(&p->events_q, p->events_out);
	qs_sendq_count(&p->events_q, QS_QL_EVENTS);
	return 0;
}

static void cleanup(struct parser *p)
{
	qs_zwatch_free(p->pull_w);
	if (p->flow_ev) event_free(p->flow_ev);
	if (p->retry_ev) event_free(p->retry_ev);
	if (p->stop_ev) event_free(p->stop_ev);
	if (p->serve_ev) event_free(p->serve_ev);
	qs_fair_free(p->fair);
	if (p->hello_ev) event_free(p->hello_ev);
	qs_sendq_free(&p->events_q);
	qs_batch_free(&p->ev_batch);
	qs_answers_free(p->answers);
	qs_chan_out_free(p->events_out);
	if (p->pull)
		zmq_close(p->pull);
	if (p->zctx)
		zmq_ctx_term(p->zctx);
	qs_enrich_buf_free(&p->line);
	qs_json_arena_free();
	qs_runtime_free(&p->rt);
}

/* A reload applied in place: frames are checked against the new tenants from
 * now on (a revoked credential's: unauthenticated). */
static int on_tenants(void *arg, const void *msg)
{
	struct parser *p = arg;
	struct qs_tenants *old = qs_runtime_take_tenants(&p->rt, msg);
	if (!old)
		return 0; /* logged; the old tenants stay */
	p->last_tenant = NULL;
	p->last_tenant_id = p->last_credential = 0;
	qs_tenants_free(old);
	qs_info("parser %u: tenants applied in place (%zu tenant(s))", p->cfg->slot, p->cfg->tenants->n);
	return 0;
}

int parser_main(const struct qs_config *cfg)
{
	static struct parser p;
	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.max_event = (size_t)cfg->max_message_size + 512 * 1024;
	p.max_batch = (size_t)cfg->max_message_size + 1024 * 1024 - 4096;
	qs_json_arena_install();
	qs_enrich_trees_in_arena(true);
	qs_heap_tune();
#ifdef QS_TEST_HOOKS
	const char *v = getenv("QS_TEST_PARSER_DELAY_US");
	p.test_delay_us = v ? (unsigned)strtoul(v, NULL, 10) : 0;
#endif
	const char *ep_dir = cfg->runtime_dir;
	/* --auth none: no tenants, nothing to share (every frame's tenant is 0) */
	const struct qs_fair_kind frames = {sizeof(struct qs_frame_rec), qs_frame_rec_payload,
					    offsetof(struct qs_frame_rec, tenant), qs_tenants_knows, &cfg->tenants};
	p.fair = qs_fair_new(cfg->auth == QS_AUTH_NONE, &frames);
	if (!p.fair || qs_runtime_init(&p.rt, cfg, on_stop, &p) || qs_confine_enter(cfg, &ep_dir) ||
	    connect_all(&p, ep_dir) || qs_confine_seccomp()) {
		cleanup(&p);
		return 1;
	}
	p.flow_ev = event_new(p.rt.base, -1, 0, on_flow, &p);
	p.retry_ev = evtimer_new(p.rt.base, on_retry, &p);
	p.stop_ev = evtimer_new(p.rt.base, on_stop_deadline, &p);
	p.hello_ev = evtimer_new(p.rt.base, on_hello, &p);
	p.serve_ev = evtimer_new(p.rt.base, on_serve, &p);
	p.pull_w = qs_zwatch_new(p.rt.base, p.pull, on_frames, &p);
	qs_runtime_on(&p.rt, QS_CTL_TENANTS, on_tenants);
	qs_runtime_on(&p.rt, QS_CTL_ACCEPTOR, on_acceptor);
	qs_runtime_ready(&p.rt);
	on_hello(-1, 0, &p);
	qs_info("parser %u serving %u acceptor(s)", cfg->slot, cfg->acceptors);
	event_base_dispatch(p.rt.base);
	qs_answers_flush(p.answers);
	cleanup(&p);
	qs_info("parser %u stopped", cfg->slot);
	return p.exit_code;
}

/* The shipper process: EVENTS from the parsers are group-committed to the
 * spool and only then acknowledged to the acceptors; the output ships the
 * spool to Logstash (or a file) independently, behind a persisted cursor.
 *
 * EVENTS arrive and answers leave over channels (ipc/chan.h): the shipper
 * runs no ZeroMQ. When the spool is full or the disk refuses writes, it
 * stops acknowledging and stops reading its channel: the parsers hold back,
 * ZeroMQ high-water marks push back to the acceptors, and QUIC flow control
 * to clients. */
#include "shipper/shipper.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/config.h"
#include "common/heap.h"
#include "common/hoptrace.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "common/tenants.h"
#include "ipc/answers.h"
#include "ipc/chan.h"
#include "ipc/runtime.h"
#include "ipc/ctl.h"
#include "ipc/fair.h"
#include "ipc/msg.h"
#include "ipc/zsock.h"
#include "roles/confine.h"
#include "shipper/backlog.h"
#include "shipper/output.h"
#include "shipper/quota_scan.h"
#include "shipper/reaper.h"
#include "shipper/spool.h"
#include "shipper/spool_age.h"
#include "shipper/stage.h"
#include "shipper/syncer.h"
#include "shipper/tenant_quota.h"
#include "shipper/tls_out.h"

#define STAGE_MAX (16u * 1024 * 1024)    /* stop reading while this much waits for a commit */
#define REFUSE_RETRY_MS 500
#define STATUS_MS 1000
#define CURSOR_MS 200
#define STOP_POLL_MS 50
/* A clean stop's first phase (on_stop_poll): the output ships what is
 * committed for STOP_SHIP_NS, then writes nothing new and has what it wrote
 * proven read, until STOP_PROVE_NS in all. What is left unproven is sent
 * again by the next shipper: duplicates. 2 s in all was too short for a
 * Logstash seconds behind (a test's receiver beside CPU hogs). 12 s with
 * the later phases: inside the supervisor's 15 s per stop phase. */
#define STOP_SHIP_NS 2000000000ull
#define STOP_PROVE_NS 10000000000ull
#define SPOOL_WAIT_MS 10000u /* for an earlier shipper to let the spool go */
#define SPOOL_WAIT_STEP_MS 50u
#define STOP_PHASE_NS 1000000000ull /* the clean stop's later phases */

struct shipper {
	const struct qs_config *cfg;
	struct qs_runtime rt;
	struct qs_chan_in *events_in;
	struct qs_answers *answers; /* acknowledgements and STATUS, to each acceptor's channel */
	struct qs_spool spool;
	struct qs_output out;
	struct qs_stage st;
	struct qs_syncer sync;
	struct qs_reaper reaper;
	struct qs_tquota quota; /* per-tenant unshipped bytes (tenant_quota.c) */
	struct qs_fair *fair;   /* tenants' fair share of the stage (ipc/fair.h) */
	struct event *serve_ev;
	uint64_t serve_now;     /* spool time of the events staged by this pass */
	struct event *flow_ev, *drain_ev, *refuse_ev, *status_ev, *cursor_ev, *stop_ev;
	bool refusing, stopping, spool_open;
	bool cursor_quiet;      /* the cursor timer is stopped: on_status looks once a second */
	struct qs_pos cursor_seen; /* the cursor at its timer's last run */
	int stop_phase; /* clean stop: 0 the output settles, 1 the events in the sockets, 2 the answers */
	uint64_t stop_deadline;
	uint64_t stop_ship_until; /* phase 0: write what is committed until then (STOP_SHIP_NS) */
	int exit_code;  /* 3: a clean stop left something unanswered (the acceptors must resend) */
#ifdef QS_TEST_HOOKS
	unsigned test_delay_us;
#endif
};

static void timer_ms(struct event *ev, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

static void send_status(struct shipper *sh)
{
	struct qs_batch b = {0};
	struct qs_status_rec r = {.spool_bytes = sh->spool.total, .spool_limit = sh->spool.max_bytes,
				  .accepting = !sh->refusing, .over_quota = (uint32_t)sh->quota.nover};
	if (qs_batch_begin(&b, QS_MSG_STATUS, QS_MSG_SENDER_SHIPPER) ||
	    qs_batch_add(&b, &r, sizeof(r), sh->quota.over, sh->quota.nover * sizeof(*sh->quota.over))) {
		qs_batch_free(&b);
		return;
	}
	/* A status that cannot go now is simply skipped: the next one follows in a second. */
	qs_answers_send_all(sh->answers, b.buf, b.len);
	qs_batch_free(&b);
}

static void flow_update(struct shipper *sh)
{
	event_active(sh->flow_ev, 0, 0);
}

static void set_refusing(struct shipper *sh, const char *why)
{
	if (!sh->refusing) {
		qs_warn("not accepting events: %s; retrying every %d ms", why, REFUSE_RETRY_MS);
		sh->refusing = true;
		send_status(sh);
		flow_update(sh);
	}
	if (!evtimer_pending(sh->refuse_ev, NULL))
		timer_ms(sh->refuse_ev, REFUSE_RETRY_MS);
}

static void set_accepting(struct shipper *sh)
{
	if (!sh->refusing)
		return;
	qs_info("accepting events again (spool %" PRIu64 " of %" PRIu64 " bytes)", sh->spool.total,
		sh->spool.max_bytes);
	sh->refusing = false;
	qs_mp_set(QS_M_SPOOL_FULL, 0);
	qs_mp_set(QS_M_SPOOL_ERROR, 0);
	qs_mp_set(QS_M_SPOOL_ACCEPTING, 1);
	send_status(sh);
	flow_update(sh);
}

/* Acknowledges the first k staged records, which are durable now. */
static void ack(struct shipper *sh, size_t k)
{
	qs_mp_add(QS_M_SPOOL_EVENTS, k);
	qs_mp_add(QS_M_SPOOL_GROUPS, k > 0);
	for (size_t i = 0; i < k; i++) {
		const struct qs_staged *t = &sh->st.t[i];
		if (t->acceptor >= qs_acceptor_channels(sh->cfg->acceptors))
			continue;
		qs_hop(QS_HOP_S_ACKED, t->acceptor, t->ticket);
		qs_answers_add(sh->answers, t->acceptor, t->ticket, 0, NULL);
	}
	qs_answers_flush(sh->answers);
}

static void refuse_full(struct shipper *sh)
{
	char why[160];
	snprintf(why, sizeof(why), "spool full (%" PRIu64 " of %" PRIu64 " bytes)", sh->spool.total,
		 sh->spool.max_bytes);
	qs_mp_set(QS_M_SPOOL_FULL, 1);
	qs_mp_set(QS_M_SPOOL_ACCEPTING, 0);
	set_refusing(sh, why);
}

static void refuse_failed(struct shipper *sh, const char *what, int err)
{
	char why[160];
	snprintf(why, sizeof(why), "spool %s failed: %s", what, strerror(err));
	qs_mp_set(QS_M_SPOOL_ERROR, 1);
	qs_mp_set(QS_M_SPOOL_ACCEPTING, 0);
	set_refusing(sh, why);
}

/* The first k staged records are durable: acknowledge them, and start the
 * next group with whatever was staged meanwhile. */
static void committed(struct shipper *sh, size_t k)
{
	qs_tquota_committed(&sh->quota, sh->st.t, k, sh->spool.written);
	if (qs_tquota_shipped(&sh->quota, sh->spool.cursor))
		send_status(sh); /* a tenant went over its spool-quota: the acceptors hold it at once */
	ack(sh, k);
	qs_output_kick(&sh->out, sh->spool.written, sh->st.buf, k ? sh->st.t[k - 1].end : 0);
	qs_stage_drop(&sh->st, k);
	if (!sh->st.n)
		set_accepting(sh);
}

/* Group commit: one write of everything staged that fits, then one
 * fdatasync. With --durability fsync the fdatasync runs on the sync thread
 * and acknowledgements follow in on_synced; only one group is in flight, the
 * next one builds up meanwhile. */
static void commit(struct shipper *sh)
{
	if (!sh->st.n || sh->sync.busy)
		return;
	size_t k = qs_spool_take(&sh->spool, &sh->st);
	if (k == 0)
		return refuse_full(sh);
	size_t len = sh->st.t[k - 1].end;
	if (!sh->spool.fsync) {
		if (qs_spool_append(&sh->spool, sh->st.buf, len) != 0)
			return refuse_failed(sh, "write", errno);
		committed(sh, k);
		return commit(sh); /* whatever did not fit: refused above, now */
	}
	if (qs_spool_write(&sh->spool, sh->st.buf, len) != 0)
		return refuse_failed(sh, "write", errno);
	qs_hop(QS_HOP_S_SYNC0, 0, k);
	qs_syncer_start(&sh->sync, sh->spool.wfd, len);
}

static void on_synced(void *arg, int rc, int err, uint64_t ns)
{
	struct shipper *sh = arg;
	/* The group in flight: the first staged records, exactly the pending bytes. */
	size_t k = qs_stage_fit(&sh->st, sh->spool.pending);
	qs_hop(QS_HOP_S_SYNC1, 0, ns);
	if (ns > 1000000000ull)
		qs_warn("spool fdatasync took %" PRIu64 " ms", ns / 1000000);
	qs_spool_sync_done(&sh->spool, rc == 0);
	if (rc != 0)
		return refuse_failed(sh, "fdatasync", err);
	committed(sh, k);
	commit(sh);
	flow_update(sh);
}

static bool can_read(const struct shipper *sh)
{
	return !sh->stopping && !sh->refusing && sh->st.len < STAGE_MAX && qs_fair_room(sh->fair);
}

static void stage_event(struct shipper *sh, const struct qs_event_rec *er, const uint8_t *payload, uint64_t now)
{
	if (er->len == 0 || payload[er->len - 1] != '\n') {
		qs_warn("a parser sent an event that is not one JSON line: dropped");
		return;
	}
	qs_hop(QS_HOP_S_RECV, er->acceptor, er->ticket);
#ifdef QS_TEST_HOOKS
	if (sh->test_delay_us) /* QS_TEST_SHIPPER_DELAY_US: each event takes this much longer */
		usleep(sh->test_delay_us);
#endif
	if (qs_stage_add(&sh->st, er->ticket, er->acceptor, payload, er->len, now))
		qs_err("out of memory staging an event: dropped (the acceptor will resend)");
	else
		sh->st.t[sh->st.n - 1].tenant = er->tenant;
}

static void serve_event(void *arg, const void *rec, const uint8_t *payload)
{
	struct shipper *sh = arg;
	struct qs_event_rec er;
	memcpy(&er, rec, sizeof(er));
	stage_event(sh, &er, payload, sh->serve_now);
}

static bool stage_open(void *arg)
{
	const struct shipper *sh = arg;
	return sh->st.len < STAGE_MAX;
}

/* Stages budgets of the look-ahead's events, by tenant (ipc/fair.h), while
 * the stage has room (all of them when stopping); the group commit follows. */
static void serve(struct shipper *sh, size_t budget)
{
	if (qs_fair_empty(sh->fair) || (!sh->stopping && (sh->refusing || sh->st.len >= STAGE_MAX)))
		return;
	sh->serve_now = qs_realtime_ns();
	/* A pass's share (ipc/fair.h): one quantum a pass made groups half as
	 * large as without tenants at full load (each pass's drain commits),
	 * twice the fdatasyncs and wake-ups (PERFORMANCE round 16). Serving in
	 * the reading pass's drain instead lost test_tenant_fair's
	 * shipper-share (b 27% beside a's 16 connections). */
	bool more = budget == SIZE_MAX ? qs_fair_serve(sh->fair, budget, serve_event, sh)
				       : qs_fair_serve_pass(sh->fair, stage_open, serve_event, sh);
	if (more && sh->st.len < STAGE_MAX)
		qs_fair_later(sh->serve_ev);
	event_active(sh->drain_ev, 0, 0);
	flow_update(sh);
}

static void on_serve(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	serve(arg, QS_FAIR_QUANTUM);
}

static void stage_message(void *arg, const void *msg, size_t len)
{
	struct shipper *sh = arg;
	struct qs_batch_iter it;
	const char *why = NULL;
	if (qs_batch_receive(&it, QS_INBOX_EVENTS, msg, len, &why) != 0) {
		qs_warn("dropping a malformed message on the events socket: %s", why);
		return;
	}
	qs_mp_queue_recv(QS_QL_EVENTS, it.remaining, len);
	if (qs_fair_take(sh->fair, &it, msg, len)) {
		qs_fair_later(sh->serve_ev);
	} else {
		uint64_t now = qs_realtime_ns();
		struct qs_event_rec er;
		const uint8_t *payload;
		int rc;
		while ((rc = qs_batch_next(&it, &er, sizeof(er), qs_event_rec_payload, &payload)) == 1) {
			bool shared = qs_fair_count(sh->fair, er.tenant, sizeof(er) + er.len);
			stage_event(sh, &er, payload, now);
			if (shared && it.remaining && qs_fair_take(sh->fair, &it, msg, len)) {
				qs_fair_later(sh->serve_ev); /* a newcomer: the rest in the look-ahead */
				break;
			}
		}
		if (rc < 0)
			qs_warn("malformed EVENTS message from parser %u: rest dropped", it.sender);
		event_active(sh->drain_ev, 0, 0);
	}
	if (!can_read(sh))
		qs_chan_in_pause(sh->events_in, true);
}

/* Group commit without a timer: once the channels have delivered what this
 * loop pass read, whatever is staged is written and handed to the sync
 * thread (unless a group is still being synced: then it becomes the next
 * group, committed the moment that sync reports). */
static void on_drained(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct shipper *sh = arg;
	commit(sh);
	flow_update(sh);
}

static void on_flow(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct shipper *sh = arg;
	qs_chan_in_pause(sh->events_in, !can_read(sh));
	if (!qs_fair_empty(sh->fair))
		qs_fair_later(sh->serve_ev);
}

static void persist(struct shipper *sh)
{
	if (qs_output_sync(&sh->out) == 0)
		qs_spool_persist(&sh->spool);
}

/* While refusing: free what was shipped, then try the held batch again. */
static void on_refuse_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct shipper *sh = arg;
	persist(sh);
	if (sh->st.n)
		commit(sh);
	else if (qs_spool_room(&sh->spool) > 0)
		set_accepting(sh);
	if (sh->refusing && !evtimer_pending(sh->refuse_ev, NULL))
		timer_ms(sh->refuse_ev, REFUSE_RETRY_MS);
}

static int on_resolved(void *arg, const void *m)
{
	struct shipper *sh = arg;
	qs_output_resolved(&sh->out, m);
	return 0;
}

/* An acceptor was announced on a channel: connect its answers at once (a
 * channel without one is otherwise retried at most once a second). */
static int on_acceptor(void *arg, const void *m)
{
	struct shipper *sh = arg;
	const struct qs_ctl_acceptor *a = m;
	if (a->serving)
		qs_answers_retry(sh->answers, a->channel);
	return 0;
}

/* Once a second: the spool and the output, for the service's status line. */
static void report(struct shipper *sh)
{
	struct qs_ctl_status st = {.backlog = qs_output_unsent(&sh->out), .spool_bytes = sh->spool.total,
				   .spool_limit = sh->spool.max_bytes, .output_up = sh->out.state >= QS_OUT_UP || sh->out.redial,
				   .accepting = !sh->refusing};
	qs_runtime_report(&sh->rt, &st, sh->out.name);
	qs_mp_set(QS_M_SPOOL_BYTES, st.spool_bytes);
	qs_mp_set(QS_M_SPOOL_LIMIT, st.spool_limit);
	qs_mp_set(QS_M_SPOOL_SEGMENTS, sh->spool.nsegs);
	qs_mp_set(QS_M_SPOOL_UNSHIPPED, st.backlog);
	qs_mp_set(QS_M_OUT_UP, st.output_up);
	qs_mp_set(QS_M_SPOOL_ACCEPTING, st.accepting);
	qs_mp_set(QS_M_SHIPPER_STAGED, sh->st.n);
	uint64_t oldest = st.backlog ? qs_spool_oldest_ns(&sh->spool) : 0, now = qs_realtime_ns();
	qs_mp_set(QS_M_SPOOL_OLDEST, oldest && now > oldest ? (now - oldest) / 1000000000u : 0);
}

static void cursor_look(struct shipper *sh);

static void on_status(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct shipper *sh = arg;
	qs_tquota_shipped(&sh->quota, sh->spool.cursor);
	send_status(sh);
	report(sh);
	/* The timers that stop while idle look again here (docs/PERFORMANCE.md, "Idle"). */
	cursor_look(sh);
	qs_output_pace(&sh->out);
}

/* The cursor stayed where it was persisted since the last look (and the
 * output file has nothing to sync). */
static bool cursor_quiet(struct shipper *sh)
{
	struct qs_pos c = sh->spool.cursor;
	bool quiet = c.seg == sh->cursor_seen.seg && c.off == sh->cursor_seen.off && c.seg == sh->spool.persisted.seg &&
		     c.off == sh->spool.persisted.off && !sh->out.dirty;
	sh->cursor_seen = c;
	return quiet;
}

/* Persists the cursor every 200 ms while it moves; while it stays (idle:
 * nothing to write) the timer stops and on_status looks once a second, so
 * the first move after a quiet spell is written within a second (a crash
 * then resends a little more to Logstash, never less). */
static void on_cursor_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct shipper *sh = arg;
	persist(sh);
	if (cursor_quiet(sh)) {
		sh->cursor_quiet = true;
		event_del(sh->cursor_ev);
	}
}

static void cursor_look(struct shipper *sh)
{
	if (sh->cursor_quiet && !cursor_quiet(sh)) {
		sh->cursor_quiet = false;
		persist(sh);
		timer_ms(sh->cursor_ev, CURSOR_MS);
	}
}

static void finish(struct shipper *sh)
{
	qs_answers_flush(sh->answers);
	persist(sh);
	event_base_loopexit(sh->rt.base, NULL);
}

/* Commits everything staged and waits for it (on_synced starts each next group). */
static void commit_all(struct shipper *sh)
{
	commit(sh);
	while (sh->sync.busy)
		qs_syncer_wait(&sh->sync);
}

/* No more events: commit and acknowledge the batch in hand. */
static void stop_intake(struct shipper *sh)
{
	sh->stopping = true;
	flow_update(sh);
	serve(sh, SIZE_MAX); /* the whole look-ahead */
	commit_all(sh);
}

/* A clean stop in phases, each bounded, polled every STOP_POLL_MS: (0) the
 * output ships what is committed (below); (1) no more parsers, no more bytes
 * from them, but what their connections hold is read and staged (a parser
 * keeps what it had not written wholly, for our successor: chan.h); (2) all
 * of it committed and every answer in its acceptor's socket. Then the exit
 * status is 0 only if nothing was left: the supervisor has the acceptors
 * resend only after a stop that left something (issue 25). */
static bool stop_phase_done(struct shipper *sh)
{
	switch (sh->stop_phase) {
	case 0: return qs_output_caught_up(&sh->out);
	case 1: return qs_chan_in_peers(sh->events_in) == 0;
	default: return !qs_answers_unsent(sh->answers);
	}
}

static void on_stop_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct shipper *sh = arg;
	static const char *const late[] = {
		"output not proven read within 10 s: the next start sends the unproven tail again",
		"parsers' events still arriving after 1 s: the acceptors resend them",
		"answers not taken by the acceptors within 1 s: they resend those frames",
	};
	bool done = stop_phase_done(sh);
	uint64_t now = qs_now_ns();
	if (!done && sh->stop_phase == 0 && sh->stop_ship_until && now >= sh->stop_ship_until) {
		sh->stop_ship_until = 0;
		qs_output_stop_writing(&sh->out);
	}
	if (!done && now < sh->stop_deadline)
		return timer_ms(sh->stop_ev, STOP_POLL_MS);
	if (!done) {
		qs_warn("%s", late[sh->stop_phase]);
		if (sh->stop_phase > 0)
			sh->exit_code = 3;
	}
	if (sh->stop_phase == 2)
		return finish(sh);
	if (++sh->stop_phase == 1) {
		qs_chan_in_finish(sh->events_in);
	} else {
		stop_intake(sh);
		qs_answers_flush(sh->answers);
	}
	sh->stop_deadline = qs_now_ns() + STOP_PHASE_NS;
	on_stop_poll(-1, 0, sh);
}

/* An urgent stop ends at once. Otherwise the output first ships what is
 * committed now and has Logstash prove it read it (the drain: our FIN, its
 * FIN; settle.h), so that the next shipper does not send it again, while this
 * one goes on taking and acknowledging events (the next one ships those): a
 * reload then holds no acknowledgement meanwhile. A Logstash that is behind
 * gets STOP_SHIP_NS to take the rest, then only what it holds is proven. */
static void on_stop(void *arg, bool urgent, const char *why)
{
	(void)why;
	struct shipper *sh = arg;
	if (urgent) {
		stop_intake(sh);
		return finish(sh);
	}
	commit_all(sh);
	qs_output_freeze(&sh->out);
	sh->stop_ship_until = qs_now_ns() + STOP_SHIP_NS;
	sh->stop_deadline = qs_now_ns() + STOP_PROVE_NS;
	on_stop_poll(-1, 0, sh);
}

static int open_sockets(struct shipper *sh, const char *dir)
{
	const struct qs_config *cfg = sh->cfg;
	size_t maxmsg = (size_t)cfg->max_message_size + 1024 * 1024;
	struct event_base *base = sh->rt.base;
	char ep[256];
	if (qs_chan_path(ep, sizeof(ep), dir, QS_EP_SHIPPER_EVENTS, 0) ||
	    !(sh->events_in = qs_chan_listen(base, ep, maxmsg, stage_message, sh)))
		return -1;
	sh->answers = qs_answers_new(base, dir, qs_acceptor_channels(cfg->acceptors), QS_MSG_SENDER_SHIPPER);
	if (!sh->answers)
		return -1;
	qs_answers_count(sh->answers, QS_QL_ANSWERS);
	return 0;
}

static int open_spool(struct shipper *sh, int dirfd)
{
	const struct qs_config *cfg = sh->cfg;
	uint64_t seg_max = cfg->spool_max_bytes / 8;
	seg_max = seg_max > 64u * 1024 * 1024 ? 64u * 1024 * 1024 : seg_max < 65536 ? 65536 : seg_max;
	struct qs_spool_opts o = {.dir = cfg->spool_dir, .max_bytes = cfg->spool_max_bytes, .seg_max = seg_max,
				  .fsync = cfg->durability == QS_DURABILITY_FSYNC, .have_dirfd = true,
				  .dirfd = dirfd};
	if (qs_spool_open(&sh->spool, &o) != 0)
		return -1;
	sh->spool_open = true;
	if (qs_reaper_start(&sh->reaper, sh->spool.dirfd, cfg->spool_dir) == 0)
		sh->spool.reaper = &sh->reaper;
	qs_info("spool %s: %zu segment(s), %" PRIu64 " bytes, shipping from segment %016" PRIx64
		" offset %" PRIu64 " (durability %s)",
		cfg->spool_dir, sh->spool.nsegs, sh->spool.total, sh->spool.cursor.seg, sh->spool.cursor.off,
		o.fsync ? "fsync" : "write");
	qs_backlog_report(&sh->spool, cfg->logstash_text);
	return 0;
}

static void make_events(struct shipper *sh)
{
	struct event_base *b = sh->rt.base;
	sh->flow_ev = event_new(b, -1, 0, on_flow, sh);
	sh->drain_ev = event_new(b, -1, 0, on_drained, sh);
	sh->refuse_ev = evtimer_new(b, on_refuse_retry, sh);
	sh->status_ev = event_new(b, -1, EV_PERSIST, on_status, sh);
	sh->cursor_ev = event_new(b, -1, EV_PERSIST, on_cursor_timer, sh);
	sh->stop_ev = evtimer_new(b, on_stop_poll, sh);
	sh->serve_ev = evtimer_new(b, on_serve, sh);
	timer_ms(sh->status_ev, STATUS_MS);
	timer_ms(sh->cursor_ev, CURSOR_MS);
}

static void cleanup(struct shipper *sh)
{
	struct event *evs[] = {sh->flow_ev, sh->drain_ev, sh->refuse_ev, sh->status_ev,
			       sh->cursor_ev, sh->stop_ev, sh->serve_ev};
	qs_syncer_free(&sh->sync);
	if (sh->out.rd.shipped)
		qs_info("output: %" PRIu64 " events shipped; %" PRIu64 " groups from memory, %" PRIu64
			" reads of the spool", sh->out.rd.shipped, sh->out.offered, sh->out.rd.reads);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	/* a file written since the last persist: synced before the cursor moves past it */
	if (sh->spool_open)
		(void)qs_output_sync(&sh->out);
	qs_output_free(&sh->out);
	qs_answers_free(sh->answers);
	qs_chan_in_free(sh->events_in);
	qs_reaper_stop(&sh->reaper);
	if (sh->spool_open && sh->spool.reaper) {
		/* The thread is gone: a cursor it could not take (queue full) or
		 * could not write is written here, the old synchronous way. */
		sh->spool.reaper = NULL;
		if (sh->reaper.cursor_lost)
			sh->spool.persisted = (struct qs_pos){UINT64_MAX, UINT64_MAX};
		qs_spool_persist(&sh->spool);
	}
	if (sh->spool_open)
		qs_spool_close(&sh->spool);
	qs_stage_free(&sh->st);
	qs_fair_free(sh->fair);
	qs_tquota_free(&sh->quota);
	qs_runtime_free(&sh->rt);
}

/* One writer of the spool at a time, whatever the supervisors (they lock
 * SPOOL/quicstashd.lock): the shipper of a supervisor killed alone may still
 * be stopping when the next instance starts its own. This one waits for it
 * (the earlier one's stop is bounded), holding the directory's flock for its
 * life (the descriptor becomes the spool's dirfd). */
static int hold_spool(int fd, const char *dir)
{
	for (unsigned waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += SPOOL_WAIT_STEP_MS) {
		if (errno != EWOULDBLOCK || waited >= SPOOL_WAIT_MS) {
			qs_err("spool %s: %s", dir, errno == EWOULDBLOCK ? "still held by an earlier shipper" : strerror(errno));
			return -1;
		}
		if (!waited)
			qs_warn("spool %s is held by an earlier shipper, still stopping: waiting up to %u s", dir,
				SPOOL_WAIT_MS / 1000);
		usleep(SPOOL_WAIT_STEP_MS * 1000);
	}
	return 0;
}

int shipper_main(const struct qs_config *cfg)
{
	static struct shipper sh;
	memset(&sh, 0, sizeof(sh));
	sh.cfg = cfg;
	qs_heap_tune();
#ifdef QS_TEST_HOOKS
	const char *delay = getenv("QS_TEST_SHIPPER_DELAY_US");
	sh.test_delay_us = delay ? (unsigned)strtoul(delay, NULL, 10) : 0;
#endif
	if (qs_runtime_init(&sh.rt, cfg, on_stop, &sh)) {
		cleanup(&sh);
		return 1;
	}
	/* Opened while still privileged and before the chroot: from then on the
	 * spool is reached only through this descriptor, the output file through
	 * its own, and Logstash by the address resolved at start. */
	struct qs_output_opened op;
	int out_rc = qs_output_open(cfg, &op);
	int spool_fd = open(cfg->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool_fd < 0)
		qs_err("spool %s: %s", cfg->spool_dir, strerror(errno));
	else if (hold_spool(spool_fd, cfg->spool_dir) != 0) {
		close(spool_fd);
		spool_fd = -1;
	}
	const char *ep_dir = cfg->runtime_dir;
	const struct qs_fair_kind events = {sizeof(struct qs_event_rec), qs_event_rec_payload,
					    offsetof(struct qs_event_rec, tenant), qs_tenants_knows, &cfg->tenants};
	sh.fair = qs_fair_new(cfg->auth == QS_AUTH_NONE, &events); /* --auth none: no tenants to share between */
	if (!sh.fair || out_rc || spool_fd < 0 || qs_confine_enter(cfg, &ep_dir) || open_spool(&sh, spool_fd) ||
	    open_sockets(&sh, ep_dir)) {
		qs_output_opened_free(&op);
		cleanup(&sh);
		return 1;
	}
	make_events(&sh);
	if (qs_tquota_init(&sh.quota, cfg->auth != QS_AUTH_NONE ? cfg->tenants : NULL) ||
	    qs_syncer_init(&sh.sync, sh.rt.base, on_synced, &sh) ||
	    qs_output_init(&sh.out, cfg, sh.rt.base, &sh.spool, &op) || qs_confine_seccomp()) {
		qs_output_opened_free(&op);
		cleanup(&sh);
		return 1;
	}
	qs_tquota_scan(&sh.quota, &sh.spool); /* before the first STATUS: who is over stays held */
	sh.out.ctl_fd = sh.rt.ctl_fd;
	qs_runtime_on(&sh.rt, QS_CTL_RESOLVED, on_resolved);
	qs_runtime_on(&sh.rt, QS_CTL_ACCEPTOR, on_acceptor);
	qs_mp_set(QS_M_SPOOL_ACCEPTING, !sh.refusing); /* its gauges were cleared when the last one ended */
	qs_runtime_ready(&sh.rt);
	send_status(&sh);
	event_base_dispatch(sh.rt.base);
	cleanup(&sh);
	qs_info("shipper stopped");
	return sh.exit_code;
}

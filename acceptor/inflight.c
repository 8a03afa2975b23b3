/* Frames in flight: the index-addressed pool (ticket = index + reuse
 * generation), the queue of frames not yet handed to ZeroMQ, the FRAMES
 * batches towards the parsers and the resends.
 *
 * A frame keeps its bytes until it is resolved: ZeroMQ drops what was queued
 * to a peer that dies, so this process is the one place that can resend. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/hoptrace.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "common/tenants.h"
#include "ipc/chan.h"
#include "ipc/zsock.h"

static int pool_grow(struct acc *a)
{
	if (a->pool_cap >= QS_TICKET_INDEX_MAX)
		return -1; /* a ticket has no room for more */
	uint32_t cap = a->pool_cap ? a->pool_cap * 2 : 1024;
	struct acc_frame *p = realloc(a->pool, (size_t)cap * sizeof(*p));
	if (!p)
		return -1;
	memset(p + a->pool_cap, 0, (size_t)(cap - a->pool_cap) * sizeof(*p));
	for (uint32_t i = cap; i-- > a->pool_cap;) {
		p[i].next = a->free_head;
		a->free_head = (int32_t)i;
	}
	a->pool = p;
	a->pool_cap = cap;
	return 0;
}

uint64_t acc_ticket(const struct acc *a, int32_t idx)
{
	return qs_ticket_make(a->ticket_epoch, (uint32_t)idx, a->pool[idx].gen);
}

int32_t acc_frame_new(struct acc *a, struct acc_stream *s, uint64_t seq, uint32_t credit)
{
	if (a->free_head == ACC_NONE && pool_grow(a))
		return ACC_NONE;
	int32_t idx = a->free_head;
	struct acc_frame *f = &a->pool[idx];
	a->free_head = f->next;
	uint32_t gen = f->gen;
	memset(f, 0, sizeof(*f));
	f->gen = gen;
	f->in_use = true;
	f->st = s;
	qs_mp_add(QS_M_FRAMES_IN, 1);
	a->n_frames++;
	f->seq = seq;
	f->credit = credit;
	f->next = f->q_prev = f->q_next = ACC_NONE;
	if (s->tail != ACC_NONE)
		a->pool[s->tail].next = idx;
	else
		s->head = idx;
	s->tail = idx;
	a->pool_used++;
	s->c->frames++;
	return idx;
}

static size_t rec_bytes(const struct acc_frame *f)
{
	return sizeof(struct qs_frame_rec) + f->len + 16;
}

static void enqueue(struct acc *a, int32_t idx)
{
	struct acc_frame *f = &a->pool[idx];
	if (f->queued || !f->data)
		return;
	f->queued = true;
	f->q_next = ACC_NONE;
	f->q_prev = a->q_tail;
	if (a->q_tail != ACC_NONE)
		a->pool[a->q_tail].q_next = idx;
	else
		a->q_head = idx;
	a->q_tail = idx;
	a->q_bytes += rec_bytes(f);
	a->q_frames++;
	qs_hop(QS_HOP_A_QUEUED, acc_channel(a), acc_ticket(a, idx));
}

static void dequeue(struct acc *a, int32_t idx)
{
	struct acc_frame *f = &a->pool[idx];
	if (!f->queued)
		return;
	if (f->q_prev != ACC_NONE)
		a->pool[f->q_prev].q_next = f->q_next;
	else
		a->q_head = f->q_next;
	if (f->q_next != ACC_NONE)
		a->pool[f->q_next].q_prev = f->q_prev;
	else
		a->q_tail = f->q_prev;
	f->q_prev = f->q_next = ACC_NONE;
	f->queued = false;
	a->q_bytes -= rec_bytes(f);
	a->q_frames--;
}

/* Frame bytes of up to SMALL_FRAME go into fixed blocks recycled through a
 * free list: a typical event costs no malloc/free (glibc's per-size cache
 * holds only 7 blocks, far fewer than the thousands of frames in flight). */
#define SMALL_FRAME 512
#define SMALL_KEEP 65536 /* blocks kept on the free list at most (32 MiB) */

struct small_block {
	struct small_block *next;
};
static struct small_block *small_free;
static unsigned small_nfree;

static uint8_t *data_alloc(uint32_t len)
{
	if (len > SMALL_FRAME)
		return malloc(len);
	struct small_block *b = small_free;
	if (!b)
		return malloc(SMALL_FRAME);
	small_free = b->next;
	small_nfree--;
	return (uint8_t *)b;
}

static void data_free(uint8_t *p, uint32_t len)
{
	if (len > SMALL_FRAME || small_nfree >= SMALL_KEEP) {
		free(p);
		return;
	}
	struct small_block *b = (struct small_block *)(void *)p;
	b->next = small_free;
	small_free = b;
	small_nfree++;
}

static void data_free_all(void)
{
	while (small_free) {
		struct small_block *b = small_free;
		small_free = b->next;
		free(b);
	}
	small_nfree = 0;
}

static void drop_data(struct acc *a, int32_t idx)
{
	struct acc_frame *f = &a->pool[idx];
	dequeue(a, idx);
	if (f->data) {
		a->held -= f->len;
		data_free(f->data, f->len);
		f->data = NULL;
	}
}

void acc_frame_forward(struct acc *a, int32_t idx, const uint8_t *data, uint32_t len)
{
	struct acc_frame *f = &a->pool[idx];
	f->data = data_alloc(len);
	if (!f->data) {
		acc_frame_resolve(a, idx, QS_REJ_INTERNAL, "out of memory", 13);
		return;
	}
	memcpy(f->data, data, len);
	f->len = len;
	if (!a->pass_real_ns)
		a->pass_real_ns = qs_realtime_ns(); /* one clock read per loop pass, not per frame */
	f->recv_ns = a->pass_real_ns;
	f->forwarded = true;
	a->held += len;
	enqueue(a, idx);
	/* While no parser takes a batch, a try per frame rebuilt a 256 KiB batch
	 * for each (~33 us for 5-byte frames, against well under 1 us each). */
	if (a->q_bytes >= QS_BATCH_SOFT_BYTES && !a->push_blocked)
		acc_frames_send(a);
}

void acc_frame_resolve(struct acc *a, int32_t idx, uint16_t code, const char *reason, size_t reason_len)
{
	struct acc_frame *f = &a->pool[idx];
	f->resolved = true;
	f->code = code;
	qs_mp_add(code ? qs_m_rejected(code) : QS_M_FRAMES_ACKED, 1);
	if (f->recv_ns) { /* its answer goes out in this loop pass */
		if (!a->pass_real_ns)
			a->pass_real_ns = qs_realtime_ns();
		qs_mp_observe_ack_ns(a->pass_real_ns > f->recv_ns ? a->pass_real_ns - f->recv_ns : 0);
	}
	acc_tenant_count_frame(f->st->c, code, f->len);
	if (code == QS_REJ_UNAUTHENTICATED)
		acc_auth_revoke(f->st->c);
	if (!code)
		a->n_acked++;
	if (code) {
		a->n_rejected++;
		if (reason_len > QS_REASON_MAX)
			reason_len = QS_REASON_MAX;
		f->reason = malloc(reason_len + 1);
		if (f->reason) {
			memcpy(f->reason, reason, reason_len);
			f->reason[reason_len] = 0;
		}
	}
	drop_data(a, idx);
	acc_stream_advance(f->st);
}

void acc_frame_free(struct acc *a, int32_t idx)
{
	struct acc_frame *f = &a->pool[idx];
	drop_data(a, idx);
	free(f->reason);
	f->reason = NULL;
	f->in_use = false;
	f->st->c->frames--;
	f->gen++; /* any answer still on its way is now stale */
	f->next = a->free_head;
	a->free_head = idx;
	a->pool_used--;
}

uint32_t acc_frames_unresolved(const struct acc *a)
{
	return a->pool_used;
}

static void fill_origin(struct qs_frame_rec *r, const struct acc_conn *c)
{
	const ngtcp2_path *p = ngtcp2_conn_get_path(c->qc);
	const struct sockaddr *sa = p->remote.addr;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		memcpy(r->ip, &s6->sin6_addr, 16);
		r->port = ntohs(s6->sin6_port);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		r->ip[10] = r->ip[11] = 0xff; /* v4-mapped IPv6 */
		memcpy(r->ip + 12, &s4->sin_addr, 4);
		r->port = ntohs(s4->sin_port);
	}
}

static int batch_add(struct acc *a, int32_t idx)
{
	struct acc_frame *f = &a->pool[idx];
	struct qs_frame_rec r;
	memset(&r, 0, sizeof(r));
	r.ticket = acc_ticket(a, idx);
	r.seq = f->seq;
	r.recv_time_ns = f->recv_ns;
	memcpy(r.session, f->st->session, sizeof(r.session));
	fill_origin(&r, f->st->c);
	r.tenant = f->st->c->tenant ? f->st->c->tenant->id : 0;
	r.credential = f->st->c->credential;
	r.acceptor = (uint8_t)acc_channel(a);
	r.len = f->len;
	return qs_batch_add(&a->batch, &r, sizeof(r), f->data, f->len);
}

/* One batch to the next parser slot that takes it (round robin over the
 * slots not paused): that slot, or -1 when none does now (no parser, or
 * queues full). */
static int send_round(struct acc *a)
{
	for (unsigned i = 0; i < a->npush; i++) {
		unsigned k = (a->push_next + i) % a->npush;
		if (a->slot[k].paused || qs_zsend_batch(a->push[k], &a->batch) != 0)
			continue;
		a->push_next = k + 1;
		return (int)k;
	}
	return -1;
}

/* A parser said BYE: after everything handed to its socket, an empty batch
 * tells it that nothing more comes from here. */
static void send_ends(struct acc *a)
{
	struct qs_batch end = {0};
	for (unsigned k = 0; k < a->npush; k++) {
		if (!a->slot[k].end_due)
			continue;
		if (!end.buf && qs_batch_begin(&end, QS_MSG_FRAMES, acc_channel(a)))
			break;
		if (qs_zsend(a->push[k], end.buf, end.len) == 0) {
			a->slot[k].end_due = false;
			qs_zwatch_kick(a->push_w[k]);
		}
	}
	qs_batch_free(&end);
}

/* Hands queued frames to ZeroMQ in batches; stops, keeping them queued, when
 * no parser's socket takes them (no parser, or its queue is full). */
void acc_frames_send(struct acc *a)
{
	send_ends(a);
	bool sent = false;
	while (a->q_head != ACC_NONE) {
		if (qs_batch_begin(&a->batch, QS_MSG_FRAMES, acc_channel(a)))
			return;
		uint32_t n = 0;
		for (int32_t i = a->q_head; i != ACC_NONE && (n == 0 || a->batch.len < QS_BATCH_SOFT_BYTES);
		     i = a->pool[i].q_next, n++)
			if (batch_add(a, i))
				return;
		/* the hand-over's time, taken before it: the parser may record the
		 * batch's arrival before this loop records its frames as pushed */
		uint64_t t_hop = qs_hop_fd >= 0 ? qs_now_ns() : 0;
		size_t len = a->batch.len; /* (a sent batch's buffer is ZeroMQ's: ours is empty after) */
		int slot = send_round(a);
		a->push_blocked = slot < 0;
		if (slot < 0) {
			qs_mp_add(QS_M_ACC_REFUSED, 1);
			qs_hop(QS_HOP_A_BLOCKED, acc_channel(a), n);
			break;
		}
		qs_mp_queue_sent(QS_QL_FRAMES + (unsigned)slot, n, len);
		sent = true;
		uint64_t now = qs_now_ns();
		while (n--) {
			int32_t i = a->q_head;
			a->pool[i].sent_mono = now;
			if (qs_hop_fd >= 0)
				qs_hop_record_at(QS_HOP_A_PUSHED, acc_channel(a),
						 acc_ticket(a, (int32_t)i), t_hop);
			dequeue(a, i);
		}
	}
	/* ZMQ_FD is edge-triggered: a send outside the watcher may swallow its wake-up. */
	if (sent)
		for (unsigned k = 0; k < a->npush; k++)
			qs_zwatch_kick(a->push_w[k]);
}

void acc_frames_resend_all(struct acc *a)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < a->pool_cap; i++) {
		struct acc_frame *f = &a->pool[i];
		if (f->in_use && f->data && !f->queued) {
			enqueue(a, (int32_t)i);
			n++;
		}
	}
	if (n)
		qs_info("re-sending %u unresolved frames", n);
	acc_frames_send(a);
}

/* Backstop for answers lost without a restart notice: re-send a frame
 * unresolved for 30 s while the shipper says it is accepting. The pool never
 * shrinks (a ticket's generation must outlive its frame), so it is walked
 * once a second at most and not at all while empty: after a peak of millions
 * of frames in flight a walk took 13-15 ms, and the busy tick came 10 times
 * a second for good. */
void acc_frames_tick(struct acc *a)
{
	uint64_t now = qs_now_ns();
	if (!a->pool_used || now - a->resend_walk_mono < 1000000000ull)
		return;
	a->resend_walk_mono = now;
	uint64_t last = a->status_seen ? a->status_mono : a->start_mono;
	/* No status for 5 s: the shipper may be gone, and resending is harmless. */
	if (!a->accepting && now - last < ACC_STATUS_STALE_NS)
		return;
	uint32_t n = 0;
	for (uint32_t i = 0; i < a->pool_cap; i++) {
		struct acc_frame *f = &a->pool[i];
		if (f->in_use && f->data && !f->queued && now - f->sent_mono >= ACC_RESEND_AFTER_NS) {
			enqueue(a, (int32_t)i);
			n++;
		}
	}
	if (n) {
		qs_debug("re-sending %u frames unresolved for 30 s", n);
		acc_frames_send(a);
	}
}

static int push_ready(void *sock, void *arg)
{
	struct acc *a = arg;
	acc_frames_send(a);
	/* OUT only for what this socket refused: a paused slot's socket may be
	 * writable while frames wait, and the watcher would call us again at
	 * once, for ever (its HELLO never read). */
	for (unsigned k = 0; k < a->npush; k++)
		if (a->push[k] == sock)
			return (a->q_head != ACC_NONE && !a->slot[k].paused) || a->slot[k].end_due ? QS_ZWATCH_OUT : 0;
	return 0;
}

/* A parser's word about itself (ipc/msg.h): BYE pauses its slot until
 * another process of it says HELLO (every parser does at once and every
 * second; one that said BYE no more, and an older process's HELLO never
 * comes after its own BYE). The answers socket is reachable by every child,
 * so the words are not all believed: a BYE of a generation later than any
 * that said HELLO is ignored, and a HELLO of any generation but the BYE's
 * ends the pause. Before, a HELLO had to be later than the BYE, and a forged
 * BYE of generation 0xffffffff (or a forged HELLO of it, then a BYE) paused
 * the slot for good, across parser restarts. */
static void on_parser_word(struct acc *a, uint32_t slot, const struct qs_answer_rec *r)
{
	if (slot >= a->npush)
		return;
	struct acc_slot *s = &a->slot[slot];
	uint32_t gen = (uint32_t)r->ticket;
	if (r->code == QS_ANSWER_PARSER_BYE && s->hello_gen && gen > s->hello_gen) {
		qs_warn("parser %u: a BYE of generation %u, which never said HELLO: ignored", slot, gen);
		return;
	}
	if (r->code == QS_ANSWER_PARSER_BYE && (!s->paused || gen > s->bye_gen)) {
		qs_debug("parser %u (generation %u) stops: no more frames to it", slot, gen);
		s->paused = s->end_due = true;
		s->bye_gen = gen;
		acc_frames_send(a);
	} else if (r->code == QS_ANSWER_PARSER_HELLO) {
		if (gen > s->hello_gen)
			s->hello_gen = gen;
		if (s->paused && gen != s->bye_gen) {
			s->paused = false;
			acc_frames_send(a);
		}
	}
}

/* A broken peer must not flood the log: at most one warning per second. */
static void warn_malformed(const char *why)
{
	static uint64_t last;
	static unsigned suppressed;
	uint64_t now = qs_now_ns();
	if (last && now - last < 1000000000ull) {
		suppressed++;
		return;
	}
	qs_warn("dropping malformed message on the answers socket: %s (%u more since the last warning)", why,
		suppressed);
	last = now;
	suppressed = 0;
}

static void on_answers(struct acc *a, struct qs_batch_iter *it)
{
	struct qs_answer_rec r;
	const uint8_t *reason;
	int rc;
	while ((rc = qs_batch_next(it, &r, sizeof(r), qs_answer_rec_payload, &reason)) == 1) {
		if (r.code == QS_ANSWER_PARSER_HELLO || r.code == QS_ANSWER_PARSER_BYE) {
			on_parser_word(a, it->sender, &r);
			continue;
		}
		uint32_t idx = qs_ticket_index(r.ticket);
		if (idx >= a->pool_cap || qs_ticket_epoch(r.ticket) != a->ticket_epoch)
			continue; /* not a frame of this process (its predecessor's on the channel) */
		struct acc_frame *f = &a->pool[idx];
		if (!f->in_use || f->resolved || f->gen != qs_ticket_gen(r.ticket))
			continue; /* stale: already resolved, or its connection is gone */
		qs_hop(QS_HOP_A_ANSWER, acc_channel(a), r.ticket);
		if (r.code && !r.reason_len) {
			const char *name = qs_reject_name(r.code);
			acc_frame_resolve(a, (int32_t)idx, r.code, name, strlen(name));
		} else {
			acc_frame_resolve(a, (int32_t)idx, r.code, (const char *)reason, r.reason_len);
		}
	}
	if (rc < 0)
		warn_malformed("ANSWERS batch with a bad record (the rest of it dropped)");
}

static void on_message(void *arg, const void *msg, size_t len)
{
	struct acc *a = arg;
	struct qs_batch_iter it;
	const char *why = NULL;
	if (qs_batch_receive(&it, QS_INBOX_ANSWERS, msg, len, &why)) {
		warn_malformed(why);
		return;
	}
	if (it.type == QS_MSG_ANSWERS) {
		qs_mp_queue_recv(it.sender == QS_MSG_SENDER_SHIPPER ? QS_QL_ANSWERS : QS_QL_REJECTIONS, it.remaining, len);
		on_answers(a, &it);
	} else if (it.type == QS_MSG_STATUS) {
		struct qs_status_rec st;
		const uint8_t *p;
		if (qs_batch_next(&it, &st, sizeof(st), qs_status_rec_payload, &p) != 1) {
			warn_malformed("bad STATUS record");
			return;
		}
		acc_limit_quota(a, p, st.over_quota);
		a->accepting = st.accepting != 0;
		a->status_seen = true;
		a->status_mono = qs_now_ns();
	}
}

static void on_channel_message(void *arg, const void *msg, size_t len)
{
	struct acc *a = arg;
	on_message(a, msg, len);
	acc_schedule_flush(a); /* answers resolved: write them out this pass */
}

int acc_ipc_init(struct acc *a)
{
	char ep[256];
	long long max_msg = (long long)a->cfg->max_message_size + 1024 * 1024;
	a->zctx = zmq_ctx_new();
	if (!a->zctx)
		return -1;
	a->npush = a->cfg->parsers;
	for (unsigned k = 0; k < a->npush; k++) {
		a->push[k] = qs_zsock_new(a->zctx, ZMQ_PUSH, 64, max_msg);
		if (!a->push[k] ||
		    qs_ipc_endpoint(ep, sizeof(ep), a->cfg->runtime_dir, QS_EP_ACCEPTOR_FRAMES,
				    qs_frames_endpoint_id(acc_channel(a), k)) ||
		    qs_zsock_bind(a->push[k], ep))
			return -1;
	}
	/* Answers come over a channel (ipc/chan.h): no ZeroMQ thread between
	 * the shipper's acknowledgements and our loop. */
	if (qs_chan_path(ep, sizeof(ep), a->cfg->runtime_dir, QS_EP_ACCEPTOR_ANSWERS, acc_channel(a)) ||
	    !(a->answers = qs_chan_listen(a->base, ep, (size_t)max_msg, on_channel_message, a)))
		return -1;
	for (unsigned k = 0; k < a->npush; k++)
		if (!(a->push_w[k] = qs_zwatch_new(a->base, a->push[k], push_ready, a)))
			return -1;
	return 0;
}

void acc_ipc_free(struct acc *a)
{
	for (unsigned k = 0; k < a->npush; k++)
		qs_zwatch_free(a->push_w[k]);
	qs_chan_in_free(a->answers);
	for (unsigned k = 0; k < a->npush; k++)
		if (a->push[k])
			zmq_close(a->push[k]);
	if (a->zctx)
		zmq_ctx_term(a->zctx);
	qs_batch_free(&a->batch);
	for (uint32_t i = 0; i < a->pool_cap; i++)
		if (a->pool[i].data)
			data_free(a->pool[i].data, a->pool[i].len);
	data_free_all();
	free(a->pool);
}

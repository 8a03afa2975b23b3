/* Client streams: frames in, answers out, in frame order.
 *
 * Every frame (and every immediate rejection) becomes an entry of the
 * stream's ordered list. When the head resolves, the list advances: an 'R'
 * is written for a rejection, the frame's flow-control credit goes back to
 * the client, and at the end of the loop iteration one cumulative 'A' covers
 * everything resolved. Credit is returned only on resolution: that is the
 * backpressure from the spool to the client. */
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/tenants.h"

#define ACC_CHUNK_MIN 4096

struct acc_stream *acc_stream_new(struct acc_conn *c, int64_t id)
{
	struct acc_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->c = c;
	s->id = id;
	s->head = s->tail = ACC_NONE;
	qs_frame_decoder_init(&s->dec, c->a->cfg->max_message_size);
	/* A stream without a header gets its own random session and base 0: as
	 * unguessable as a keyed hash, and never resent under the same id, so it
	 * is used as it is. */
	gnutls_rnd(GNUTLS_RND_NONCE, s->session, sizeof(s->session));
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	return s;
}

static void chunk_free(struct acc_stream *s, struct acc_chunk *ch);
static void conn_grant(struct acc_conn *c, uint64_t bytes);

static void owed_unlink(struct acc *a, struct acc_stream *s)
{
	if (!s->in_owed)
		return;
	if (s->owed_prev)
		s->owed_prev->owed_next = s->owed_next;
	else
		a->owed = s->owed_next;
	if (s->owed_next)
		s->owed_next->owed_prev = s->owed_prev;
	s->owed_prev = s->owed_next = NULL;
	s->in_owed = false;
}

void acc_stream_free(struct acc_stream *s)
{
	struct acc *a = s->c->a;
	/* Unresolved frames die with the stream: the client resends them on a new
	 * connection. Their bytes, and any held back, are gone: the connection's
	 * window gets them back, or a client that resets streams would shrink it. */
	uint64_t gone = s->owed + s->answer_owed + (s->pend.len - s->pend.off);
	for (int32_t i = s->head; i != ACC_NONE;) {
		int32_t next = a->pool[i].next;
		gone += a->pool[i].credit;
		acc_frame_free(a, i);
		i = next;
	}
	if (gone && s->c->qc && s->c->state == ACC_CONN_ACTIVE)
		conn_grant(s->c, gone);
	owed_unlink(a, s);
	acc_incomplete_release(s);
	acc_pending_free(s);
	for (struct acc_chunk *ch = s->tx.head, *n; ch; ch = n) {
		n = ch->next;
		chunk_free(s, ch);
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		s->c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

static void chunk_free(struct acc_stream *s, struct acc_chunk *ch)
{
	s->c->answers_held -= ch->cap;
	free(ch);
}

static int answers_append(struct acc_stream *s, const uint8_t *p, size_t len)
{
	struct acc_sendbuf *b = &s->tx;
	struct acc_chunk *t = b->tail;
	if (!t || t->cap - t->len < len) {
		size_t cap = len > ACC_CHUNK_MIN ? len : ACC_CHUNK_MIN;
		t = malloc(sizeof(*t) + cap);
		if (!t)
			return -1;
		s->c->answers_held += cap;
		t->next = NULL;
		t->off = b->end;
		t->len = 0;
		t->cap = cap;
		if (b->tail)
			b->tail->next = t;
		else
			b->head = t;
		b->tail = t;
	}
	memcpy(t->data + t->len, p, len);
	t->len += len;
	b->end += len;
	return 0;
}

static void stream_write(struct acc_stream *s, const uint8_t *p, size_t len)
{
	if (s->fin_out)
		return;
	if (answers_append(s, p, len))
		qs_warn("out of memory for answers on stream %lld", (long long)s->id);
	acc_conn_mark_dirty(s->c);
}

/* Gives back flow-control credit; the connection's part less what it was
 * given early (credit_partial) for frames that were then completed. */
static void conn_grant(struct acc_conn *c, uint64_t bytes)
{
	uint64_t repay = bytes < c->conn_debt ? bytes : c->conn_debt;
	c->conn_debt -= repay;
	if (bytes > repay)
		ngtcp2_conn_extend_max_offset(c->qc, bytes - repay);
	acc_conn_mark_dirty(c);
}

static void grant(struct acc_stream *s, uint64_t bytes)
{
	ngtcp2_conn_extend_max_stream_offset(s->c->qc, s->id, bytes);
	conn_grant(s->c, bytes);
}

/* Bytes of a frame still being reassembled get their connection credit back
 * at once (their stream credit only when the frame is answered). Otherwise a
 * client with many streams, each in the middle of a large frame, fills the
 * connection's window with halves of frames and none can complete: 16
 * streams of 1 MiB events stalled for good. The stream window still bounds
 * each stream, and --max-incomplete-bytes all such bytes together. */
static void credit_partial(struct acc_stream *s)
{
	size_t partial = qs_frame_decoder_partial(&s->dec);
	if (partial <= s->conn_early || s->c->state != ACC_CONN_ACTIVE)
		return;
	ngtcp2_conn_extend_max_offset(s->c->qc, partial - s->conn_early);
	s->conn_early = partial;
	acc_conn_mark_dirty(s->c);
}

void acc_stream_credit(struct acc_stream *s, uint64_t bytes)
{
	struct acc *a = s->c->a;
	if (!bytes || s->c->state != ACC_CONN_ACTIVE)
		return;
	if (s->c->answers_held > ACC_ANSWERS_HELD_MAX) {
		/* The client does not read its answers: it gets no room for more frames. */
		s->answer_owed += bytes;
		s->c->answers_full = true;
		return;
	}
	if (a->held <= ACC_HELD_CAP) {
		grant(s, bytes);
		return;
	}
	s->owed += bytes;
	if (!s->in_owed) {
		s->in_owed = true;
		s->owed_prev = NULL;
		s->owed_next = a->owed;
		if (a->owed)
			a->owed->owed_prev = s;
		a->owed = s;
	}
}

void acc_owed_grant(struct acc *a)
{
	while (a->owed && a->held <= ACC_HELD_CAP) {
		struct acc_stream *s = a->owed;
		owed_unlink(a, s);
		grant(s, s->owed);
		s->owed = 0;
	}
}

void acc_stream_advance(struct acc_stream *s)
{
	struct acc *a = s->c->a;
	uint64_t credit = 0;
	bool moved = false;
	while (s->head != ACC_NONE && a->pool[s->head].resolved) {
		struct acc_frame *f = &a->pool[s->head];
		if (f->code) {
			uint8_t buf[QS_ANSWER_MAX];
			stream_write(s, buf, qs_answer_reject(buf, f->seq, f->code, f->reason));
		}
		s->next_ack = f->seq + 1;
		credit += f->credit;
		int32_t next = f->next;
		acc_frame_free(a, s->head);
		s->head = next;
		moved = true;
	}
	if (s->head == ACC_NONE)
		s->tail = ACC_NONE;
	acc_stream_credit(s, credit);
	if (moved) {
		s->ack_dirty = true;
		acc_conn_mark_dirty(s->c);
	}
}

/* Once per loop iteration: one coalesced ack, and our FIN when all is answered. */
void acc_stream_flush_answers(struct acc_stream *s)
{
	if (s->ack_dirty && s->next_ack > s->ack_sent) {
		uint8_t buf[QS_ANSWER_ACK_LEN];
		stream_write(s, buf, qs_answer_ack(buf, s->next_ack));
		s->ack_sent = s->next_ack;
	}
	s->ack_dirty = false;
	if (s->fin_in && s->head == ACC_NONE && !s->fin_out) {
		s->fin_out = true;
		acc_conn_mark_dirty(s->c);
	}
}

void acc_stream_goaway(struct acc_stream *s, uint32_t ms)
{
	if (s->goaway || s->fin_out)
		return;
	uint8_t buf[8];
	stream_write(s, buf, qs_answer_goaway(buf, ms));
	s->goaway = true;
}

void acc_stream_auth_ok(struct acc_stream *s, const char *tenant)
{
	uint8_t buf[2 + 255];
	stream_write(s, buf, qs_answer_auth_ok(buf, tenant));
}

/* Once per stream: the client (if it took quicstash/1.1) learns that its
 * tenant is held at a limit; older clients see only the slower credit. */
void acc_stream_notice(struct acc_stream *s, const char *limit)
{
	if (s->held_told || !limit || !acc_tls_notices(s->c))
		return;
	uint8_t buf[2 + 255];
	stream_write(s, buf, qs_answer_notice(buf, limit));
	s->held_told = true;
}

/* An entry that is rejected before it was ever forwarded. */
static int reject_now(struct acc_stream *s, uint64_t seq, uint32_t credit, uint16_t code, const char *reason)
{
	int32_t idx = acc_frame_new(s->c->a, s, seq, credit);
	if (idx < 0)
		return -1;
	qs_debug_kv(QS_KV({QS_LOG_CODE, qs_reject_name(code)}), "stream %lld seq %llu rejected: %s", (long long)s->id,
		    (unsigned long long)seq, reason);
	acc_frame_resolve(s->c->a, idx, code, reason, strlen(reason));
	return 0;
}

static int on_event(struct acc_stream *s, int ev, const struct qs_dec_out *out)
{
	struct acc *a = s->c->a;
	char why[128];
	if (ev == QS_DEC_AUTH)
		return acc_auth_token(s, out);
	if (acc_auth_require(s->c))
		return -1;
	/* The tenant's name scopes event.id: tenants' ids stay apart whatever session ids they choose. */
	const char *scope = s->c->tenant ? s->c->tenant->name : NULL;
	switch (ev) {
	case QS_DEC_HEADER:
		/* The client's session id stays here: downstream sees only its keyed
		 * hash, which no client can compute for a session of its choosing. */
		if (qs_eventid_session(a->eventid_key, scope, scope ? strlen(scope) : 0, out->session, s->session) != 0) {
			qs_err("stream %lld: cannot derive its event id session", (long long)s->id);
			return -1;
		}
		s->next_ack = s->ack_sent = out->seq;
		acc_stream_credit(s, QS_STREAM_HEADER_LEN);
		return 0;
	case QS_DEC_FRAME: {
		/* its connection credit given early is paid back from the next grants */
		s->c->conn_debt += s->conn_early;
		s->conn_early = 0;
		uint16_t code = acc_limit_frame(s->c, out->len, why, sizeof(why));
		if (code)
			return reject_now(s, out->seq, 4 + out->len, code, why);
		int32_t idx = acc_frame_new(a, s, out->seq, 4 + out->len);
		if (idx < 0)
			return -1;
		acc_frame_forward(a, idx, out->data, out->len);
		return 0;
	}
	case QS_DEC_EMPTY:
		return reject_now(s, out->seq, 4, QS_REJ_EMPTY, "empty frame");
	case QS_DEC_OVERSIZE:
		/* The decoder skips the body without buffering it: credit it back at once. */
		acc_stream_credit(s, 4 + (uint64_t)out->len);
		/* This exact text is documented: it is how a client learns the limit. */
		snprintf(why, sizeof(why), "frame of %u bytes exceeds the limit of %u bytes", out->len,
			 a->cfg->max_message_size);
		return reject_now(s, out->seq, 0, QS_REJ_TOO_LARGE, why);
	}
	return 0;
}

int acc_stream_decode(struct acc_stream *s, const uint8_t *data, size_t len, size_t *usedp)
{
	size_t total = 0;
	bool may_hold = acc_limit_may_hold(s->c); /* a tenant without limits: no question per frame */
	/* a revoked connection decodes nothing more: it closes once what it sent is answered */
	while (total < len && !acc_conn_full(s->c) && !s->c->revoked) {
		if (may_hold && acc_limit_held(s->c)) { /* over a rate: the rest waits undecoded, its credit held */
			acc_stream_notice(s, acc_limit_held_at(s->c));
			break;
		}
		size_t used = 0;
		struct qs_dec_out out;
		int ev = qs_frame_decode(&s->dec, data + total, len - total, &used, &out);
		if (ev < 0)
			return -1;
		total += used;
		if (ev != QS_DEC_NEED_MORE && on_event(s, ev, &out))
			return -1;
	}
	*usedp = total;
	acc_incomplete_count(s);
	credit_partial(s);
	return 0;
}

/* Everything before the client's FIN is decoded: a frame cut short is rejected. */
static int end_of_stream(struct acc_stream *s)
{
	s->fin_pending = false;
	s->fin_in = true;
	if (qs_frame_decoder_cut_unreported(&s->dec) &&
	    (acc_auth_require(s->c) || /* a cut token, or a cut frame before authenticating */
	     reject_now(s, s->dec.next_seq, 0, QS_REJ_TRUNCATED, "stream ended inside a frame")))
		return -1;
	acc_stream_advance(s);
	acc_conn_mark_dirty(s->c);
	return 0;
}

void acc_stream_pending_done(struct acc_stream *s)
{
	if (s->fin_pending && end_of_stream(s))
		acc_conn_fail(s->c, NGTCP2_ERR_CALLBACK_FAILURE);
}

int acc_stream_recv(struct acc_stream *s, const uint8_t *data, size_t len, bool fin)
{
	/* Stopping: what the client sent before it read G is still read and
	 * answered, until the connections close (acceptor.c, stop_step).
	 * Revoked: new frames are not read (the connection is closed once its
	 * frames are answered). */
	if (s->c->a->stopping >= 3 || s->c->revoked || s->fin_in || s->fin_pending)
		return 0;
	size_t used = 0;
	if (acc_pending_empty(s) && acc_stream_decode(s, data, len, &used))
		return -1;
	if (used < len && acc_pending_add(s, data + used, len - used))
		return -1;
	if (!fin)
		return 0;
	if (!acc_pending_empty(s)) {
		s->fin_pending = true;
		return 0;
	}
	return end_of_stream(s);
}

/* The client reset its sending side (RESET_STREAM): what arrived in order is
 * answered as after a FIN (a frame cut short is rejected as truncated), and
 * the answers still go out: the client can tell what was stored. */
int acc_stream_reset_in(struct acc_stream *s)
{
	return acc_stream_recv(s, NULL, 0, true);
}

/* The client does not want the answers (STOP_SENDING): none are written;
 * ngtcp2 has reset our side already. */
void acc_stream_stop_out(struct acc_stream *s)
{
	s->fin_out = s->fin_sent = true;
}

void acc_stream_acked(struct acc_stream *s, uint64_t upto)
{
	if (upto > s->tx.acked)
		s->tx.acked = upto;
	while (s->tx.head && s->tx.head->off + s->tx.head->len <= s->tx.acked) {
		struct acc_chunk *ch = s->tx.head;
		s->tx.head = ch->next;
		if (!s->tx.head)
			s->tx.tail = NULL;
		chunk_free(s, ch);
	}
	struct acc_conn *c = s->c;
	if (c->answers_full && c->answers_held <= ACC_ANSWERS_HELD_MAX) {
		c->answers_full = false;
		for (struct acc_stream *t = c->streams; t; t = t->next) {
			uint64_t owed = t->answer_owed;
			t->answer_owed = 0;
			acc_stream_credit(t, owed);
		}
	}
}

bool acc_stream_wants_write(const struct acc_stream *s)
{
	return s->tx.sent < s->tx.end || (s->fin_out && !s->fin_sent);
}

size_t acc_stream_vecs(const struct acc_stream *s, ngtcp2_vec *v, size_t max, bool *fin)
{
	size_t n = 0;
	uint64_t off = s->tx.sent;
	for (struct acc_chunk *ch = s->tx.head; ch && n < max; ch = ch->next) {
		if (off >= ch->off + ch->len)
			continue;
		size_t start = (size_t)(off - ch->off);
		v[n].base = ch->data + start;
		v[n].len = ch->len - start;
		n++;
		off = ch->off + ch->len;
	}
	*fin = s->fin_out && !s->fin_sent && off == s->tx.end;
	return n;
}

void acc_stream_consumed(struct acc_stream *s, size_t n, bool fin)
{
	s->tx.sent += n;
	if (fin && s->tx.sent == s->tx.end)
		s->fin_sent = true;
}

/* Streams on the live connection: which range each carries, what to write next,
 * and what the server answered on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"

/* Bytes offered per write call: a few packets' worth (ngtcp2 takes one packet
 * a call), so that a call does not walk more events than it can send. */
#define QS_STREAM_VECS_BYTES 4096u

static struct qs_stream *stream_new(struct qs_client *c, struct qs_range *r)
{
	struct qs_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (ngtcp2_conn_open_bidi_stream(c->conn, &s->id, s) != 0) {
		free(s); /* no stream credit yet: extend_max_local_streams_bidi brings us back */
		return NULL;
	}
	if (r) {
		/* Resume at the first unresolved seq: the header tells the server where. */
		s->range = r;
		r->stream = s;
		s->hdr_len = qs_stream_header_encode(s->hdr, c->session, r->resolved);
		s->write_seq = s->qacked_seq = r->resolved;
	}
	s->next = c->streams;
	c->streams = s;
	return s;
}

/* The lowest range that has something to send and no stream. */
static struct qs_range *range_needing_stream(struct qs_client *c)
{
	struct qs_range *best = NULL;
	for (unsigned i = 0; i < c->win.max_ranges; i++) {
		struct qs_range *r = &c->win.ranges[i];
		if (r->used && !r->stream && r->end > r->resolved && (!best || r->first < best->first))
			best = r;
	}
	return best;
}

/* With a token, the connection's first stream authenticates it, and the
 * others wait for the server's 'K'. */
static bool auth_pending(struct qs_client *c)
{
	if (!c->auth_msg || c->authed)
		return false;
	struct qs_stream *s;
	if (!c->auth_opened && (s = stream_new(c, NULL))) {
		s->auth = true;
		c->auth_opened = true;
	}
	return true;
}

void qs_streams_open(struct qs_client *c)
{
	if (!c->handshake_done || c->goaway || c->closing || auth_pending(c))
		return;
	if (c->opts.raw) {
		struct qs_stream *s;
		for (s = c->streams; s; s = s->next)
			if (s->cancel_due && !s->fin_sent && s->reset_read) {
				ngtcp2_conn_shutdown_stream_write(c->conn, 0, s->id, QS_APP_CANCELLED);
				s->fin_sent = true;
			} else if (s->cancel_due && !s->fin_sent) {
				ngtcp2_conn_shutdown_stream(c->conn, 0, s->id, QS_APP_CANCELLED);
				s->fin_sent = true;
				c->raw_streams--;
			}
		unsigned want = c->opts.raw_hold_streams ? c->opts.raw_hold_streams : 1;
		while (c->raw_given && c->raw_streams < want && (s = stream_new(c, NULL))) {
			s->raw = true;
			s->cancel = c->raw_opened++ < c->opts.raw_reset_streams;
			s->reset_read = c->opts.raw_reset_read;
			c->raw_streams++;
		}
		return;
	}
	qs_window_assign(&c->win);
	struct qs_range *r;
	while ((r = range_needing_stream(c)) && stream_new(c, r))
		;
}

/* Whether a raw stream ends with FIN once its bytes are out (not when
 * holding streams open or cancelling them: test hooks). */
static bool raw_fin_wanted(const struct qs_client *c, const struct qs_stream *s)
{
	return !c->opts.raw_hold_streams && !s->cancel && !s->reset_read;
}

static bool has_data(const struct qs_client *c, const struct qs_stream *s)
{
	if (s->blocked || s->fin_sent)
		return false;
	if (s->auth)
		return true;
	if (s->raw) /* bytes and/or FIN (none when holding or cancelling) */
		return raw_fin_wanted(c, s) || s->raw_sent < c->raw_len;
	if (!s->range)
		return false; /* detached: its range is finished */
	return s->hdr_sent < s->hdr_len || s->write_seq < s->range->end || s->range->closed;
}

/* Whether nothing of ours waits to be sent: no stream has bytes or a FIN to
 * write, blocked ones included (io.c lets its timer run late only then). */
bool qs_streams_idle(struct qs_client *c)
{
	for (const struct qs_stream *s = c->streams; s; s = s->next)
		if (s->blocked || has_data(c, s))
			return false;
	return !range_needing_stream(c);
}

struct qs_stream *qs_streams_pick(struct qs_client *c)
{
	struct qs_stream *start = c->rr_next ? c->rr_next : c->streams;
	struct qs_stream *s = start;
	if (!s)
		return NULL;
	do {
		if (has_data(c, s)) {
			c->rr_next = s->next;
			return s;
		}
		s = s->next ? s->next : c->streams;
	} while (s != start);
	return NULL;
}

size_t qs_stream_vecs(struct qs_client *c, struct qs_stream *s, ngtcp2_vec *v, size_t max, bool *fin)
{
	size_t n = 0;
	if (s->auth) {
		v[n++] = (ngtcp2_vec){.base = c->auth_msg + s->raw_sent, .len = c->auth_len - s->raw_sent};
		*fin = true;
		return n;
	}
	if (s->raw) {
		v[n++] = (ngtcp2_vec){.base = c->raw + s->raw_sent, .len = c->raw_len - s->raw_sent};
		*fin = raw_fin_wanted(c, s);
		return n;
	}
	if (s->hdr_sent < s->hdr_len)
		v[n++] = (ngtcp2_vec){.base = s->hdr + s->hdr_sent, .len = s->hdr_len - s->hdr_sent};
	uint64_t seq = s->write_seq;
	size_t off = s->write_off, bytes = 0;
	for (; seq < s->range->end && bytes < QS_STREAM_VECS_BYTES; seq++, off = 0) {
		struct qs_event *e = qs_window_get(&c->win, seq);
		if (!e || !e->buf)
			break; /* cannot happen: unresolved events keep their bytes */
		uint8_t *base = e->buf + off;
		size_t len = e->size - off;
		bytes += len;
		/* Frames that follow each other in a window chunk go as one vector:
		 * ngtcp2 (1.11) keeps a STREAM frame of more than 4 vectors in an
		 * allocation of its own, and leaks it when a loss later trims it to
		 * 4 or fewer (fixed upstream in 1.20). One vector a chunk keeps every
		 * frame in its pool, and its retransmissions merge contiguous bytes. */
		if (n && v[n - 1].base + v[n - 1].len == base) {
			v[n - 1].len += len;
			continue;
		}
		if (n == max)
			break;
		v[n++] = (ngtcp2_vec){.base = base, .len = len};
	}
	*fin = s->range->closed && seq == s->range->end;
	return n;
}

void qs_stream_advance(struct qs_client *c, struct qs_stream *s, size_t n, bool fin_requested, size_t total)
{
	if (fin_requested && n == total)
		s->fin_sent = true;
	if (s->raw || s->auth) {
		s->raw_sent += n;
		return;
	}
	size_t h = s->hdr_len - s->hdr_sent;
	h = h < n ? h : n;
	s->hdr_sent += h;
	s->offset += h;
	n -= h;
	while (n > 0) {
		struct qs_event *e = qs_window_get(&c->win, s->write_seq);
		size_t rem = e->size - s->write_off;
		size_t take = rem < n ? rem : n;
		/* ngtcp2 now points into e->buf until the bytes are QUIC-acked. */
		e->in_flight = true;
		e->end_off = s->offset + rem;
		s->offset += take;
		s->write_off += take;
		n -= take;
		if (s->write_off == e->size) {
			if (!e->left)
				c->sent_events++;
			e->left = true;
			s->write_seq++;
			s->write_off = 0;
		}
	}
}

void qs_stream_qacked(struct qs_client *c, struct qs_stream *s, uint64_t acked_end)
{
	if (s->raw) {
		if ((s->cancel || s->reset_read) && acked_end >= c->raw_len && acked_end != UINT64_MAX)
			s->cancel_due = true; /* the server has every byte: reset at the next write */
		return;
	}
	uint64_t last = s->write_seq + (s->write_off ? 1 : 0);
	while (s->qacked_seq < last) {
		struct qs_event *e = qs_window_get(&c->win, s->qacked_seq);
		if (!e || e->end_off > acked_end)
			break;
		qs_window_unref(&c->win, e);
		s->qacked_seq++;
	}
}

static void on_ack(void *ud, uint64_t seq, uint64_t tag)
{
	struct qs_client *c = ud;
	if (c->cb.on_ack)
		c->cb.on_ack(c->ud, seq, tag);
}

static void apply_event_answer(struct qs_client *c, struct qs_stream *s, const struct qs_answer *a);

static void apply_answer(struct qs_client *c, struct qs_stream *s, const struct qs_answer *a)
{
	if (c->cb.on_answer)
		c->cb.on_answer(c->ud, a);
	uint64_t before = c->win.unresolved;
	apply_event_answer(c, s, a);
	if (c->win.unresolved < before)
		c->backoff_ms = 0; /* the server resolves events again: reconnect fast next time */
}

static void apply_event_answer(struct qs_client *c, struct qs_stream *s, const struct qs_answer *a)
{
	if (a->type == QS_ANSWER_GOAWAY) {
		qs_client_on_goaway(c, a->ms);
		return;
	}
	if (a->type == QS_ANSWER_AUTH_OK) {
		if (!s->auth || c->authed) {
			ngtcp2_ccerr_set_application_error(&c->last_error, QS_APP_PROTOCOL_ERROR, NULL, 0);
			qs_client_fail(c, QS_FAIL_LOST, "unexpected authentication answer on stream %lld",
				       (long long)s->id);
			return;
		}
		c->authed = true;
		qs_streams_open(c);
		qs_io_schedule_write(c);
		return;
	}
	if (a->type == QS_ANSWER_NOTICE) { /* informative: the server holds this stream at a limit */
		snprintf(c->held_at, sizeof(c->held_at), "%s", a->reason);
		c->notices++;
		return;
	}
	if (!s->range)
		return;
	if (a->type == QS_ANSWER_ACK) {
		/* Only frames fully written can be resolved. */
		uint64_t next = a->seq < s->write_seq ? a->seq : s->write_seq;
		qs_window_ack(&c->win, s->range, next, on_ack, c);
	} else if (a->type == QS_ANSWER_REJECT && qs_window_reject(&c->win, s->range, a->seq)) {
		struct qs_event *e = qs_window_get(&c->win, a->seq);
		if (c->cb.on_reject)
			c->cb.on_reject(c->ud, a->seq, e->tag, a->code, a->reason);
	}
}

void qs_stream_answers(struct qs_client *c, struct qs_stream *s, const uint8_t *data, size_t len)
{
	while (len > 0 && !c->fail) {
		struct qs_answer a;
		size_t used = 0;
		int rv = qs_answer_decode(&s->dec, data, len, &used, &a);
		if (rv < 0) {
			ngtcp2_ccerr_set_application_error(&c->last_error, QS_APP_PROTOCOL_ERROR, NULL, 0);
			qs_client_fail(c, QS_FAIL_LOST, "malformed answer from the server on stream %lld",
				       (long long)s->id);
			return;
		}
		data += used;
		len -= used;
		if (rv == 1)
			apply_answer(c, s, &a);
	}
}

static void unlink_stream(struct qs_client *c, struct qs_stream *s)
{
	for (struct qs_stream **p = &c->streams; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	if (c->rr_next == s)
		c->rr_next = s->next;
}

void qs_stream_closed(struct qs_client *c, struct qs_stream *s, bool reset, uint64_t code)
{
	qs_stream_qacked(c, s, UINT64_MAX); /* ngtcp2 lets go of everything on a closed stream */
	struct qs_range *r = s->range;
	if (s->cancel) {
		/* reset by us: nothing to report */
	} else if (s->raw && !c->raw_reported) {
		c->raw_reported = true;
		/* after our own reset, the server's FIN of its answers is a clean end */
		bool clean = s->reset_read ? s->remote_fin : !(reset && code != 0) && s->fin_sent && s->remote_fin;
		char why[96] = "";
		if (!clean)
			snprintf(why, sizeof(why), reset ? "stream reset by the server (code %llu)"
						      : "stream ended early", (unsigned long long)code);
		if (c->cb.on_raw_done)
			c->cb.on_raw_done(c->ud, clean, why);
	} else if (r && (!r->closed || r->resolved < r->end) && !c->goaway) {
		qs_client_fail(c, QS_FAIL_LOST, "server ended stream %lld before answering every frame",
			       (long long)s->id);
	}
	if (r && r->stream == s)
		r->stream = NULL;
	unlink_stream(c, s);
	free(s);
}

void qs_streams_free(struct qs_client *c)
{
	while (c->streams) {
		struct qs_stream *s = c->streams;
		c->streams = s->next;
		free(s);
	}
	c->rr_next = NULL;
}

static bool fin_done(void *stream)
{
	return ((struct qs_stream *)stream)->fin_sent;
}

void qs_streams_release(struct qs_client *c)
{
	qs_window_release(&c->win, fin_done);
	for (struct qs_stream *s = c->streams; s; s = s->next)
		if (s->range && !s->range->used)
			s->range = NULL;
}

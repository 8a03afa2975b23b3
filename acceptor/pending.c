/* Stream bytes that arrived while their connection held its cap of frames,
 * or of answers its client has not read.
 *
 * Flow control counts bytes, not frames: a 16 MiB window holds three million
 * 5-byte frames, and each frame in flight costs its bookkeeping entry and a
 * block for its bytes (~600 bytes). So a connection may hold at most
 * conn_frames_cap frames unresolved (one per 512 bytes of its window, which an
 * ordinary client with events of 512 bytes or more never reaches before its
 * window); what arrives beyond that stays here undecoded, one byte per byte,
 * and its credit is not given back until its frames are decoded and resolved.
 * Decoding resumes in the loop pass after answers free some of the cap.
 *
 * Answers the same: an empty frame (4 bytes) is rejected at once with a
 * 24-byte answer, so a client that reads no answers turned the credit it
 * already held (up to its window, 16 MiB) into six times as many bytes of
 * answers here; holding back credit alone did not stop that. Past
 * ACC_ANSWERS_HELD_MAX its bytes wait undecoded, one byte per byte. */
#include <stdlib.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/heap.h"

bool acc_conn_full(const struct acc_conn *c)
{
	return c->frames >= c->a->conn_frames_cap || c->answers_held > ACC_ANSWERS_HELD_MAX;
}

int acc_pending_add(struct acc_stream *s, const uint8_t *data, size_t len)
{
	struct acc_pending *p = &s->pend;
	if (p->off && p->cap - p->len < len) { /* move what is left to the front before growing */
		memmove(p->buf, p->buf + p->off, p->len - p->off);
		p->len -= p->off;
		p->off = 0;
	}
	void *buf = p->buf;
	if (qs_grow(&buf, &p->cap, p->len + len, 16384))
		return -1;
	p->buf = buf;
	memcpy(p->buf + p->len, data, len);
	p->len += len;
	s->c->pending = true;
	return 0;
}

void acc_pending_free(struct acc_stream *s)
{
	free(s->pend.buf);
	memset(&s->pend, 0, sizeof(s->pend));
}

bool acc_pending_empty(const struct acc_stream *s)
{
	return s->pend.off == s->pend.len;
}

/* Decodes what the streams of c hold back while the cap allows. Once per
 * loop pass, never inside ngtcp2's callbacks (a failure closes c). */
void acc_pending_drain(struct acc_conn *c)
{
	if (!c->pending || c->state != ACC_CONN_ACTIVE || c->a->stopping >= 3 || acc_conn_full(c) ||
	    acc_limit_held(c))
		return;
	bool left = false;
	for (struct acc_stream *s = c->streams; s; s = s->next) {
		struct acc_pending *p = &s->pend;
		if (acc_pending_empty(s))
			continue;
		size_t used = 0;
		if (acc_stream_decode(s, p->buf + p->off, p->len - p->off, &used)) {
			acc_conn_fail(c, NGTCP2_ERR_CALLBACK_FAILURE);
			return;
		}
		p->off += used;
		if (acc_pending_empty(s)) {
			acc_pending_free(s);
			acc_stream_pending_done(s);
		} else {
			left = true;
		}
		if (c->state != ACC_CONN_ACTIVE)
			return;
	}
	c->pending = left;
}

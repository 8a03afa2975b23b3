#include "shipper/settle.h"

#include <string.h>

void qs_settle_reset(struct qs_settle *s)
{
	s->head = s->count = 0;
	s->written = 0;
}

void qs_settle_wrote(struct qs_settle *s, uint64_t n, struct qs_pos pos)
{
	s->written += n;
	if (s->count > 0) {
		struct qs_checkpoint *last = &s->ring[(s->head + s->count - 1) % QS_SETTLE_MAX];
		if (last->bytes == s->written) {
			/* Same bytes, a later position (skipped damage, a segment's end, or
			 * only the caller asking again): nothing new for the peer to
			 * confirm, so it settles with those bytes. A checkpoint of its own
			 * would restart the clock: an output that is asked whether it has
			 * caught up every 50 ms then never settles. */
			last->pos = pos;
			return;
		}
	} else if (n == 0) {
		/* Every byte written has settled: a position reached without writing
		 * settles at the next poll. */
		s->ring[s->head] = (struct qs_checkpoint){.bytes = s->written, .pos = pos, .free = true};
		s->count = 1;
		return;
	}
	if (s->count == QS_SETTLE_MAX) {
		/* Full: let the newest pending checkpoint stand for this one too. Its
		 * byte count is lower, so it can only settle earlier than it should
		 * if we raised it: raise it, never lower it. */
		struct qs_checkpoint *last = &s->ring[(s->head + s->count - 1) % QS_SETTLE_MAX];
		last->bytes = s->written;
		last->pos = pos;
		last->acked_ms = 0;
		last->free = false;
		return;
	}
	s->ring[(s->head + s->count) % QS_SETTLE_MAX] = (struct qs_checkpoint){.bytes = s->written, .pos = pos};
	s->count++;
}

bool qs_settle_poll(struct qs_settle *s, uint64_t peer_acked, uint64_t now_ms, struct qs_pos *pos)
{
	bool moved = false;
	for (unsigned i = 0; i < s->count; i++) {
		struct qs_checkpoint *c = &s->ring[(s->head + i) % QS_SETTLE_MAX];
		if (c->bytes > peer_acked)
			break;
		if (c->acked_ms == 0)
			c->acked_ms = now_ms ? now_ms : 1;
	}
	while (s->count > 0) {
		struct qs_checkpoint *c = &s->ring[s->head];
		if (!c->free && (c->acked_ms == 0 || now_ms - c->acked_ms < QS_SETTLE_MS))
			break;
		*pos = c->pos;
		moved = true;
		s->head = (s->head + 1) % QS_SETTLE_MAX;
		s->count--;
	}
	return moved;
}

bool qs_settle_pending(const struct qs_settle *s)
{
	return s->count > 0;
}

#include "shipper/settle.h"

#include <string.h>

void qs_settle_reset(struct qs_settle *s, uint64_t unread_max)
{
	s->head = s->count = 0;
	s->written = 0;
	s->settled = 0;
	s->unread_max = unread_max;
}

void qs_settle_wrote(struct qs_settle *s, uint64_t n, struct qs_pos pos)
{
	s->written += n;
	if (s->count > 0) {
		struct qs_checkpoint *last = &s->ring[(s->head + s->count - 1) % QS_SETTLE_MAX];
		if (last->bytes == s->written) {
			/* Same bytes, a later position (skipped damage, a segment's end, or
			 * only the caller asking again): nothing new for the peer to
			 * confirm, so it settles with those bytes. (The shipper's stop asks
			 * every 50 ms whether the output has caught up: a checkpoint per
			 * question would fill the ring.) */
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
		last->free = false;
		return;
	}
	s->ring[(s->head + s->count) % QS_SETTLE_MAX] = (struct qs_checkpoint){.bytes = s->written, .pos = pos};
	s->count++;
}

/* Drops the leading checkpoints that have settled (all of them when all is
 * set) and gives the newest one's position. */
static bool settle_while(struct qs_settle *s, uint64_t peer_acked, bool all, struct qs_pos *pos)
{
	bool moved = false;
	while (s->count > 0) {
		struct qs_checkpoint *c = &s->ring[s->head];
		/* peer_acked >= bytes + unread_max, without overflow */
		bool deep = peer_acked >= c->bytes && peer_acked - c->bytes >= s->unread_max;
		if (!all && !c->free && !deep)
			break;
		*pos = c->pos;
		s->settled = c->bytes;
		moved = true;
		s->head = (s->head + 1) % QS_SETTLE_MAX;
		s->count--;
	}
	return moved;
}

bool qs_settle_poll(struct qs_settle *s, uint64_t peer_acked, struct qs_pos *pos)
{
	return settle_while(s, peer_acked, false, pos);
}

bool qs_settle_drained(struct qs_settle *s, struct qs_pos *pos)
{
	return settle_while(s, 0, true, pos);
}

bool qs_settle_pending(const struct qs_settle *s)
{
	return s->count > 0;
}

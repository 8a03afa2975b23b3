#include "client/lib/window.h"

#include <stdlib.h>
#include <string.h>

#include "common/wire.h"

void qs_window_init(struct qs_window *w, uint64_t first_seq, unsigned max_ranges,
		    uint32_t range_events, uint64_t range_bytes)
{
	memset(w, 0, sizeof(*w));
	w->base = w->next = w->assigned = first_seq;
	w->max_ranges = max_ranges < 1 ? 1 : max_ranges > QS_WINDOW_MAX_RANGES ? QS_WINDOW_MAX_RANGES : max_ranges;
	w->range_events = range_events ? range_events : 4096;
	w->range_bytes = range_bytes ? range_bytes : 4u << 20;
	w->chunk_next = QS_WINDOW_CHUNK_FIRST;
}

static struct qs_event *slot(struct qs_window *w, size_t i)
{
	return &w->ev[(w->head + i) % w->cap];
}

/* Event bytes are copied into chunks instead of one malloc per event (malloc/free
 * were ~17% of a busy client). A chunk counts the events whose bytes it holds;
 * when the last one is released (covered by an 'A' and no longer referenced by
 * ngtcp2, which may retransmit from the bytes until then) the chunk is reused:
 * refilled from its start if it is the current one, else kept as a spare (a few)
 * or freed. Chunks are filled in seq order and a live event is never below
 * base, so the memory held is about the bytes of the events base..next-1 (what
 * the event ring holds anyway), plus the current chunk and the spares. */
struct qs_chunk {
	struct qs_chunk *next; /* on the spare list */
	size_t cap, used;
	size_t live; /* events in this chunk not yet released */
	uint8_t data[];
};

static struct qs_chunk *chunk_new(struct qs_window *w, size_t cap)
{
	struct qs_chunk *ch;
	if (cap == QS_WINDOW_CHUNK_SIZE && w->spare) {
		ch = w->spare;
		w->spare = ch->next;
		w->nspare--;
	} else {
		ch = malloc(sizeof(*ch) + cap);
		if (!ch)
			return NULL;
		ch->cap = cap;
		w->chunks++;
	}
	ch->next = NULL;
	ch->used = ch->live = 0;
	return ch;
}

/* ch holds no live event and is not the current chunk. */
static void chunk_retire(struct qs_window *w, struct qs_chunk *ch)
{
	if (ch->cap == QS_WINDOW_CHUNK_SIZE && w->nspare < QS_WINDOW_SPARE_CHUNKS) {
		ch->next = w->spare;
		w->spare = ch;
		w->nspare++;
	} else {
		free(ch);
		w->chunks--;
	}
}

/* need bytes for one event; NULL on ENOMEM. */
static uint8_t *chunk_alloc(struct qs_window *w, size_t need, struct qs_chunk **out)
{
	struct qs_chunk *ch = w->cur;
	if (need > QS_WINDOW_CHUNK_SIZE) {
		/* a chunk of its own, so the current one keeps its free space */
		if (!(ch = chunk_new(w, need)))
			return NULL;
	} else if (!ch || ch->cap - ch->used < need) {
		/* The full chunk still holds live events, or is smaller than need
		 * (an empty current chunk is rewound): chunk_put retires it after
		 * its last one, or now if it holds none. */
		size_t cap = w->chunk_next;
		while (cap < need)
			cap *= 2; /* powers of two up to QS_WINDOW_CHUNK_SIZE, which need fits */
		if (!(ch = chunk_new(w, cap)))
			return NULL;
		w->chunk_next = cap < QS_WINDOW_CHUNK_SIZE ? 2 * cap : QS_WINDOW_CHUNK_SIZE;
		if (w->cur && w->cur->live == 0)
			chunk_retire(w, w->cur);
		w->cur = ch;
	}
	uint8_t *p = ch->data + ch->used;
	ch->used += need;
	ch->live++;
	*out = ch;
	return p;
}

static void chunk_put(struct qs_window *w, struct qs_chunk *ch)
{
	if (--ch->live > 0)
		return;
	if (ch == w->cur)
		ch->used = 0; /* nothing in it is referenced any more: refill from the start */
	else
		chunk_retire(w, ch);
}

void qs_window_free(struct qs_window *w)
{
	for (size_t i = 0; i < w->count; i++) {
		struct qs_event *e = slot(w, i);
		if (e->buf)
			chunk_put(w, e->chunk);
	}
	free(w->cur);
	while (w->spare) {
		struct qs_chunk *ch = w->spare;
		w->spare = ch->next;
		free(ch);
	}
	free(w->ev);
	memset(w, 0, sizeof(*w));
}

static int grow(struct qs_window *w)
{
	size_t ncap = w->cap ? w->cap * 2 : QS_WINDOW_RING_FIRST;
	struct qs_event *nev = malloc(ncap * sizeof(*nev));
	if (!nev)
		return -1;
	for (size_t i = 0; i < w->count; i++)
		nev[i] = *slot(w, i);
	free(w->ev);
	w->ev = nev;
	w->cap = ncap;
	w->head = 0;
	return 0;
}

int64_t qs_window_push(struct qs_window *w, const void *data, uint32_t len, uint64_t tag)
{
	if (w->count == w->cap && grow(w) < 0)
		return -1;
	struct qs_chunk *ch;
	uint8_t *buf = chunk_alloc(w, (size_t)len + 4, &ch);
	if (!buf)
		return -1;
	qs_frame_prefix(buf, len);
	memcpy(buf + 4, data, len);
	struct qs_event *e = slot(w, w->count++);
	*e = (struct qs_event){.buf = buf, .chunk = ch, .size = len + 4, .tag = tag};
	w->bytes += (size_t)len + 4;
	w->unresolved++;
	return (int64_t)w->next++;
}

struct qs_event *qs_window_get(struct qs_window *w, uint64_t seq)
{
	if (seq < w->base || seq >= w->next)
		return NULL;
	return slot(w, (size_t)(seq - w->base));
}

static struct qs_range *open_range(struct qs_window *w)
{
	for (unsigned i = 0; i < w->max_ranges; i++)
		if (w->ranges[i].used && !w->ranges[i].closed)
			return &w->ranges[i];
	return NULL;
}

static struct qs_range *new_range(struct qs_window *w)
{
	for (unsigned i = 0; i < w->max_ranges; i++) {
		struct qs_range *r = &w->ranges[i];
		if (!r->used) {
			*r = (struct qs_range){.used = true, .first = w->assigned, .end = w->assigned,
					       .resolved = w->assigned};
			return r;
		}
	}
	return NULL;
}

void qs_window_assign(struct qs_window *w)
{
	while (w->assigned < w->next) {
		struct qs_range *r = open_range(w);
		if (!r && !(r = new_range(w)))
			return; /* every range busy: the event waits for one to finish */
		struct qs_event *e = qs_window_get(w, w->assigned);
		r->end = ++w->assigned;
		r->bytes += e->size;
		if (r->end - r->first >= w->range_events || r->bytes >= w->range_bytes || r->end == w->flush_to)
			r->closed = true;
	}
}

void qs_window_close_open(struct qs_window *w)
{
	w->flush_to = w->next;
	struct qs_range *r = open_range(w);
	if (r && r->end == w->flush_to)
		r->closed = true; /* never empty: a range is only made for an event */
}

static void release_one(struct qs_window *w, struct qs_event *e)
{
	if (e->buf && e->covered && !e->in_flight) {
		chunk_put(w, e->chunk);
		e->buf = NULL;
		e->chunk = NULL;
		w->bytes -= e->size;
	}
}

void qs_window_unref(struct qs_window *w, struct qs_event *e)
{
	e->in_flight = false;
	release_one(w, e);
}

void qs_window_ack(struct qs_window *w, struct qs_range *r, uint64_t next, qs_window_ack_fn fn, void *ud)
{
	if (next > r->end)
		next = r->end; /* never trust an answer about frames not sent */
	for (uint64_t s = r->resolved; s < next; s++) {
		struct qs_event *e = qs_window_get(w, s);
		if (!e)
			continue;
		e->covered = true;
		if (e->state == QS_EV_PENDING) {
			e->state = QS_EV_ACKED;
			w->unresolved--;
			if (fn)
				fn(ud, s, e->tag);
		}
		release_one(w, e);
	}
	if (next > r->resolved)
		r->resolved = next;
}

bool qs_window_reject(struct qs_window *w, struct qs_range *r, uint64_t seq)
{
	struct qs_event *e = qs_window_get(w, seq);
	if (seq < r->resolved || seq >= r->end || !e || e->state != QS_EV_PENDING)
		return false;
	e->state = QS_EV_REJECTED;
	w->unresolved--;
	return true;
}

void qs_window_release(struct qs_window *w, bool (*fin_done)(void *stream))
{
	while (w->count > 0) {
		struct qs_event *e = slot(w, 0);
		release_one(w, e);
		if (e->buf || !e->covered)
			break;
		w->head = (w->head + 1) % w->cap;
		w->count--;
		w->base++;
	}
	for (unsigned i = 0; i < w->max_ranges; i++) {
		struct qs_range *r = &w->ranges[i];
		if (r->used && r->closed && r->resolved >= r->end && (!r->stream || fin_done(r->stream)))
			r->used = false;
	}
}

void qs_window_conn_lost(struct qs_window *w)
{
	for (size_t i = 0; i < w->count; i++) {
		struct qs_event *e = slot(w, i);
		e->in_flight = false;
		release_one(w, e);
	}
	for (unsigned i = 0; i < w->max_ranges; i++)
		w->ranges[i].stream = NULL;
}

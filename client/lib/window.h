/* The send window: every event the client holds until the server resolved it,
 * and the split of the sequence space into stream ranges.
 *
 * Pure bookkeeping (no QUIC): the connection code asks it what to write next and
 * tells it what the server answered. Kept apart so it can be unit tested. */
#ifndef QS_CLIENT_WINDOW_H
#define QS_CLIENT_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QS_WINDOW_MAX_RANGES 64
/* Event bytes live in chunks of this size (larger events get a chunk of their own). */
#define QS_WINDOW_CHUNK_SIZE (64u << 10)
/* A window's first chunk has this size, each next one twice the last up to
 * QS_WINDOW_CHUNK_SIZE: a client that sends a few events (each of the
 * thousands of clients of a connection storm) does not take 64 KiB for them. */
#define QS_WINDOW_CHUNK_FIRST (4u << 10)
/* The event ring's first size (doubled as needed). */
#define QS_WINDOW_RING_FIRST 16
/* Empty chunks kept for reuse; more are freed (at most 512 KiB idle per window). */
#define QS_WINDOW_SPARE_CHUNKS 8

enum qs_ev_state { QS_EV_PENDING = 0, QS_EV_ACKED, QS_EV_REJECTED };

struct qs_chunk;

struct qs_event {
	uint8_t *buf;     /* [u32 BE len][JSON] inside chunk; NULL once released */
	struct qs_chunk *chunk;
	uint32_t size;    /* bytes in buf, prefix included */
	uint8_t state;    /* enum qs_ev_state */
	bool covered;     /* an 'A' covers it: it will never be sent again */
	bool in_flight;   /* ngtcp2 may still retransmit from buf (not yet QUIC-acked) */
	bool left;        /* its whole frame was handed to QUIC once (counted as sent) */
	uint64_t tag;     /* the caller's value, handed back in callbacks */
	uint64_t end_off; /* offset just past this frame on the stream that last wrote it */
};

/* A contiguous run of sequence numbers carried by one stream at a time. */
struct qs_range {
	bool used;
	bool closed;       /* end is final: the stream sends FIN after end-1 */
	uint64_t first;    /* first seq of the range */
	uint64_t end;      /* one past the last seq assigned so far */
	uint64_t resolved; /* every seq below it is resolved (the last 'A' next) */
	uint64_t bytes;    /* frame bytes assigned, to cut ranges at a size */
	void *stream;      /* the stream carrying it on the live connection, or NULL */
};

struct qs_window {
	struct qs_event *ev; /* ring of events, seq base .. next-1 */
	size_t cap, head, count;
	uint64_t base, next;
	uint64_t assigned; /* seqs below it belong to a range */
	uint64_t flush_to; /* the range reaching this seq closes there (a flush) */
	size_t bytes;      /* event bytes held */
	struct qs_chunk *cur;   /* the chunk new events are appended to */
	struct qs_chunk *spare; /* empty chunks for reuse (a list; all of QS_WINDOW_CHUNK_SIZE) */
	size_t chunk_next;      /* the size of the next chunk (QS_WINDOW_CHUNK_FIRST, doubling) */
	unsigned nspare;
	size_t chunks;          /* chunks allocated (in use + spare) */
	uint64_t unresolved;
	struct qs_range ranges[QS_WINDOW_MAX_RANGES];
	unsigned max_ranges;
	uint32_t range_events;
	uint64_t range_bytes;
};

typedef void (*qs_window_ack_fn)(void *ud, uint64_t seq, uint64_t tag);

void qs_window_init(struct qs_window *w, uint64_t first_seq, unsigned max_ranges,
		    uint32_t range_events, uint64_t range_bytes);
void qs_window_free(struct qs_window *w);

/* Copies one event (adding its length prefix); returns its seq or -1 on ENOMEM. */
int64_t qs_window_push(struct qs_window *w, const void *data, uint32_t len, uint64_t tag);
struct qs_event *qs_window_get(struct qs_window *w, uint64_t seq);

/* Puts unassigned events into ranges: grows the open range up to its limits,
 * opens new ones while fewer than max_ranges are in use. */
void qs_window_assign(struct qs_window *w);
/* No more events for now (end of input): the range holding the last event
 * pushed so far gets its final end, now or once that event is assigned. */
void qs_window_close_open(struct qs_window *w);

/* 'A next' on range r: every pending seq below next becomes acked (fn per event). */
void qs_window_ack(struct qs_window *w, struct qs_range *r, uint64_t next, qs_window_ack_fn fn, void *ud);
/* 'R seq' on range r: true when seq was pending (a repeated rejection gives false). */
bool qs_window_reject(struct qs_window *w, struct qs_range *r, uint64_t seq);

/* Releases the bytes of covered events ngtcp2 no longer references, drops them from
 * the front, and frees ranges that are finished (closed, fully resolved, and
 * fin_done(stream) when a stream carries it). The caller then drops its stream
 * pointers to ranges that are no longer used. */
void qs_window_release(struct qs_window *w, bool (*fin_done)(void *stream));
/* ngtcp2 no longer references e (QUIC-acked, or its stream closed). */
void qs_window_unref(struct qs_window *w, struct qs_event *e);
/* The connection is gone: nothing is in flight, no range has a stream. */
void qs_window_conn_lost(struct qs_window *w);

#endif

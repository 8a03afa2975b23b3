/* Unit tests for client/lib/window.c: ranges, acks, rejections, what is kept
 * for resending and when bytes are released. */
#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"
#include "client/lib/window.h"


static uint64_t acked[64];
static int nacked;

static void on_ack(void *ud, uint64_t seq, uint64_t tag)
{
	(void)ud;
	CHECK(tag == seq * 10);
	acked[nacked++] = seq;
}

static bool never_fin(void *s)
{
	(void)s;
	return false;
}

static void push_n(struct qs_window *w, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t seq = w->next;
		CHECK(qs_window_push(w, "{}", 2, seq * 10) == (int64_t)seq);
	}
}

static void test_ranges_and_acks(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 2, 4, 1 << 20);
	push_n(&w, 10);
	CHECK(w.bytes == 60 && w.unresolved == 10);
	qs_window_assign(&w);
	/* two ranges of 4, both full (closed); 8 and 9 wait for a free range */
	CHECK(w.assigned == 8);
	struct qs_range *r0 = &w.ranges[0], *r1 = &w.ranges[1];
	CHECK(r0->first == 0 && r0->end == 4 && r0->closed);
	CHECK(r1->first == 4 && r1->end == 8 && r1->closed);

	CHECK(qs_window_reject(&w, r1, 5));
	CHECK(!qs_window_reject(&w, r1, 5)); /* a second rejection (after a resend) is ignored */
	CHECK(!qs_window_reject(&w, r1, 2)); /* not this range's frame */
	qs_window_ack(&w, r1, 8, on_ack, NULL);
	CHECK(nacked == 3 && acked[0] == 4 && acked[1] == 6 && acked[2] == 7);
	qs_window_ack(&w, r0, 2, on_ack, NULL);
	qs_window_ack(&w, r0, 1, on_ack, NULL); /* never backwards */
	CHECK(nacked == 5 && r0->resolved == 2);
	CHECK(w.unresolved == 2 + 2); /* 2,3 of r0 and the unassigned 8,9 */

	qs_window_release(&w, never_fin);
	CHECK(!r1->used);    /* done: closed, resolved, no stream */
	CHECK(w.base == 2);  /* 0,1 dropped from the front */
	qs_window_assign(&w);
	CHECK(w.assigned == 10 && !w.ranges[1].closed); /* 8,9 in the freed slot, still open */
	qs_window_close_open(&w);
	CHECK(w.ranges[1].closed && w.ranges[1].first == 8 && w.ranges[1].end == 10);
	qs_window_ack(&w, r0, 4, on_ack, NULL);
	qs_window_ack(&w, &w.ranges[1], 99, on_ack, NULL); /* clamped to the range */
	CHECK(w.ranges[1].resolved == 10 && w.unresolved == 0 && nacked == 9);
	qs_window_release(&w, never_fin);
	CHECK(w.count == 0 && w.bytes == 0 && w.base == 10);
	qs_window_free(&w);
}

static void test_in_flight_kept(void)
{
	struct qs_window w;
	qs_window_init(&w, 100, 1, 4096, 1 << 20);
	push_n(&w, 3);
	qs_window_assign(&w);
	struct qs_range *r = &w.ranges[0];
	CHECK(r->first == 100 && !r->closed);
	/* ngtcp2 still references event 100 (not QUIC-acked): its bytes stay */
	qs_window_get(&w, 100)->in_flight = true;
	nacked = 0;
	qs_window_ack(&w, r, 103, NULL, NULL);
	CHECK(w.unresolved == 0);
	CHECK(qs_window_get(&w, 100)->buf != NULL && w.bytes == 6);
	qs_window_release(&w, never_fin);
	CHECK(w.count == 3); /* the front is pinned */
	qs_window_unref(&w, qs_window_get(&w, 100));
	qs_window_release(&w, never_fin);
	CHECK(w.count == 0 && w.bytes == 0);
	qs_window_free(&w);
}

static void test_flush_waiting_events(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 1, 2, 1 << 20);
	push_n(&w, 3);
	qs_window_assign(&w); /* [0,2) closed by size; 2 waits */
	qs_window_close_open(&w); /* end of input while 2 is unassigned */
	qs_window_ack(&w, &w.ranges[0], 2, NULL, NULL);
	qs_window_release(&w, never_fin);
	qs_window_assign(&w);
	CHECK(w.ranges[0].used && w.ranges[0].first == 2 && w.ranges[0].end == 3);
	CHECK(w.ranges[0].closed); /* the flush point closes it: the stream gets its FIN */
	qs_window_free(&w);
}

static void test_byte_limit_and_conn_lost(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 4, 4096, 10); /* a range closes at 10 bytes: two 6-byte frames */
	push_n(&w, 3);
	qs_window_assign(&w);
	CHECK(w.ranges[0].end == 2 && w.ranges[0].closed && w.ranges[1].first == 2);
	int dummy;
	w.ranges[0].stream = &dummy;
	qs_window_get(&w, 0)->in_flight = true;
	qs_window_conn_lost(&w);
	CHECK(w.ranges[0].stream == NULL && !qs_window_get(&w, 0)->in_flight);
	CHECK(w.ranges[0].resolved == 0); /* a new stream resumes here */
	qs_window_free(&w);
}

/* Event seq's JSON: its seq and a filler that differs from its neighbours',
 * len bytes in all, so bytes overwritten by a later event are noticed. */
static uint32_t make_event(char *out, uint64_t seq, uint32_t len)
{
	int n = snprintf(out, len, "{\"s\":%" PRIu64 ",\"p\":\"", seq);
	memset(out + n, 'a' + (int)(seq % 26), len - (uint32_t)n - 2);
	memcpy(out + len - 2, "\"}", 2);
	return len;
}

static void push_sized(struct qs_window *w, int n, uint32_t len)
{
	char *buf = malloc(len);
	for (int i = 0; i < n; i++) {
		uint64_t seq = w->next;
		CHECK(qs_window_push(w, buf, make_event(buf, seq, len), seq * 10) == (int64_t)seq);
	}
	free(buf);
}

/* The bytes of seq are still exactly what was pushed. */
static bool intact(struct qs_window *w, uint64_t seq, uint32_t len)
{
	struct qs_event *e = qs_window_get(w, seq);
	char *want = malloc(len);
	make_event(want, seq, len);
	bool ok = e && e->buf && e->size == len + 4 && e->buf[0] == (uint8_t)(len >> 24) &&
		  e->buf[3] == (uint8_t)len && memcmp(e->buf + 4, want, len) == 0;
	free(want);
	return ok;
}

/* Answers every event pushed so far and releases what can go (finished ranges
 * make room for the events still waiting for one). */
static void ack_all(struct qs_window *w)
{
	do {
		qs_window_assign(w);
		for (unsigned i = 0; i < w->max_ranges; i++)
			if (w->ranges[i].used)
				qs_window_ack(w, &w->ranges[i], w->ranges[i].end, NULL, NULL);
		qs_window_release(w, never_fin);
	} while (w->assigned < w->next);
}

/* An event ngtcp2 may still retransmit from keeps its bytes while every event
 * around it is answered and released and many more pass through: the chunk
 * holding it must not be reused (refilled or handed out) before its unref. */
static void test_in_flight_bytes_not_reused(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 4, 64, 1 << 20);
	const uint32_t len = 1000;
	push_sized(&w, 5, len);
	qs_window_assign(&w);
	qs_window_get(&w, 1)->in_flight = true; /* inside the first chunk, not at its start */
	qs_window_get(&w, 3)->in_flight = true;
	ack_all(&w);
	CHECK(w.base == 1 && w.bytes == 2 * (len + 4)); /* 1 pins the front; 0, 2, 4 released */
	CHECK(intact(&w, 1, len) && intact(&w, 3, len));
	for (int round = 0; round < 20; round++) {
		/* 300 KB per round: several chunks filled, released and reused */
		push_sized(&w, 300, len);
		ack_all(&w);
		CHECK(intact(&w, 1, len) && intact(&w, 3, len));
		CHECK(w.base == 1 && w.bytes == 2 * (len + 4));
		/* the chunk pinned by 1 and 3, the current one and the spares; never more */
		CHECK(w.chunks <= 2 + QS_WINDOW_SPARE_CHUNKS);
	}
	qs_window_unref(&w, qs_window_get(&w, 1));
	qs_window_release(&w, never_fin);
	CHECK(w.base == 3 && intact(&w, 3, len));
	push_sized(&w, 100, len); /* may reuse 1's bytes now, never 3's */
	CHECK(intact(&w, 3, len));
	qs_window_unref(&w, qs_window_get(&w, 3));
	ack_all(&w);
	CHECK(w.count == 0 && w.bytes == 0);
	qs_window_free(&w);
}

/* The current chunk is rewound once everything in it is released, not refilled
 * while one of its events is still referenced. */
static void test_current_chunk_rewound_only_when_empty(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 1, 4096, 1 << 20);
	push_sized(&w, 3, 100);
	uint8_t *first = qs_window_get(&w, 0)->buf;
	qs_window_get(&w, 2)->in_flight = true;
	ack_all(&w);
	push_sized(&w, 3, 100); /* 3..5 go after 2, not over it */
	CHECK(intact(&w, 2, 100) && qs_window_get(&w, 3)->buf > qs_window_get(&w, 2)->buf);
	ack_all(&w);
	CHECK(intact(&w, 2, 100));
	qs_window_unref(&w, qs_window_get(&w, 2));
	ack_all(&w);
	CHECK(w.count == 0 && w.chunks == 1);
	push_sized(&w, 1, 100);
	CHECK(qs_window_get(&w, 6)->buf == first && intact(&w, 6, 100)); /* same memory again */
	qs_window_free(&w);
}

/* Steady traffic never allocates more memory; events larger than a chunk get
 * their own, freed on release. */
static void test_memory_bounded(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 4, 64, 1 << 20);
	for (int round = 0; round < 500; round++) {
		push_sized(&w, 50, 300 + (uint32_t)round % 700);
		qs_window_assign(&w);
		CHECK(intact(&w, w.next - 1, 300 + (uint32_t)round % 700));
		ack_all(&w);
		CHECK(w.count == 0 && w.bytes == 0 && w.chunks <= 2);
	}
	push_sized(&w, 2, 40);
	push_sized(&w, 1, 3 * QS_WINDOW_CHUNK_SIZE);
	push_sized(&w, 2, 40);
	CHECK(intact(&w, w.next - 3, 3 * QS_WINDOW_CHUNK_SIZE) && intact(&w, w.next - 1, 40));
	CHECK(qs_window_get(&w, w.next - 1)->chunk == qs_window_get(&w, w.next - 4)->chunk);
	ack_all(&w);
	CHECK(w.count == 0 && w.chunks <= 2);
	qs_window_free(&w);
}

/* What the client hands ngtcp2 per write: events that follow each other in a
 * window chunk as one vector (ngtcp2 1.11 leaks STREAM frames of more than 4
 * vectors when a loss trims them), a chunk boundary as a second one, and every
 * byte once, in order, with FIN after the last. */
static void test_stream_vecs_one_per_chunk(void)
{
	static struct qs_client c;
	enum { N = 1000, LEN = 266 };
	qs_window_init(&c.win, 0, 1, N, 1u << 30);
	uint8_t ev[LEN];
	for (int i = 0; i < N; i++) {
		memset(ev, 'a' + i % 26, sizeof(ev));
		CHECK(qs_window_push(&c.win, ev, LEN, (uint64_t)i) == i);
	}
	qs_window_close_open(&c.win);
	qs_window_assign(&c.win);
	struct qs_stream s = {.range = &c.win.ranges[0]};
	size_t sent = 0, two = 0, calls = 0;
	uint8_t first_byte_ok = 1;
	while (!s.fin_sent && calls++ < 10000) {
		ngtcp2_vec v[16];
		bool fin = false;
		size_t n = qs_stream_vecs(&c, &s, v, 16, &fin), total = 0;
		CHECK(n >= 1 && n <= 2);
		for (size_t i = 0; i < n; i++) {
			total += v[i].len;
			if (i)
				CHECK(v[i - 1].base + v[i - 1].len != v[i].base); /* would have been one */
		}
		two += n == 2;
		CHECK(total <= 4096 + LEN + 4);
		size_t take = total < 1400 ? total : 1400; /* one packet's worth, as ngtcp2 takes */
		if (sent % (LEN + 4) == 0) /* at a frame start: its length prefix */
			first_byte_ok &= ((uint32_t)v[0].base[0] << 24 | (uint32_t)v[0].base[1] << 16 |
					  (uint32_t)v[0].base[2] << 8 | v[0].base[3]) == LEN;
		qs_stream_advance(&c, &s, take, fin, total);
		sent += take;
	}
	CHECK(sent == (size_t)N * (LEN + 4));
	CHECK(s.fin_sent && s.write_seq == N);
	CHECK(two > 0); /* 270 KB crossed chunk boundaries */
	CHECK(first_byte_ok);
	qs_window_free(&c.win);
}

/* A window starts with a small chunk and doubles the next one up to
 * QS_WINDOW_CHUNK_SIZE (a client of a storm sends one event: 4 KiB, not 64);
 * an event larger than the next size gets a chunk that fits it, and an empty
 * current chunk too small for the next event is dropped, not kept. */
static void test_chunks_grow(void)
{
	struct qs_window w;
	qs_window_init(&w, 0, 1, 4096, 1 << 20);
	CHECK(w.ev == NULL && w.chunks == 0);
	push_sized(&w, 1, 100);
	CHECK(w.cap == QS_WINDOW_RING_FIRST && w.chunks == 1);
	CHECK(w.chunk_next == 2 * QS_WINDOW_CHUNK_FIRST); /* the first chunk: QS_WINDOW_CHUNK_FIRST */
	ack_all(&w);
	CHECK(w.count == 0 && w.chunks == 1); /* rewound, kept */
	push_sized(&w, 1, 3 * QS_WINDOW_CHUNK_FIRST); /* fits no chunk yet: one of 4x, the old one dropped */
	CHECK(intact(&w, 1, 3 * QS_WINDOW_CHUNK_FIRST) && w.chunks == 1);
	CHECK(w.chunk_next == 8 * QS_WINDOW_CHUNK_FIRST);
	for (int round = 0; round < 40; round++) { /* 40 KB a round: chunks up to the full size, then reused */
		push_sized(&w, 40, 1000);
		CHECK(intact(&w, w.next - 1, 1000) && intact(&w, w.next - 40, 1000));
		ack_all(&w);
		CHECK(w.count == 0 && w.chunks <= 2);
	}
	CHECK(w.chunk_next == QS_WINDOW_CHUNK_SIZE);
	CHECK(w.cap == 64); /* the ring doubled to what was pushed at once */
	qs_window_free(&w);
}

int main(void)
{
	test_ranges_and_acks();
	test_in_flight_kept();
	test_flush_waiting_events();
	test_byte_limit_and_conn_lost();
	test_in_flight_bytes_not_reused();
	test_current_chunk_rewound_only_when_empty();
	test_memory_bounded();
	test_chunks_grow();
	test_stream_vecs_one_per_chunk();
	return check_report();
}

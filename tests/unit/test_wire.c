/* Unit tests of the frame codec and the answer codec (common/wire.c).
 * Plain C, no framework: CHECK counts, the summary line is "N passed, N failed",
 * the exit status is non-zero when anything failed. */
#include "tests/unit/check.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"





/* ---- helpers ---- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		size_t c = b->cap ? b->cap * 2 : 256;
		while (c < b->len + n)
			c *= 2;
		b->p = realloc(b->p, c);
		if (!b->p) {
			perror("realloc");
			exit(3);
		}
		b->cap = c;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void buf_frame(struct buf *b, const char *json)
{
	uint8_t pre[4];
	qs_frame_prefix(pre, (uint32_t)strlen(json));
	buf_add(b, pre, 4);
	buf_add(b, json, strlen(json));
}

static void buf_prefix(struct buf *b, uint32_t len)
{
	uint8_t pre[4];
	qs_frame_prefix(pre, len);
	buf_add(b, pre, 4);
}

static void buf_header(struct buf *b, const uint8_t session[QS_SESSION_ID_LEN], uint64_t base)
{
	uint8_t h[QS_STREAM_HEADER_LEN];
	CHECK_EQ_U64(qs_stream_header_encode(h, session, base), QS_STREAM_HEADER_LEN);
	buf_add(b, h, sizeof(h));
}

/* One decoded event, copied out of the decoder. */
struct ev {
	int type;
	uint64_t seq;
	uint32_t len;
	char data[4096];
	uint8_t session[QS_SESSION_ID_LEN];
};

struct evlist {
	struct ev e[64];
	int n;
	int errors;
	size_t max_buffered;
};

/* Feeds `in` to the decoder exactly as qs_frame_decode's contract says, collecting events. */
static void feed(struct qs_frame_decoder *d, const uint8_t *in, size_t len, struct evlist *l)
{
	size_t off = 0;
	int guard = 0;
	while (off < len) {
		size_t used = 0;
		struct qs_dec_out out;
		memset(&out, 0, sizeof(out));
		int r = qs_frame_decode(d, in + off, len - off, &used, &out);
		if (r < 0) {
			l->errors++;
			return;
		}
		if (used > len - off) {
			l->errors++;
			return;
		}
		off += used;
		size_t b = qs_frame_decoder_buffered(d);
		if (b > l->max_buffered)
			l->max_buffered = b;
		if (r == QS_DEC_NEED_MORE) {
			if (off != len) /* NEED_MORE means all input consumed */
				l->errors++;
			return;
		}
		if (l->n < (int)(sizeof(l->e) / sizeof(l->e[0]))) {
			struct ev *e = &l->e[l->n];
			e->type = r;
			e->seq = out.seq;
			e->len = out.len;
			if ((r == QS_DEC_FRAME || (r == QS_DEC_AUTH && out.data)) && out.len < sizeof(e->data)) {
				memcpy(e->data, out.data, out.len);
				e->data[out.len] = 0;
			}
			if (r == QS_DEC_HEADER)
				memcpy(e->session, out.session, QS_SESSION_ID_LEN);
		}
		l->n++;
		if (++guard > 100000) { /* no progress loop */
			l->errors++;
			return;
		}
		if (used == 0 && r == QS_DEC_NEED_MORE)
			return;
	}
}

static void feed_split(struct qs_frame_decoder *d, const uint8_t *in, size_t len, size_t chunk,
		       struct evlist *l)
{
	for (size_t off = 0; off < len; off += chunk)
		feed(d, in + off, len - off < chunk ? len - off : chunk, l);
}

static const char *J1 = "{\"n\":1,\"msg\":\"hello\"}";
static const char *J2 = "{\"n\":2,\"msg\":\"h\\u00e9llo w\\u00f6rld \xe2\x82\xac\"}";
static const char *J3 = "{}";

/* ---- frame decoder ---- */

static void test_single_frame(void)
{
	current_test = "single_frame";
	struct buf b = {0};
	buf_frame(&b, J1);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024);
	struct evlist l = {0};
	feed(&d, b.p, b.len, &l);
	CHECK_EQ_U64(l.n, 1);
	CHECK_EQ_U64(l.errors, 0);
	CHECK(l.e[0].type == QS_DEC_FRAME);
	CHECK_EQ_U64(l.e[0].seq, 0);
	CHECK_EQ_U64(l.e[0].len, strlen(J1));
	CHECK(strcmp(l.e[0].data, J1) == 0);
	CHECK(!qs_frame_decoder_truncated(&d));
	qs_frame_decoder_free(&d);
	free(b.p);
}

/* Partial counts the stream bytes of the frame being reassembled (its
 * connection credit is given back early by the acceptor), 0 between frames. */
static void test_partial_bytes(void)
{
	current_test = "partial_bytes";
	struct buf b = {0};
	buf_frame(&b, J1);
	buf_frame(&b, J2);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024);
	struct evlist l = {0};
	size_t first = 4 + strlen(J1);
	CHECK_EQ_U64(qs_frame_decoder_partial(&d), 0);
	feed(&d, b.p, 3, &l); /* inside the length prefix: nothing counted yet */
	CHECK_EQ_U64(qs_frame_decoder_partial(&d), 0);
	feed(&d, b.p + 3, 7, &l);
	CHECK_EQ_U64(qs_frame_decoder_partial(&d), 10);
	feed(&d, b.p + 10, first - 10 + 6, &l); /* J1 completes, 6 bytes of J2 follow */
	CHECK_EQ_U64(l.n, 1);
	CHECK_EQ_U64(qs_frame_decoder_partial(&d), 6);
	feed(&d, b.p + first + 6, b.len - first - 6, &l);
	CHECK_EQ_U64(l.n, 2);
	CHECK_EQ_U64(qs_frame_decoder_partial(&d), 0);
	qs_frame_decoder_free(&d);
	free(b.p);
}

static void test_several_frames_one_chunk(void)
{
	current_test = "several_frames_one_chunk";
	struct buf b = {0};
	buf_frame(&b, J1);
	buf_frame(&b, J2);
	buf_frame(&b, J3);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024);
	struct evlist l = {0};
	feed(&d, b.p, b.len, &l);
	CHECK_EQ_U64(l.n, 3);
	CHECK_EQ_U64(l.errors, 0);
	const char *want[3] = {J1, J2, J3};
	for (int i = 0; i < 3 && i < l.n; i++) {
		CHECK(l.e[i].type == QS_DEC_FRAME);
		CHECK_EQ_U64(l.e[i].seq, i);
		CHECK(strcmp(l.e[i].data, want[i]) == 0);
	}
	CHECK(!qs_frame_decoder_truncated(&d));
	qs_frame_decoder_free(&d);
	free(b.p);
}

/* Every split point of a 3-frame stream into two chunks, and into three chunks. */
static void test_every_split_point(void)
{
	current_test = "every_split_point";
	struct buf b = {0};
	buf_frame(&b, J1);
	buf_frame(&b, J2);
	buf_frame(&b, J3);
	const char *want[3] = {J1, J2, J3};
	int bad = 0;
	for (size_t s1 = 0; s1 <= b.len; s1++) {
		for (size_t s2 = s1; s2 <= b.len; s2++) {
			struct qs_frame_decoder d;
			qs_frame_decoder_init(&d, 1024);
			struct evlist l = {0};
			feed(&d, b.p, s1, &l);
			feed(&d, b.p + s1, s2 - s1, &l);
			feed(&d, b.p + s2, b.len - s2, &l);
			int ok = l.n == 3 && l.errors == 0 && !qs_frame_decoder_truncated(&d);
			for (int i = 0; ok && i < 3; i++)
				ok = l.e[i].type == QS_DEC_FRAME && l.e[i].seq == (uint64_t)i &&
				     strcmp(l.e[i].data, want[i]) == 0;
			if (!ok) {
				if (bad++ < 3)
					fprintf(stderr, "  split at %zu/%zu: %d events, %d errors\n", s1, s2,
						l.n, l.errors);
			}
			qs_frame_decoder_free(&d);
		}
	}
	CHECK_EQ_U64(bad, 0);
	free(b.p);
}

static void test_byte_by_byte(void)
{
	current_test = "byte_by_byte";
	struct buf b = {0};
	buf_frame(&b, J1);
	buf_frame(&b, J2);
	buf_frame(&b, J3);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024);
	struct evlist l = {0};
	for (size_t i = 0; i < b.len; i++) {
		CHECK(i == 0 || qs_frame_decoder_truncated(&d) ||
		      i == 4 + strlen(J1) || i == 8 + strlen(J1) + strlen(J2));
		feed(&d, b.p + i, 1, &l);
	}
	CHECK_EQ_U64(l.n, 3);
	CHECK_EQ_U64(l.errors, 0);
	CHECK(l.n >= 3 && strcmp(l.e[0].data, J1) == 0 && strcmp(l.e[1].data, J2) == 0 &&
	      strcmp(l.e[2].data, J3) == 0);
	CHECK(l.n >= 3 && l.e[2].seq == 2);
	CHECK(!qs_frame_decoder_truncated(&d));
	qs_frame_decoder_free(&d);
	free(b.p);
}

/* A frame bigger than a typical packet, fed in packet-sized chunks, then more frames. */
static void test_frame_across_chunks(void)
{
	current_test = "frame_across_chunks";
	char big[3000];
	memset(big, 'x', sizeof(big));
	memcpy(big, "{\"s\":\"", 6);
	big[sizeof(big) - 3] = '"';
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = 0;
	struct buf b = {0};
	buf_frame(&b, J1);
	buf_frame(&b, big);
	buf_frame(&b, J2);
	size_t chunks[] = {1, 2, 3, 5, 7, 100, 1200, 1350, 4096};
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct qs_frame_decoder d;
		qs_frame_decoder_init(&d, 4096);
		struct evlist l = {0};
		feed_split(&d, b.p, b.len, chunks[c], &l);
		CHECK_EQ_U64(l.n, 3);
		CHECK_EQ_U64(l.errors, 0);
		CHECK(l.n == 3 && strcmp(l.e[1].data, big) == 0 && l.e[1].seq == 1);
		CHECK(l.n == 3 && strcmp(l.e[2].data, J2) == 0 && l.e[2].seq == 2);
		CHECK(l.max_buffered <= 4096);
		CHECK(!qs_frame_decoder_truncated(&d));
		qs_frame_decoder_free(&d);
	}
	free(b.p);
}

/* A frame larger than 64 KiB that spans chunks comes out of the decoder's own
 * buffer: its bytes must still be there when the caller reads them (the
 * decoder used to free a buffer over 64 KiB before returning the frame in it:
 * malloc's free-list pointers overwrote its first bytes, and every such event
 * was rejected as invalid JSON). Then the caller's trim lets the buffer go. */
static void test_large_frames_across_chunks(void)
{
	current_test = "large_frames_across_chunks";
	enum { BIG = 70000 };
	uint8_t *frame = malloc(4 + BIG);
	CHECK(frame != NULL);
	if (!frame)
		return;
	qs_frame_prefix(frame, BIG);
	for (size_t i = 0; i < BIG; i++)
		frame[4 + i] = (uint8_t)('a' + i % 26);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1 << 20);
	for (int round = 0; round < 3; round++) {
		size_t cuts[] = {0, 1500, 40000, 4 + BIG};
		int frames = 0;
		void *fence = NULL;
		for (int c = 0; c < 3; c++) {
			/* a block after the decoder's buffer keeps it away from the heap's
			 * top: freed, it would get free-list pointers written into it */
			if (c == 1)
				fence = malloc(64);
			size_t off = cuts[c], len = cuts[c + 1] - cuts[c];
			while (len) {
				size_t used = 0;
				struct qs_dec_out out;
				int r = qs_frame_decode(&d, frame + off, len, &used, &out);
				CHECK(r >= 0);
				if (r == QS_DEC_FRAME) {
					frames++;
					CHECK_EQ_U64(out.len, BIG);
					CHECK(memcmp(out.data, frame + 4, BIG) == 0);
				}
				off += used;
				len -= used;
				if (r < 0 || used == 0)
					break;
			}
		}
		free(fence);
		CHECK_EQ_U64(frames, 1);
		CHECK(qs_frame_decoder_buffered(&d) >= BIG); /* kept until the caller trims */
		qs_frame_decoder_trim(&d, 64 * 1024);
		CHECK_EQ_U64(qs_frame_decoder_buffered(&d), 0);
	}
	qs_frame_decoder_free(&d);
	free(frame);
}

static void test_frame_exactly_max(void)
{
	current_test = "frame_exactly_max";
	char body[65];
	memset(body, ' ', 64);
	body[0] = '{';
	body[63] = '}';
	body[64] = 0;
	struct buf b = {0};
	buf_frame(&b, body);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 64);
	struct evlist l = {0};
	feed_split(&d, b.p, b.len, 7, &l);
	CHECK_EQ_U64(l.n, 1);
	CHECK(l.n == 1 && l.e[0].type == QS_DEC_FRAME && l.e[0].len == 64);
	qs_frame_decoder_free(&d);

	/* one byte over the limit */
	struct buf b2 = {0};
	char body2[66];
	memset(body2, ' ', 65);
	body2[0] = '{';
	body2[64] = '}';
	body2[65] = 0;
	buf_frame(&b2, body2);
	buf_frame(&b2, J3);
	qs_frame_decoder_init(&d, 64);
	struct evlist l2 = {0};
	feed(&d, b2.p, b2.len, &l2);
	CHECK_EQ_U64(l2.n, 2);
	CHECK(l2.n == 2 && l2.e[0].type == QS_DEC_OVERSIZE && l2.e[0].len == 65 && l2.e[0].seq == 0);
	CHECK(l2.n == 2 && l2.e[1].type == QS_DEC_FRAME && l2.e[1].seq == 1 &&
	      strcmp(l2.e[1].data, J3) == 0);
	qs_frame_decoder_free(&d);
	free(b.p);
	free(b2.p);
}

static void test_zero_length(void)
{
	current_test = "zero_length";
	struct buf b = {0};
	buf_frame(&b, J1);
	buf_prefix(&b, 0);
	buf_prefix(&b, 0);
	buf_frame(&b, J2);
	for (size_t chunk = 1; chunk <= b.len; chunk++) {
		struct qs_frame_decoder d;
		qs_frame_decoder_init(&d, 1024);
		struct evlist l = {0};
		feed_split(&d, b.p, b.len, chunk, &l);
		CHECK_EQ_U64(l.n, 4);
		CHECK_EQ_U64(l.errors, 0);
		if (l.n == 4) {
			CHECK(l.e[0].type == QS_DEC_FRAME && l.e[0].seq == 0);
			CHECK(l.e[1].type == QS_DEC_EMPTY && l.e[1].seq == 1 && l.e[1].len == 0);
			CHECK(l.e[2].type == QS_DEC_EMPTY && l.e[2].seq == 2);
			CHECK(l.e[3].type == QS_DEC_FRAME && l.e[3].seq == 3 &&
			      strcmp(l.e[3].data, J2) == 0);
		}
		CHECK(!qs_frame_decoder_truncated(&d));
		qs_frame_decoder_free(&d);
	}
	free(b.p);
}

/* A 100 MB declared frame, its bytes fed in 64 KiB chunks: skipped without buffering. */
static void test_oversize_skip_100mb(void)
{
	current_test = "oversize_skip_100mb";
	const uint32_t declared = 100u * 1000 * 1000;
	const size_t chunk = 65536;
	uint8_t *junk = malloc(chunk);
	if (!junk)
		exit(3);
	memset(junk, '{', chunk);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024 * 1024);
	struct evlist l = {0};
	struct buf b = {0};
	buf_frame(&b, J1);
	buf_prefix(&b, declared);
	feed(&d, b.p, b.len, &l);
	CHECK_EQ_U64(l.n, 2);
	CHECK(l.n == 2 && l.e[1].type == QS_DEC_OVERSIZE && l.e[1].len == declared && l.e[1].seq == 1);
	uint64_t left = declared;
	int truncated_while_skipping = 1;
	while (left > 0) {
		size_t n = left < chunk ? (size_t)left : chunk;
		feed(&d, junk, n, &l);
		left -= n;
		if (left > 0 && !qs_frame_decoder_truncated(&d))
			truncated_while_skipping = 0;
	}
	CHECK(truncated_while_skipping);
	/* ...but the oversize frame was already reported: nothing left to answer */
	CHECK(!qs_frame_decoder_cut_unreported(&d));
	CHECK_EQ_U64(l.n, 2); /* no event from skipped bytes */
	CHECK_EQ_U64(l.errors, 0);
	CHECK(l.max_buffered <= 4096);
	CHECK(!qs_frame_decoder_truncated(&d));
	/* the stream goes on */
	struct buf b2 = {0};
	buf_frame(&b2, J2);
	feed(&d, b2.p, b2.len, &l);
	CHECK_EQ_U64(l.n, 3);
	CHECK(l.n == 3 && l.e[2].type == QS_DEC_FRAME && l.e[2].seq == 2 && strcmp(l.e[2].data, J2) == 0);
	CHECK(l.max_buffered <= 4096);
	qs_frame_decoder_free(&d);
	free(junk);
	free(b.p);
	free(b2.p);
}

/* Oversize frame with its tail and the next frame in the same chunk, at all split points. */
static void test_oversize_splits(void)
{
	current_test = "oversize_splits";
	struct buf b = {0};
	char big[200];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	buf_frame(&b, big);
	buf_frame(&b, J1);
	int bad = 0;
	for (size_t s = 0; s <= b.len; s++) {
		struct qs_frame_decoder d;
		qs_frame_decoder_init(&d, 100);
		struct evlist l = {0};
		feed(&d, b.p, s, &l);
		feed(&d, b.p + s, b.len - s, &l);
		int ok = l.n == 2 && l.errors == 0 && l.e[0].type == QS_DEC_OVERSIZE &&
			 l.e[0].len == 199 && l.e[1].type == QS_DEC_FRAME && l.e[1].seq == 1 &&
			 strcmp(l.e[1].data, J1) == 0 && l.max_buffered <= 100 &&
			 !qs_frame_decoder_truncated(&d);
		if (!ok && bad++ < 3)
			fprintf(stderr, "  split at %zu: %d events\n", s, l.n);
		qs_frame_decoder_free(&d);
	}
	CHECK_EQ_U64(bad, 0);
	free(b.p);
}

static void test_truncated(void)
{
	current_test = "truncated";
	struct qs_frame_decoder d;
	struct evlist l = {0};
	struct buf b = {0};
	buf_frame(&b, J1);
	size_t flen = b.len;

	/* nothing at all: not truncated */
	qs_frame_decoder_init(&d, 1024);
	CHECK(!qs_frame_decoder_truncated(&d));
	qs_frame_decoder_free(&d);

	/* cut inside the length prefix: 1, 2, 3 bytes of it */
	for (size_t cut = 1; cut < 4; cut++) {
		qs_frame_decoder_init(&d, 1024);
		memset(&l, 0, sizeof(l));
		feed(&d, b.p, cut, &l);
		CHECK_EQ_U64(l.n, 0);
		CHECK(qs_frame_decoder_truncated(&d));
		CHECK(qs_frame_decoder_cut_unreported(&d));
		qs_frame_decoder_free(&d);
	}
	/* a whole frame then a cut prefix */
	buf_frame(&b, J2);
	for (size_t cut = 1; cut < 4; cut++) {
		qs_frame_decoder_init(&d, 1024);
		memset(&l, 0, sizeof(l));
		feed(&d, b.p, flen + cut, &l);
		CHECK_EQ_U64(l.n, 1);
		CHECK(qs_frame_decoder_truncated(&d));
		qs_frame_decoder_free(&d);
	}
	/* cut in the body: prefix complete, 0..len-1 body bytes */
	for (size_t cut = 4; cut < flen; cut++) {
		qs_frame_decoder_init(&d, 1024);
		memset(&l, 0, sizeof(l));
		feed(&d, b.p, cut, &l);
		CHECK_EQ_U64(l.n, 0);
		CHECK(qs_frame_decoder_truncated(&d));
		CHECK(qs_frame_decoder_cut_unreported(&d));
		qs_frame_decoder_free(&d);
	}
	/* complete frame: not truncated */
	qs_frame_decoder_init(&d, 1024);
	memset(&l, 0, sizeof(l));
	feed(&d, b.p, flen, &l);
	CHECK(!qs_frame_decoder_truncated(&d));
	qs_frame_decoder_free(&d);
	/* cut in the middle of a skipped oversize frame */
	struct buf o = {0};
	buf_prefix(&o, 5000);
	uint8_t z[100] = {0};
	buf_add(&o, z, sizeof(z));
	qs_frame_decoder_init(&d, 1024);
	memset(&l, 0, sizeof(l));
	feed(&d, o.p, o.len, &l);
	CHECK_EQ_U64(l.n, 1);
	CHECK(qs_frame_decoder_truncated(&d));
	qs_frame_decoder_free(&d);
	free(o.p);
	free(b.p);
}

static const uint8_t SESSION[QS_SESSION_ID_LEN] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
						   5, 6, 7, 8, 9, 10, 11, 0xff};

static void check_header_stream(struct evlist *l, uint64_t base, const char *how)
{
	int ok = l->n == 4 && l->errors == 0 && l->e[0].type == QS_DEC_HEADER &&
		 l->e[0].seq == base && memcmp(l->e[0].session, SESSION, QS_SESSION_ID_LEN) == 0 &&
		 l->e[1].type == QS_DEC_FRAME && l->e[1].seq == base &&
		 strcmp(l->e[1].data, J1) == 0 && l->e[2].type == QS_DEC_EMPTY &&
		 l->e[2].seq == base + 1 && l->e[3].type == QS_DEC_FRAME && l->e[3].seq == base + 2 &&
		 strcmp(l->e[3].data, J2) == 0;
	if (!ok) {
		fprintf(stderr, "  header stream (%s): %d events, %d errors:", how, l->n, l->errors);
		for (int i = 0; i < l->n && i < 6; i++)
			fprintf(stderr, " [type %d seq %" PRIu64 " len %u]", l->e[i].type, l->e[i].seq,
				l->e[i].len);
		fprintf(stderr, "\n");
	}
	CHECK(ok);
}

static void test_stream_header(void)
{
	current_test = "stream_header";
	const uint64_t base = 0x0000000100000005ull; /* above 2^32: all 8 bytes matter */
	struct buf b = {0};
	buf_header(&b, SESSION, base);
	CHECK(b.len == QS_STREAM_HEADER_LEN && qs_get_u32(b.p) == QS_STREAM_MAGIC);
	CHECK(memcmp(b.p, "QSH1", 4) == 0);
	buf_frame(&b, J1);
	buf_prefix(&b, 0);
	buf_frame(&b, J2);

	/* in one chunk */
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024);
	struct evlist l = {0};
	feed(&d, b.p, b.len, &l);
	check_header_stream(&l, base, "one chunk");
	CHECK(!qs_frame_decoder_truncated(&d));
	qs_frame_decoder_free(&d);

	/* every split point into two chunks */
	int bad = 0;
	for (size_t s = 0; s <= b.len; s++) {
		qs_frame_decoder_init(&d, 1024);
		memset(&l, 0, sizeof(l));
		feed(&d, b.p, s, &l);
		feed(&d, b.p + s, b.len - s, &l);
		int ok = l.n == 4 && l.errors == 0 && l.e[0].type == QS_DEC_HEADER && l.e[0].seq == base &&
			 l.e[3].type == QS_DEC_FRAME && l.e[3].seq == base + 2;
		if (!ok && bad++ < 3) {
			char how[64];
			snprintf(how, sizeof(how), "split at %zu", s);
			check_header_stream(&l, base, how);
		}
		qs_frame_decoder_free(&d);
	}
	CHECK_EQ_U64(bad, 0);

	/* byte by byte */
	qs_frame_decoder_init(&d, 1024);
	memset(&l, 0, sizeof(l));
	feed_split(&d, b.p, b.len, 1, &l);
	check_header_stream(&l, base, "byte by byte");
	qs_frame_decoder_free(&d);

	/* a cut header is truncated */
	for (size_t cut = 1; cut < QS_STREAM_HEADER_LEN; cut++) {
		qs_frame_decoder_init(&d, 1024);
		memset(&l, 0, sizeof(l));
		feed(&d, b.p, cut, &l);
		if (!qs_frame_decoder_truncated(&d) || l.n != 0) {
			CHECK(!"cut header reported as truncated");
			fprintf(stderr, "  header cut at %zu\n", cut);
		}
		qs_frame_decoder_free(&d);
	}
	free(b.p);
}

static void test_no_header_seq_from_zero(void)
{
	current_test = "no_header_seq_from_zero";
	struct buf b = {0};
	for (int i = 0; i < 10; i++)
		buf_frame(&b, J3);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024);
	struct evlist l = {0};
	feed(&d, b.p, b.len, &l);
	CHECK_EQ_U64(l.n, 10);
	for (int i = 0; i < l.n && i < 10; i++)
		CHECK(l.e[i].type == QS_DEC_FRAME && l.e[i].seq == (uint64_t)i);
	qs_frame_decoder_free(&d);
	free(b.p);
}

/* The header magic is only a header at offset 0: later, it is a (huge) length. */
static void test_header_only_at_start(void)
{
	current_test = "header_only_at_start";
	struct buf b = {0};
	buf_frame(&b, J1);
	buf_header(&b, SESSION, 77);
	for (size_t chunk = 1; chunk <= b.len; chunk += 3) {
		struct qs_frame_decoder d;
		qs_frame_decoder_init(&d, 1024 * 1024);
		struct evlist l = {0};
		feed_split(&d, b.p, b.len, chunk, &l);
		CHECK_EQ_U64(l.n, 2);
		CHECK(l.n == 2 && l.e[0].type == QS_DEC_FRAME && l.e[0].seq == 0);
		CHECK(l.n == 2 && l.e[1].type == QS_DEC_OVERSIZE && l.e[1].seq == 1 &&
		      l.e[1].len == QS_STREAM_MAGIC);
		CHECK(l.max_buffered <= 1024);
		qs_frame_decoder_free(&d);
	}
	/* and two headers in a row: the second one is a length too */
	struct buf b2 = {0};
	buf_header(&b2, SESSION, 5);
	buf_header(&b2, SESSION, 9);
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024);
	struct evlist l = {0};
	feed(&d, b2.p, b2.len, &l);
	CHECK_EQ_U64(l.n, 2);
	CHECK(l.n == 2 && l.e[0].type == QS_DEC_HEADER && l.e[0].seq == 5);
	CHECK(l.n == 2 && l.e[1].type == QS_DEC_OVERSIZE && l.e[1].seq == 5);
	qs_frame_decoder_free(&d);
	free(b.p);
	free(b2.p);
}

/* A frame that does not fit in the chunk, followed by one that does: data pointers stay valid. */
static void test_reuse_after_buffered(void)
{
	current_test = "reuse_after_buffered";
	struct buf b = {0};
	for (int i = 0; i < 50; i++) {
		char j[128];
		snprintf(j, sizeof(j), "{\"i\":%d,\"pad\":\"%.*s\"}", i, i, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
		buf_frame(&b, j);
	}
	size_t chunks[] = {1, 9, 13, 31, 64, 1000};
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct qs_frame_decoder d;
		qs_frame_decoder_init(&d, 1024);
		struct evlist l = {0};
		feed_split(&d, b.p, b.len, chunks[c], &l);
		CHECK_EQ_U64(l.n, 50);
		int ok = 1;
		for (int i = 0; i < l.n && i < 50; i++) {
			char j[128];
			snprintf(j, sizeof(j), "{\"i\":%d,\"pad\":\"%.*s\"}", i, i, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
			if (strcmp(l.e[i].data, j) != 0 || l.e[i].seq != (uint64_t)i)
				ok = 0;
		}
		CHECK(ok);
		qs_frame_decoder_free(&d);
	}
	free(b.p);
}

/* ---- answers ---- */

static int decode_all(struct qs_answer_decoder *ad, const uint8_t *in, size_t len, size_t chunk,
		      struct qs_answer *out, int max, int *malformed)
{
	int n = 0;
	*malformed = 0;
	for (size_t off = 0; off < len;) {
		size_t c = len - off < chunk ? len - off : chunk;
		size_t pos = 0;
		while (pos < c) {
			size_t used = 0;
			int r = qs_answer_decode(ad, in + off + pos, c - pos, &used, n < max ? &out[n] : &out[max - 1]);
			if (r < 0) {
				*malformed = 1;
				return n;
			}
			pos += used;
			if (r == 1)
				n++;
			else if (pos != c)
				*malformed = 2; /* 0 must mean all consumed */
			if (r == 0)
				break;
		}
		off += c;
	}
	return n;
}

static void test_answers(void)
{
	current_test = "answers";
	uint8_t buf[4096];
	size_t len = 0;
	size_t n = qs_answer_ack(buf + len, 0x0102030405060708ull);
	CHECK_EQ_U64(n, QS_ANSWER_ACK_LEN);
	CHECK(buf[0] == 'A');
	len += n;
	n = qs_answer_reject(buf + len, 42, QS_REJ_INVALID_JSON, "invalid JSON at offset 3");
	CHECK_EQ_U64(n, 13 + strlen("invalid JSON at offset 3"));
	CHECK(buf[len] == 'R');
	len += n;
	n = qs_answer_reject(buf + len, 43, QS_REJ_EMPTY, NULL); /* no reason */
	CHECK_EQ_U64(n, 13);
	len += n;
	char longr[400];
	memset(longr, 'r', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = 0;
	n = qs_answer_reject(buf + len, 44, QS_REJ_TOO_LARGE, longr); /* reason capped */
	CHECK_EQ_U64(n, 13 + QS_REASON_MAX);
	CHECK(n <= QS_ANSWER_MAX);
	len += n;
	n = qs_answer_goaway(buf + len, 1500);
	CHECK_EQ_U64(n, 5);
	CHECK(buf[len] == 'G');
	len += n;
	n = qs_answer_ack(buf + len, 45);
	len += n;

	size_t chunks[] = {1, 2, 3, 5, 8, 13, 4096};
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct qs_answer_decoder ad;
		memset(&ad, 0, sizeof(ad));
		struct qs_answer a[8];
		int mal;
		int got = decode_all(&ad, buf, len, chunks[c], a, 8, &mal);
		CHECK_EQ_U64(mal, 0);
		CHECK_EQ_U64(got, 6);
		if (got != 6)
			continue;
		CHECK(a[0].type == QS_ANSWER_ACK && a[0].seq == 0x0102030405060708ull);
		CHECK(a[1].type == QS_ANSWER_REJECT && a[1].seq == 42 && a[1].code == QS_REJ_INVALID_JSON &&
		      strcmp(a[1].reason, "invalid JSON at offset 3") == 0);
		CHECK(a[2].type == QS_ANSWER_REJECT && a[2].seq == 43 && a[2].code == QS_REJ_EMPTY &&
		      a[2].reason[0] == 0);
		CHECK(a[3].type == QS_ANSWER_REJECT && a[3].seq == 44 && a[3].code == QS_REJ_TOO_LARGE &&
		      strlen(a[3].reason) == QS_REASON_MAX);
		CHECK(a[4].type == QS_ANSWER_GOAWAY && a[4].ms == 1500);
		CHECK(a[5].type == QS_ANSWER_ACK && a[5].seq == 45);
	}
	/* every split point into two chunks */
	int bad = 0;
	for (size_t s = 0; s <= len; s++) {
		struct qs_answer_decoder ad;
		memset(&ad, 0, sizeof(ad));
		struct qs_answer a[8];
		int mal1, mal2;
		int got = decode_all(&ad, buf, s, 4096, a, 8, &mal1);
		got += decode_all(&ad, buf + s, len - s, 4096, a + got, 8 - got, &mal2);
		if (got != 6 || mal1 || mal2 || a[5].seq != 45 || a[1].seq != 42)
			bad++;
	}
	CHECK_EQ_U64(bad, 0);
}

static void test_answers_malformed(void)
{
	current_test = "answers_malformed";
	struct qs_answer_decoder ad;
	struct qs_answer a;
	size_t used;
	/* unknown type byte */
	memset(&ad, 0, sizeof(ad));
	uint8_t bad1[] = {'X', 0, 0, 0, 0, 0, 0, 0, 0};
	CHECK(qs_answer_decode(&ad, bad1, sizeof(bad1), &used, &a) == -1);
	/* unknown type after a good answer */
	memset(&ad, 0, sizeof(ad));
	uint8_t two[QS_ANSWER_ACK_LEN + 1];
	qs_answer_ack(two, 7);
	two[QS_ANSWER_ACK_LEN] = 0;
	int r = qs_answer_decode(&ad, two, sizeof(two), &used, &a);
	CHECK(r == 1 && a.type == 'A' && a.seq == 7 && used == QS_ANSWER_ACK_LEN);
	r = qs_answer_decode(&ad, two + used, sizeof(two) - used, &used, &a);
	CHECK(r == -1);
	/* a rejection whose reason is longer than allowed */
	memset(&ad, 0, sizeof(ad));
	uint8_t bad2[13] = {'R'};
	qs_put_u64(bad2 + 1, 1);
	qs_put_u16(bad2 + 9, 1);
	qs_put_u16(bad2 + 11, QS_REASON_MAX + 1);
	CHECK(qs_answer_decode(&ad, bad2, sizeof(bad2), &used, &a) == -1);
	memset(&ad, 0, sizeof(ad));
	qs_put_u16(bad2 + 11, 0xffff);
	r = 0;
	for (size_t i = 0; i < sizeof(bad2) && r == 0; i++)
		r = qs_answer_decode(&ad, bad2 + i, 1, &used, &a);
	CHECK(r == -1);
	/* a cut answer is not an answer */
	memset(&ad, 0, sizeof(ad));
	uint8_t ack[QS_ANSWER_ACK_LEN];
	qs_answer_ack(ack, 3);
	CHECK(qs_answer_decode(&ad, ack, QS_ANSWER_ACK_LEN - 1, &used, &a) == 0);
	CHECK_EQ_U64(used, QS_ANSWER_ACK_LEN - 1);
	CHECK(qs_answer_decode(&ad, ack + QS_ANSWER_ACK_LEN - 1, 1, &used, &a) == 1 && a.seq == 3);
	/* empty input */
	memset(&ad, 0, sizeof(ad));
	CHECK(qs_answer_decode(&ad, ack, 0, &used, &a) == 0 && used == 0);
}

/* The authentication stream (docs/PROTOCOL.md, "Authentication"): "QSA1" u16 n
 * token at offset 0 is reported as QS_DEC_AUTH, split anywhere, takes no
 * sequence number; a bad length is reported without data; "QSA1" later in a
 * stream is a frame length like any other. And the 'K' answer. */
static void test_auth(void)
{
	current_test = "auth";
	struct buf b = {0};
	uint8_t h[QS_AUTH_HDR_LEN];
	CHECK_EQ(qs_auth_header_encode(h, 3), QS_AUTH_HDR_LEN);
	CHECK(memcmp(h, "QSA1\0\3", 6) == 0);
	buf_add(&b, h, sizeof(h));
	buf_add(&b, "foo", 3);
	buf_frame(&b, J1);
	int bad = 0;
	for (size_t s = 0; s <= b.len; s++) {
		struct qs_frame_decoder d;
		qs_frame_decoder_init(&d, 1024);
		struct evlist l = {0};
		feed(&d, b.p, s, &l);
		feed(&d, b.p + s, b.len - s, &l);
		bad += !(l.n == 2 && l.errors == 0 && l.e[0].type == QS_DEC_AUTH && l.e[0].len == 3 &&
			 !strcmp(l.e[0].data, "foo") && l.e[1].type == QS_DEC_FRAME && l.e[1].seq == 0 &&
			 !strcmp(l.e[1].data, J1));
		qs_frame_decoder_free(&d);
	}
	CHECK_EQ(bad, 0);
	/* length 0 and over QS_AUTH_TOKEN_MAX: reported without data */
	for (unsigned n = 0; n <= 1; n++) {
		struct qs_frame_decoder d;
		qs_frame_decoder_init(&d, 1 << 20);
		struct evlist l = {0};
		uint8_t m[QS_AUTH_HDR_LEN + 8] = {0};
		qs_auth_header_encode(m, n ? QS_AUTH_TOKEN_MAX + 1 : 0);
		feed(&d, m, sizeof(m), &l);
		CHECK(l.n >= 1 && l.e[0].type == QS_DEC_AUTH && l.e[0].len == 0);
		qs_frame_decoder_free(&d);
	}
	/* after a frame, "QSA1" is a (too large) frame length */
	struct buf c = {0};
	buf_frame(&c, J3);
	buf_add(&c, h, sizeof(h));
	struct qs_frame_decoder d;
	qs_frame_decoder_init(&d, 1024);
	struct evlist l = {0};
	feed(&d, c.p, c.len, &l);
	CHECK(l.n == 2 && l.e[1].type == QS_DEC_OVERSIZE && l.e[1].seq == 1);
	qs_frame_decoder_free(&d);
	/* 'K' with the tenant's name, split anywhere */
	uint8_t k[64];
	size_t klen = qs_answer_auth_ok(k, "acme");
	CHECK(klen == 6 && k[0] == 'K' && k[1] == 4);
	for (size_t chunk = 1; chunk <= klen; chunk++) {
		struct qs_answer_decoder ad = {0};
		struct qs_answer a[2];
		int mal;
		CHECK(decode_all(&ad, k, klen, chunk, a, 2, &mal) == 1 && !mal && a[0].type == QS_ANSWER_AUTH_OK &&
		      !strcmp(a[0].reason, "acme"));
	}
	/* 'T' (quicstash/1.1) naming a limit, then an 'A': both decode, split anywhere */
	klen = qs_answer_notice(k, "events-per-second");
	CHECK(klen == 19 && k[0] == 'T' && k[1] == 17);
	klen += qs_answer_ack(k + klen, 7);
	for (size_t chunk = 1; chunk <= klen; chunk++) {
		struct qs_answer_decoder ad = {0};
		struct qs_answer a[3];
		int mal;
		CHECK(decode_all(&ad, k, klen, chunk, a, 3, &mal) == 2 && !mal && a[0].type == QS_ANSWER_NOTICE &&
		      !strcmp(a[0].reason, "events-per-second") && a[1].type == QS_ANSWER_ACK && a[1].seq == 7);
	}
	free(b.p);
	free(c.p);
}

static void test_reject_names(void)
{
	current_test = "reject_names";
	CHECK(strcmp(qs_reject_name(QS_REJ_INVALID_JSON), "invalid_json") == 0);
	CHECK(strcmp(qs_reject_name(QS_REJ_NOT_OBJECT), "not_object") == 0);
	CHECK(strcmp(qs_reject_name(QS_REJ_TOO_LARGE), "too_large") == 0);
	CHECK(strcmp(qs_reject_name(QS_REJ_RATE_LIMITED), "rate_limited") == 0);
	CHECK(strcmp(qs_reject_name(QS_REJ_EMPTY), "empty") == 0);
	CHECK(strcmp(qs_reject_name(QS_REJ_TRUNCATED), "truncated") == 0);
	CHECK(strcmp(qs_reject_name(QS_REJ_UNAUTHENTICATED), "unauthenticated") == 0);
	CHECK(strcmp(qs_reject_name(999), "unknown") == 0);
}

int main(void)
{
	test_single_frame();
	test_partial_bytes();
	test_several_frames_one_chunk();
	test_every_split_point();
	test_byte_by_byte();
	test_frame_across_chunks();
	test_large_frames_across_chunks();
	test_frame_exactly_max();
	test_zero_length();
	test_oversize_skip_100mb();
	test_oversize_splits();
	test_truncated();
	test_stream_header();
	test_no_header_seq_from_zero();
	test_header_only_at_start();
	test_reuse_after_buffered();
	test_answers();
	test_answers_malformed();
	test_reject_names();
	test_auth();
	return check_report();
}

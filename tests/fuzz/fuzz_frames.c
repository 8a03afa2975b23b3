/* Fuzz target: the acceptor's frame decoder (common/wire.c), which reads the
 * client's stream bytes as QUIC hands them over, in pieces of any size.
 *
 * Input: byte 0 picks --max-message-size, bytes 1-2 seed the chunking, the
 * rest is the stream. Properties:
 *  - fed in arbitrary pieces, the decoder gives exactly the events of a
 *    reference reading of the whole stream written from docs/PROTOCOL.md
 *    (header, frames with their sequence numbers and bytes, empty and oversize
 *    frames), and the same verdict at the end (cut inside a frame or not);
 *  - every call makes progress or asks for more only when it consumed all;
 *  - it never holds more than the largest allowed frame (an oversize frame's
 *    bytes are skipped, never buffered). */
#include "tests/fuzz/fuzz.h"

#include <stdbool.h>
#include <string.h>

#include "common/wire.h"

#define MAX_EVENTS 4096

struct event {
	int type;
	uint64_t seq;
	uint32_t len;
	const uint8_t *data; /* FRAME: its bytes (in the input, or a copy) */
	uint8_t session[QS_SESSION_ID_LEN];
};

struct reading {
	struct event ev[MAX_EVENTS];
	size_t n;
	bool truncated, cut_unreported;
};

static void add(struct reading *r, struct event e)
{
	if (r->n < MAX_EVENTS)
		r->ev[r->n++] = e;
}

/* The whole stream read by the book. */
static void reference(const uint8_t *s, size_t n, uint32_t max, struct reading *r)
{
	size_t p = 0;
	uint64_t seq = 0;
	r->n = 0;
	r->truncated = r->cut_unreported = false;
	if (n >= 4 && qs_get_u32(s) == QS_STREAM_MAGIC) {
		if (n < QS_STREAM_HEADER_LEN) {
			r->truncated = r->cut_unreported = true;
			return;
		}
		struct event e = {.type = QS_DEC_HEADER, .seq = qs_get_u64(s + 20)};
		memcpy(e.session, s + 4, QS_SESSION_ID_LEN);
		add(r, e);
		seq = e.seq;
		p = QS_STREAM_HEADER_LEN;
	}
	while (p < n) {
		if (n - p < 4) {
			r->truncated = r->cut_unreported = true;
			return;
		}
		uint32_t len = qs_get_u32(s + p);
		p += 4;
		if (len == 0) {
			add(r, (struct event){.type = QS_DEC_EMPTY, .seq = seq++});
		} else if (len > max) {
			add(r, (struct event){.type = QS_DEC_OVERSIZE, .seq = seq++, .len = len});
			if (n - p < len) {
				r->truncated = true; /* already answered: nothing more to report */
				return;
			}
			p += len;
		} else {
			if (n - p < len) {
				r->truncated = r->cut_unreported = true;
				return;
			}
			add(r, (struct event){.type = QS_DEC_FRAME, .seq = seq++, .len = len, .data = s + p});
			p += len;
		}
	}
}

static bool same_event(const struct event *a, const struct event *b)
{
	if (a->type != b->type || a->seq != b->seq)
		return false;
	if (a->type == QS_DEC_HEADER)
		return !memcmp(a->session, b->session, QS_SESSION_ID_LEN);
	if (a->type == QS_DEC_OVERSIZE)
		return a->len == b->len;
	return a->type != QS_DEC_FRAME || (a->len == b->len && !memcmp(a->data, b->data, a->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const uint32_t limits[] = {1, 2, 4, 16, 28, 100, 1024, 1u << 20};
	static struct reading want, got;
	static uint8_t copies[4u << 20]; /* frame bytes that arrived in pieces, kept for comparing */
	if (n < 3)
		return 0;
	uint32_t max = limits[d[0] % 8];
	struct fuzz_chunker ch = {.s = (uint32_t)d[1] << 8 | d[2]};
	d += 3, n -= 3;
	/* A stream that opens with "QSA1" is an authentication stream (QS_DEC_AUTH),
	 * which the reference below does not model yet; unit/test_wire splits it at
	 * every point. */
	if (n >= 4 && !memcmp(d, "QSA1", 4))
		return 0;
	reference(d, n, max, &want);

	struct qs_frame_decoder dec;
	qs_frame_decoder_init(&dec, max);
	size_t kept = 0;
	got.n = 0;
	for (size_t pos = 0; pos < n;) {
		size_t c = fuzz_next_chunk(&ch, n - pos);
		uint8_t *piece = fuzz_dup(d + pos, c);
		for (size_t used = 0; used < c;) {
			size_t consumed = 0;
			struct qs_dec_out out = {0};
			int ev = qs_frame_decode(&dec, piece + used, c - used, &consumed, &out);
			FUZZ_CHECK(ev >= 0 && consumed <= c - used);
			used += consumed;
			if (ev == QS_DEC_NEED_MORE) {
				FUZZ_CHECK(used == c);
				break;
			}
			FUZZ_CHECK(consumed > 0);
			struct event e = {.type = ev, .seq = out.seq, .len = out.len};
			memcpy(e.session, out.session, QS_SESSION_ID_LEN);
			if (ev == QS_DEC_FRAME) {
				FUZZ_CHECK(out.len <= max && kept + out.len <= sizeof(copies));
				memcpy(copies + kept, out.data, out.len); /* valid only until the next call */
				e.data = copies + kept;
				kept += out.len;
			}
			add(&got, e);
		}
		FUZZ_CHECK(qs_frame_decoder_buffered(&dec) <= max);
		free(piece);
		pos += c;
	}
	FUZZ_CHECK(got.n == want.n);
	for (size_t i = 0; i < got.n; i++)
		FUZZ_CHECK(same_event(&got.ev[i], &want.ev[i]));
	FUZZ_CHECK(qs_frame_decoder_truncated(&dec) == want.truncated);
	FUZZ_CHECK(qs_frame_decoder_cut_unreported(&dec) == want.cut_unreported);
	qs_frame_decoder_free(&dec);
	return 0;
}

/* Fuzz target: the client's answer decoder (common/wire.c), which reads what
 * a server (or anything on the path, up to the TLS layer) sends back on a
 * stream, in pieces of any size.
 *
 * Input: byte 0 chooses the mode, bytes 1-2 seed the chunking, the rest is
 * the stream (mode even) or values to encode (mode odd). Properties:
 *  - fed in arbitrary pieces, the decoder gives exactly the answers of a
 *    reference reading written from docs/PROTOCOL.md, and calls the stream
 *    malformed (unknown type, reason over 200 bytes) right after the answers
 *    before the bad one, never earlier or later;
 *  - answers made with qs_answer_ack/reject/goaway decode to what was put in. */
#include "tests/fuzz/fuzz.h"

#include <stdbool.h>
#include <string.h>

#include "common/wire.h"

#define MAX_ANSWERS 4096

struct answers {
	struct qs_answer a[MAX_ANSWERS];
	size_t n;
	bool malformed;
};

static void add(struct answers *r, const struct qs_answer *a)
{
	if (r->n < MAX_ANSWERS)
		r->a[r->n++] = *a;
}

/* The whole stream read by the book: complete answers, then malformed or not. */
static void reference(const uint8_t *s, size_t n, struct answers *r)
{
	r->n = 0;
	r->malformed = false;
	for (size_t p = 0; p < n;) {
		struct qs_answer a = {.type = s[p]};
		size_t len;
		if (a.type == QS_ANSWER_ACK) {
			len = QS_ANSWER_ACK_LEN;
		} else if (a.type == QS_ANSWER_GOAWAY) {
			len = 5;
		} else if (a.type == QS_ANSWER_AUTH_OK || a.type == QS_ANSWER_NOTICE) {
			if (n - p < 2)
				return;
			len = 2u + s[p + 1]; /* u8 n, name[n]; the decoder holds at most QS_ANSWER_MAX bytes */
			if (len > QS_ANSWER_MAX) {
				r->malformed = true;
				return;
			}
		} else if (a.type == QS_ANSWER_REJECT) {
			if (n - p < 13)
				return;
			len = 13u + qs_get_u16(s + p + 11);
			if (len > 13 + QS_REASON_MAX) {
				r->malformed = true;
				return;
			}
		} else {
			r->malformed = true;
			return;
		}
		if (n - p < len)
			return;
		if (a.type == QS_ANSWER_GOAWAY) {
			a.ms = qs_get_u32(s + p + 1);
		} else if (a.type == QS_ANSWER_AUTH_OK || a.type == QS_ANSWER_NOTICE) {
			memcpy(a.reason, s + p + 2, len - 2 < QS_REASON_MAX ? len - 2 : QS_REASON_MAX);
		} else {
			a.seq = qs_get_u64(s + p + 1);
			if (a.type == QS_ANSWER_REJECT) {
				a.code = qs_get_u16(s + p + 9);
				memcpy(a.reason, s + p + 13, len - 13);
			}
		}
		add(r, &a);
		p += len;
	}
}

static bool same(const struct qs_answer *x, const struct qs_answer *y)
{
	return x->type == y->type && x->seq == y->seq && x->code == y->code && x->ms == y->ms &&
	       !memcmp(x->reason, y->reason, sizeof(x->reason));
}

/* Decodes s[0..n) in pieces; got->malformed when the decoder said so. */
static void decode(const uint8_t *s, size_t n, struct fuzz_chunker *ch, struct answers *got)
{
	struct qs_answer_decoder dec = {0};
	got->n = 0;
	got->malformed = false;
	for (size_t pos = 0; pos < n && !got->malformed;) {
		size_t c = fuzz_next_chunk(ch, n - pos);
		uint8_t *piece = fuzz_dup(s + pos, c);
		for (size_t used = 0; used < c;) {
			size_t consumed = 0;
			struct qs_answer a;
			int rv = qs_answer_decode(&dec, piece + used, c - used, &consumed, &a);
			FUZZ_CHECK(consumed <= c - used);
			used += consumed;
			if (rv < 0) {
				got->malformed = true;
				break;
			}
			if (rv == 0) {
				FUZZ_CHECK(used == c);
				break;
			}
			FUZZ_CHECK(consumed > 0);
			add(got, &a);
		}
		free(piece);
		pos += c;
	}
}

static void check_stream(const uint8_t *s, size_t n, struct fuzz_chunker *ch)
{
	static struct answers want, got;
	reference(s, n, &want);
	decode(s, n, ch, &got);
	FUZZ_CHECK(got.n == want.n && got.malformed == want.malformed);
	for (size_t i = 0; i < got.n; i++)
		FUZZ_CHECK(same(&got.a[i], &want.a[i]));
}

/* Encodes answers from the input's values, then checks they come back. */
static void check_round_trip(const uint8_t *v, size_t n, struct fuzz_chunker *ch)
{
	static uint8_t stream[1 << 16];
	static struct answers put, got;
	size_t len = 0;
	put.n = 0;
	while (n >= 13 && len + QS_ANSWER_MAX <= sizeof(stream)) {
		struct qs_answer a = {.type = "ARG"[v[0] % 3]};
		if (a.type == QS_ANSWER_GOAWAY) {
			a.ms = qs_get_u32(v + 1);
			len += qs_answer_goaway(stream + len, a.ms);
		} else if (a.type == QS_ANSWER_ACK) {
			a.seq = qs_get_u64(v + 1);
			len += qs_answer_ack(stream + len, a.seq);
		} else {
			a.seq = qs_get_u64(v + 1);
			a.code = qs_get_u16(v + 9);
			size_t rl = v[11] % (QS_REASON_MAX + 1);
			for (size_t i = 0; i < rl; i++)
				a.reason[i] = (char)('a' + (v[12] + i) % 26);
			len += qs_answer_reject(stream + len, a.seq, a.code, a.reason);
		}
		add(&put, &a);
		v += 13, n -= 13;
	}
	decode(stream, len, ch, &got);
	FUZZ_CHECK(!got.malformed && got.n == put.n);
	for (size_t i = 0; i < got.n; i++)
		FUZZ_CHECK(same(&got.a[i], &put.a[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (n < 3)
		return 0;
	struct fuzz_chunker ch = {.s = (uint32_t)d[1] << 8 | d[2]};
	if (d[0] % 2)
		check_round_trip(d + 3, n - 3, &ch);
	else
		check_stream(d + 3, n - 3, &ch);
	return 0;
}

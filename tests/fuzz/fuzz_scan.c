/* Fuzz target: shipper/record.c's qs_scan_next over the bytes of a spool
 * segment (untrusted after a crash or disk damage, docs/SPOOL.md).
 *
 * Input: [mode][seg][chunk_a][chunk_b] then
 *  - mode bit 0 clear: the segment's bytes as they are;
 *  - mode bit 0 set: records to write: repeated [len][t][payload[len]], each
 *    becoming a record of time t * 0x0101010101010101, sealed by qs_rec_seal;
 *    bytes left over (a last record cut short) follow them unsealed, as a torn
 *    tail.
 * The records are keyed for segment seg (qs_seg_key). Chunked scans read
 * chunk_a + 1, chunk_b + 1, chunk_a + 1, ... bytes (or more, as MORE asks).
 *
 * Properties:
 *  - one scan of the whole buffer (at_end) gives RECORD and DAMAGE items that
 *    tile it exactly, none empty, then END at its end; never MORE;
 *  - a RECORD is a whole record inside the buffer whose header is the one
 *    qs_rec_header writes for its payload and time, keyed for seg or with the
 *    plain CRC (key 0); a DAMAGE item holds no such record starting at any of
 *    its bytes (damage never hides a record);
 *  - MORE comes only before the end of the segment, at pos, asking for more
 *    bytes than there are; scanning in chunks as a reader does (reload from
 *    MORE's off with at least need bytes) gives items that tile the segment
 *    and the same records (offsets, lengths, times, payloads) as one scan;
 *  - trusted (what qs_rec_seal sealed, at_end or not): exactly the records
 *    written, then END; qs_rec_seal writes what qs_rec_header would; checked
 *    (untrusted), the sealed records come first and whole, a torn tail after
 *    them changes none of them;
 *  - trusted scans of raw bytes still tile them with records inside them. */
#include "tests/fuzz/fuzz.h"

#include <stdbool.h>
#include <string.h>

#include "shipper/record.h"

#define PREFIX 4

static const uint8_t magic[4] = {0xFF, 'Q', 'S', 'R'};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Whether a whole, valid record (keyed with key, or plain) starts at buf[at]. */
static bool valid_at(const uint8_t *buf, size_t n, size_t at, uint32_t key)
{
	if (n - at < QS_REC_HDR || memcmp(buf + at, magic, 4))
		return false;
	uint32_t len = be32(buf + at + 4);
	if (len > QS_REC_MAX_LEN || n - at - QS_REC_HDR < len)
		return false;
	uint8_t hk[QS_REC_HDR], h0[QS_REC_HDR];
	const uint8_t *payload = buf + at + QS_REC_HDR;
	qs_rec_header(hk, payload, len, be64(buf + at + 8), key);
	qs_rec_header(h0, payload, len, be64(buf + at + 8), 0);
	return !memcmp(hk, buf + at, QS_REC_HDR) || !memcmp(h0, buf + at, QS_REC_HDR);
}

struct rec {
	uint64_t off;
	uint32_t len;
	uint64_t time_ns;
	const uint8_t *data; /* in the whole-buffer copy */
};

struct recs {
	struct rec *v;
	size_t n, cap;
};

static void add(struct recs *r, uint64_t off, uint32_t len, uint64_t time_ns, const uint8_t *data)
{
	FUZZ_CHECK(r->n < r->cap);
	r->v[r->n++] = (struct rec){off, len, time_ns, data};
}

/* Checks common to every item a scan returns. */
static void check_item(const struct qs_scan *s, size_t pos_before, int k, const struct qs_scan_item *it)
{
	FUZZ_CHECK(k >= QS_SCAN_END && k <= QS_SCAN_MORE);
	if (k == QS_SCAN_END) {
		FUZZ_CHECK(pos_before == s->len && s->pos == s->len);
		return;
	}
	FUZZ_CHECK(it->off == s->base + pos_before);
	if (k == QS_SCAN_MORE) {
		FUZZ_CHECK(!s->at_end && s->pos == pos_before && it->need > s->len - pos_before);
		return;
	}
	FUZZ_CHECK(it->size > 0 && it->size <= s->len - pos_before && s->pos == pos_before + it->size);
	if (k == QS_SCAN_DAMAGE)
		return;
	const uint8_t *p = s->buf + pos_before;
	FUZZ_CHECK(it->size >= QS_REC_HDR && !memcmp(p, magic, 4));
	FUZZ_CHECK(be32(p + 4) == it->len && it->len <= QS_REC_MAX_LEN && it->size == QS_REC_HDR + (size_t)it->len);
	FUZZ_CHECK(it->data == p + QS_REC_HDR && it->time_ns == be64(p + 8));
	if (!s->trusted)
		FUZZ_CHECK(valid_at(s->buf, s->len, pos_before, s->key));
}

/* One scan of all of buf (at_end): items tile it; records go to out. */
static void scan_whole(const uint8_t *buf, size_t n, uint32_t key, bool trusted, struct recs *out)
{
	struct qs_scan s = {.buf = buf, .len = n, .at_end = true, .key = key, .trusted = trusted};
	struct qs_scan_item it;
	size_t at = 0;
	for (;;) {
		int k = qs_scan_next(&s, &it);
		check_item(&s, at, k, &it);
		FUZZ_CHECK(k != QS_SCAN_MORE);
		if (k == QS_SCAN_END)
			break;
		if (k == QS_SCAN_RECORD) {
			add(out, it.off, it.len, it.time_ns, it.data);
		} else if (!trusted) {
			/* damage: no valid record starts anywhere in it */
			for (size_t i = at; i < at + it.size; i++) {
				const uint8_t *m = memmem(buf + i, n - i, magic, 4);
				if (!m || (size_t)(m - buf) >= at + it.size)
					break;
				i = (size_t)(m - buf);
				FUZZ_CHECK(!valid_at(buf, n, i, key));
			}
		}
		at += it.size;
	}
	FUZZ_CHECK(at == n);
}

/* Scans buf in chunks as a reader does; its records must be want's. */
static void scan_chunks(const uint8_t *buf, size_t n, uint32_t key, size_t ca, size_t cb, const struct recs *want)
{
	size_t off = 0, need = 0, done = 0, got = 0, round = 0, last_off = 0, last_len = 0;
	while (off < n) {
		size_t len = round++ % 2 ? cb : ca;
		if (len < need)
			len = need;
		if (len > n - off)
			len = n - off;
		/* every reload makes progress: further on, or more bytes */
		FUZZ_CHECK(round == 1 || off > last_off || len > last_len);
		last_off = off;
		last_len = len;
		uint8_t *chunk = fuzz_dup(buf + off, len);
		struct qs_scan s = {.buf = chunk, .len = len, .base = off, .at_end = off + len == n, .key = key};
		struct qs_scan_item it;
		int k;
		size_t at = 0;
		while ((k = qs_scan_next(&s, &it)) == QS_SCAN_RECORD || k == QS_SCAN_DAMAGE) {
			check_item(&s, at, k, &it);
			FUZZ_CHECK(it.off == done);
			if (k == QS_SCAN_RECORD) {
				FUZZ_CHECK(got < want->n);
				const struct rec *r = &want->v[got++];
				FUZZ_CHECK(r->off == it.off && r->len == it.len && r->time_ns == it.time_ns);
				FUZZ_CHECK(!memcmp(r->data, it.data, it.len));
			}
			done += it.size;
			at += it.size;
		}
		check_item(&s, at, k, &it);
		free(chunk);
		if (k == QS_SCAN_END) {
			off += len;
			need = 0;
		} else {
			off = it.off;
			need = it.need;
		}
	}
	FUZZ_CHECK(done == n && got == want->n);
}

/* Every check of an untrusted scan over buf. */
static void check_segment(const uint8_t *buf, size_t n, uint32_t key, size_t ca, size_t cb, struct recs *out)
{
	out->n = 0;
	out->cap = n / QS_REC_HDR + 1;
	out->v = malloc(out->cap * sizeof(*out->v));
	FUZZ_CHECK(out->v);
	scan_whole(buf, n, key, false, out);
	scan_chunks(buf, n, key, ca, cb, out);
}

/* Mode 1: records built from the input, sealed, then scanned. */
static void sealed(const uint8_t *d, size_t n, uint32_t key, size_t ca, size_t cb)
{
	struct recs put = {.cap = n / 2 + 1};
	put.v = malloc(put.cap * sizeof(*put.v));
	uint8_t *buf = malloc(n / 2 * QS_REC_HDR + n + 1); /* room for every record and the tail */
	FUZZ_CHECK(put.v && buf);
	size_t i = 0, len = 0;
	while (n - i >= 2 && n - i - 2 >= d[i]) {
		uint32_t plen = d[i];
		uint64_t t = d[i + 1] * 0x0101010101010101ull;
		qs_rec_header_unsealed(buf + len, plen, t);
		memcpy(buf + len + QS_REC_HDR, d + i + 2, plen);
		add(&put, len, plen, t, d + i + 2);
		len += QS_REC_HDR + plen;
		i += 2 + plen;
	}
	size_t sealed_len = len;
	qs_rec_seal(buf, sealed_len, key);
	for (size_t r = 0; r < put.n; r++) {
		uint8_t h[QS_REC_HDR];
		qs_rec_header(h, put.v[r].data, put.v[r].len, put.v[r].time_ns, key);
		FUZZ_CHECK(!memcmp(h, buf + put.v[r].off, QS_REC_HDR));
	}
	memcpy(buf + len, d + i, n - i); /* the torn tail */
	len += n - i;

	/* trusted, as the shipper offers a group (at_end false) or not */
	uint8_t *exact = fuzz_dup(buf, sealed_len);
	for (int at_end = 0; at_end < 2; at_end++) {
		struct qs_scan s = {.buf = exact, .len = sealed_len, .at_end = at_end, .key = key, .trusted = true};
		struct qs_scan_item it;
		size_t at = 0;
		for (size_t r = 0; r < put.n; r++) {
			int k = qs_scan_next(&s, &it);
			check_item(&s, at, k, &it);
			FUZZ_CHECK(k == QS_SCAN_RECORD && it.off == put.v[r].off && it.len == put.v[r].len);
			FUZZ_CHECK(it.time_ns == put.v[r].time_ns && !memcmp(it.data, put.v[r].data, it.len));
			at += it.size;
		}
		FUZZ_CHECK(qs_scan_next(&s, &it) == QS_SCAN_END);
	}
	free(exact);

	/* checked: the sealed records first, whatever the tail holds */
	uint8_t *whole = fuzz_dup(buf, len);
	struct recs got;
	check_segment(whole, len, key, ca, cb, &got);
	FUZZ_CHECK(got.n >= put.n);
	for (size_t r = 0; r < put.n; r++) {
		FUZZ_CHECK(got.v[r].off == put.v[r].off && got.v[r].len == put.v[r].len);
		FUZZ_CHECK(got.v[r].time_ns == put.v[r].time_ns && !memcmp(got.v[r].data, put.v[r].data, put.v[r].len));
	}
	free(got.v);
	free(whole);
	free(buf);
	free(put.v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < PREFIX)
		return 0;
	uint32_t key = qs_seg_key(data[1]);
	FUZZ_CHECK(key != 0);
	size_t ca = (size_t)data[2] + 1, cb = (size_t)data[3] + 1;
	const uint8_t *d = data + PREFIX;
	size_t n = size - PREFIX;
	if (data[0] & 1) {
		sealed(d, n, key, ca, cb);
		return 0;
	}
	uint8_t *buf = fuzz_dup(d, n);
	struct recs got;
	check_segment(buf, n, key, ca, cb, &got);
	/* trusted on bytes nobody sealed: wrong, but still inside the buffer */
	struct recs any = {.cap = got.cap, .v = got.v};
	scan_whole(buf, n, key, true, &any);
	free(got.v);
	free(buf);
	return 0;
}

/* Fuzz target: ipc/msg.c's batch messages, as a receiver reads them
 * (qs_batch_open, qs_batch_next: the bytes come from another process, which
 * may be compromised) and as a sender builds them (qs_batch_begin, _add).
 *
 * Input: [mode] then
 *  - mode bit 0 clear: a message as received;
 *  - mode bit 0 set: a batch to build, of type (mode >> 1) % 4 + 1:
 *    [sender u32] then repeated [record fields][plen u16 BE][payload[plen]]
 *    (the record's length field is set to the payload's length; a payload
 *    cut short by the input's end is as long as what is left), all of them
 *    added (mode >> 3) % 4 + 1 times over.
 *
 * Properties, read with each record kind the receivers use (FRAMES,
 * EVENTS, ANSWERS with their payload functions, STATUS with qs_no_payload):
 *  - qs_batch_open refuses (with a reason) exactly a message shorter than its
 *    header or with a bad magic, version or type, and else reports its type,
 *    sender and count;
 *  - every record qs_batch_next returns is the copy of the next PAD8 block of
 *    the message, its payload starts right after it and holds the length the
 *    record declares, inside the message; records follow each other with no
 *    gap; no more records than count or than the message has room for;
 *  - the iteration ends: 0 exactly when count records took the whole message,
 *    else -1; asking again gives the same answer;
 *  - round trip: the records added come back identical (fields and payloads),
 *    with the header's type, sender and count, in a message of the expected
 *    size whose padding is zero, also when the batch is reused. */
#include "tests/fuzz/fuzz.h"

#include <stdbool.h>
#include <string.h>

#include "ipc/msg.h"

#define PAD8(n) (((n) + 7u) & ~(size_t)7u)

struct kind {
	enum qs_msg_type type;
	size_t rec_len;
	size_t (*payload_len)(const void *rec);
	size_t len_off, len_size; /* where the record declares its payload length */
};

static const struct kind kinds[4] = {
	{QS_MSG_FRAMES, sizeof(struct qs_frame_rec), qs_frame_rec_payload, offsetof(struct qs_frame_rec, len), 4},
	{QS_MSG_EVENTS, sizeof(struct qs_event_rec), qs_event_rec_payload, offsetof(struct qs_event_rec, len), 4},
	{QS_MSG_ANSWERS, sizeof(struct qs_answer_rec), qs_answer_rec_payload,
	 offsetof(struct qs_answer_rec, reason_len), 2},
	{QS_MSG_STATUS, sizeof(struct qs_status_rec), qs_no_payload, 0, 0},
};

static size_t declared(const struct kind *k, const uint8_t *rec)
{
	if (k->len_size == 4) {
		uint32_t v;
		memcpy(&v, rec + k->len_off, 4);
		return v;
	}
	if (k->len_size == 2) {
		uint16_t v;
		memcpy(&v, rec + k->len_off, 2);
		return v;
	}
	return 0;
}

static void set_declared(const struct kind *k, uint8_t *rec, size_t n)
{
	if (k->len_size == 4) {
		uint32_t v = (uint32_t)n;
		memcpy(rec + k->len_off, &v, 4);
	} else if (k->len_size == 2) {
		uint16_t v = (uint16_t)n;
		memcpy(rec + k->len_off, &v, 2);
	}
}

/* Opens msg and reads it with every kind of record. Returns whether it opened. */
static bool check_message(const uint8_t *msg, size_t len)
{
	struct qs_msg_hdr h;
	bool ok = len >= sizeof(h);
	if (ok) {
		memcpy(&h, msg, sizeof(h));
		ok = h.magic == QS_MSG_MAGIC && h.version == QS_MSG_VERSION && h.type >= QS_MSG_FRAMES &&
		     h.type <= QS_MSG_STATUS;
	}
	struct qs_batch_iter it;
	const char *why = NULL;
	int rc = qs_batch_open(&it, msg, len, &why);
	FUZZ_CHECK(rc == (ok ? 0 : -1));
	if (!ok) {
		FUZZ_CHECK(why && why[0]);
		return false;
	}
	FUZZ_CHECK(it.type == h.type && it.sender == h.sender && it.remaining == h.count);
	FUZZ_CHECK(it.p == msg + sizeof(h) && it.left == len - sizeof(h));
	const struct qs_batch_iter opened = it;
	for (size_t i = 0; i < 4; i++) {
		const struct kind *k = &kinds[i];
		uint8_t rec[sizeof(struct qs_frame_rec)];
		const uint8_t *payload;
		size_t at = sizeof(h), n = 0;
		it = opened;
		while ((rc = qs_batch_next(&it, rec, k->rec_len, k->payload_len, &payload)) == 1) {
			n++;
			FUZZ_CHECK(n <= h.count && n <= (len - sizeof(h)) / PAD8(k->rec_len));
			size_t plen = declared(k, rec);
			FUZZ_CHECK(k->payload_len(rec) == plen);
			FUZZ_CHECK(len - at >= PAD8(k->rec_len) && !memcmp(rec, msg + at, k->rec_len));
			at += PAD8(k->rec_len);
			FUZZ_CHECK(payload == msg + at && len - at >= PAD8(plen));
			at += PAD8(plen);
			FUZZ_CHECK(it.p == msg + at && it.left == len - at && it.remaining == h.count - n);
		}
		FUZZ_CHECK(rc == 0 || rc == -1);
		FUZZ_CHECK(rc == (n == h.count && at == len ? 0 : -1));
		FUZZ_CHECK(qs_batch_next(&it, rec, k->rec_len, k->payload_len, &payload) == rc);
		FUZZ_CHECK(it.p == msg + at && it.left == len - at);
	}
	return true;
}

struct added {
	const uint8_t *payload;
	size_t plen;
};

static void round_trip(const struct kind *k, size_t reps, const uint8_t *d, size_t n)
{
	if (n < 4)
		return;
	uint32_t sender;
	memcpy(&sender, d, 4);
	d += 4;
	n -= 4;
	size_t max = n / k->rec_len + 1, count = 0;
	struct added *add = malloc(max * sizeof(*add));
	uint8_t *recs = malloc(max * k->rec_len);
	FUZZ_CHECK(add && recs);
	size_t i = 0, one_len = 0;
	while (n - i >= k->rec_len) {
		uint8_t *rec = recs + count * k->rec_len;
		memcpy(rec, d + i, k->rec_len);
		i += k->rec_len;
		size_t plen = 0;
		if (k->len_size) {
			if (n - i >= 2) {
				plen = (size_t)d[i] << 8 | d[i + 1];
				i += 2;
			} else {
				i = n;
			}
			plen = plen < n - i ? plen : n - i;
			set_declared(k, rec, plen);
		}
		add[count++] = (struct added){.payload = d + i, .plen = plen};
		i += plen;
		one_len += PAD8(k->rec_len) + PAD8(plen);
	}

	/* built reps times over (a bigger buffer), in a batch used before */
	struct qs_batch b = {0};
	FUZZ_CHECK(qs_batch_begin(&b, k->type, ~sender) == 0);
	if (n) /* something for the next begin to forget */
		FUZZ_CHECK(qs_batch_add(&b, d, 1, d, n) == 0 && !qs_batch_empty(&b));
	FUZZ_CHECK(qs_batch_begin(&b, k->type, sender) == 0 && qs_batch_empty(&b));
	for (size_t r = 0; r < reps * count; r++)
		FUZZ_CHECK(qs_batch_add(&b, recs + r % count * k->rec_len, k->rec_len, add[r % count].payload,
				       add[r % count].plen) == 0);
	size_t want_len = sizeof(struct qs_msg_hdr) + reps * one_len;
	FUZZ_CHECK(b.count == reps * count && b.len == want_len && qs_batch_empty(&b) == !count);

	uint8_t *msg = fuzz_dup(b.buf, b.len);
	qs_batch_free(&b);
	FUZZ_CHECK(check_message(msg, want_len));

	struct qs_batch_iter it;
	const char *why = NULL;
	FUZZ_CHECK(qs_batch_open(&it, msg, want_len, &why) == 0);
	FUZZ_CHECK(it.type == k->type && it.sender == sender && it.remaining == reps * count);
	uint8_t rec[sizeof(struct qs_frame_rec)];
	const uint8_t *payload;
	size_t at = sizeof(struct qs_msg_hdr);
	for (size_t r = 0; r < reps * count; r++) {
		const struct added *a = &add[r % count];
		FUZZ_CHECK(qs_batch_next(&it, rec, k->rec_len, k->payload_len, &payload) == 1);
		FUZZ_CHECK(!memcmp(rec, recs + r % count * k->rec_len, k->rec_len));
		FUZZ_CHECK(k->payload_len(rec) == a->plen && !memcmp(payload, a->payload, a->plen));
		/* the padding after the record and after its payload is zero */
		for (size_t z = at + k->rec_len; z < at + PAD8(k->rec_len); z++)
			FUZZ_CHECK(msg[z] == 0);
		at += PAD8(k->rec_len);
		for (size_t z = at + a->plen; z < at + PAD8(a->plen); z++)
			FUZZ_CHECK(msg[z] == 0);
		at += PAD8(a->plen);
	}
	FUZZ_CHECK(at == want_len && qs_batch_next(&it, rec, k->rec_len, k->payload_len, &payload) == 0);
	free(msg);
	free(recs);
	free(add);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	if (data[0] & 1) {
		round_trip(&kinds[(data[0] >> 1) % 4], 1 + (data[0] >> 3) % 4, d, n);
		return 0;
	}
	uint8_t *msg = fuzz_dup(d, n);
	check_message(msg, n);
	free(msg);
	return 0;
}

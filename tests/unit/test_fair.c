/* ipc/fair.c: the look-ahead that shares a process's work between tenants.
 * One tenant's messages are handed back (handled in place, no copy), and so
 * are several tenants' while their shares of what arrives are equal (round
 * robin would serve the same); once an epoch of arrivals shows unequal
 * shares, messages are taken, and their records come out by deficit round
 * robin, each tenant's in order, with their payloads intact; with nothing
 * much waiting after the hold, arrival order again; the look-ahead stops
 * asking for more at its bound; off hands back everything; a malformed
 * message is taken (dropped) without harm; a pass (qs_fair_serve_pass)
 * serves all to a fast consumer that takes more, one quantum to one that
 * does not or is slow per record. */
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "ipc/fair.h"
#include "ipc/msg.h"

static const struct qs_fair_kind frames = {sizeof(struct qs_frame_rec), qs_frame_rec_payload,
					   offsetof(struct qs_frame_rec, tenant), NULL, NULL};

/* A FRAMES message: count frames, tenant of frame i from tenants[i % nt],
 * seq i + first, payload "frame <seq>" padded to size bytes. */
static void build(struct qs_batch *b, const uint64_t *tenants, size_t nt, size_t count, uint64_t first, size_t size)
{
	qs_batch_begin(b, QS_MSG_FRAMES, 0);
	char *data = calloc(1, size + 32);
	for (size_t i = 0; i < count; i++) {
		struct qs_frame_rec r = {.seq = first + i, .tenant = tenants[i % nt]};
		int n = snprintf(data, size + 32, "frame %llu", (unsigned long long)r.seq);
		r.len = (uint32_t)(size > (size_t)n ? size : (size_t)n);
		qs_batch_add(b, &r, sizeof(r), data, r.len);
	}
	free(data);
}

static int offer(struct qs_fair *f, const struct qs_batch *b)
{
	struct qs_batch_iter it;
	const char *why;
	if (qs_batch_receive(&it, QS_INBOX_FRAMES, b->buf, b->len, &why))
		return -1;
	int rc = qs_fair_take(f, &it, b->buf, b->len);
	if (rc == 0) { /* handled in place, counted as a caller does */
		struct qs_frame_rec r;
		const uint8_t *payload;
		while (qs_batch_next(&it, &r, sizeof(r), qs_frame_rec_payload, &payload) == 1)
			if (qs_fair_count(f, r.tenant, sizeof(r) + r.len) && it.remaining &&
			    qs_fair_take(f, &it, b->buf, b->len))
				return 2; /* a newcomer: the rest taken */
	}
	return rc;
}

struct seen {
	uint64_t tenant[4096], seq[4096];
	size_t n;
	bool payload_ok;
};

static void record(void *arg, const void *rec, const uint8_t *payload)
{
	struct seen *s = arg;
	struct qs_frame_rec r;
	memcpy(&r, rec, sizeof(r));
	char want[64];
	int n = snprintf(want, sizeof(want), "frame %llu", (unsigned long long)r.seq);
	s->payload_ok &= !memcmp(payload, want, (size_t)n);
	if (s->n < 4096) {
		s->tenant[s->n] = r.tenant;
		s->seq[s->n++] = r.seq;
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* A tenant arrives beside another that sent 300 KiB (over NEWCOMER_BESIDE):
 * its first frame is handled in place (nothing is held that it could wait
 * behind), and counted; that turns the look-ahead on, which takes the next
 * message, one frame of tenant 2 (seq 9999), and holds it. */
static void engage(struct qs_fair *f)
{
	struct qs_batch big = {0}, first = {0}, one = {0};
	uint64_t t1 = 1, t2 = 2;
	build(&big, &t1, 1, 300, 50000, 1000);
	build(&first, &t2, 1, 1, 9998, 100);
	build(&one, &t2, 1, 1, 9999, 100);
	CHECK_EQ(offer(f, &big), 0);   /* one tenant: in place */
	CHECK_EQ(offer(f, &first), 0); /* a newcomer beside it: in place, counted */
	CHECK_EQ(offer(f, &one), 1);   /* and now taken */
	CHECK(!qs_fair_empty(f) && qs_fair_room(f));
	qs_batch_free(&big);
	qs_batch_free(&first);
	qs_batch_free(&one);
}

static void test_one_tenant_in_place(void)
{
	current_test = "one tenant in place";
	struct qs_fair *f = qs_fair_new(false, &frames);
	struct qs_batch b = {0};
	uint64_t t = 7;
	build(&b, &t, 1, 10, 0, 100);
	CHECK_EQ(offer(f, &b), 0);
	CHECK_EQ(offer(f, &b), 0);
	CHECK(qs_fair_empty(f) && qs_fair_room(f));
	qs_batch_free(&b);
	qs_fair_free(f);
}

/* A newcomer in the middle of a message: the records before it and its own
 * are handled in place, the rest of the message is taken at once and served
 * by round robin. */
static void test_newcomer_mid_message(void)
{
	current_test = "newcomer mid-message";
	struct qs_fair *f = qs_fair_new(false, &frames);
	struct qs_batch big = {0}, mixed = {0};
	uint64_t t1 = 1;
	build(&big, &t1, 1, 300, 0, 1000);
	uint64_t ts[10] = {1, 1, 1, 2, 1, 1, 1, 1, 2, 1}; /* the newcomer is the 4th record */
	build(&mixed, ts, 10, 10, 1000, 100);
	CHECK_EQ(offer(f, &big), 0);
	CHECK_EQ(offer(f, &mixed), 2);
	static struct seen s;
	s.payload_ok = true;
	while (qs_fair_serve(f, 64 * 1024, record, &s))
		;
	CHECK_EQ(s.n, 6); /* the 6 after it: seq 1004..1009 */
	CHECK(s.payload_ok);
	bool rest = true;
	for (size_t i = 0; i < s.n; i++)
		rest &= s.seq[i] >= 1004 && s.seq[i] <= 1009;
	CHECK(rest);
	qs_batch_free(&big);
	qs_batch_free(&mixed);
	qs_fair_free(f);
}

static void test_two_tenants_shared(void)
{
	current_test = "two tenants shared";
	struct qs_fair *f = qs_fair_new(false, &frames);
	struct qs_batch b = {0};
	/* 900 frames of tenant 1 queued before 100 of tenant 2, tenant 2 holding one already */
	uint64_t t1 = 1, t2 = 2;
	build(&b, &t1, 1, 900, 0, 200);
	struct qs_batch c = {0};
	build(&c, &t2, 1, 100, 10000, 200);
	engage(f);
	CHECK_EQ(offer(f, &b), 1);
	CHECK_EQ(offer(f, &c), 1);
	CHECK(!qs_fair_empty(f) && qs_fair_room(f));
	static struct seen s;
	s.payload_ok = true;
	while (qs_fair_serve(f, 64 * 1024, record, &s))
		;
	CHECK_EQ(s.n, 1001);
	CHECK(s.payload_ok);
	/* tenant 2's 101 frames come out within one quantum of tenant 1's (64 KiB of records and
	 * payloads), not after all 900 of them */
	size_t last2 = 0, seq1 = 0, seq2 = 9999;
	bool order = true;
	for (size_t i = 0; i < s.n; i++) {
		if (s.tenant[i] == 2) {
			last2 = i;
			order &= s.seq[i] == seq2++;
		} else {
			order &= s.seq[i] == seq1++;
		}
	}
	CHECK(order);
	size_t quantum_frames = 64 * 1024 / (sizeof(struct qs_frame_rec) + 200);
	CHECK(last2 >= 100 && last2 <= 101 + quantum_frames);
	CHECK(qs_fair_empty(f));
	/* after the hold, with nothing waiting: arrival order again */
	sleep_ms(110);
	CHECK_EQ(offer(f, &b), 0);
	CHECK_EQ(offer(f, &c), 0);
	qs_batch_free(&b);
	qs_batch_free(&c);
	qs_fair_free(f);
}

/* Tenants starting together and arriving in equal shares: handed back
 * (round robin would serve the same shares), epoch after epoch; unequal
 * shares turn it on. */
static void test_equal_shares_in_place(void)
{
	current_test = "equal shares in place";
	struct qs_fair *f = qs_fair_new(false, &frames);
	struct qs_batch b = {0};
	uint64_t ts[4] = {1, 2, 3, 4};
	build(&b, ts, 4, 400, 0, 1000); /* about 400 KiB, four tenants in turn */
	int taken = 0;
	for (int i = 0; i < 100; i++) /* 40 MiB: two epochs by bytes */
		taken += offer(f, &b);
	sleep_ms(110);
	taken += offer(f, &b); /* and one by time */
	CHECK_EQ(taken, 0);
	CHECK(qs_fair_empty(f));
	struct qs_batch u = {0};
	uint64_t tu[4] = {1, 1, 1, 2}; /* tenant 1 three times tenant 2 */
	build(&u, tu, 4, 400, 0, 1000);
	for (int i = 0; i < 40 && !taken; i++) /* at most one epoch */
		taken += offer(f, &u);
	CHECK_EQ(taken, 1);
	qs_batch_free(&u);
	qs_batch_free(&b);
	qs_fair_free(f);
}

/* More tenants than an epoch tracks (16): their shares cannot all be
 * known, so round robin, and it stays on while they have a backlog. */
static void test_many_tenants_shared(void)
{
	current_test = "many tenants shared";
	struct qs_fair *f = qs_fair_new(false, &frames);
	struct qs_batch b = {0};
	uint64_t ts[20];
	for (int i = 0; i < 20; i++)
		ts[i] = 100 + (uint64_t)i;
	build(&b, ts, 20, 400, 0, 1000); /* about 400 KiB, twenty tenants in turn */
	int first = -1;
	for (int i = 0; i < 60 && first < 0; i++) /* 24 MiB: past one epoch by bytes */
		if (offer(f, &b) == 1)
			first = i;
	CHECK(first > 0 && first <= 42);
	static struct seen s;
	while (qs_fair_serve(f, 1 << 20, record, &s))
		;
	CHECK_EQ(offer(f, &b), 1); /* 400 KiB waiting */
	sleep_ms(110); /* past the hold: still on (reading ahead), the shares of 20 not known */
	CHECK_EQ(offer(f, &b), 1);
	CHECK(qs_fair_room(f));
	qs_batch_free(&b);
	qs_fair_free(f);
}

static void test_bound(void)
{
	current_test = "bound";
	struct qs_fair *f = qs_fair_new(false, &frames);
	engage(f);
	struct qs_batch b = {0};
	/* about 1 MiB, tenant 1 three times tenant 2: their backlogs stay unequal, so the look-ahead
	 * stays on however long this takes (equal ones would turn it off once its 100 ms hold is
	 * over, which copying 30 MiB beside two CPU hogs on this VM can outlast) */
	uint64_t ts[4] = {1, 1, 1, 2};
	build(&b, ts, 4, 16, 0, 64 * 1024);
	int taken = 0;
	for (int i = 0; i < 100 && qs_fair_room(f); i++)
		taken += offer(f, &b) == 1;
	CHECK(taken >= 30 && taken <= 33); /* 32 MiB */
	CHECK(!qs_fair_room(f));
	qs_batch_free(&b);
	qs_fair_free(f); /* frees what is queued */
}

static void test_off_and_malformed(void)
{
	current_test = "off, malformed";
	struct qs_fair *off = qs_fair_new(true, &frames);
	struct qs_batch b = {0};
	uint64_t ts[2] = {1, 2};
	build(&b, ts, 2, 10, 0, 50);
	CHECK_EQ(offer(off, &b), 0);
	CHECK_EQ(offer(off, &b), 0);
	qs_fair_free(off);
	struct qs_fair *f = qs_fair_new(false, &frames);
	engage(f);
	b.len -= 40; /* the last record cut short */
	CHECK_EQ(offer(f, &b), 1);
	static struct seen s;
	s.payload_ok = true;
	while (qs_fair_serve(f, 1 << 20, record, &s))
		;
	CHECK_EQ(s.n, 1 + 9); /* engage's, and the whole records before the cut */
	CHECK(s.payload_ok);
	qs_batch_free(&b);
	qs_fair_free(f);
	struct qs_fair_kind bad = frames;
	bad.tenant_off = sizeof(struct qs_frame_rec);
	CHECK(qs_fair_new(false, &bad) == NULL);
}

struct slow {
	struct seen s;
	bool go;
};

/* 3 ms a record: slower than a pass's QS_FAIR_PASS_NS */
static void record_slowly(void *arg, const void *rec, const uint8_t *payload)
{
	struct slow *sl = arg;
	struct timespec ts = {0, 3000000};
	nanosleep(&ts, NULL);
	record(&sl->s, rec, payload);
}

static void record_fast(void *arg, const void *rec, const uint8_t *payload)
{
	record(&((struct slow *)arg)->s, rec, payload);
}

static bool slow_go(void *arg)
{
	return ((struct slow *)arg)->go;
}

/* A pass's share: a fast consumer that takes more gets every quantum in one
 * pass; one that takes no more, or is slow per record, gets one quantum. */
static void test_pass(void)
{
	current_test = "a pass's share";
	uint64_t ts[2] = {1, 2};
	size_t per = 64 * 1024 / (sizeof(struct qs_frame_rec) + 1000) + 1; /* records of one quantum, at most */
	for (int mode = 0; mode < 3; mode++) {
		struct qs_fair *f = qs_fair_new(false, &frames);
		engage(f);
		struct qs_batch b = {0};
		build(&b, ts, 2, 400, 0, 1000); /* about 6 quanta, both tenants */
		CHECK_EQ(offer(f, &b), 1);
		static struct slow sl;
		memset(&sl, 0, sizeof(sl));
		sl.s.payload_ok = true;
		sl.go = mode == 0 || mode == 2;
		qs_fair_serve_pass(f, slow_go, mode == 2 ? record_slowly : record_fast, &sl);
		CHECK(sl.s.payload_ok);
		if (mode == 0) /* fast, taking: all of it in one pass (and engage's one) */
			CHECK(sl.s.n == 401 && qs_fair_empty(f));
		else /* one quantum */
			CHECK(sl.s.n > 0 && sl.s.n <= per + 1 && !qs_fair_empty(f)); /* + engage's small one */
		qs_batch_free(&b);
		qs_fair_free(f);
	}
}

int main(void)
{
	test_one_tenant_in_place();
	test_newcomer_mid_message();
	test_two_tenants_shared();
	test_equal_shares_in_place();
	test_many_tenants_shared();
	test_bound();
	test_off_and_malformed();
	test_pass();
	return check_report();
}

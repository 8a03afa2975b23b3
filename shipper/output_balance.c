/* --logstash-balance round-robin: one connection ("lane", a struct
 * qs_output of the logstash kind that stays on its host) to each -l host,
 * and batches of records spread over the live ones in turn.
 *
 * The balancer's own reader cuts the spool after the cursor into batches of
 * whole records ([start, end) positions, about BATCH_BYTES each), kept in
 * spool order. A lane is given a batch when it has written the one before:
 * its reader is moved to the batch's start and bounded by its end. A batch
 * is taken once the lane's bytes up to its end have settled (settle.h: the
 * lane's settled byte count passes the count at the batch's end); the
 * cursor moves past the leading run of taken batches. A lane that fails
 * hands its batches not yet taken back: they go to the other live lanes
 * (duplicates for what it had delivered unproven, never a loss), and the
 * lane reconnects to its own host with its own backoff. */
#include "shipper/output_parts.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "shipper/spool.h"

#define BATCH_BYTES (256u * 1024)
#define BATCH_MAX 4096 /* batches after the cursor at most (1 GiB at 256 KiB) */
#define NO_LANE (-1)
#define SLOW_MS 500

struct out_batch {
	struct qs_pos start, end;
	uint64_t bytes_end; /* the lane's settle.written once it wrote the batch */
	int lane;           /* NO_LANE: waiting for a lane (new, or handed back) */
	bool written, taken;
};

struct out_balance {
	struct qs_output lanes[QS_MAX_LOGSTASH];
	unsigned n, next_lane;
	int current[QS_MAX_LOGSTASH]; /* each lane's batch being written (ring index), or NO_LANE */
	uint64_t given_ms[QS_MAX_LOGSTASH]; /* when it was given */
	struct out_batch ring[BATCH_MAX];
	unsigned head, count;
	unsigned waiting; /* batches with NO_LANE */
};

static struct out_batch *at(struct out_balance *b, unsigned i)
{
	return &b->ring[(b->head + i) % BATCH_MAX];
}

int out_balance_init(struct qs_output *o)
{
	struct out_balance *b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
	o->bal = b;
	b->n = o->cfg->logstash_count;
	snprintf(o->name, sizeof(o->name), "logstash round-robin over %u hosts", b->n);
	for (unsigned i = 0; i < b->n; i++) {
		struct qs_output *l = &b->lanes[i];
		b->current[i] = NO_LANE;
		if (out_init(l, o->cfg, o->base, o->spool, &out_kind_logstash))
			return -1;
		l->parent = o;
		l->addr = i;
		l->bounded = true;
		l->limit = o->spool->cursor;
		l->tls_creds = o->tls_creds; /* the balancer's: lent */
		if (l->tls_creds && !(l->tls_buf = malloc(TLS_CHUNK)))
			return -1;
	}
	return 0;
}

void out_balance_free(struct qs_output *o)
{
	struct out_balance *b = o->bal;
	if (!b)
		return;
	for (unsigned i = 0; i < b->n; i++) {
		b->lanes[i].tls_creds = NULL;
		qs_output_free(&b->lanes[i]);
	}
	free(b);
	o->bal = NULL;
}

struct qs_output *out_balance_lane(struct qs_output *o, unsigned i)
{
	return &o->bal->lanes[i];
}

static unsigned lane_index(const struct out_balance *b, const struct qs_output *lane)
{
	return (unsigned)(lane - b->lanes);
}

/* The lane wrote all of its current batch: remember how many bytes it had
 * written by then. */
static void close_batch(struct out_balance *b, unsigned li)
{
	struct qs_output *l = &b->lanes[li];
	if (b->current[li] == NO_LANE || !out_past_limit(l) || l->tls_pending)
		return;
	struct out_batch *bt = &b->ring[b->current[li]];
	bt->bytes_end = l->settle.written;
	bt->written = true;
	b->current[li] = NO_LANE;
}

void out_balance_settled(struct qs_output *o, struct qs_output *lane)
{
	struct out_balance *b = o->bal;
	unsigned li = lane_index(b, lane);
	close_batch(b, li);
	for (unsigned i = 0; i < b->count; i++) {
		struct out_batch *bt = at(b, i);
		if (bt->lane == (int)li && bt->written && !bt->taken && bt->bytes_end <= lane->settle.settled)
			bt->taken = true;
	}
	struct qs_pos pos = o->spool->cursor;
	while (b->count && at(b, 0)->taken) {
		pos = at(b, 0)->end;
		b->head = (b->head + 1) % BATCH_MAX;
		b->count--;
	}
	qs_spool_advance(o->spool, pos);
}

void out_balance_lane_down(struct qs_output *o, struct qs_output *lane)
{
	struct out_balance *b = o->bal;
	unsigned li = lane_index(b, lane), back = 0;
	for (unsigned i = 0; i < b->count; i++) {
		struct out_batch *bt = at(b, i);
		if (bt->lane != (int)li || bt->taken)
			continue;
		bt->lane = NO_LANE;
		bt->written = false;
		b->waiting++;
		back++;
	}
	b->current[li] = NO_LANE;
	lane->limit = o->spool->cursor; /* nothing to write once it is up again */
	if (back)
		qs_debug("output %s: %u batches handed to the other hosts", lane->name, back);
	event_active(o->run_ev, 0, 0);
}

/* The next batch for a lane: one handed back first, else a new one cut by
 * the balancer's reader. NULL: nothing to ship (or no room to track it). */
static struct out_batch *next_batch(struct qs_output *o)
{
	struct out_balance *b = o->bal;
	for (unsigned i = 0; b->waiting && i < b->count; i++)
		if (at(b, i)->lane == NO_LANE) {
			b->waiting--;
			return at(b, i);
		}
	if (b->count == BATCH_MAX)
		return NULL;
	long avail = qs_reader_fill(&o->rd, o->spool);
	if (avail <= 0 || out_past_limit(o))
		return NULL;
	struct out_batch *bt = at(b, b->count);
	*bt = (struct out_batch){.start = qs_reader_done(&o->rd), .lane = NO_LANE};
	size_t bytes = 0;
	while (bytes < BATCH_BYTES && o->rd.idx < o->rd.n && !out_past_limit(o)) {
		bytes += o->rd.recs[o->rd.idx].len;
		qs_reader_consume(&o->rd, o->rd.recs[o->rd.idx].len);
	}
	bt->end = qs_reader_done(&o->rd);
	b->count++;
	return bt;
}

static void give(struct qs_output *o, unsigned li, struct out_batch *bt)
{
	struct out_balance *b = o->bal;
	struct qs_output *l = &b->lanes[li];
	bt->lane = (int)li;
	b->current[li] = (int)(bt - b->ring);
	b->given_ms[li] = qs_now_ns() / 1000000;
	qs_reader_rewind(&l->rd, bt->start);
	l->limit = bt->end;
	l->idle = false;
	event_active(l->run_ev, 0, 0);
}

/* A lane still writing the batch it was given --logstash-timeout ago (its
 * host's window closed: a Logstash whose pipeline stopped, alive, answering
 * TCP) while another lane takes its batches in time. Left alone, the batch
 * stayed with it: its events reached no host, and the cursor stayed behind
 * them until the spool was pressed for room. */
static bool lane_stalled(const struct out_balance *b, unsigned li, uint64_t now, uint64_t limit_ms)
{
	if (b->current[li] == NO_LANE || now - b->given_ms[li] < limit_ms)
		return false;
	for (unsigned k = 0; k < b->n; k++)
		if (k != li && b->lanes[k].state == QS_OUT_UP && !b->lanes[k].frozen &&
		    (b->current[k] == NO_LANE || now - b->given_ms[k] < limit_ms))
			return true;
	return false;
}

/* Each live lane that wrote its batch gets the next, in turn. */
static void balance_run(struct qs_output *o)
{
	struct out_balance *b = o->bal;
	bool any_up = false;
	for (unsigned li = 0; li < b->n; li++) {
		close_batch(b, li);
		any_up |= b->lanes[li].state >= QS_OUT_UP || b->lanes[li].redial;
	}
	o->state = any_up ? QS_OUT_UP : QS_OUT_DOWN; /* for the status line; commits are read back when down */
	/* In turn: a lane that is down is skipped; one still writing its batch
	 * is waited for, unless it has been at it for SLOW_MS (a slow host must
	 * not hold the others back). */
	uint64_t now = qs_now_ns() / 1000000, limit_ms = o->cfg->logstash_timeout_s * 1000ull;
	for (unsigned li = 0; li < b->n; li++) {
		struct qs_output *l = &b->lanes[li];
		if (l->state != QS_OUT_UP || l->frozen || !lane_stalled(b, li, now, limit_ms))
			continue;
		char what[128];
		snprintf(what, sizeof(what), "its batch not written in %u s while the other hosts take theirs: "
			 "handed to them", o->cfg->logstash_timeout_s);
		out_fail(l, what, 0); /* its batches go back (out_balance_lane_down) */
	}
	for (unsigned k = 0; k < b->n; k++) {
		unsigned li = (b->next_lane + k) % b->n;
		struct qs_output *l = &b->lanes[li];
		l->ctl_fd = o->ctl_fd;
		if (l->state != QS_OUT_UP || l->frozen)
			continue;
		if (b->current[li] != NO_LANE) {
			if (now - b->given_ms[li] < SLOW_MS)
				break;
			continue;
		}
		struct out_batch *bt = next_batch(o);
		if (!bt)
			break;
		give(o, li, bt);
		b->next_lane = (li + 1) % b->n;
		k = (unsigned)-1; /* the rotation starts again after this lane */
	}
	/* A stop: once everything up to the freeze is with a lane, the lanes
	 * prove what they wrote (their drain) and stay down. */
	bool all_given = !b->waiting && (out_past_limit(o) || qs_reader_fill(&o->rd, o->spool) == 0);
	for (unsigned li = 0; o->frozen && all_given && li < b->n; li++)
		if (b->current[li] == NO_LANE && !b->lanes[li].frozen)
			b->lanes[li].frozen = true;
}

static void balance_start(struct qs_output *o)
{
	for (unsigned i = 0; i < o->bal->n; i++)
		out_start(&o->bal->lanes[i]);
}

static bool balance_caught_up(struct qs_output *o)
{
	balance_run(o);
	return !o->bal->count && (out_past_limit(o) || qs_reader_fill(&o->rd, o->spool) == 0);
}

const struct out_kind out_kind_balance = {
	.name = "logstash",
	.start = balance_start,
	.run = balance_run,
	.tick = balance_run,
	.caught_up = balance_caught_up,
};

/* The answers fan-out (answers.h): per acceptor channel a connection, the
 * batch being built and the queue in front of the connection. */
#include "ipc/answers.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "ipc/chan.h"
#include "ipc/msg.h"
#include "ipc/sendq.h"
#include "ipc/zsock.h"

#define ANSWERS_LIMIT (1u << 20)        /* bytes waiting in a connection before answers queue here */
#define ANSWERS_RETRY_MS 20             /* what waits is retried this often */
#define ANSWERS_MAX_AGE_NS 2000000000ull /* a channel that takes nothing this long: drop its queue */
/* A channel without an acceptor is tried again at most this far apart: an
 * acceptor that comes is announced (qs_answers_retry), so the retries are
 * only a backstop, and half the channels never have one (idle wake-ups). */
#define ANSWERS_RECONNECT_MAX_MS 1000

struct answers_chan {
	struct qs_chan_out *out;
	struct qs_sendq q;
	struct qs_batch batch;
	unsigned seen; /* the connection on_up was last told of (qs_chan_out_connects) */
};

struct qs_answers {
	struct event *retry_ev;
	unsigned n;
	uint32_t sender;
	void (*on_up)(void *arg, unsigned chan);
	void *on_up_arg;
	struct answers_chan ch[];
};

bool qs_answers_pending(const struct qs_answers *a)
{
	for (unsigned i = 0; i < a->n; i++)
		if (qs_sendq_pending(&a->ch[i].q))
			return true;
	return false;
}

bool qs_answers_connected(const struct qs_answers *a, unsigned chan)
{
	return chan < a->n && qs_chan_connected(a->ch[chan].out);
}

bool qs_answers_unsent(const struct qs_answers *a)
{
	for (unsigned i = 0; i < a->n; i++)
		if (qs_chan_connected(a->ch[i].out) &&
		    (a->ch[i].batch.count || qs_sendq_pending(&a->ch[i].q) || qs_chan_unsent(a->ch[i].out)))
			return true;
	return false;
}

/* What waits goes as soon as the channel can take it. */
static void flush_queues(struct qs_answers *a)
{
	for (unsigned i = 0; i < a->n; i++)
		qs_sendq_flush(&a->ch[i].q);
}

/* Tells the owner of every connection made since it last looked. */
static void note_up(struct qs_answers *a)
{
	for (unsigned i = 0; i < a->n && a->on_up; i++) {
		unsigned k = qs_chan_out_connects(a->ch[i].out);
		if (k != a->ch[i].seen && qs_chan_connected(a->ch[i].out)) {
			a->ch[i].seen = k;
			a->on_up(a->on_up_arg, i);
		}
	}
}

static void on_writable(void *arg)
{
	note_up(arg);
	flush_queues(arg);
}

void qs_answers_on_up(struct qs_answers *a, void (*fn)(void *arg, unsigned chan), void *arg)
{
	a->on_up = fn;
	a->on_up_arg = arg;
	note_up(a);
}

void qs_answers_retry(struct qs_answers *a, unsigned chan)
{
	if (chan < a->n)
		qs_chan_out_retry_now(a->ch[chan].out);
}

void qs_answers_flush(struct qs_answers *a)
{
	for (unsigned i = 0; i < a->n; i++) {
		if (a->ch[i].batch.count)
			qs_sendq_push(&a->ch[i].q, &a->ch[i].batch);
		qs_sendq_flush(&a->ch[i].q);
	}
	if (qs_answers_pending(a) && !evtimer_pending(a->retry_ev, NULL)) {
		struct timeval tv = {0, ANSWERS_RETRY_MS * 1000};
		evtimer_add(a->retry_ev, &tv);
	}
}

/* Retries what waits, and gives up on a channel that took nothing for
 * ANSWERS_MAX_AGE_NS: its acceptor resends what stays unanswered. */
static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_answers *a = arg;
	for (unsigned i = 0; i < a->n; i++) {
		qs_sendq_flush(&a->ch[i].q);
		size_t n = qs_sendq_drop_stale(&a->ch[i].q, ANSWERS_MAX_AGE_NS);
		if (n)
			qs_warn("acceptor %u takes no answers for 2 s: dropped %zu messages (it resends)", i, n);
	}
	qs_answers_flush(a);
}

int qs_answers_add(struct qs_answers *a, unsigned chan, uint64_t ticket, uint16_t code, const char *reason)
{
	if (chan >= a->n)
		return -1;
	struct qs_batch *b = &a->ch[chan].batch;
	struct qs_answer_rec ar = {.ticket = ticket, .code = code};
	ar.reason_len = reason ? (uint16_t)strlen(reason) : 0;
	if (!b->len)
		qs_batch_begin(b, QS_MSG_ANSWERS, a->sender);
	if (qs_batch_add(b, &ar, sizeof(ar), reason, ar.reason_len)) {
		qs_err("out of memory batching an answer: dropped");
		return -1;
	}
	if (b->len >= QS_BATCH_SOFT_BYTES)
		qs_sendq_push(&a->ch[chan].q, b);
	return 0;
}

void qs_answers_count(struct qs_answers *a, unsigned line)
{
	for (unsigned i = 0; i < a->n; i++)
		qs_sendq_count(&a->ch[i].q, line);
}

void qs_answers_send_all(struct qs_answers *a, const void *msg, size_t len)
{
	for (unsigned i = 0; i < a->n; i++)
		if (!qs_sendq_pending(&a->ch[i].q))
			qs_chan_send(a->ch[i].out, msg, len);
}

uint64_t qs_answers_dropped(const struct qs_answers *a)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < a->n; i++)
		n += a->ch[i].q.dropped;
	return n;
}

struct qs_answers *qs_answers_new(struct event_base *base, const char *dir, unsigned nchan, uint32_t sender)
{
	struct qs_answers *a = calloc(1, sizeof(*a) + nchan * sizeof(a->ch[0]));
	if (!a)
		return NULL;
	a->sender = sender;
	a->retry_ev = evtimer_new(base, on_retry, a);
	if (!a->retry_ev)
		goto fail;
	char ep[256];
	for (; a->n < nchan; a->n++) {
		struct answers_chan *c = &a->ch[a->n];
		if (qs_chan_path(ep, sizeof(ep), dir, QS_EP_ACCEPTOR_ANSWERS, a->n) ||
		    !(c->out = qs_chan_connect(base, ep, ANSWERS_LIMIT, on_writable, a)))
			goto fail;
		qs_chan_out_backoff(c->out, ANSWERS_RECONNECT_MAX_MS);
		qs_sendq_init(&c->q, c->out);
	}
	return a;
fail:
	qs_answers_free(a);
	return NULL;
}

void qs_answers_free(struct qs_answers *a)
{
	if (!a)
		return;
	for (unsigned i = 0; i < a->n; i++) {
		qs_sendq_free(&a->ch[i].q);
		qs_batch_free(&a->ch[i].batch);
		qs_chan_out_free(a->ch[i].out);
	}
	if (a->retry_ev)
		event_free(a->retry_ev);
	free(a);
}

#include "ipc/sendq.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "ipc/chan.h"
#include "ipc/msg.h"

struct qs_sendq_msg {
	struct qs_sendq_msg *next;
	size_t len;
	uint8_t data[];
};

void qs_sendq_init(struct qs_sendq *q, struct qs_chan_out *chan)
{
	memset(q, 0, sizeof(*q));
	q->chan = chan;
	q->count_line = QS_QL_COUNT;
}

void qs_sendq_count(struct qs_sendq *q, unsigned line)
{
	q->count_line = line;
}

/* The channel took a message: its records are in the hop now (the
 * queue's own messages are not: the sender holds them). */
static int taken(struct qs_sendq *q, int rc, const void *msg, size_t len)
{
	struct qs_msg_hdr h;
	if (rc == 0 && len >= sizeof(h)) {
		memcpy(&h, msg, sizeof(h));
		qs_mp_queue_sent(q->count_line, h.count, len);
	}
	return rc;
}

bool qs_sendq_pending(const struct qs_sendq *q)
{
	return q->head != NULL;
}

static void pop(struct qs_sendq *q)
{
	struct qs_sendq_msg *m = q->head;
	q->head = m->next;
	if (!q->head)
		q->tail = NULL;
	q->bytes -= m->len;
	free(m);
}

bool qs_sendq_flush(struct qs_sendq *q)
{
	while (q->head) {
		int rc = taken(q, qs_chan_send(q->chan, q->head->data, q->head->len), q->head->data, q->head->len);
		if (rc == 1) {
			if (!q->blocked_since_ns)
				q->blocked_since_ns = qs_now_ns();
			return true;
		}
		pop(q); /* sent, or a hard error that retrying cannot fix */
		q->blocked_since_ns = 0;
	}
	return false;
}

int qs_sendq_push(struct qs_sendq *q, struct qs_batch *b)
{
	int rc = 0;
	if (!q->head) {
		rc = taken(q, qs_chan_send(q->chan, b->buf, b->len), b->buf, b->len);
		if (rc != 1)
			goto done;
	}
	struct qs_sendq_msg *m = malloc(sizeof(*m) + b->len);
	if (!m) {
		qs_err("out of memory queueing a message: dropped");
		rc = -1;
		goto done;
	}
	m->next = NULL;
	m->len = b->len;
	memcpy(m->data, b->buf, b->len);
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->bytes += m->len;
	if (!q->blocked_since_ns)
		q->blocked_since_ns = qs_now_ns();
	rc = 1;
done:
	b->len = 0;
	b->count = 0;
	return rc;
}

size_t qs_sendq_drop_stale(struct qs_sendq *q, uint64_t max_age_ns)
{
	if (!q->head || qs_now_ns() - q->blocked_since_ns < max_age_ns)
		return 0;
	size_t n = 0;
	while (q->head) {
		pop(q);
		n++;
	}
	q->blocked_since_ns = 0;
	q->dropped += n;
	return n;
}

void qs_sendq_free(struct qs_sendq *q)
{
	while (q->head)
		pop(q);
}

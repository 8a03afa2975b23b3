/* A queue of whole messages in front of one channel (ipc/chan.h): sending
 * never blocks the loop; what the channel cannot take now is kept in order
 * and retried.
 * The owner stops reading upstream while a queue that must not drop is
 * pending (backpressure), and may drop stale messages where the receiver
 * resends anyway (answers to an acceptor that is gone). */
#ifndef QS_IPC_SENDQ_H
#define QS_IPC_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qs_batch;
struct qs_chan_out;
struct qs_sendq_msg;

struct qs_sendq {
	struct qs_chan_out *chan;
	struct qs_sendq_msg *head, *tail;
	size_t bytes;
	uint64_t blocked_since_ns; /* when the head first failed to go */
	uint64_t dropped;          /* messages dropped as stale */
	unsigned count_line;       /* the metrics queue line whose hop it feeds (qs_sendq_count) */
};

void qs_sendq_init(struct qs_sendq *q, struct qs_chan_out *chan);
/* Counts every message the channel takes, as sent into the queue line's
 * hop (common/metrics_page.h: its records and bytes); none by default. */
void qs_sendq_count(struct qs_sendq *q, unsigned line);
/* Sends b's message (or queues a copy after what is pending) and empties b.
 * Returns 0 sent, 1 queued, -1 error (message lost, logged). */
int qs_sendq_push(struct qs_sendq *q, struct qs_batch *b);
/* Tries to send what is queued; returns true if something is still pending. */
bool qs_sendq_flush(struct qs_sendq *q);
/* Drops everything if the head has been blocked for longer than max_age_ns;
 * returns the number of messages dropped. */
size_t qs_sendq_drop_stale(struct qs_sendq *q, uint64_t max_age_ns);
bool qs_sendq_pending(const struct qs_sendq *q);
void qs_sendq_free(struct qs_sendq *q);

#endif

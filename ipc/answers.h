/* The fan-out to the acceptors' answers channels: one sending channel
 * (ipc/chan.h) per acceptor channel, `RUNDIR/acceptor-C.answers` (C = the
 * channel, docs/ARCHITECTURE.md "Glossary"), each with the ANSWERS batch
 * being built for it and a queue (ipc/sendq.h) of what it could not take yet.
 *
 * Whoever answers frames (the parsers reject, the shipper acknowledges) uses
 * this one piece, so the limits, the retry and the giving up are the same
 * for all: answers never hold the sender back. A channel that takes nothing
 * for ANSWERS_MAX_AGE (2 s) has its queue dropped, with a warning: its
 * acceptor is gone or stuck, and re-sends every unresolved frame when it is
 * back. Any other message (the shipper's STATUS) can go to every channel too.
 *
 * Everything runs on the caller's libevent loop; the retry timer is ours. */
#ifndef QS_IPC_ANSWERS_H
#define QS_IPC_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct qs_answers;

/* Connects to channels 0..nchan-1 in dir (the endpoints' directory: "" once
 * chrooted); sender goes into every ANSWERS header (the parser's slot, or
 * QS_MSG_SENDER_SHIPPER). NULL on error (logged where the channel logs it). */
struct qs_answers *qs_answers_new(struct event_base *base, const char *dir, unsigned nchan, uint32_t sender);
/* Counts what every channel takes into the metrics queue line's hop
 * (qs_sendq_count: the shipper's acknowledgements, the parsers' rejections). */
void qs_answers_count(struct qs_answers *a, unsigned line);
/* Adds one answer for channel chan to its batch (reason: NULL or "" for
 * none); a batch that reached QS_BATCH_SOFT_BYTES is sent on at once.
 * 0, or -1: no such channel, or out of memory (logged; the acceptor resends). */
int qs_answers_add(struct qs_answers *a, unsigned chan, uint64_t ticket, uint16_t code, const char *reason);
/* Sends every channel's batch, or queues it behind what waits, and retries
 * what waits every 20 ms from then on until it goes or is dropped as stale. */
void qs_answers_flush(struct qs_answers *a);
/* Something waits for a channel that did not take it yet. */
bool qs_answers_pending(const struct qs_answers *a);
/* Some answer is not in its acceptor's socket yet (batched, queued, or in a
 * connection's buffer) while a connection to that acceptor is up: a clean
 * stop waits for none to be left. (What waits for a channel with no
 * connection waits for an acceptor that is gone, or half the channels that
 * never have one.) */
bool qs_answers_unsent(const struct qs_answers *a);
/* A connection to channel chan is up now (an acceptor listens there). */
bool qs_answers_connected(const struct qs_answers *a, unsigned chan);
/* fn(arg, chan) whenever channel chan gets a new connection (an acceptor
 * listens there now), and at once for every channel connected already. */
void qs_answers_on_up(struct qs_answers *a, void (*fn)(void *arg, unsigned chan), void *arg);
/* The acceptor of channel chan was announced (QS_CTL_ACCEPTOR): connect now
 * if not connected. A channel without a connection is otherwise retried
 * after 10 ms doubling to 1 s. */
void qs_answers_retry(struct qs_answers *a, unsigned chan);
/* Offers msg to every channel now; one that cannot take it at once, or has
 * answers waiting, skips it (nothing is queued: for messages that are sent
 * again anyway, like the shipper's once-a-second STATUS). */
void qs_answers_send_all(struct qs_answers *a, const void *msg, size_t len);
/* Messages dropped as stale since the start, all channels together. */
uint64_t qs_answers_dropped(const struct qs_answers *a);
void qs_answers_free(struct qs_answers *a);

#endif

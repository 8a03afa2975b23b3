/* ZeroMQ sockets wired into a libevent loop.
 *
 * ZMQ_FD is edge-triggered: it only signals a change of ZMQ_EVENTS. A watcher
 * therefore drains up to a budget of messages per wake-up and re-arms itself
 * while ZMQ_EVENTS still reports work, and qs_zwatch_kick() must follow every
 * send/recv done outside the callback. */
#ifndef QS_IPC_ZSOCK_H
#define QS_IPC_ZSOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

struct event_base;
struct qs_zwatch;

/* Endpoint names inside the private runtime directory. */
/* acceptor binds one PUSH per parser slot, parser slot S connects PULL to its
 * own; the number is qs_frames_endpoint_id(channel, S) */
#define QS_EP_ACCEPTOR_FRAMES "acceptor-%u.frames"
/* Not ZeroMQ: channels (ipc/chan.h), named here with the rest. */
#define QS_EP_ACCEPTOR_ANSWERS "acceptor-%u.answers" /* acceptor listens, parsers and the shipper connect */
#define QS_EP_SHIPPER_EVENTS "shipper.events"        /* shipper listens, parsers connect */

/* During a reload two generations ("banks") of acceptors run at once, each
 * with its own endpoints. An acceptor's channel, which names its endpoints
 * and fills the .acceptor field of records, is bank * N + slot; its steering
 * key (the first byte of its connection IDs) is bank * QS_KEY_BANK + slot.
 * The three ids of an acceptor and the meanings of "generation": docs/ARCHITECTURE.md, "Glossary". */
#define QS_ACCEPTOR_BANKS 2
#define QS_KEY_BANK 64 /* >= QS_MAX_ACCEPTORS */
#define QS_ACCEPTOR_CHANNELS_MAX (QS_ACCEPTOR_BANKS * QS_KEY_BANK)
static inline unsigned qs_acceptor_channels(unsigned n) { return QS_ACCEPTOR_BANKS * n; }
static inline unsigned qs_acceptor_channel(unsigned key, unsigned n)
{
	return (key / QS_KEY_BANK) * n + key % QS_KEY_BANK;
}

static inline unsigned qs_frames_endpoint_id(unsigned channel, unsigned parser_slot)
{
	return channel * QS_MAX_PARSERS + parser_slot;
}

/* Builds "ipc://<dir>/<name>"; returns -1 if it does not fit (ipc paths max ~107 bytes). */
int qs_ipc_endpoint(char *out, size_t outlen, const char *dir, const char *fmt, unsigned slot);

/* Creates a socket with the options every quicstash socket wants: LINGER 0,
 * the given high-water marks, MAXMSGSIZE on receivers, IMMEDIATE on senders
 * (no queueing towards a peer that is not connected). NULL on error (logged). */
void *qs_zsock_new(void *ctx, int type, int hwm, long long max_msg);
int qs_zsock_bind(void *sock, const char *endpoint);
int qs_zsock_connect(void *sock, const char *endpoint);

/* Calls on_ready(arg) whenever the socket may be readable or writable; the
 * callback does its own non-blocking zmq_recv/zmq_send and returns
 * QS_ZWATCH_MORE if it stopped because of its budget (more work may be
 * waiting), QS_ZWATCH_OUT if it holds messages a send refused (EAGAIN), or 0.
 * Reading ZMQ_EVENTS after the callback processes ZeroMQ's pending commands,
 * a peer's arrival among them, and that consumes the FD's edge: the watcher
 * then runs the callback again by itself when a refused send could now go. */
enum { QS_ZWATCH_MORE = 1, QS_ZWATCH_OUT = 2 };
typedef int (*qs_zwatch_fn)(void *sock, void *arg);
struct qs_zwatch *qs_zwatch_new(struct event_base *base, void *sock, qs_zwatch_fn on_ready, void *arg);
void qs_zwatch_kick(struct qs_zwatch *w);
void qs_zwatch_free(struct qs_zwatch *w);

/* Receives up to `budget` messages without blocking, while may_read(arg)
 * (NULL: always) allows, handing each to handle(arg, data, len). Returns how
 * many were received (< budget: the socket had nothing more, or reading was
 * not allowed). */
int qs_zrecv_each(void *sock, int budget, bool (*may_read)(void *arg),
		  void (*handle)(void *arg, const void *data, size_t len), void *arg);

/* Non-blocking send of one message; 0 sent, 1 would block (EAGAIN), -1 error. */
int qs_zsend(void *sock, const void *buf, size_t len);

struct qs_batch;
/* The same for a whole batch, without copying it: ZeroMQ takes the batch's
 * buffer (its I/O thread frees it once written) and the batch gets a fresh
 * one, empty; on 1 or -1 the batch is as it was. A FRAMES batch is up to
 * QS_BATCH_SOFT_BYTES and more: the copy zmq_send makes cost the acceptor
 * as much as building the batch. */
int qs_zsend_batch(void *sock, struct qs_batch *b);

#endif

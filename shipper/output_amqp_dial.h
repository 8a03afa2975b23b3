/* The AMQP handshake on a thread of its own (output_amqp_dial.c).
 *
 * librabbitmq's handshake calls block, each bounded by 5 s. On the shipper's
 * loop, a broker that accepts a connection and answers nothing (overloaded,
 * half dead, a middlebox) held the loop 5 s per attempt, and with it every
 * acknowledgement, although the spool could take the events: with a silent
 * broker and its retries the loop was blocked most of the time. Now the loop
 * hands the connection to a thread and takes it back when the thread says it
 * ended; in between only the thread touches it. */
#ifndef QS_SHIPPER_OUTPUT_AMQP_DIAL_H
#define QS_SHIPPER_OUTPUT_AMQP_DIAL_H

#include <amqp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "shipper/output_parts.h"

#define AMQP_CHANNEL 1 /* the one channel: set up by the handshake, published on after it */

struct event_base;
struct event;

/* The loop learns the end: why is "" after a handshake that succeeded, else
 * the step and the broker's or the library's reason. */
typedef void (*qs_amqp_dial_done_fn)(void *arg, const char *why);

struct qs_amqp_dial {
	pthread_t thread;
	bool running; /* loop side: a thread was started and not yet joined */
	int efd;      /* the thread says it ended */
	struct event *ev;
	qs_amqp_dial_done_fn done;
	void *arg;
	/* fixed before the thread starts */
	struct qs_amqp_target target;
	amqp_connection_state_t conn;
	bool tls; /* the thread opens the TLS socket first (amqps://) */
	/* shared */
	atomic_int fd; /* the socket once open, for an abort to shut it down */
	atomic_bool abort;
	char why[480]; /* the thread's, read by the loop after the join */
};

/* 0, or -1 (logged). */
int qs_amqp_dial_init(struct qs_amqp_dial *d, struct event_base *base, qs_amqp_dial_done_fn done, void *arg);
void qs_amqp_dial_free(struct qs_amqp_dial *d);
/* Starts the handshake on conn: a TCP socket already set (fd), or for tls the
 * TLS socket the thread opens to t. 0, or -1 with *why set (no thread). */
int qs_amqp_dial_start(struct qs_amqp_dial *d, amqp_connection_state_t conn, int fd, bool tls,
		       const struct qs_amqp_target *t);
/* A close while the thread runs (a stop, a failure elsewhere): ends its wait
 * by shutting the socket down, joins it, and calls no done. The caller then
 * owns conn again. */
void qs_amqp_dial_abort(struct qs_amqp_dial *d);

#endif

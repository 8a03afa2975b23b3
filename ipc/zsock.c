#include "ipc/zsock.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "common/evbase.h"
#include "common/log.h"
#include "ipc/msg.h"

struct qs_zwatch {
	void *sock;
	struct event *ev;
	struct event *later; /* a zero timeout: the next run after the loop has polled */
	unsigned again;      /* runs in a row that left work behind */
	qs_zwatch_fn fn;
	void *arg;
};

/* libevent runs an event activated from its own callback again in the same
 * pass, before it polls or looks at a timer: a socket that always has work
 * would keep its process from everything else (unit test_zsock). Every
 * YIELD_EVERY-th run in a row therefore waits for the loop's next pass (a
 * zero timeout). Only the watcher yields: a loop-wide limit on callbacks per
 * pass (event_config_set_max_dispatch_interval) made the acceptor poll its
 * UDP socket between its connections' timers in a connection storm, and
 * 10,000 clients took twice as long to connect. */
#define YIELD_EVERY 16

int qs_ipc_endpoint(char *out, size_t outlen, const char *dir, const char *fmt, unsigned slot)
{
	char name[128];
	snprintf(name, sizeof(name), fmt, slot);
	int n = snprintf(out, outlen, "ipc://%s/%s", dir, name);
	/* sun_path is 108 bytes including the NUL. */
	if (n < 0 || (size_t)n >= outlen || (size_t)n - 6 >= 108)
		return -1;
	return 0;
}

void *qs_zsock_new(void *ctx, int type, int hwm, long long max_msg)
{
	void *s = zmq_socket(ctx, type);
	if (!s) {
		qs_err("zmq_socket: %s", zmq_strerror(errno));
		return NULL;
	}
	int zero = 0, one = 1;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if (type == ZMQ_PULL || type == ZMQ_SUB || type == ZMQ_ROUTER || type == ZMQ_DEALER)
		zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
	if (type == ZMQ_PUSH || type == ZMQ_DEALER)
		zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof(one));
	return s;
}

int qs_zsock_bind(void *sock, const char *endpoint)
{
	if (zmq_bind(sock, endpoint) != 0) {
		qs_err("zmq_bind %s: %s", endpoint, zmq_strerror(errno));
		return -1;
	}
	return 0;
}

int qs_zsock_connect(void *sock, const char *endpoint)
{
	if (zmq_connect(sock, endpoint) != 0) {
		qs_err("zmq_connect %s: %s", endpoint, zmq_strerror(errno));
		return -1;
	}
	return 0;
}

static void zwatch_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_zwatch *w = arg;
	int r = w->fn(w->sock, w->arg);
	int events = 0;
	size_t len = sizeof(events);
	zmq_getsockopt(w->sock, ZMQ_EVENTS, &events, &len);
	/* Level-trigger by hand: if work remains, run again on the next loop
	 * pass. A refused send is retried once ZMQ_EVENTS says it can go: the
	 * FD does not signal that again. */
	if (!((r & QS_ZWATCH_MORE) || (events & ZMQ_POLLIN) || ((r & QS_ZWATCH_OUT) && (events & ZMQ_POLLOUT)))) {
		w->again = 0;
		return;
	}
	if (++w->again % YIELD_EVERY == 0)
		qs_event_later(w->later);
	else
		event_active(w->ev, EV_READ, 0);
}

struct qs_zwatch *qs_zwatch_new(struct event_base *base, void *sock, qs_zwatch_fn on_ready, void *arg)
{
	struct qs_zwatch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	int fd;
	size_t len = sizeof(fd);
	if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0) {
		free(w);
		return NULL;
	}
	w->sock = sock;
	w->fn = on_ready;
	w->arg = arg;
	w->ev = event_new(base, fd, EV_READ | EV_PERSIST, zwatch_cb, w);
	w->later = evtimer_new(base, zwatch_cb, w);
	if (!w->ev || !w->later) {
		qs_zwatch_free(w);
		return NULL;
	}
	event_add(w->ev, NULL);
	event_active(w->ev, EV_READ, 0);
	return w;
}

void qs_zwatch_kick(struct qs_zwatch *w)
{
	if (w)
		event_active(w->ev, EV_READ, 0);
}

void qs_zwatch_free(struct qs_zwatch *w)
{
	if (!w)
		return;
	if (w->ev)
		event_free(w->ev);
	if (w->later)
		event_free(w->later);
	free(w);
}

int qs_zrecv_each(void *sock, int budget, bool (*may_read)(void *arg),
		  void (*handle)(void *arg, const void *data, size_t len), void *arg)
{
	int n = 0;
	while (n < budget && (!may_read || may_read(arg))) {
		zmq_msg_t msg;
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			if (errno != EAGAIN && errno != EINTR)
				qs_err("zmq_msg_recv: %s", zmq_strerror(errno));
			break;
		}
		handle(arg, zmq_msg_data(&msg), zmq_msg_size(&msg));
		zmq_msg_close(&msg);
		n++;
	}
	return n;
}

static int send_failed(void)
{
	if (errno == EAGAIN || errno == EINTR)
		return 1;
	qs_err("zmq_send: %s", zmq_strerror(errno));
	return -1;
}

int qs_zsend(void *sock, const void *buf, size_t len)
{
	if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) >= 0)
		return 0;
	return send_failed();
}

/* Set while this thread closes a message that ZeroMQ did not take: its
 * buffer is still the batch's. Other threads (ZeroMQ's I/O thread, which
 * frees what it sent) never see it set. */
static _Thread_local bool keep_buffer;

static void free_sent(void *data, void *hint)
{
	(void)hint;
	if (!keep_buffer)
		free(data);
}

int qs_zsend_batch(void *sock, struct qs_batch *b)
{
	zmq_msg_t msg;
	if (zmq_msg_init_data(&msg, b->buf, b->len, free_sent, NULL) != 0)
		return qs_zsend(sock, b->buf, b->len);
	if (zmq_msg_send(&msg, sock, ZMQ_DONTWAIT) < 0) {
		int e = errno;
		keep_buffer = true;
		zmq_msg_close(&msg);
		keep_buffer = false;
		errno = e;
		return send_failed();
	}
	/* the buffer is ZeroMQ's now: the next batch gets one as large (or
	 * none, and grows its own) */
	b->buf = malloc(b->cap);
	if (!b->buf)
		b->cap = 0;
	b->len = 0;
	b->count = 0;
	return 0;
}

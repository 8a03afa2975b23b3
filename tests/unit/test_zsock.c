/* ipc/zsock.h's watcher on the loop every process builds (common/evbase.h):
 * a ZeroMQ socket with more work than one call's budget must not keep the
 * loop from its other descriptors and timers (a parser busy with frames
 * still hears the shipper's channel and runs its timers; an acceptor whose
 * frames wait for a parser still reads its UDP socket). */
#include <event2/event.h>
#include <stdbool.h>
#include <unistd.h>
#include <zmq.h>

#include "check.h"
#include "common/evbase.h"
#include "ipc/zsock.h"

#define CALLS_MAX 200000 /* the guard: a starved loop ends here, not never */

struct busy {
	struct event_base *base;
	long calls, calls_when_heard;
	bool heard, timer_fired;
};

/* A socket that always has more than a budget's worth. */
static int busy_fn(void *sock, void *arg)
{
	(void)sock;
	struct busy *b = arg;
	if (++b->calls >= CALLS_MAX || (b->heard && b->timer_fired)) {
		event_base_loopbreak(b->base);
		return 0;
	}
	return QS_ZWATCH_MORE;
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct busy *b = arg;
	char c;
	if (read(fd, &c, 1) == 1 && !b->heard) {
		b->heard = true;
		b->calls_when_heard = b->calls;
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	((struct busy *)arg)->timer_fired = true;
}

static void test_busy_socket_does_not_starve_the_loop(void)
{
	current_test = "busy_socket_does_not_starve_the_loop";
	void *ctx = zmq_ctx_new();
	void *sock = zmq_socket(ctx, ZMQ_PAIR);
	CHECK(sock != NULL);
	CHECK_EQ(zmq_bind(sock, "inproc://busy"), 0);
	struct busy b = {.base = qs_event_base_new()};
	int fds[2];
	CHECK_EQ(pipe(fds), 0);
	CHECK_EQ(write(fds[1], "x", 1), 1);
	struct event *pe = event_new(b.base, fds[0], EV_READ | EV_PERSIST, on_pipe, &b);
	struct event *te = evtimer_new(b.base, on_timer, &b);
	struct timeval ms = {0, 1000};
	event_add(pe, NULL);
	evtimer_add(te, &ms);
	struct qs_zwatch *w = qs_zwatch_new(b.base, sock, busy_fn, &b);
	event_base_dispatch(b.base);
	CHECK(b.heard);     /* the ready pipe was read while the socket kept its work */
	CHECK(b.timer_fired); /* and the timer ran */
	CHECK(b.calls < CALLS_MAX);
	CHECK(b.calls_when_heard < 1000); /* soon: within a bounded number of the socket's calls */
	qs_zwatch_free(w);
	event_free(pe);
	event_free(te);
	event_base_free(b.base);
	close(fds[0]);
	close(fds[1]);
	zmq_close(sock);
	zmq_ctx_term(ctx);
}

int main(void)
{
	test_busy_socket_does_not_starve_the_loop();
	return check_report();
}

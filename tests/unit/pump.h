/* A libevent loop run against a deadline, for the unit tests that drive real
 * channels (test_chan, test_answers): nothing blocks, a timeout is reported
 * at the caller's CHECK. */
#ifndef QS_TEST_PUMP_H
#define QS_TEST_PUMP_H

#include <event2/event.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One pass of the loop that never blocks, then 50 us off the CPU so waiting
 * for the channel's retry timers does not spin a core. */
static void pump_once(struct event_base *base)
{
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	struct timespec ts = {0, 50 * 1000};
	nanosleep(&ts, NULL);
}

/* Runs the loop until cond holds or ms milliseconds have passed; the caller
 * then CHECKs cond itself, so a timeout is reported at the caller's line. */
#define PUMP_UNTIL(base, ms, cond)                                                                 \
	do {                                                                                       \
		double dl_ = now_ms() + (ms);                                                      \
		while (!(cond) && now_ms() < dl_)                                                  \
			pump_once(base);                                                           \
	} while (0)

/* Runs the loop for ms milliseconds whatever happens. */
static void pump_for(struct event_base *base, double ms)
{
	double dl = now_ms() + ms;
	while (now_ms() < dl)
		pump_once(base);
}

#endif

/* The clocks, in one place: every process reads time through these (the
 * acceptor's and ngtcp2's timestamps, the IPC queues, the supervisor's
 * back-off, the hop trace). Nanoseconds unless the name says otherwise. */
#ifndef QS_COMMON_CLOCK_H
#define QS_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t qs_clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t qs_now_ns(void) { return qs_clock_ns(CLOCK_MONOTONIC); }
static inline uint64_t qs_realtime_ns(void) { return qs_clock_ns(CLOCK_REALTIME); }
static inline uint64_t qs_now_ms(void) { return qs_now_ns() / 1000000; } /* CLOCK_MONOTONIC */

#endif

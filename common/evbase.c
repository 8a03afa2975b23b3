/* libevent reads CLOCK_MONOTONIC_COARSE unless told otherwise, and that
 * clock moves once per kernel tick (4 ms with HZ=250): a 500 us timer then
 * fires up to 4 ms late, and a loop woken only by timers works in 4 ms
 * steps. The receive moderation (acceptor/udp.c), the client's pacing and
 * ngtcp2's own timers (ACK delay, pacing, loss detection) need better than
 * that, so every loop asks for the precise clock (a vDSO read, and timerfd
 * for the epoll backend's sub-millisecond waits). */
#include "common/evbase.h"

#include <event2/event.h>

struct event_base *qs_event_base_new(void)
{
	struct event_config *cfg = event_config_new();
	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

void qs_event_later(struct event *ev)
{
	static const struct timeval now = {0, 0};
	if (!evtimer_pending(ev, NULL))
		evtimer_add(ev, &now);
}

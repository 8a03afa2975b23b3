/* The event loops of every process and of the client. */
#ifndef QS_COMMON_EVBASE_H
#define QS_COMMON_EVBASE_H

struct event_base;

/* An event base whose timers keep sub-millisecond time (see evbase.c). */
struct event_base *qs_event_base_new(void);

struct event;
/* Runs ev (a timer) in the loop's next pass, after it has polled: a zero
 * timeout, unless ev is pending already. */
void qs_event_later(struct event *ev);

#endif

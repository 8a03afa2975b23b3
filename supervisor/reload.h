/* SIGHUP: validate the new configuration and certificate, then replace the
 * children one at a time (keyholder, shipper, parsers, acceptors): each is
 * stopped cleanly (an acceptor tells its clients to move and finishes its
 * frames in flight), started again with the new configuration, and the next
 * one goes only when it reports ready. The other slots serve meanwhile. A bad
 * configuration or certificate keeps everything running as it is. */
#ifndef QS_RELOAD_H
#define QS_RELOAD_H

#include <stdbool.h>

struct qs_procs;
struct qs_child;
struct event_base;

void qs_reload_init(struct qs_procs *p, struct event_base *base);
void qs_reload_request(void);
bool qs_reload_active(void);
/* Hooks from the supervisor's child handling. */
void qs_reload_child_ready(struct qs_child *c);
/* Returns true when the exit was a reload's own stop (the child is started again). */
bool qs_reload_child_exited(struct qs_child *c);

#endif

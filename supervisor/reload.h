/* SIGHUP: validate the new configuration and certificate, then replace the
 * children one at a time in the role table's reload order (roles/table.c:
 * keyholder, shipper, parsers), the next only when
 * the previous replacement reports ready; a parser's replacement serves
 * before the old one is asked to stop. Acceptors are replaced as a whole
 * generation when connection-ID steering is in use: new sockets at the other
 * bank of steering keys, new acceptors on them, and once all of them serve,
 * new connections switch to them while the old generation tells its clients
 * to move, finishes its frames in flight and exits. Without steering each
 * acceptor is stopped cleanly and started again. A bad configuration or
 * certificate, or a change of an option set up once at start, keeps everything
 * running as it is. Children get the validated text, never the file. A
 * reload whose only change is the tenants file is applied in place to the
 * acceptors and parsers (supervisor/tenant_reload.h); the others are
 * replaced as above. */
#ifndef QS_RELOAD_H
#define QS_RELOAD_H

#include <stdbool.h>

struct qs_procs;
struct qs_proc;
struct event_base;

struct qs_config;

/* running: the configuration the supervisor started with (options it set up
 * once, such as --spool-dir, cannot change: a reload changing one is refused). */
void qs_reload_init(struct qs_procs *p, const struct qs_config *running, struct event_base *base);
void qs_reload_request(void);
bool qs_reload_active(void);
/* Hooks from the supervisor's child handling. */
void qs_reload_child_ready(struct qs_proc *c);
/* Returns true when the exit was a reload's own stop (the child is started again). */
bool qs_reload_child_exited(struct qs_proc *c);
/* The previous process of a reloaded entry ended (overlap finished). */
void qs_reload_old_exited(struct qs_proc *c);

#endif

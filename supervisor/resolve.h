/* Looking Logstash's names up again for the shipper, which is chrooted and
 * cannot read /etc (resolv.conf, hosts, NSS). The shipper may only ask for
 * an entry of --logstash-addr; the supervisor decides: it resolves only names
 * of its current configuration, one lookup per name at a time, on a thread
 * (getaddrinfo may wait seconds for DNS; the loop must not). */
#ifndef QS_SUPERVISOR_RESOLVE_H
#define QS_SUPERVISOR_RESOLVE_H

#include "ipc/ctl.h"
#include "supervisor/proc.h"

struct event_base;

int qs_resolve_init(const struct qs_config *cfg, struct qs_procs *p, struct event_base *base);
/* The names it may resolve (at start, and from a reload's configuration). */
void qs_resolve_configure(const struct qs_config *cfg);
/* A QS_CTL_RESOLVE from child c (supervisor/control.c lets only the shipper send it). */
void qs_resolve_request(const struct qs_proc *c, const struct qs_ctl_resolve *m);
void qs_resolve_free(void);

#endif

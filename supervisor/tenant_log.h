#ifndef QS_SUPERVISOR_TENANT_LOG_H
#define QS_SUPERVISOR_TENANT_LOG_H

#include "supervisor/proc.h"

/* One line per tenant whose counters moved since the last call, summed over
 * the acceptors' metrics pages (the stats line's interval). */
void qs_sup_tenant_log(const struct qs_procs *p);

#endif

/* A reload whose only change is the tenants file is applied in place
 * (docs/ARCHITECTURE.md, "Tenants reloaded in place"): the roles whose
 * receive mask holds QS_CTL_TENANTS (acceptors, parsers) get the new sealed
 * copy over their control socket and swap their tenants table, keeping their
 * connections; the others are started again as on any reload. */
#ifndef QS_SUP_TENANT_RELOAD_H
#define QS_SUP_TENANT_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

struct qs_config;
struct qs_proc;
struct qs_procs;

/* Remembers cfg as the configuration in force (at start, after each reload). */
void qs_tenant_reload_applied(const struct qs_config *cfg);
/* Whether next differs from the configuration in force by its tenants alone:
 * every option a reload reads is the same, and the files the acceptors read
 * at start (certificate, client CA, secret) are the same files unchanged.
 * Otherwise why says what else changed. */
bool qs_tenant_reload_in_place(const struct qs_config *next, char *why, size_t len);
/* What changed between the tenants of two sealed copies, for the log
 * ("1 added, 1 token revoked"; "no change"). */
void qs_tenant_reload_summary(int old_fd, int new_fd, const char *name, char *out, size_t len);
/* Whether the entry's role takes QS_CTL_TENANTS. */
bool qs_tenant_reload_takes(const struct qs_proc *c);
/* Sends the sealed copy fd to every running process of such a role; returns how many got it. */
unsigned qs_tenant_reload_send(struct qs_procs *p, int fd);

#endif

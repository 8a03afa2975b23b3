/* The per-tenant spool counts of the records an earlier shipper left
 * unshipped, counted once at start (docs/TENANTS.md, "Limits"). */
#ifndef QS_SHIPPER_QUOTA_SCAN_H
#define QS_SHIPPER_QUOTA_SCAN_H

struct qs_tquota;
struct qs_spool;

/* Reads every valid record after the cursor and counts it for the tenant its
 * event names (organization.id), then computes who is over; nothing without
 * a tenant with a spool-quota. A segment that cannot be read is logged and
 * not counted (the quota is then looser, never stricter). */
void qs_tquota_scan(struct qs_tquota *q, const struct qs_spool *s);

#endif

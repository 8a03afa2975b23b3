/* What an earlier shipper left in the spool, said once at start: how much is
 * not yet shipped and since when, and where it goes now (the output
 * configured now, before any new event). */
#ifndef QS_SHIPPER_BACKLOG_H
#define QS_SHIPPER_BACKLOG_H

struct qs_spool;

/* Logs "spool: N bytes in K segment(s) not yet shipped, the oldest spooled at
 * TIME: shipping them to OUTPUT first" when the spool holds any. */
void qs_backlog_report(const struct qs_spool *s, const char *output);

#endif

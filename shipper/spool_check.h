#ifndef QS_SPOOL_CHECK_H
#define QS_SPOOL_CHECK_H

struct qs_config;

/* quicstashd --check-spool DIR [--repair]: verifies a spool offline, prints
 * what it found; exit 0 when sound (or repaired), 1 on damage, 2 on errors. */
int spool_check_main(const struct qs_config *cfg);

#endif

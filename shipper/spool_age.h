/* How old the oldest event the output has not taken is (for the metrics page). */
#ifndef QS_SHIPPER_SPOOL_AGE_H
#define QS_SHIPPER_SPOOL_AGE_H

#include <stdint.h>

struct qs_spool;

/* CLOCK_REALTIME at which the record at the output's cursor was spooled, read
 * from its header with one open and one pread; 0 when there is none or it
 * cannot be read (a damaged spot: the reader skips it anyway). */
uint64_t qs_spool_oldest_ns(const struct qs_spool *s);

#endif

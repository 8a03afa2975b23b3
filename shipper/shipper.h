#ifndef QS_SHIPPER_H
#define QS_SHIPPER_H

struct qs_config;

/* Entry point of the shipper process (after exec by the supervisor). Returns the exit status. */
int shipper_main(const struct qs_config *cfg);

#endif

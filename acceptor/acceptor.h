#ifndef QS_ACCEPTOR_H
#define QS_ACCEPTOR_H

struct qs_config;

/* Entry point of the acceptor process (after exec by the supervisor). Returns the exit status. */
int acceptor_main(const struct qs_config *cfg);

#endif

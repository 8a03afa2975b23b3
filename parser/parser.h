#ifndef QS_PARSER_H
#define QS_PARSER_H

struct qs_config;

/* Entry point of the parser process (after exec by the supervisor). Returns the exit status. */
int parser_main(const struct qs_config *cfg);

#endif

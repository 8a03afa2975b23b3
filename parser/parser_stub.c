/* Placeholder until the real parser lands. */
#include "parser/parser.h"
#include "common/log.h"
int parser_main(const struct qs_config *cfg) { (void)cfg; qs_err("parser not built yet"); return 1; }

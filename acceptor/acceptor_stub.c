/* Placeholder until the real acceptor lands. */
#include "acceptor/acceptor.h"
#include "common/log.h"
int acceptor_main(const struct qs_config *cfg) { (void)cfg; qs_err("acceptor not built yet"); return 1; }

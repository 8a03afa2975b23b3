/* Placeholder until the real shipper lands. */
#include "shipper/shipper.h"
#include "common/log.h"
int shipper_main(const struct qs_config *cfg) { (void)cfg; qs_err("shipper not built yet"); return 1; }
#include "shipper/spool_check.h"
int spool_check_main(const struct qs_config *cfg) { (void)cfg; return 2; }

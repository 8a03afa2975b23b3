/* quicstashd: one binary for every process. The supervisor re-execs this
 * binary with --role for each child; this file only dispatches, through the
 * role table (roles/table.c). */
#include <malloc.h>
#include <stdlib.h>

#include "common/config.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "roles/confine.h"
#include "roles/roles.h"
#include "shipper/spool_check.h"
#include "supervisor/supervisor.h"

int main(int argc, char **argv)
{
	static struct qs_config cfg;
	/* One malloc arena: glibc reads /proc/sys/vm/overcommit_memory the first
	 * time it shrinks a thread arena, and a confined child may open no file. */
	mallopt(M_ARENA_MAX, 1);
	switch (qs_config_parse(argc, argv, &cfg)) {
	case QS_CONFIG_EXIT_OK: return 0;
	case QS_CONFIG_ERROR: return 2;
	case QS_CONFIG_OK: break;
	}
	if (cfg.check_spool)
		return spool_check_main(&cfg);
	qs_log_init(qs_role_name(cfg.role), cfg.debug);
	qs_log_set_json(cfg.log_format == QS_LOG_FMT_JSON);
	const struct qs_role_def *def = qs_role_def(cfg.role);
	if (!def)
		return supervisor_main(&cfg, argc, argv);
	qs_confine_init(def);
	if (def->fds & QS_FD_PAGE) /* with --metrics-addr; else counters stay in private memory */
		qs_mp_attach(QS_CHILD_PAGE_FD);
	return def->main(&cfg);
}

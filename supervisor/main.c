/* quicstashd: one binary for every process. The supervisor re-execs this
 * binary with --role for each child; this file only dispatches. */
#include <malloc.h>
#include <stdlib.h>

#include "acceptor/acceptor.h"
#include "common/config.h"
#include "common/log.h"
#include "keyholder/keyholder.h"
#include "parser/parser.h"
#include "shipper/shipper.h"
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
	switch (cfg.role) {
	case QS_ROLE_ACCEPTOR: return acceptor_main(&cfg);
	case QS_ROLE_PARSER: return parser_main(&cfg);
	case QS_ROLE_SHIPPER: return shipper_main(&cfg);
	case QS_ROLE_KEYHOLDER: return keyholder_main(&cfg);
	case QS_ROLE_SUPERVISOR: break;
	}
	return supervisor_main(&cfg, argc, argv);
}

/* /healthz: the whole process tree is up (every process the configuration
 * asks for reports ready). /readyz: events can come in and be made durable:
 * a keyholder (handshakes), an acceptor, a parser, and a shipper that takes
 * events (not refusing for a full spool or a write error). */
#include <stdio.h>

#include "metrics/metrics.h"

struct need {
	enum qs_metric ready;
	const char *role;
	unsigned want;
};

static int tree(const struct qs_mview *v, bool whole, char *why, size_t len)
{
	const struct need n[] = {
		{QS_M_READY_KEYHOLDER, "keyholder", 1},
		{QS_M_READY_SHIPPER, "shipper", 1},
		{QS_M_READY_PARSER, "parser", whole ? v->want_parsers : 1},
		{QS_M_READY_ACCEPTOR, "acceptor", whole ? v->want_acceptors : 1},
	};
	for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
		unsigned long long have = qs_mp_get(v->sup, n[i].ready);
		if (have < n[i].want) {
			snprintf(why, len, "%s: %llu of %u ready", n[i].role, have, n[i].want);
			return -1;
		}
	}
	return 0;
}

int qs_health(const struct qs_mview *v, bool ready, char *why, size_t len)
{
	if (tree(v, !ready, why, len) < 0)
		return -1;
	if (!ready)
		return 0;
	if (qs_mview_sum(v, QS_M_SPOOL_FULL)) {
		snprintf(why, len, "spool full (%llu of %llu bytes): not accepting events",
			 qs_mview_sum(v, QS_M_SPOOL_BYTES), qs_mview_sum(v, QS_M_SPOOL_LIMIT));
		return -1;
	}
	if (qs_mview_sum(v, QS_M_SPOOL_ERROR)) {
		snprintf(why, len, "spool write error: not accepting events");
		return -1;
	}
	if (!qs_mview_sum(v, QS_M_SPOOL_ACCEPTING)) {
		snprintf(why, len, "shipper not accepting events");
		return -1;
	}
	return 0;
}

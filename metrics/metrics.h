#ifndef QS_METRICS_H
#define QS_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/metrics_page.h"

struct qs_config;
struct evbuffer;

/* The metrics process (--metrics-addr): serves /metrics, /healthz and /readyz
 * with libevent's HTTP server on the listening socket the supervisor made,
 * from the pages every process writes (common/metrics_page.h). It holds
 * neither the key nor the spool and sends nothing to anyone per scrape. */
int metrics_main(const struct qs_config *cfg);

/* The pages it reads: the supervisor's, then each slot's lanes (the
 * supervisor's directory, sup->dir, says whose: for per-process views later). */
struct qs_mview {
	const struct qs_mpage *sup;
	const struct qs_mpage **page;
	unsigned n;
	unsigned want_parsers, want_acceptors; /* the processes a whole tree runs */
};

/* The sum of metric m over every page. */
unsigned long long qs_mview_sum(const struct qs_mview *v, unsigned m);
/* Prometheus text format 0.0.4, or OpenMetrics 1.0 (openmetrics). */
void qs_expose(const struct qs_mview *v, struct evbuffer *out, bool openmetrics);
/* /healthz (ready: false) and /readyz: 0 when so, else -1 with the reason in why. */
int qs_health(const struct qs_mview *v, bool ready, char *why, size_t len);

#endif

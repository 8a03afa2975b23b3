/* The output's failover: when a connection (or the file) fails, say so once
 * per outage, rewind to the cursor, move on to the next --logstash-addr
 * entry, back off once every entry failed again, and have a named entry
 * looked up anew by the supervisor (the chrooted shipper cannot resolve). */
#include "shipper/output_parts.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "common/clock.h"
#include "common/log.h"
#include "ipc/ctl.h"
#include "shipper/peer.h"
#include "shipper/spool.h"

#define BACKOFF_MAX_MS 5000
/* A connection that lasted this long was healthy: its end starts a new
 * outage (first failures logged, backoff from the minimum). One that fails
 * sooner (a Logstash that takes the connection and then refuses us, as when
 * it requires a client certificate) keeps backing off. */
#define HEALTHY_MS 2000

/* A Logstash behind a name may move (a load balancer's addresses change, DNS
 * fails over): before connecting to a named entry again, the output asks the
 * supervisor to look it up anew, since the chrooted shipper cannot read
 * /etc. The answer usually arrives within the backoff; until then the last
 * address is used. */
static void ask_resolve(struct qs_output *o, unsigned i)
{
	char host[256];
	if (o->ctl_fd < 0 || qs_addr_host(o->cfg->logstash_name[i], host, sizeof(host)) < 0 || qs_addr_is_ip(host))
		return;
	struct qs_ctl_resolve m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_RESOLVE, o->cfg);
	snprintf(m.text, sizeof(m.text), "%s", o->cfg->logstash_name[i]);
	(void)qs_ctl_send(o->ctl_fd, &m, sizeof(m));
}

void qs_output_resolved(struct qs_output *o, const struct qs_ctl_resolved *m)
{
	for (unsigned i = 0; o->bal && i < o->cfg->logstash_count; i++)
		qs_output_resolved(out_balance_lane(o, i), m);
	if (m->addr_len == 0 || m->addr_len > sizeof(m->addr))
		return; /* it did not resolve (the supervisor logged why): keep the last address */
	for (unsigned i = 0; i < o->cfg->logstash_count; i++) {
		struct qs_addr *a = &o->addrs[i];
		if (strcmp(o->cfg->logstash_name[i], m->text) != 0 ||
		    (a->len == m->addr_len && !memcmp(&a->ss, &m->addr, m->addr_len)))
			continue;
		char was[64], now[64];
		unsigned port;
		qs_addr_ip_string((const struct sockaddr *)&a->ss, was, sizeof(was), &port);
		qs_addr_ip_string((const struct sockaddr *)&m->addr, now, sizeof(now), &port);
		if (a->len)
			qs_info("output logstash %s: now resolves to %s (was %s)", m->text, now, was);
		else
			qs_info("output logstash %s: resolves to %s", m->text, now);
		memcpy(&a->ss, &m->addr, m->addr_len);
		a->len = m->addr_len;
	}
}

/* QS_LOG_PEER: the output's name without its kind ("logstash HOST:PORT", "file PATH"). */
const char *out_log_peer(const struct qs_output *o)
{
	const char *sp = strchr(o->name, ' ');
	return sp ? sp + 1 : o->name;
}

/* Gives up on the current connection or file and tries the next address of
 * the list: at once while this outage has not yet tried every one, else
 * after a backoff. Resends from the cursor (what was fully written before
 * stays shipped). Each address's first failure in an outage is logged. */
void out_fail(struct qs_output *o, const char *what, int err)
{
	const struct qs_config *cfg = o->cfg;
	/* a lane stays on its host: its balancer gives its batches to the others */
	unsigned n = cfg->output_is_file || o->parent ? 1 : cfg->logstash_count, bit = 1u << o->addr;
	bool was_up = o->state >= QS_OUT_UP; /* up, or draining after our end of data */
	if (was_up && qs_now_ns() / 1000000 - o->up_since_ms >= HEALTHY_MS) {
		o->down_logged = 0;
		o->failures = 0;
		o->backoff_ms = BACKOFF_MIN_MS;
	}
	/* Losing a connection is always told (its "connected" was); failing to
	 * make one only the first time in an outage. */
	bool tell = !(o->down_logged & bit) || was_up;
	const char *sep = err ? ": " : "", *why = err ? strerror(err) : "";
	const struct qs_log_kv *kv = QS_KV({QS_LOG_PEER, out_log_peer(o)}, {QS_LOG_CODE, qs_log_errno_name(err)});
	if (tell && n > 1)
		qs_warn_kv(kv, "output %s: %s%s%s; trying %s next", o->name, what, sep, why,
			   cfg->logstash_name[(o->addr + 1) % n]);
	else if (tell)
		qs_warn_kv(kv, "output %s: %s%s%s; retrying every %u..%u ms", o->name, what, sep, why,
			   BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	o->down_logged |= bit;
	o->failures_total++;
	if (cfg->output_is_file)
		out_file_cut_back(o); /* before the close: it truncates through o->fd */
	out_close(o);
	o->state = QS_OUT_DOWN;
	o->redial = false;
	/* Resend everything that had not settled: Logstash may never have read it. */
	qs_settle_reset(&o->settle, QS_PEER_UNREAD_UNKNOWN);
	qs_reader_rewind(&o->rd, o->spool->cursor);
	if (o->parent)
		out_balance_lane_down(o->parent, o);
	if (!o->parent)
		o->addr = (o->addr + 1) % n;
	if (!cfg->output_is_file)
		ask_resolve(o, o->addr);
	unsigned delay = BACKOFF_MIN_MS;
	if (++o->failures % n == 0) { /* every address failed once more */
		delay = o->backoff_ms;
		o->backoff_ms = o->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : o->backoff_ms * 2;
	}
	struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
	evtimer_add(o->retry_ev, &tv);
}

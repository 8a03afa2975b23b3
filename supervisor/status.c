#include "supervisor/status.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "common/config.h"
#include "common/log.h"
#include "supervisor/metrics.h"
#include "supervisor/signers.h"
#include "supervisor/tenant_log.h"

static struct {
	bool output_is_file;
	unsigned logstash_count, interval_s;
	uint64_t log_start_ms, log_acked, log_rejected; /* since the last stats line */
	struct qs_procs *procs;
	const unsigned *restarts;
	struct event *tick;
	uint64_t window_start_ms;
	uint64_t acked, rejected; /* in the current window */
	double acked_rate, rejected_rate;
	bool have_rate;
} S;

void qs_status_report(struct qs_proc *c, const struct qs_ctl_status_msg *m)
{
	/* Totals restart at 0 with every process: count what is new since its last report. */
	const struct qs_ctl_status *prev = c->have_st && c->st_gen == m->h.generation ? &c->st : NULL;
	S.acked += m->st.acked - (prev && prev->acked <= m->st.acked ? prev->acked : 0);
	S.rejected += m->st.rejected - (prev && prev->rejected <= m->st.rejected ? prev->rejected : 0);
	c->st = m->st;
	memcpy(c->st_text, m->text, sizeof(c->st_text));
	c->st_gen = m->h.generation;
	c->have_st = true;
}

void qs_status_gone(struct qs_proc *c)
{
	c->have_st = false;
}

static void human_bytes(char *buf, size_t len, uint64_t n)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

/* Appends to buf at *off, never past len. */
__attribute__((format(printf, 4, 5))) static void add(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	if (*off >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

static void format_output(char *buf, size_t len, size_t *off, const struct qs_proc *c)
{
	const struct qs_ctl_status *sh = &c->st;
	const char *name = strncmp(c->st_text, "logstash ", 9) ? "" : c->st_text + 9;
	char backlog[32], spool[32], limit[32];
	human_bytes(backlog, sizeof(backlog), sh->backlog);
	if (S.output_is_file)
		add(buf, len, off, "; output file %s", sh->output_up ? "open" : "DOWN");
	else if (S.logstash_count > 1 && sh->output_up)
		add(buf, len, off, "; Logstash up at %s", name);
	else
		add(buf, len, off, "; Logstash %s", sh->output_up ? "up" : "DOWN");
	add(buf, len, off, ", backlog %s", backlog);
	if (sh->accepting)
		return;
	human_bytes(spool, sizeof(spool), sh->spool_bytes);
	human_bytes(limit, sizeof(limit), sh->spool_limit);
	add(buf, len, off, "; NOT ACCEPTING events (spool %s of %s): clients held back", spool, limit);
}

void qs_status_format(char *buf, size_t len)
{
	struct qs_procs *p = S.procs;
	size_t off = 0;
	uint64_t conns = 0;
	const struct qs_proc *sh = NULL;
	for (unsigned i = 0; i < p->n; i++) {
		struct qs_proc *c = &p->proc[i];
		if (!c->pid || !c->have_st)
			continue;
		if (c->role == QS_ROLE_ACCEPTOR)
			conns += c->st.connections;
		else if (c->role == QS_ROLE_SHIPPER)
			sh = c;
	}
	add(buf, len, &off, "%u acceptors, %u parsers, %u shipper running", qs_procs_running(p, QS_ROLE_ACCEPTOR),
	    qs_procs_running(p, QS_ROLE_PARSER), qs_procs_running(p, QS_ROLE_SHIPPER));
	add(buf, len, &off, "; %" PRIu64 " connections", conns);
	if (S.have_rate) {
		add(buf, len, &off, "; %.0f events/s acknowledged", S.acked_rate);
		if (S.rejected_rate > 0)
			add(buf, len, &off, ", %.0f/s rejected", S.rejected_rate);
	}
	if (sh)
		format_output(buf, len, &off, sh);
	add(buf, len, &off, "; %u restarts", *S.restarts);
}

void qs_status_notify(void)
{
	char line[512];
	qs_status_format(line, sizeof(line));
	sd_notifyf(0, "STATUS=%s", line);
}

static void log_stats(uint64_t now)
{
	S.log_acked += S.acked;
	S.log_rejected += S.rejected;
	if (!S.interval_s || now - S.log_start_ms < S.interval_s * 1000ull)
		return;
	char line[512];
	qs_status_format(line, sizeof(line));
	double secs = (double)(now - S.log_start_ms) / 1e3;
	qs_info("stats, last %.0f s: %" PRIu64 " events acknowledged (%.0f/s), %" PRIu64 " rejected; now %s", secs,
		S.log_acked, (double)S.log_acked / secs, S.log_rejected, line);
	qs_sup_tenant_log(S.procs);
	S.log_acked = S.log_rejected = 0;
	S.log_start_ms = now;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	uint64_t now = qs_now_ms();
	double secs = (double)(now - S.window_start_ms) / 1e3;
	if (secs > 0) {
		S.acked_rate = (double)S.acked / secs;
		S.rejected_rate = (double)S.rejected / secs;
		S.have_rate = true;
	}
	log_stats(now);
	qs_sup_metrics_queues(S.procs, NULL);
	qs_signers_retry(S.procs);
	qs_log_tick();
	S.acked = S.rejected = 0;
	S.window_start_ms = now;
	qs_status_notify();
}

void qs_status_configure(const struct qs_config *cfg)
{
	S.output_is_file = cfg->output_is_file;
	S.logstash_count = cfg->logstash_count;
	S.interval_s = cfg->stats_interval_s;
}

int qs_status_init(const struct qs_config *cfg, struct qs_procs *p, struct event_base *base,
		   const unsigned *restarts)
{
	static const struct timeval second = {1, 0};
	qs_status_configure(cfg);
	S.procs = p;
	S.restarts = restarts;
	S.window_start_ms = S.log_start_ms = qs_now_ms();
	S.tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	return S.tick && event_add(S.tick, &second) == 0 ? 0 : -1;
}

void qs_status_free(void)
{
	if (S.tick)
		event_free(S.tick);
	S.tick = NULL;
}

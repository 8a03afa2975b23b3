/* The output's API for the shipper (output.h): setting it up and freeing it,
 * new commits to ship, the freeze before a stop, and how far it got. The
 * work is done in one file per job (output_parts.h lists them). */
#include "shipper/output.h"
#include "shipper/output_parts.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shipper/spool.h"
#include "shipper/tls_out.h"

#define SETTLE_TICK_MS 100

int qs_output_open(const struct qs_config *cfg, struct qs_output_opened *op)
{
	*op = (struct qs_output_opened){.file_fd = qs_output_open_file(cfg)};
	op->tls = qs_output_tls_load(cfg);
	op->amqp = qs_output_amqp_load(cfg);
	if (op->file_fd != -1 && (!cfg->logstash_tls || op->tls) && (!cfg->output_is_amqp || op->amqp))
		return 0;
	qs_output_opened_free(op);
	return -1;
}

void qs_output_opened_free(struct qs_output_opened *op)
{
	if (op->file_fd >= 0)
		close(op->file_fd);
	qs_tls_creds_free(op->tls);
	qs_amqp_creds_free(op->amqp);
	*op = (struct qs_output_opened){.file_fd = -2};
}

static const struct out_kind *kind_of(const struct qs_config *cfg)
{
	if (cfg->output_is_file)
		return &out_kind_file;
	if (!cfg->output_is_amqp && cfg->logstash_balance == QS_BALANCE_ROUND_ROBIN && cfg->logstash_count > 1)
		return &out_kind_balance;
	return cfg->output_is_amqp ? &out_kind_amqp : &out_kind_logstash;
}

int out_init(struct qs_output *o, const struct qs_config *cfg, struct event_base *base, struct qs_spool *spool,
	     const struct out_kind *kind)
{
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->ctl_fd = -1;
	o->file_fd = -1;
	memcpy(o->addrs, cfg->logstash_addr, sizeof(o->addrs));
	o->cfg = cfg;
	o->base = base;
	o->spool = spool;
	o->fd = -1;
	o->backoff_ms = BACKOFF_MIN_MS;
	qs_reader_init(&o->rd, spool->cursor);
	o->retry_ev = evtimer_new(base, out_on_retry, o);
	o->run_ev = event_new(base, -1, 0, out_on_run, o);
	o->settle_ev = event_new(base, -1, EV_PERSIST, out_on_settle, o);
	o->estab_ev = evtimer_new(base, out_on_establish_timeout, o);
	if (!o->retry_ev || !o->run_ev || !o->settle_ev || !o->estab_ev)
		return -1;
	struct timeval tick = {0, SETTLE_TICK_MS * 1000};
	event_add(o->settle_ev, &tick);
	if (cfg->output_is_file)
		snprintf(o->name, sizeof(o->name), "file %s", cfg->output_path);
	else
		snprintf(o->name, sizeof(o->name), "%s %s", kind->name, cfg->logstash_name[0]);
	return 0;
}

int qs_output_init(struct qs_output *o, const struct qs_config *cfg, struct event_base *base,
		   struct qs_spool *spool, struct qs_output_opened *op)
{
	int rc = out_init(o, cfg, base, spool, kind_of(cfg));
	o->tls_creds = op->tls;
	o->file_fd = op->file_fd;
	*op = (struct qs_output_opened){.file_fd = -2, .amqp = op->amqp};
	if (rc || (cfg->output_is_amqp && out_amqp_init(o, op)))
		return -1;
	if (o->tls_creds && o->kind != &out_kind_balance && !(o->tls_buf = malloc(TLS_CHUNK)))
		return -1;
	if (o->kind == &out_kind_balance && out_balance_init(o))
		return -1;
	out_start(o);
	return 0;
}

/* Nothing the tick would do: not draining, not frozen, and up with all that
 * it wrote proven read, or not up at all (its reconnection has a timer of
 * its own). Only the failover output of Logstash: a lane of a balancer, the
 * file and AMQP keep their tick. */
static bool tick_idle(const struct qs_output *o)
{
	if (o->kind != &out_kind_logstash || o->parent || o->frozen || o->state == QS_OUT_DRAINING)
		return false;
	return o->state != QS_OUT_UP ||
	       (o->idle && !o->tls_pending && !o->unanswered_since_ms && !qs_settle_pending(&o->settle));
}

void out_tick_pace(struct qs_output *o)
{
	bool slow = tick_idle(o);
	if (slow == o->tick_slow)
		return;
	o->tick_slow = slow;
	struct timeval tv = {0, SETTLE_TICK_MS * 1000};
	if (slow)
		event_del(o->settle_ev); /* qs_output_pace, once a second, looks again */
	else
		event_add(o->settle_ev, &tv);
}

void qs_output_pace(struct qs_output *o)
{
	out_tick_pace(o);
}

void out_advance(struct qs_output *o, struct qs_pos pos)
{
	if (o->parent)
		out_balance_settled(o->parent, o);
	else
		qs_spool_advance(o->spool, pos);
}

/* Small commits linger (--logstash-linger) so that several go to Logstash in
 * one write: at everyday rates a group commit holds a few events, and a write
 * of each woke Logstash and cost us a TCP send per millisecond. Their
 * acknowledgements went out already; the records are durable and taken from
 * memory when the write comes (qs_reader_offer). A file, AMQP (confirms of
 * its own) and a stop's drain are written at once. */
static bool lingers(const struct qs_output *o)
{
	return o->cfg->logstash_linger_ms && !o->frozen && o->linger_bytes < OUT_LINGER_BYTES &&
	       (o->kind == &out_kind_logstash || o->kind == &out_kind_balance);
}

void qs_output_kick(struct qs_output *o, struct qs_pos pos, const uint8_t *buf, size_t len)
{
	if (o->state != QS_OUT_UP)
		return;
	if (qs_reader_offer(&o->rd, pos.seg, pos.off, buf, len))
		o->offered++;
	o->linger_bytes += len;
	if (!lingers(o)) {
		event_active(o->run_ev, 0, 0);
	} else if (!event_pending(o->run_ev, EV_TIMEOUT, NULL)) {
		struct timeval tv = {0, (suseconds_t)o->cfg->logstash_linger_ms * 1000};
		event_add(o->run_ev, &tv);
	}
}

void qs_output_freeze(struct qs_output *o)
{
	o->frozen = true;
	o->limit = qs_spool_end(o->spool);
	if (event_pending(o->run_ev, EV_TIMEOUT, NULL))
		event_active(o->run_ev, 0, 0); /* lingering commits go now */
	out_tick_pace(o);
}

/* The limit moves back to the end of the record being written (a record
 * is never cut: Logstash would read half a line), or to what is written. */
void qs_output_stop_writing(struct qs_output *o)
{
	const struct qs_reader *r = &o->rd;
	struct qs_pos at = qs_reader_done(r);
	if (r->idx < r->n && r->partial > 0)
		at = (struct qs_pos){.seg = r->pos.seg, .off = r->recs[r->idx].end};
	if (qs_pos_after(o->limit, at))
		o->limit = at;
	out_tick_pace(o);
}

bool qs_output_caught_up(struct qs_output *o)
{
	return o->kind->caught_up(o);
}

/* The json_lines kinds: all written, and (TCP) proven read, by a drain if need be. */
bool out_stream_caught_up(struct qs_output *o)
{
	if (o->drained || out_unconnected(o))
		return true;
	if (o->state != QS_OUT_UP)
		return false; /* DRAINING: until Logstash's close proves it read all */
	long avail = qs_reader_fill(&o->rd, o->spool);
	out_written(o, 0, qs_reader_done(&o->rd));
	out_settle(o);
	o->idle = avail == 0 || out_past_limit(o);
	if (!o->idle || !qs_settle_pending(&o->settle))
		return o->idle;
	out_drain_tick(o); /* frozen: prove it now rather than at the next tick */
	return false;
}

uint64_t qs_output_unsent(const struct qs_output *o)
{
	struct qs_pos from = o->spool->cursor;
	if (!o->bal && o->state >= QS_OUT_UP && qs_pos_after(qs_reader_done(&o->rd), from))
		from = qs_reader_done(&o->rd);
	return qs_spool_bytes_after(o->spool, from);
}

void qs_output_report(const struct qs_output *o, struct qs_output_report *r)
{
	*r = (struct qs_output_report){.state = o->state, .name = o->name, .connects = o->connects,
				       .failures = o->failures_total, .written = o->bal ? 0 : o->rd.shipped};
	if (o->amqp)
		out_amqp_report(o, r);
	for (unsigned i = 0; o->bal && i < o->cfg->logstash_count; i++) { /* a balancer: its lanes' sums */
		const struct qs_output *l = out_balance_lane((struct qs_output *)o, i);
		r->connects += l->connects;
		r->failures += l->failures_total;
		r->written += l->rd.shipped;
	}
}

void qs_output_free(struct qs_output *o)
{
	out_balance_free(o); /* first: the lanes use the balancer's TLS credentials */
	if (o->state == QS_OUT_UP)
		qs_tls_bye(o->tls);
	out_close(o);
	if (o->base && o->file_fd >= 0) /* only once qs_output_init owned it */
		close(o->file_fd);
	o->file_fd = -1;
	if (o->retry_ev) event_free(o->retry_ev);
	if (o->run_ev) event_free(o->run_ev);
	if (o->settle_ev) event_free(o->settle_ev);
	if (o->estab_ev) event_free(o->estab_ev);
	o->estab_ev = NULL;
	free(o->tls_buf);
	o->tls_buf = NULL;
	qs_tls_creds_free(o->tls_creds);
	o->tls_creds = NULL;
	qs_reader_free(&o->rd);
	out_amqp_free(o);
	o->retry_ev = o->run_ev = o->settle_ev = NULL;
}

/* The RabbitMQ output (-l amqp://HOST:PORT/VHOST,...): one persistent
 * message (delivery mode 2) per event, published with mandatory set on a
 * channel in confirm mode. The cursor moves past an event only when the
 * broker confirmed it (basic.ack, alone or "multiple"): for a quorum queue
 * that is once a majority of its replicas wrote it. A nack, a returned
 * (unroutable) message, a closed channel or a lost connection drop the
 * connection, and the next one (the next node of the list, out_fail)
 * publishes again from the cursor: duplicates carry the same event.id.
 *
 * librabbitmq: the TCP connect is the output's own (non-blocking,
 * out_tcp_connect), then the socket is handed to librabbitmq. Its handshake
 * (login, channel, confirm mode, the exchange's check; amqps:// connects and
 * verifies first) waits for the broker's answers, on a thread of its own
 * (output_amqp_dial.h): the loop goes on acknowledging meanwhile. Once up,
 * the loop alone uses the connection and nothing waits: confirms are read with a zero
 * timeout when the socket is readable, and a message is published only
 * when the socket's send buffer has room for it (else the loop waits for it
 * to be writable), within a window of unconfirmed messages (AMQP_WINDOW,
 * AMQP_WINDOW_BYTES): a broker confirms a persistent message once it is on
 * disk, in batches, so the window bounds the rate (window / confirm time). */
#include "shipper/output_parts.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <event2/event.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "shipper/output_amqp_dial.h"
#include "shipper/spool.h"

#define AMQP_WINDOW 16384                   /* unconfirmed messages at most */
#define AMQP_WINDOW_BYTES (8u * 1024 * 1024) /* and their bytes */

struct inflight {
	struct qs_pos pos; /* after this event (and after what was skipped behind it) */
	uint64_t sent_ms;
	uint32_t len;
	bool acked;
};

struct out_amqp {
	struct qs_amqp_creds *creds;
	amqp_connection_state_t conn;
	struct inflight ring[AMQP_WINDOW];
	unsigned head, count;
	uint64_t head_tag;  /* delivery tag of ring[head] */
	uint64_t next_tag;  /* the next publish's tag (1 on a new channel) */
	uint64_t bytes;     /* of the unconfirmed messages */
	uint64_t confirmed; /* since start */
	bool blocked; /* connection.blocked until connection.unblocked: nothing is published */
	struct qs_amqp_dial dial; /* the handshake in progress, if any */
};

static void handshake_done(void *arg, const char *why);

int out_amqp_init(struct qs_output *o, struct qs_output_opened *op)
{
	struct qs_amqp_creds *c = op->amqp;
	op->amqp = NULL;
	if (!c)
		return -1;
	o->amqp = calloc(1, sizeof(*o->amqp));
	if (!o->amqp) {
		qs_amqp_creds_free(c);
		return -1;
	}
	o->amqp->creds = c;
	return qs_amqp_dial_init(&o->amqp->dial, o->base, handshake_done, o);
}

void out_amqp_free(struct qs_output *o)
{
	if (!o->amqp)
		return;
	qs_amqp_dial_free(&o->amqp->dial);
	qs_amqp_creds_free(o->amqp->creds);
	explicit_bzero(o->amqp, sizeof(*o->amqp));
	free(o->amqp);
	o->amqp = NULL;
}

void out_amqp_report(const struct qs_output *o, struct qs_output_report *r)
{
	r->confirmed = o->amqp->confirmed;
	r->in_flight = o->amqp->count;
}

/* The socket is librabbitmq's once handed over: it closes it. */
static void amqp_close(struct qs_output *o)
{
	struct out_amqp *a = o->amqp;
	qs_amqp_dial_abort(&a->dial);
	if (a->conn) {
		amqp_destroy_connection(a->conn);
		o->fd = -1;
	}
	a->conn = NULL;
	a->head = a->count = 0;
	a->bytes = 0;
	a->blocked = false;
}

/* The handshake's thread takes the connection: on a TCP socket already
 * connected (fd), or amqps:// opening its own. The connect's deadline gives
 * way to the thread's own bounds (5 s a step, output_amqp_dial.c). */
static void dial(struct qs_output *o, int fd, bool tls)
{
	struct out_amqp *a = o->amqp;
	struct qs_amqp_target t = {.cfg = o->cfg, .creds = a->creds, .timeout_s = o->cfg->logstash_timeout_s};
	snprintf(t.name, sizeof(t.name), "%s", o->cfg->logstash_name[o->addr]);
	memcpy(&t.ss, &o->addrs[o->addr].ss, sizeof(t.ss));
	evtimer_del(o->estab_ev);
	o->state = QS_OUT_HANDSHAKE;
	if (qs_amqp_dial_start(&a->dial, a->conn, fd, tls, &t) < 0)
		out_fail(o, a->dial.why, 0);
}

static void amqp_connected(struct qs_output *o)
{
	struct out_amqp *a = o->amqp;
	a->conn = amqp_new_connection();
	amqp_socket_t *s = a->conn ? amqp_tcp_socket_new(a->conn) : NULL;
	if (!s)
		return out_fail(o, "cannot set up an AMQP connection", ENOMEM);
	amqp_tcp_socket_set_sockfd(s, o->fd);
	dial(o, o->fd, false);
}

/* amqp:// connects on the loop (out_tcp_connect); amqps:// through
 * librabbitmq's TLS socket, which connects and shakes hands itself on the
 * handshake's thread, each bounded by the handshake's limit. */
static void amqp_start(struct qs_output *o)
{
	if (!o->cfg->amqp_tls)
		return out_tcp_connect(o);
	struct out_amqp *a = o->amqp;
	snprintf(o->name, sizeof(o->name), "%s %s", o->kind->name, o->cfg->logstash_name[o->addr]);
	if (o->addrs[o->addr].len == 0)
		return out_fail(o, "the name does not resolve (yet)", 0);
	a->conn = amqp_new_connection();
	if (!a->conn)
		return out_fail(o, "cannot set up an AMQP connection", ENOMEM);
	dial(o, -1, true);
}

/* The handshake's thread ended: up, or the next attempt. */
static void handshake_done(void *arg, const char *why)
{
	struct qs_output *o = arg;
	struct out_amqp *a = o->amqp;
	if (o->cfg->amqp_tls && o->fd < 0)
		o->fd = amqp_get_sockfd(a->conn); /* its TLS socket: librabbitmq's to close */
	if (why[0])
		return out_fail(o, why, 0);
	if (o->cfg->amqp_tls) {
		o->wev = event_new(o->base, o->fd, EV_WRITE, out_on_writable, o);
		o->rev = event_new(o->base, o->fd, EV_READ | EV_PERSIST, out_on_readable, o);
	}
	o->state = QS_OUT_UP;
	o->connects++;
	o->up_since_ms = qs_now_ns() / 1000000;
	a->head_tag = a->next_tag = 1;
	qs_info("output %s: connected%s (vhost %s, publisher confirms), publishing from the cursor", o->name,
		o->cfg->amqp_tls ? " (TLS, certificate verified)" : "", o->cfg->amqp_vhost);
	qs_reader_rewind(&o->rd, o->spool->cursor);
	event_add(o->rev, NULL);
	o->kind->run(o);
}

/* The reader reached pos with nothing more to publish before it (a segment's
 * end, skipped damage): it is taken once everything before it is. */
static void mark(struct qs_output *o, struct qs_pos pos)
{
	struct out_amqp *a = o->amqp;
	if (!a->count)
		qs_spool_advance(o->spool, pos);
	else
		a->ring[(a->head + a->count - 1) % AMQP_WINDOW].pos = pos;
}

/* Confirms from the oldest on move the cursor; a later one waits for those
 * before it (the broker may confirm out of order). */
static void confirm(struct qs_output *o, uint64_t tag, bool multiple)
{
	struct out_amqp *a = o->amqp;
	if (tag < a->head_tag || tag - a->head_tag >= a->count)
		return; /* not ours (a tag of a channel before) or already confirmed */
	for (uint64_t t = multiple ? a->head_tag : tag; t <= tag; t++)
		a->ring[(a->head + (t - a->head_tag)) % AMQP_WINDOW].acked = true;
	bool moved = false;
	struct qs_pos pos = {0};
	while (a->count && a->ring[a->head].acked) {
		struct inflight *f = &a->ring[a->head];
		pos = f->pos;
		a->bytes -= f->len;
		f->acked = false;
		a->head = (a->head + 1) % AMQP_WINDOW;
		a->count--;
		a->head_tag++;
		a->confirmed++;
		moved = true;
	}
	if (moved)
		qs_spool_advance(o->spool, pos);
}

static bool window_full(const struct out_amqp *a)
{
	return a->count >= AMQP_WINDOW || a->bytes >= AMQP_WINDOW_BYTES;
}

static void broker_closed(struct qs_output *o, const char *what, uint16_t code, amqp_bytes_t text)
{
	char why[1024];
	snprintf(why, sizeof(why), "%s: %u %.*s", what, code, (int)text.len, (const char *)text.bytes);
	out_fail(o, why, 0);
}

/* One frame from the broker; false when it ended the connection. */
static bool on_frame(struct qs_output *o, const amqp_frame_t *f)
{
	if (f->frame_type != AMQP_FRAME_METHOD)
		return true; /* a returned message's header and body: its method already failed us */
	const void *m = f->payload.method.decoded;
	switch (f->payload.method.id) {
	case AMQP_BASIC_ACK_METHOD:
		confirm(o, ((const amqp_basic_ack_t *)m)->delivery_tag, ((const amqp_basic_ack_t *)m)->multiple);
		return true;
	case AMQP_BASIC_NACK_METHOD:
		out_fail(o, "the broker refused a message (nack); publishing again from the cursor", 0);
		return false;
	case AMQP_BASIC_RETURN_METHOD: {
		const amqp_basic_return_t *r = m;
		char what[512];
		snprintf(what, sizeof(what), "a message was returned unroutable (routing key '%s': no queue bound?)",
			 o->cfg->amqp_routing_key);
		broker_closed(o, what, r->reply_code, r->reply_text);
		return false;
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		const amqp_channel_close_t *c = m;
		broker_closed(o, "the broker closed the channel", c->reply_code, c->reply_text);
		return false;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		const amqp_connection_close_t *c = m;
		broker_closed(o, "the broker closed the connection", c->reply_code, c->reply_text);
		return false;
	}
	case AMQP_CONNECTION_BLOCKED_METHOD:
		/* It stops reading us: a publish would wait in librabbitmq (one
		 * larger than the send buffer held the loop until the alarm ended),
		 * and the writable socket woke the loop for nothing. Events go on
		 * into the spool. */
		if (!o->amqp->blocked)
			qs_warn("output %s: the broker blocks publishers (a resource alarm): publishing paused", o->name);
		o->amqp->blocked = true;
		return true;
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		if (o->amqp->blocked)
			qs_info("output %s: the broker takes publishes again", o->name);
		o->amqp->blocked = false;
		event_active(o->run_ev, 0, 0);
		return true;
	default:
		return true;
	}
}

/* Reads what the broker sent, never waiting: confirms, or its end. */
static void pump(struct qs_output *o)
{
	struct out_amqp *a = o->amqp;
	struct timeval zero = {0, 0};
	bool was_full = window_full(a);
	while (o->state == QS_OUT_UP) {
		amqp_frame_t f;
		int rc = amqp_simple_wait_frame_noblock(a->conn, &f, &zero);
		if (rc == AMQP_STATUS_TIMEOUT)
			break;
		if (rc != AMQP_STATUS_OK)
			return out_fail(o, rc == AMQP_STATUS_CONNECTION_CLOSED ? "connection closed by the broker"
										: amqp_error_string2(rc), 0);
		if (!on_frame(o, &f))
			return;
	}
	amqp_maybe_release_buffers(a->conn);
	if (was_full && !window_full(a))
		event_active(o->run_ev, 0, 0);
}

static void amqp_readable(struct qs_output *o)
{
	if (o->state == QS_OUT_UP)
		pump(o);
}

static int publish(struct qs_output *o, const struct qs_rview *v)
{
	const struct qs_config *cfg = o->cfg;
	amqp_basic_properties_t props = {
		._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG,
		.delivery_mode = AMQP_DELIVERY_PERSISTENT,
		.content_type = amqp_cstring_bytes("application/json"),
	};
	size_t len = v->len;
	const uint8_t *p = o->rd.buf + v->data;
	if (len && p[len - 1] == '\n')
		len--; /* the spool keeps json_lines; a message is the event alone */
	amqp_bytes_t body = {.len = len, .bytes = (void *)p};
	qs_mp_add(QS_M_OUT_BYTES, len);
	return amqp_basic_publish(o->amqp->conn, AMQP_CHANNEL, amqp_cstring_bytes(cfg->amqp_exchange),
				  amqp_cstring_bytes(cfg->amqp_routing_key), 1, 0, &props, body);
}

#define AMQP_ROOM_RETRY_MS 10 /* a full send buffer is looked at again this often */

/* A publish must not wait for the broker (librabbitmq would block until the
 * socket took it all): room in the send buffer for the message, counted
 * twice for the kernel's overhead. An empty buffer takes any message (one
 * larger than the buffer waits only for the broker reading it). */
static bool room_for(const struct qs_output *o, size_t len)
{
	int outq = 0, sndbuf = 0;
	socklen_t sl = sizeof(sndbuf);
	if (ioctl(o->fd, SIOCOUTQ, &outq) != 0 || getsockopt(o->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) != 0 || outq <= 0)
		return true;
	return (uint64_t)outq + 2 * (uint64_t)len + 4096 <= (uint64_t)sndbuf / 2;
}

/* Publishes what the spool holds after the reader, up to the window. */
static void amqp_run(struct qs_output *o)
{
	struct out_amqp *a = o->amqp;
	while (o->state == QS_OUT_UP && !window_full(a) && !a->blocked) {
		long avail = qs_reader_fill(&o->rd, o->spool);
		mark(o, qs_reader_done(&o->rd));
		if (avail < 0)
			return out_fail(o, "spool read error", errno);
		if (avail == 0 || out_past_limit(o)) {
			o->idle = true;
			break;
		}
		o->idle = false;
		const struct qs_rview *v = &o->rd.recs[o->rd.idx];
		if (!room_for(o, v->len)) {
			/* Not on writable: the kernel says writable up to two thirds of
			 * the buffer, room_for wants half, and the loop spun between the
			 * two at a full CPU while the broker read slowly. */
			static const struct timeval later = {0, AMQP_ROOM_RETRY_MS * 1000};
			event_add(o->run_ev, &later);
			break;
		}
		int rc = publish(o, v);
		if (rc != AMQP_STATUS_OK)
			return out_fail(o, amqp_error_string2(rc), 0);
		qs_reader_consume(&o->rd, v->len);
		a->ring[(a->head + a->count) % AMQP_WINDOW] =
			(struct inflight){.pos = qs_reader_done(&o->rd), .sent_ms = qs_now_ns() / 1000000, .len = v->len};
		a->count++;
		a->next_tag++;
		a->bytes += v->len;
	}
	if (o->state == QS_OUT_UP)
		pump(o);
}

/* A confirm that never comes (a partitioned node keeps the connection but
 * cannot reach a majority) ends the connection after --logstash-timeout. */
static void amqp_tick(struct qs_output *o)
{
	struct out_amqp *a = o->amqp;
	if (o->state != QS_OUT_UP)
		return;
	out_watch_peer(o);
	uint64_t now = qs_now_ns() / 1000000;
	if (o->state == QS_OUT_UP && a->count && now - a->ring[a->head].sent_ms >= o->cfg->logstash_timeout_s * 1000ull) {
		char what[96];
		snprintf(what, sizeof(what), "no publisher confirm for %u s", o->cfg->logstash_timeout_s);
		out_fail(o, what, ETIMEDOUT);
	} else if (o->state == QS_OUT_UP && !a->count) {
		o->kind->run(o); /* a freeze or new commits while idle */
	}
}

static bool amqp_caught_up(struct qs_output *o)
{
	if (out_unconnected(o))
		return true;
	if (o->state != QS_OUT_UP)
		return false;
	long avail = qs_reader_fill(&o->rd, o->spool);
	mark(o, qs_reader_done(&o->rd));
	o->idle = avail == 0 || out_past_limit(o);
	return o->idle && !o->amqp->count;
}

const struct out_kind out_kind_amqp = {
	.name = "amqp",
	.start = amqp_start,
	.connected = amqp_connected,
	.run = amqp_run,
	.readable = amqp_readable,
	.tick = amqp_tick,
	.caught_up = amqp_caught_up,
	.close = amqp_close,
};

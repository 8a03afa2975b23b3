/* The AMQP handshake on a thread of its own: why and how in
 * output_amqp_dial.h. Login, a channel in confirm mode and a passive check
 * that the exchange exists (the default exchange always does), each bounded
 * by AMQP_RPC_MAX_S; for amqps:// the TLS socket is opened first. A wrong
 * password, an unknown vhost or a missing exchange is one clear line, not a
 * silent loss. */
#include "shipper/output_amqp_dial.h"

#include <amqp_framing.h>
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

#define AMQP_RPC_MAX_S 5 /* one handshake step's wait */
#define AMQP_FRAME_MAX 131072

/* A broker's refusal or a library error, in one line. */
static void describe(amqp_rpc_reply_t r, char *buf, size_t n)
{
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		snprintf(buf, n, "%s", amqp_error_string2(r.library_error));
	} else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		const amqp_connection_close_t *m = r.reply.decoded;
		snprintf(buf, n, "the broker closed the connection: %u %.*s", m->reply_code, (int)m->reply_text.len,
			 (const char *)m->reply_text.bytes);
	} else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		const amqp_channel_close_t *m = r.reply.decoded;
		snprintf(buf, n, "the broker closed the channel: %u %.*s", m->reply_code, (int)m->reply_text.len,
			 (const char *)m->reply_text.bytes);
	} else {
		snprintf(buf, n, "no answer");
	}
}

static bool refused(struct qs_amqp_dial *d, const char *step, amqp_rpc_reply_t r)
{
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return false;
	char why[400];
	describe(r, why, sizeof(why));
	snprintf(d->why, sizeof(d->why), "%s: %s", step, why);
	return true;
}

static void handshake(struct qs_amqp_dial *d)
{
	const struct qs_config *cfg = d->target.cfg;
	amqp_connection_state_t c = d->conn;
	struct timeval tv = {d->target.timeout_s < AMQP_RPC_MAX_S ? d->target.timeout_s : AMQP_RPC_MAX_S, 0};
	amqp_set_handshake_timeout(c, &tv);
	amqp_set_rpc_timeout(c, &tv);
	/* connection.blocked: a broker in a resource alarm says so before it
	 * stops reading us (it tells only a client that says it understands) */
	amqp_table_entry_t cap = {.key = amqp_cstring_bytes("connection.blocked"),
				  .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}};
	amqp_table_entry_t prop = {.key = amqp_cstring_bytes("capabilities"),
				   .value = {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {1, &cap}}};
	amqp_table_t props = {1, &prop};
	if (refused(d, "login",
		    amqp_login_with_properties(c, cfg->amqp_vhost, 0, AMQP_FRAME_MAX, 0, &props, AMQP_SASL_METHOD_PLAIN,
					       d->target.creds->user, d->target.creds->pass)))
		return;
	amqp_channel_open(c, AMQP_CHANNEL);
	if (refused(d, "opening a channel", amqp_get_rpc_reply(c)))
		return;
	amqp_confirm_select(c, AMQP_CHANNEL);
	if (refused(d, "publisher confirms", amqp_get_rpc_reply(c)) || !cfg->amqp_exchange[0])
		return;
	amqp_exchange_declare(c, AMQP_CHANNEL, amqp_cstring_bytes(cfg->amqp_exchange), amqp_cstring_bytes("direct"), 1,
			      0, 0, 0, amqp_empty_table);
	char step[320];
	snprintf(step, sizeof(step), "exchange '%s'", cfg->amqp_exchange);
	refused(d, step, amqp_get_rpc_reply(c));
}

static void *dial_thread(void *arg)
{
	struct qs_amqp_dial *d = arg;
	if (d->tls) {
		char err[400];
		if (out_amqps_open(&d->target, d->conn, err, sizeof(err)) < 0)
			snprintf(d->why, sizeof(d->why), "%s", err);
		else
			atomic_store(&d->fd, amqp_get_sockfd(d->conn));
	}
	/* after publishing fd: an abort that did not see it is seen here */
	if (!d->why[0] && atomic_load(&d->abort))
		snprintf(d->why, sizeof(d->why), "stopped");
	if (!d->why[0])
		handshake(d);
	uint64_t one = 1;
	if (write(d->efd, &one, sizeof(one)) != sizeof(one))
		qs_err("amqp handshake: cannot tell the loop: %s", strerror(errno));
	return NULL;
}

static void join(struct qs_amqp_dial *d)
{
	uint64_t n;
	pthread_join(d->thread, NULL);
	d->running = false;
	if (read(d->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		qs_warn("amqp handshake: eventfd: %s", strerror(errno));
}

static void on_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_amqp_dial *d = arg;
	if (!d->running)
		return;
	join(d);
	d->done(d->arg, d->why);
}

int qs_amqp_dial_init(struct qs_amqp_dial *d, struct event_base *base, qs_amqp_dial_done_fn done, void *arg)
{
	*d = (struct qs_amqp_dial){.done = done, .arg = arg};
	atomic_init(&d->fd, -1);
	atomic_init(&d->abort, false);
	d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->efd < 0 || !(d->ev = event_new(base, d->efd, EV_READ | EV_PERSIST, on_end, d)) ||
	    event_add(d->ev, NULL) != 0) {
		qs_err("amqp handshake: eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void qs_amqp_dial_free(struct qs_amqp_dial *d)
{
	qs_amqp_dial_abort(d);
	if (d->ev)
		event_free(d->ev);
	if (d->efd >= 0)
		close(d->efd);
	d->ev = NULL;
	d->efd = -1;
}

int qs_amqp_dial_start(struct qs_amqp_dial *d, amqp_connection_state_t conn, int fd, bool tls,
		       const struct qs_amqp_target *t)
{
	d->conn = conn;
	d->tls = tls;
	d->target = *t;
	d->why[0] = '\0';
	atomic_store(&d->fd, fd);
	atomic_store(&d->abort, false);
	/* the thread takes no signal: its waits must not end early (EINTR) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&d->thread, NULL, dial_thread, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		snprintf(d->why, sizeof(d->why), "cannot start the handshake's thread: %s", strerror(e));
		return -1;
	}
	d->running = true;
	return 0;
}

void qs_amqp_dial_abort(struct qs_amqp_dial *d)
{
	if (!d->running)
		return;
	atomic_store(&d->abort, true);
	int fd = atomic_load(&d->fd);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	join(d);
}

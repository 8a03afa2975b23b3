/* quicstash-send --raw: the input bytes as one stream, every answer printed.
 * For tests that need malformed frames; no header, no framing, no reconnect. */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/evbase.h"
#include "client/send.h"
#include "client/send_input.h"

struct raw_run {
	const struct send_opts *o;
	struct event_base *base;
	struct qs_client *c;
	double last_progress;
	bool done;
	int exit_code;
};

static void end_run(struct raw_run *r, int code, const char *why)
{
	if (r->done)
		return;
	r->done = true;
	r->exit_code = code;
	if (why) {
		printf("closed: %s\n", why);
		fflush(stdout);
	}
}

static void on_answer(void *ud, const struct qs_answer *a)
{
	struct raw_run *r = ud;
	r->last_progress = send_now();
	if (a->type == QS_ANSWER_ACK)
		printf("ack %" PRIu64 "\n", a->seq);
	else if (a->type == QS_ANSWER_REJECT)
		printf("reject %" PRIu64 " %s %s\n", a->seq, qs_reject_name(a->code), a->reason);
	else if (a->type == QS_ANSWER_GOAWAY)
		printf("goaway %" PRIu32 "\n", a->ms);
	fflush(stdout);
}

static void on_raw_done(void *ud, bool clean, const char *why)
{
	struct raw_run *r = ud;
	end_run(r, clean ? SEND_EXIT_OK : SEND_EXIT_ERROR, clean ? NULL : why);
	qs_client_close(r->c);
}

static void on_state(void *ud, enum qs_client_state st, const char *why)
{
	struct raw_run *r = ud;
	if (st == QS_CLIENT_CONNECTED) {
		r->last_progress = send_now();
	} else if (st == QS_CLIENT_FAILED) {
		end_run(r, SEND_EXIT_ERROR, why);
		if (!r->o->quiet)
			fprintf(stderr, "quicstash-send: %s\n", why);
		event_base_loopbreak(r->base);
	} else if (st == QS_CLIENT_CLOSED) {
		event_base_loopbreak(r->base);
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct raw_run *r = arg;
	if (!r->done && send_now() - r->last_progress > r->o->timeout_s) {
		end_run(r, SEND_EXIT_ERROR, "timed out waiting for the server");
		fprintf(stderr, "quicstash-send: timed out: no answer for %g s\n", r->o->timeout_s);
		event_base_loopbreak(r->base);
	}
}

int send_raw(const struct send_opts *o)
{
	char err[512];
	uint8_t *data;
	size_t len;
	if (qs_input_slurp(o->files, o->nfiles, &data, &len, err, sizeof(err)) < 0) {
		fprintf(stderr, "quicstash-send: %s\n", err);
		free(data);
		return SEND_EXIT_ERROR;
	}
	struct raw_run r = {.o = o, .exit_code = SEND_EXIT_ERROR, .last_progress = send_now()};
	r.base = qs_event_base_new();
	struct qs_client_opts co = o->client;
	co.raw = true;
	struct qs_client_callbacks cb = {.on_answer = on_answer, .on_raw_done = on_raw_done, .on_state = on_state};
	r.c = qs_client_new(r.base, &co, &cb, &r, err, sizeof(err));
	if (!r.c) {
		fprintf(stderr, "quicstash-send: %s\n", err);
	} else {
		qs_client_send_raw(r.c, data, len);
		struct event *tick = event_new(r.base, -1, EV_PERSIST, tick_cb, &r);
		struct timeval tv = {0, 250000};
		event_add(tick, &tv);
		event_base_dispatch(r.base);
		event_free(tick);
		qs_client_free(r.c);
	}
	free(data);
	event_base_free(r.base);
	return r.exit_code;
}

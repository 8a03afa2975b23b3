/* quicstash-send's normal mode: lines in, events out, acknowledgements counted. */
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/evbase.h"
#include "client/send.h"
#include "client/send_acklog.h"
#include "client/send_input.h"

#define MAX_EVENTS_HELD (1u << 20)
#define TAG(file, line) (((uint64_t)(file) << 40) | (line))
#define TAG_FILE(tag) ((int)((tag) >> 40))
#define TAG_LINE(tag) ((uint64_t)((tag) & ((UINT64_C(1) << 40) - 1)))

struct sender {
	const struct send_opts *o;
	struct event_base *base;
	struct qs_client *c;
	struct qs_input in;
	struct event *pump_ev, *tick_ev, *rate_ev, *sigint_ev, *sigterm_ev;
	double rate_start; /* --max-rate: when the first event went out */
	struct send_acklog log;
	uint64_t queued;   /* events given to the library (sent: qs_client_sent, what left) */
	uint64_t skipped;  /* --resume: lines the ack log holds */
	uint64_t acked, rejected;
	bool input_done, connected_once, finished;
	unsigned connects; /* handshakes completed (1 + reconnects) */
	bool rebound;      /* --test-rebind-after done */
	int exit_code;
	double last_progress, started;
	bool tty, progress_shown;
};

static void clear_progress(struct sender *s)
{
	if (s->progress_shown)
		fputs("\r\033[K", stderr);
	s->progress_shown = false;
}

static void finish(struct sender *s, int code)
{
	if (s->finished)
		return;
	s->finished = true;
	s->exit_code = code;
	qs_client_close(s->c); /* QS_CLIENT_CLOSED ends the loop */
}

static void check_done(struct sender *s)
{
	if (s->input_done && s->connected_once && qs_client_unresolved(s->c) == 0)
		finish(s, s->rejected ? SEND_EXIT_REJECTED : SEND_EXIT_OK);
}

static bool blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

/* --max-rate: true when the next event is not due yet (a timer then resumes pumping). */
static bool rate_wait(struct sender *s)
{
	if (s->o->max_rate <= 0)
		return false;
	double now = send_now();
	if (!s->queued)
		s->rate_start = now;
	double due = s->rate_start + (double)s->queued / s->o->max_rate;
	if (due <= now)
		return false;
	if (!evtimer_pending(s->rate_ev, NULL)) {
		double d = due - now;
		struct timeval tv = {(time_t)d, (suseconds_t)((d - (double)(time_t)d) * 1e6)};
		evtimer_add(s->rate_ev, &tv);
	}
	return true;
}

/* Reads lines while the window has room (and --max-rate allows). */
static void pump(struct sender *s)
{
	char err[512];
	while (!s->input_done && !s->finished && qs_client_buffered_bytes(s->c) < s->o->window &&
	       qs_client_unresolved(s->c) < MAX_EVENTS_HELD && !rate_wait(s)) {
		const char *line;
		size_t len;
		int rv = qs_input_next(&s->in, &line, &len, err, sizeof(err));
		if (rv == QS_IN_WAIT)
			return;
		if (rv == QS_IN_ERROR) {
			clear_progress(s);
			fprintf(stderr, "quicstash-send: %s\n", err);
			finish(s, SEND_EXIT_ERROR);
			return;
		}
		if (rv == QS_IN_END) {
			s->input_done = true;
			qs_client_flush(s->c);
			check_done(s);
			return;
		}
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (blank(line, len))
			continue;
		if (acklog_done(&s->log, s->in.cur, s->in.line)) {
			s->skipped++; /* --resume: stored by an earlier run */
			continue;
		}
		if (qs_client_unresolved(s->c) == 0)
			s->last_progress = send_now(); /* the clock runs only while something waits */
		if (qs_client_send(s->c, line, (uint32_t)len, TAG(s->in.cur, s->in.line)) < 0) {
			fprintf(stderr, "quicstash-send: out of memory\n");
			finish(s, SEND_EXIT_ERROR);
			return;
		}
		s->queued++;
	}
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pump(arg);
}

/* Called from inside the client's callbacks: read more from the loop, not here. */
static void schedule_pump(void *arg)
{
	struct sender *s = arg;
	if (!s->input_done && !event_pending(s->pump_ev, EV_TIMEOUT, NULL))
		event_active(s->pump_ev, EV_TIMEOUT, 0);
}

static void where(const struct sender *s, uint64_t tag, char *buf, size_t len)
{
	if (s->o->nfiles > 1)
		snprintf(buf, len, "%s:%" PRIu64, qs_input_name(&s->in, TAG_FILE(tag)), TAG_LINE(tag));
	else
		snprintf(buf, len, "%" PRIu64, TAG_LINE(tag));
}

#ifdef QS_TEST_HOOKS
/* Test hook, from loop level (never inside an ngtcp2 callback or read loop). */
static void rebind_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sender *s = arg;
	int port = qs_client_test_rebind(s->c);
	fprintf(stderr, "quicstash-send: test: rebound to local port %d after %" PRIu64 " acks\n", port, s->acked);
}
#endif

static void on_ack(void *ud, uint64_t seq, uint64_t tag)
{
	(void)seq;
	struct sender *s = ud;
	s->acked++;
#ifdef QS_TEST_HOOKS
	if (s->o->test_rebind_after && !s->rebound && s->acked >= s->o->test_rebind_after) {
		s->rebound = true;
		event_base_once(s->base, -1, EV_TIMEOUT, rebind_cb, s, &(struct timeval){0, 0});
	}
#endif
	s->last_progress = send_now();
	if (s->log.fd >= 0) {
		char line[4200];
		where(s, tag, line, sizeof(line));
		if (acklog_append(&s->log, line) < 0) {
			/* a failing ack log must not go unnoticed: it is the caller's safety record */
			fprintf(stderr, "quicstash-send: --ack-log: write failed\n");
			finish(s, SEND_EXIT_ERROR);
		}
	}
	schedule_pump(s);
	check_done(s);
}

static void on_reject(void *ud, uint64_t seq, uint64_t tag, uint16_t code, const char *reason)
{
	(void)seq;
	struct sender *s = ud;
	s->rejected++;
	s->last_progress = send_now();
	char at[4200];
	clear_progress(s);
	if (s->o->nfiles > 1)
		snprintf(at, sizeof(at), "%s line %" PRIu64, qs_input_name(&s->in, TAG_FILE(tag)), TAG_LINE(tag));
	else
		snprintf(at, sizeof(at), "line %" PRIu64, TAG_LINE(tag));
	fprintf(stderr, "%s: rejected %s: %s\n", at, qs_reject_name(code), reason);
	schedule_pump(s);
	check_done(s);
}

static void on_state(void *ud, enum qs_client_state st, const char *why)
{
	struct sender *s = ud;
	switch (st) {
	case QS_CLIENT_CONNECTED:
		s->connects++;
		if (!s->connected_once) /* a reconnect is no progress: only answers are */
			s->last_progress = send_now();
		s->connected_once = true;
		check_done(s);
		break;
	case QS_CLIENT_LOST:
		if (!s->o->quiet) {
			clear_progress(s);
			fprintf(stderr, "quicstash-send: %s; reconnecting\n", why);
		}
		break;
	case QS_CLIENT_GOAWAY:
		break; /* routine: the server moves us to a new connection */
	case QS_CLIENT_FAILED:
		clear_progress(s);
		fprintf(stderr, "quicstash-send: %s\n", why);
		s->finished = true;
		s->exit_code = SEND_EXIT_ERROR;
		event_base_loopbreak(s->base);
		break;
	case QS_CLIENT_CLOSED:
		event_base_loopbreak(s->base);
		break;
	}
}

/* "sent N acked A rejected R[ skipped K]" and the time so far, with the rate of
 * answers: the progress line (tty) and the summary. */
static void print_counts(struct sender *s, const char *prefix, const char *end)
{
	double t = send_now() - s->started;
	fprintf(stderr, "%ssent %" PRIu64 " acked %" PRIu64 " rejected %" PRIu64, prefix, qs_client_sent(s->c),
		s->acked, s->rejected);
	if (s->o->resume)
		fprintf(stderr, " skipped %" PRIu64, s->skipped);
	fprintf(stderr, " in %.1f s (%.0f/s)%s", t, t > 0 ? (double)(s->acked + s->rejected) / t : 0.0, end);
}

static void show_progress(struct sender *s)
{
	print_counts(s, "\r\033[K", "");
	s->progress_shown = true;
}

/* SIGINT/SIGTERM: stop sending, close the connection, print what was done (exit 2).
 * Events still unresolved are not in the ack log: --resume sends them again. */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct sender *s = arg;
	clear_progress(s);
	fprintf(stderr, "quicstash-send: interrupted (%s): %" PRIu64 " events unresolved\n",
		sig == SIGINT ? "SIGINT" : "SIGTERM", qs_client_unresolved(s->c));
	if (s->finished) /* already ending (a second Ctrl-C): now, with the exit status decided */
		event_base_loopbreak(s->base);
	finish(s, SEND_EXIT_ERROR);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sender *s = arg;
	bool waiting = qs_client_unresolved(s->c) > 0 || s->input_done || !s->connected_once;
	if (waiting && send_now() - s->last_progress > s->o->timeout_s) {
		clear_progress(s);
		fprintf(stderr, "quicstash-send: timed out: no progress for %g s (%" PRIu64 " events unresolved)\n",
			s->o->timeout_s, qs_client_unresolved(s->c));
		s->finished = true;
		s->exit_code = SEND_EXIT_ERROR;
		event_base_loopbreak(s->base);
		return;
	}
	if (s->tty && !s->o->quiet && !s->finished)
		show_progress(s);
	acklog_sync(&s->log); /* at most a tick of acks lost to a machine crash: resent, not lost */
	schedule_pump(s); /* bytes freed by late QUIC acks come with no callback */
}

static int setup(struct sender *s, const struct send_opts *o)
{
	char err[512];
	s->o = o;
	s->log.fd = -1;
	s->base = qs_event_base_new();
	if (o->ack_log && acklog_open(&s->log, o->ack_log, o->resume, o->files, o->nfiles, err, sizeof(err)) < 0) {
		fprintf(stderr, "quicstash-send: %s\n", err);
		return -1;
	}
	if (o->resume && !o->quiet)
		fprintf(stderr, "quicstash-send: resuming: %" PRIu64 " lines acknowledged before are skipped\n",
			s->log.entries);
	struct qs_client_callbacks cb = {.on_ack = on_ack, .on_reject = on_reject, .on_state = on_state};
	s->c = qs_client_new(s->base, &o->client, &cb, s, err, sizeof(err));
	if (!s->c) {
		fprintf(stderr, "quicstash-send: %s\n", err);
		return -1;
	}
	if (qs_input_open(&s->in, s->base, o->files, o->nfiles, o->window, schedule_pump, s, err, sizeof(err)) < 0) {
		fprintf(stderr, "quicstash-send: %s\n", err);
		return -1;
	}
	s->pump_ev = event_new(s->base, -1, 0, pump_cb, s);
	s->rate_ev = evtimer_new(s->base, pump_cb, s);
	s->tick_ev = event_new(s->base, -1, EV_PERSIST, tick_cb, s);
	s->sigint_ev = evsignal_new(s->base, SIGINT, signal_cb, s);
	s->sigterm_ev = evsignal_new(s->base, SIGTERM, signal_cb, s);
	event_add(s->sigint_ev, NULL);
	event_add(s->sigterm_ev, NULL);
	struct timeval tv = {0, 250000};
	event_add(s->tick_ev, &tv);
	s->tty = isatty(STDERR_FILENO);
	s->started = s->last_progress = send_now();
	return 0;
}

int send_events(const struct send_opts *o)
{
	struct sender s = {0};
	int rc = SEND_EXIT_ERROR;
	if (setup(&s, o) == 0) {
		pump(&s);
		event_base_dispatch(s.base);
		rc = s.exit_code;
		clear_progress(&s);
		uint64_t notices = 0;
		const char *held = qs_client_held_at(s.c, &notices);
		if (!o->quiet)
			print_counts(&s, "", "\n");
		if (!o->quiet && held)
			fprintf(stderr, "quicstash-send: throttled by the server at the tenant's %s limit (%" PRIu64
				" notices)\n", held, notices);
		if (o->test_rebind_after)
			fprintf(stderr, "quicstash-send: test: connections %u\n", s.connects);
	}
	qs_input_close(&s.in);
	qs_client_free(s.c);
	if (s.pump_ev)
		event_free(s.pump_ev);
	if (s.rate_ev)
		event_free(s.rate_ev);
	if (s.tick_ev)
		event_free(s.tick_ev);
	if (s.sigint_ev)
		event_free(s.sigint_ev);
	if (s.sigterm_ev)
		event_free(s.sigterm_ev);
	acklog_close(&s.log);
	if (s.base)
		event_base_free(s.base);
	return rc;
}

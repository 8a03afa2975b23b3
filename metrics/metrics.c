/* The metrics process: maps every page read-only, confines itself, and
 * answers HTTP on the listening socket the supervisor bound (so a restart or
 * a reload of this process never loses the port). */
#include "metrics/metrics.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "ipc/runtime.h"
#include "roles/confine.h"

#define HTTP_TIMEOUT_S 10 /* idle: a connection silent this long is closed */
#define HTTP_MAX_HEADERS 8192
/* What a connection may have read and not yet handled: a request's headers.
 * Without it libevent kept reading while it wrote a reply, so a client that
 * pipelined requests and read no replies grew this process by what it sent
 * (~900 MB in 9 s). */
#define HTTP_READ_HIGH (2 * HTTP_MAX_HEADERS)
/* Descriptors this process may hold: its pages are closed once mapped, so
 * this bounds connections open at once. */
#define METRICS_MAX_FDS 256
#define ACCEPT_PAUSE_MS 1000
/* Scrapes are worth less than the data path: a client sending requests back
 * to back (each /metrics ~1 ms of CPU) takes a CPU only when nothing else does. */
#define METRICS_NICE 10

struct metrics {
	struct qs_runtime rt;
	struct evhttp *http;
	struct evconnlistener *listener;
	struct event *resume_ev;
	struct qs_mview view;
};

/* The supervisor's page at QS_CHILD_PAGE_FD lists the pages that follow it. */
static int map_pages(struct qs_mview *v, const struct qs_config *cfg)
{
	v->sup = qs_mp_map(QS_CHILD_PAGE_FD, false);
	if (!v->sup) {
		qs_err("no metrics page at fd %d", QS_CHILD_PAGE_FD);
		return -1;
	}
	unsigned n = atomic_load(&((struct qs_mpage *)v->sup)->dir_n);
	if (n > QS_MP_DIR_MAX)
		n = QS_MP_DIR_MAX;
	if (!(v->page = calloc(n ? n : 1, sizeof(*v->page))))
		return -1;
	for (unsigned i = 0; i < n; i++) {
		if (!(v->page[v->n] = qs_mp_map(QS_CHILD_PAGE_FD + 1 + (int)i, false))) {
			qs_err("metrics page %u at fd %d is not one", i, QS_CHILD_PAGE_FD + 1 + (int)i);
			return -1;
		}
		close(QS_CHILD_PAGE_FD + 1 + (int)i);
		v->n++;
	}
	close(QS_CHILD_PAGE_FD);
	v->want_parsers = cfg->parsers;
	v->want_acceptors = cfg->acceptors;
	return 0;
}

static bool wants_openmetrics(struct evhttp_request *req)
{
	const char *acc = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
	return acc && strstr(acc, "application/openmetrics-text");
}

static void reply(struct evhttp_request *req, int code, const char *type, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	/* HEAD: the headers only (libevent 2.1 sends the body it is given, and a
	 * client then reads it as the start of the next reply) */
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		evbuffer_drain(body, evbuffer_get_length(body));
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ? "Not Found" : "Service Unavailable", body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evbuffer *body = evbuffer_new();
	if (!body)
		return;
	if (path && !strcmp(path, "/metrics")) {
		bool om = wants_openmetrics(req);
		qs_expose(&m->view, body, om);
		reply(req, 200, om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
				   : "text/plain; version=0.0.4; charset=utf-8", body);
	} else if (path && (!strcmp(path, "/healthz") || !strcmp(path, "/readyz"))) {
		char why[256];
		int ok = qs_health(&m->view, path[1] == 'r', why, sizeof(why)) == 0;
		evbuffer_add_printf(body, "%s\n", ok ? "ok" : why);
		reply(req, ok ? 200 : 503, "text/plain; charset=utf-8", body);
	} else {
		evbuffer_add_printf(body, "not found: /metrics, /healthz, /readyz\n");
		reply(req, 404, "text/plain; charset=utf-8", body);
	}
	evbuffer_free(body);
}

/* Out of descriptors (a flood of connections): the listening socket stays
 * readable, and libevent would retry accept() in a busy loop on a CPU the
 * data path needs. Stop accepting for a while instead; connections wait in
 * the backlog, and the open ones end by their timeout. */
static struct metrics *self; /* the listener's callback argument is evhttp's */

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)arg;
	struct metrics *m = self;
	const struct timeval tv = {.tv_sec = ACCEPT_PAUSE_MS / 1000, .tv_usec = ACCEPT_PAUSE_MS % 1000 * 1000};
	qs_warn("metrics: cannot accept a connection (%s): pausing %d ms",
		evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), ACCEPT_PAUSE_MS);
	evconnlistener_disable(l);
	evtimer_add(m->resume_ev, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct metrics *m = arg;
	evconnlistener_enable(m->listener);
}

/* Each connection's bufferevent, made here to bound what it reads ahead. */
static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
	(void)arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev)
		bufferevent_setwatermark(bev, EV_READ, 0, HTTP_READ_HIGH);
	return bev;
}

static int listen_http(struct metrics *m)
{
	fcntl(QS_CHILD_LISTEN_FD, F_SETFL, fcntl(QS_CHILD_LISTEN_FD, F_GETFL) | O_NONBLOCK);
	struct evhttp_bound_socket *b = evhttp_accept_socket_with_handle(m->http, QS_CHILD_LISTEN_FD);
	if (!b || !(m->resume_ev = evtimer_new(m->rt.base, on_resume, m))) {
		qs_err("cannot serve HTTP on fd %d", QS_CHILD_LISTEN_FD);
		return -1;
	}
	self = m;
	m->listener = evhttp_bound_socket_get_listener(b);
	evconnlistener_set_error_cb(m->listener, on_accept_error);
	return 0;
}

static void on_stop(void *arg, bool urgent, const char *why)
{
	(void)urgent;
	struct metrics *m = arg;
	qs_debug("stopping (%s)", why);
	event_base_loopexit(m->rt.base, NULL);
}

static int serve(struct metrics *m, const struct qs_config *cfg)
{
	const char *rundir;
	const struct rlimit fds = {METRICS_MAX_FDS, METRICS_MAX_FDS};
	if (map_pages(&m->view, cfg) < 0 || setrlimit(RLIMIT_NOFILE, &fds) != 0 ||
	    setpriority(PRIO_PROCESS, 0, METRICS_NICE) != 0 || qs_confine(cfg, &rundir) < 0)
		return 1;
	if (!(m->http = evhttp_new(m->rt.base)))
		return 1;
	evhttp_set_timeout(m->http, HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(m->http, on_request, m);
	evhttp_set_bevcb(m->http, new_bev, NULL);
	if (listen_http(m) < 0)
		return 1;
	qs_runtime_ready(&m->rt);
	event_base_dispatch(m->rt.base);
	return 0;
}

int metrics_main(const struct qs_config *cfg)
{
	static struct metrics m;
	int rc = qs_runtime_init(&m.rt, cfg, on_stop, &m) == 0 ? serve(&m, cfg) : 1;
	if (m.http)
		evhttp_free(m.http);
	if (m.resume_ev)
		event_free(m.resume_ev);
	free(m.view.page);
	qs_runtime_free(&m.rt);
	return rc;
}

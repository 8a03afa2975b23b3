/* The metrics process: maps every page read-only, confines itself, and
 * answers HTTP on the listening socket the supervisor bound (so a restart or
 * a reload of this process never loses the port). */
#include "metrics/metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "ipc/runtime.h"
#include "roles/confine.h"

#define HTTP_TIMEOUT_S 10
#define HTTP_MAX_HEADERS 8192

struct metrics {
	struct qs_runtime rt;
	struct evhttp *http;
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
	v->page = calloc(n ? n : 1, sizeof(*v->page));
	v->dir = calloc(n ? n : 1, sizeof(*v->dir));
	if (!v->page || !v->dir)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		v->dir[i] = v->sup->dir[i];
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
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ? "Not Found" : "Service Unavailable", body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
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
	if (map_pages(&m->view, cfg) < 0 || qs_confine(cfg, &rundir) < 0)
		return 1;
	if (!(m->http = evhttp_new(m->rt.base)))
		return 1;
	evhttp_set_timeout(m->http, HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(m->http, on_request, m);
	fcntl(QS_CHILD_LISTEN_FD, F_SETFL, fcntl(QS_CHILD_LISTEN_FD, F_GETFL) | O_NONBLOCK);
	if (evhttp_accept_socket(m->http, QS_CHILD_LISTEN_FD) != 0) {
		qs_err("cannot serve HTTP on fd %d", QS_CHILD_LISTEN_FD);
		return 1;
	}
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
	free(m.view.page);
	free(m.view.dir);
	qs_runtime_free(&m.rt);
	return rc;
}

#include "top/scrape.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"

struct scrape {
	struct evhttp_connection *conn;
	char host[256];
	scrape_done_fn done;
	void *arg;
	const char *why; /* the request's error, from evhttp's error callback */
};

static void on_error(enum evhttp_request_error e, void *arg)
{
	struct scrape *s = arg;
	s->why = e == EVREQ_HTTP_TIMEOUT ? "timed out"
		 : e == EVREQ_HTTP_EOF ? "connection refused or closed"
		 : e == EVREQ_HTTP_INVALID_HEADER ? "malformed answer"
		 : e == EVREQ_HTTP_DATA_TOO_LONG ? "answer too large"
		 : "connection failed";
}

static void on_answer(struct evhttp_request *req, void *arg)
{
	struct scrape *s = arg;
	char why[128];
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code != 200) {
		/* 0: evhttp gave up on it (too large, malformed) */
		if (code)
			snprintf(why, sizeof(why), "HTTP %d", code);
		else
			snprintf(why, sizeof(why), "no answer: %s", s->why ? s->why : "connection failed");
		s->done(s->arg, NULL, 0, why);
		return;
	}
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(b);
	const char *body = (const char *)evbuffer_pullup(b, -1);
	s->done(s->arg, body ? body : "", body ? len : 0, NULL);
}

struct scrape *scrape_new(struct event_base *base, const char *addr, double timeout_s, char *err, size_t errlen)
{
	char full[300];
	struct scrape *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	/* the daemon's --metrics-addr syntax: a bare port is on 127.0.0.1 */
	snprintf(full, sizeof(full), "%s%s", strchr(addr, ':') ? "" : "127.0.0.1:", addr);
	const char *colon = strrchr(full, ':');
	unsigned long p = strtoul(colon + 1, NULL, 10);
	if (qs_addr_host(full, s->host, sizeof(s->host)) != 0 || p == 0 || p > 65535 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
		snprintf(err, errlen, "%s: expected [HOST:]PORT", addr);
		free(s);
		return NULL;
	}
	s->conn = evhttp_connection_base_new(base, NULL, s->host, (unsigned short)p);
	if (!s->conn) {
		snprintf(err, errlen, "%s: cannot make an HTTP connection", addr);
		free(s);
		return NULL;
	}
	struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6)};
	evhttp_connection_set_timeout_tv(s->conn, &tv);
	evhttp_connection_set_max_body_size(s->conn, SCRAPE_MAX_BODY);
	evhttp_connection_set_max_headers_size(s->conn, 16384);
	evhttp_connection_set_retries(s->conn, 0);
	return s;
}

int scrape_start(struct scrape *s, scrape_done_fn done, void *arg)
{
	struct evhttp_request *req = evhttp_request_new(on_answer, s);
	if (!req)
		return -1;
	evhttp_request_set_error_cb(req, on_error);
	s->done = done;
	s->arg = arg;
	s->why = NULL;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", s->host);
	evhttp_add_header(h, "Accept", "text/plain; version=0.0.4");
	return evhttp_make_request(s->conn, req, EVHTTP_REQ_GET, "/metrics");
}

void scrape_free(struct scrape *s)
{
	if (!s)
		return;
	evhttp_connection_free(s->conn);
	free(s);
}

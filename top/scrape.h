/* quicstash-top's HTTP client: GET /metrics with libevent's evhttp, on one
 * kept-alive connection, the answer's size bounded. */
#ifndef QS_TOP_SCRAPE_H
#define QS_TOP_SCRAPE_H

#include <stddef.h>

struct event_base;
struct scrape;

#define SCRAPE_MAX_BODY (4u << 20) /* a larger answer is an error, not read */

/* done(arg, body, len, error): body is the answer on 200 (error NULL), else
 * error says why; both are valid only during the call. */
typedef void (*scrape_done_fn)(void *arg, const char *body, size_t len, const char *error);

/* host and port as in "[::1]:9464", "localhost:9464", "9464" (127.0.0.1). */
struct scrape *scrape_new(struct event_base *base, const char *addr, double timeout_s, char *err, size_t errlen);
/* Starts one GET; done is called once, from the loop. */
int scrape_start(struct scrape *s, scrape_done_fn done, void *arg);
void scrape_free(struct scrape *s);

#endif

#include "supervisor/resolve.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/log.h"

/* What a lookup thread hands back through the pipe (one write, < PIPE_BUF). */
struct answer {
	char name[300];
	struct qs_addr addr;
	int ok;
	char err[200];
};

struct job {
	char name[300];
	int fd;
};

static struct {
	struct qs_procs *procs;
	char names[QS_MAX_LOGSTASH][300];
	bool busy[QS_MAX_LOGSTASH];
	bool failed[QS_MAX_LOGSTASH]; /* the last lookup failed (logged once until one works) */
	unsigned count;
	int pipe[2];
	struct event *ev;
} R = {.pipe = {-1, -1}};

void qs_resolve_configure(const struct qs_config *cfg)
{
	R.count = cfg->output_is_file ? 0 : cfg->logstash_count;
	for (unsigned i = 0; i < R.count; i++)
		memcpy(R.names[i], cfg->logstash_name[i], sizeof(R.names[i]));
}

static int find(const char *name)
{
	for (unsigned i = 0; i < R.count; i++)
		if (!strcmp(R.names[i], name))
			return (int)i;
	return -1;
}

static void *lookup(void *arg)
{
	struct job *j = arg;
	struct answer a;
	memset(&a, 0, sizeof(a));
	memcpy(a.name, j->name, sizeof(a.name));
	a.ok = qs_addr_parse(j->name, &a.addr, a.err, sizeof(a.err)) == 0;
	if (write(j->fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
		qs_warn("resolving %s: cannot hand the answer back", j->name);
	free(j);
	return NULL;
}

void qs_resolve_request(const struct qs_proc *c, const struct qs_ctl_resolve *m)
{
	char name[sizeof(m->text) + 1];
	memcpy(name, m->text, sizeof(m->text));
	name[sizeof(m->text)] = 0;
	int i = c->role == QS_ROLE_SHIPPER ? find(name) : -1;
	if (i < 0) {
		qs_warn("%s %u asked to resolve '%s', which is not a configured Logstash address: refused",
			qs_role_name(c->role), c->slot, name);
		return;
	}
	if (R.busy[i] || R.pipe[1] < 0)
		return; /* the answer to the lookup under way will do */
	struct job *j = calloc(1, sizeof(*j));
	pthread_t t;
	pthread_attr_t at;
	if (!j || pthread_attr_init(&at) != 0) {
		free(j);
		return;
	}
	memcpy(j->name, R.names[i], sizeof(j->name)); /* the configured name: the same, and bounded */
	j->fd = R.pipe[1];
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, lookup, j) == 0)
		R.busy[i] = true;
	else
		free(j);
	pthread_attr_destroy(&at);
}

static struct qs_proc *shipper(void)
{
	for (unsigned i = 0; i < R.procs->n; i++)
		if (R.procs->proc[i].role == QS_ROLE_SHIPPER && R.procs->proc[i].pid)
			return &R.procs->proc[i];
	return NULL;
}

static void on_answer(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	struct answer a;
	while (read((int)fd, &a, sizeof(a)) == (ssize_t)sizeof(a)) {
		a.name[sizeof(a.name) - 1] = 0;
		int i = find(a.name);
		bool told = i >= 0 && R.failed[i];
		if (i >= 0) {
			R.busy[i] = false;
			R.failed[i] = !a.ok;
		}
		struct qs_ctl_resolved m;
		qs_ctl_init(&m, sizeof(m), QS_CTL_RESOLVED, NULL);
		snprintf(m.text, sizeof(m.text), "%s", a.name);
		if (a.ok) {
			memcpy(&m.addr, &a.addr.ss, a.addr.len);
			m.addr_len = a.addr.len;
		} else if (!told) {
			qs_warn("resolving Logstash %s again: %s; the shipper keeps the last address", a.name, a.err);
		}
		struct qs_proc *c = shipper();
		if (c)
			qs_ctl_send(c->ctl, &m, sizeof(m));
	}
}

int qs_resolve_init(const struct qs_config *cfg, struct qs_procs *p, struct event_base *base)
{
	R.procs = p;
	qs_resolve_configure(cfg);
	if (pipe2(R.pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	/* The threads' end blocks: an answer is never dropped half-written. */
	fcntl(R.pipe[1], F_SETFL, fcntl(R.pipe[1], F_GETFL) & ~O_NONBLOCK);
	R.ev = event_new(base, R.pipe[0], EV_READ | EV_PERSIST, on_answer, NULL);
	return R.ev && event_add(R.ev, NULL) == 0 ? 0 : -1;
}

void qs_resolve_free(void)
{
	if (R.ev)
		event_free(R.ev);
	R.ev = NULL;
	/* A lookup still running writes to a closed pipe: EPIPE (SIGPIPE is ignored), then it ends. */
	for (int i = 0; i < 2; i++)
		if (R.pipe[i] >= 0)
			close(R.pipe[i]);
	R.pipe[0] = R.pipe[1] = -1;
}

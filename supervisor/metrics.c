#include "supervisor/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/metrics_page.h"

/* [HOST:]PORT, HOST 127.0.0.1 when left out: never on every address by accident. */
static int listen_on(const char *text)
{
	char full[320], err[256];
	struct qs_addr a;
	snprintf(full, sizeof(full), "%s%s", strchr(text, ':') ? "" : "127.0.0.1:", text);
	if (qs_addr_parse(full, &a, err, sizeof(err)) != 0) {
		qs_err("--metrics-addr %s: %s", text, err);
		return -1;
	}
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    bind(fd, (struct sockaddr *)&a.ss, a.len) != 0 || listen(fd, 64) != 0) {
		qs_err("--metrics-addr %s: %s", text, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A read-only descriptor of the same page, for the metrics process. */
static int read_only(int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static struct qs_mpage *new_page(int *fd, int *ro)
{
	struct qs_mpage *pg = NULL;
	if ((*fd = qs_mp_create()) < 0 || !(pg = qs_mp_map(*fd, true)) || (*ro = read_only(*fd)) < 0) {
		qs_err("metrics page: %s", strerror(errno));
		return NULL;
	}
	return pg;
}

int qs_sup_metrics_init(struct qs_procs *p, const struct qs_config *cfg)
{
	/* The pages are made even without the endpoint: the supervisor's log
	 * of the tenants' counters reads the acceptors' (qs_sup_tenant_log). */
	int sup_fd;
	struct qs_mpage *sup = new_page(&sup_fd, &p->sup_page_ro);
	if (!sup || (cfg->metrics_addr[0] && (p->listen_fd = listen_on(cfg->metrics_addr)) < 0))
		return -1;
	p->pages_ro = calloc(2 * (size_t)p->n, sizeof(int));
	if (!p->pages_ro)
		return -1;
	for (unsigned i = 0; i < p->n; i++) {
		struct qs_proc *c = &p->proc[i];
		for (unsigned lane = 0; lane < 2 && (c->def->fds & QS_FD_PAGE); lane++) {
			unsigned k = p->npages_ro;
			if (k >= QS_MP_DIR_MAX || !(c->page[lane] = new_page(&c->page_fd[lane], &p->pages_ro[k])))
				return -1;
			sup->dir[k] = (struct qs_mp_dirent){.role = (uint8_t)c->role, .lane = (uint8_t)lane,
							    .slot = (uint16_t)c->slot};
			p->npages_ro++;
		}
	}
	atomic_store(&sup->dir_n, p->npages_ro);
	qs_mp = sup; /* the supervisor's own counters */
	(void)sup_fd; /* kept open: the mapping is what counts, the read-only copy goes to the child */
	if (cfg->metrics_addr[0])
		qs_info("metrics on %s: %u pages", cfg->metrics_addr, p->npages_ro);
	return 0;
}

void qs_sup_metrics_ready(const struct qs_procs *p)
{
	static const enum qs_metric ready[QS_ROLE_COUNT] = {
		[QS_ROLE_KEYHOLDER] = QS_M_READY_KEYHOLDER, [QS_ROLE_SHIPPER] = QS_M_READY_SHIPPER,
		[QS_ROLE_PARSER] = QS_M_READY_PARSER,       [QS_ROLE_ACCEPTOR] = QS_M_READY_ACCEPTOR,
		[QS_ROLE_METRICS] = QS_M_READY_METRICS,
	};
	unsigned n[QS_ROLE_COUNT] = {0};
	/* A reload's previous process still serves until its replacement has
	 * taken over (keyholder) or it has drained (acceptors): it counts. So
	 * does a slot a reload stops and starts again (shipper, parsers): its
	 * frames wait in the acceptors meanwhile, nothing is refused, and a
	 * planned reload must not take the service out of a load balancer. */
	for (unsigned i = 0; i < p->n; i++) {
		const struct qs_proc *c = &p->proc[i];
		n[c->role] += (c->planned || (c->ready && c->pid)) + (c->old_pid != 0);
	}
	for (int r = QS_ROLE_SUPERVISOR + 1; r < QS_ROLE_COUNT; r++)
		qs_mp_set(ready[r], n[r]);
}

_Static_assert(QS_MP_PARSERS >= QS_MAX_PARSERS, "a queue line per parser slot");

/* Whether a process of c's role is at one end of line's hop. */
static bool at_end(const struct qs_proc *c, unsigned line)
{
	switch (c->role) {
	case QS_ROLE_ACCEPTOR: return line != QS_QL_EVENTS;
	case QS_ROLE_PARSER: return line == QS_QL_FRAMES + c->slot || line == QS_QL_EVENTS || line == QS_QL_REJECTIONS;
	case QS_ROLE_SHIPPER: return line == QS_QL_EVENTS || line == QS_QL_ANSWERS;
	default: return false;
	}
}

/* Writes off the lines with a process of c's role at one end (all: what
 * is on its way counts as lost), or raises those below 0 (c NULL). */
static void settle(const struct qs_mpage *const *pages, size_t n, const struct qs_proc *c)
{
	for (unsigned line = 0; line < QS_QL_COUNT; line++)
		if (!c || at_end(c, line))
			qs_mp_queue_settle(qs_mp, pages, n, line, c != NULL);
}

void qs_sup_metrics_queues(const struct qs_procs *p, const struct qs_proc *c)
{
	static const struct qs_mpage *pages[2 * QS_MP_DIR_MAX];
	static uint64_t lost_seen[2 * QS_MP_DIR_MAX];
	size_t n = 0;
	for (unsigned i = 0; i < p->n; i++)
		for (unsigned lane = 0; lane < 2; lane++)
			if (p->proc[i].page[lane])
				pages[n++] = p->proc[i].page[lane];
	if (c) {
		settle(pages, n, c);
		return;
	}
	/* A sender that lost a channel connection (it noticed its peer's end
	 * only when it wrote, e.g. after being stopped itself) may have counted
	 * what it handed to the dead connection after the peer's write-off. */
	for (unsigned i = 0, k = 0; i < p->n; i++)
		for (unsigned lane = 0; lane < 2; lane++, k++) {
			uint64_t lost = p->proc[i].page[lane] ? qs_mp_get(p->proc[i].page[lane], QS_M_CHAN_LOST) : 0;
			if (k < 2 * QS_MP_DIR_MAX && lost != lost_seen[k]) {
				lost_seen[k] = lost;
				settle(pages, n, &p->proc[i]);
			}
		}
	settle(pages, n, NULL);
}

void qs_sup_metrics_restart(enum qs_role role)
{
	static const enum qs_metric restart[QS_ROLE_COUNT] = {
		[QS_ROLE_KEYHOLDER] = QS_M_RESTART_KEYHOLDER, [QS_ROLE_SHIPPER] = QS_M_RESTART_SHIPPER,
		[QS_ROLE_PARSER] = QS_M_RESTART_PARSER,       [QS_ROLE_ACCEPTOR] = QS_M_RESTART_ACCEPTOR,
		[QS_ROLE_METRICS] = QS_M_RESTART_METRICS,
	};
	if (role > QS_ROLE_SUPERVISOR && role < QS_ROLE_COUNT)
		qs_mp_add(restart[role], 1);
}

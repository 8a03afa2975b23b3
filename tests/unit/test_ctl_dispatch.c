/* Unit tests for the control messages' dispatch tables (issue 20, point 3):
 * each receiver is fed every message type, claimed by every role, at its
 * exact size and at wrong ones, over a real socketpair, through its real
 * receive code and table:
 *  - the supervisor (supervisor/control.c, qs_sup_accepts): the sender's role
 *    is that of its entry; a message is acted on exactly when the table allows
 *    that role to send that type at that size and the header names the entry,
 *    and every other one gets its sender killed as compromised;
 *  - the child runtime (ipc/runtime.c, qs_child_accepts): acted on exactly
 *    when the table has the type, the size is exact and the header names the
 *    supervisor; every other one is refused and counted.
 * And the data messages' endpoints (ipc/msg.h, qs_batch_receive) take only
 * their hop's types.
 * The expectations come from the real tables, plus the policy they must
 * carry (only the shipper may ask for a lookup, no child may send what only
 * the supervisor sends, a child takes nothing a child sends), so a broken
 * entry fails here. The supervisor's handlers, its kill and the log are
 * replaced at link time (-Wl,--wrap, tests/CMakeLists.txt) by the counters
 * below: every refusal must also be logged, once. */
#include "tests/unit/check.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "ipc/ctl.h"
#include "ipc/msg.h"
#include "ipc/runtime.h"
#include "supervisor/control.h"
#include "supervisor/proc.h"

#define NROLES (QS_ROLE_KEYHOLDER + 1)

/* ---- what the supervisor's handlers and its kill were asked to do ---- */

static unsigned ready_calls, status_calls, resolve_calls, kills;

void __wrap_qs_supervisor_child_ready(struct qs_proc *c);
void __wrap_qs_status_report(struct qs_proc *c, const struct qs_ctl_status_msg *m);
void __wrap_qs_resolve_request(const struct qs_proc *c, const struct qs_ctl_resolve *m);
void __wrap_qs_proc_kill(struct qs_proc *c);

void __wrap_qs_supervisor_child_ready(struct qs_proc *c) { (void)c; ready_calls++; }
void __wrap_qs_status_report(struct qs_proc *c, const struct qs_ctl_status_msg *m)
{
	(void)c;
	CHECK(m->text[QS_CTL_TEXT - 1] == 0); /* text fields always arrive terminated */
	status_calls++;
}
void __wrap_qs_resolve_request(const struct qs_proc *c, const struct qs_ctl_resolve *m)
{
	(void)c;
	CHECK(m->text[QS_CTL_TEXT - 1] == 0);
	resolve_calls++;
}
void __wrap_qs_proc_kill(struct qs_proc *c) { (void)c; kills++; }

/* The log: counted, the last line kept for a failure's report. */
static unsigned warnings;
static char last_line[512];
void __wrap_qs_log_at(enum qs_log_level lvl, const struct qs_log_kv *kv, const char *file, int line,
		      const char *func, const char *fmt, ...);
void __wrap_qs_log_at(enum qs_log_level lvl, const struct qs_log_kv *kv, const char *file, int line,
		      const char *func, const char *fmt, ...)
{
	(void)kv;
	(void)file;
	(void)line;
	(void)func;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_line, sizeof(last_line), fmt, ap);
	va_end(ap);
	warnings += lvl == QS_LOG_WARN;
}

static unsigned sup_acted(void) { return ready_calls + status_calls + resolve_calls; }

/* ---- messages ---- */

/* The size ipc/ctl.h defines for each type (the protocol, not a table). */
static size_t type_size(uint32_t type)
{
	switch (type) {
	case QS_CTL_STATUS: return sizeof(struct qs_ctl_status_msg);
	case QS_CTL_PEER_RESTART: return sizeof(struct qs_ctl_peer);
	case QS_CTL_RESOLVE: return sizeof(struct qs_ctl_resolve);
	case QS_CTL_RESOLVED: return sizeof(struct qs_ctl_resolved);
	case QS_CTL_TENANTS: return sizeof(struct qs_ctl_fd);
	case QS_CTL_ACCEPTOR: return sizeof(struct qs_ctl_acceptor);
	case QS_CTL_SIGNERS: return sizeof(struct qs_ctl_signers);
	default: return sizeof(struct qs_ctl_hdr); /* READY, DRAIN, SHUTDOWN and unknown types */
	}
}

static const struct qs_ctl_rule *rule(const struct qs_ctl_rule *t, size_t n, uint32_t type)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].type == type)
			return &t[i];
	return NULL;
}

/* What is sent: the type's exact size, or a wrong one, or the right size
 * with a header naming someone else. */
enum variant { EXACT, SHORT1, LONG1, HEADER_ONLY, HUGE, TINY, OTHER_SLOT, OTHER_GEN, NVARIANTS };

static size_t variant_len(enum variant v, uint32_t type)
{
	size_t n = type_size(type);
	switch (v) {
	case SHORT1: return n - 1;
	case LONG1: return n + 1;
	case HEADER_ONLY: return sizeof(struct qs_ctl_hdr);
	case HUGE: return 4096;
	case TINY: return 3;
	default: return n;
	}
}

static void send_msg(int fd, uint32_t type, uint32_t role, uint32_t slot, uint32_t gen, enum variant v)
{
	static unsigned char buf[4096];
	memset(buf, 'x', sizeof(buf)); /* text fields left unterminated on purpose */
	struct qs_ctl_hdr h = {.type = type, .role = role, .slot = slot + (v == OTHER_SLOT),
			       .generation = gen + (v == OTHER_GEN)};
	memcpy(buf, &h, sizeof(h));
	size_t len = variant_len(v, type);
	CHECK_EQ(send(fd, buf, len, 0), (long)len);
}

static int pair(int sv[2])
{
	int rc = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	return rc;
}

/* ---- the supervisor ---- */

static void sup_case(enum qs_role role, uint32_t type, uint32_t claim, enum variant v)
{
	int sv[2];
	CHECK(pair(sv) == 0);
	struct qs_proc c = {.role = role, .slot = 2, .generation = 7, .ctl = sv[0], .pid = 0};
	send_msg(sv[1], type, claim, c.slot, c.generation, v);
	const struct qs_ctl_rule *r = rule(qs_sup_accepts, qs_sup_accepts_n, type);
	bool allowed = r && (r->senders & QS_CTL_FROM(role)) && r->size == variant_len(v, type) &&
		       v != OTHER_SLOT && v != OTHER_GEN && claim == role;
	unsigned acted0 = sup_acted(), kills0 = kills, warned0 = warnings;
	qs_control_read(NULL, &c);
	unsigned acted = sup_acted() - acted0, killed = kills - kills0, warned = warnings - warned0;
	if (acted != allowed || killed != !allowed || warned != !allowed)
		fprintf(stderr, "  supervisor: %s from %s (claims %s), variant %d: acted %u, killed %u (%s)\n",
			qs_ctl_name(type), qs_role_name(role), qs_role_name(claim), (int)v, acted, killed, last_line);
	CHECK_EQ(acted, allowed);
	CHECK_EQ(killed, !allowed);
	CHECK_EQ(warned, !allowed);
	/* The policy the table must carry, whatever it says. */
	if (acted) {
		CHECK_EQ(variant_len(v, type), type_size(type));
		CHECK(role != QS_ROLE_SUPERVISOR);
		CHECK(type == QS_CTL_READY || type == QS_CTL_STATUS || type == QS_CTL_RESOLVE);
		CHECK(type != QS_CTL_RESOLVE || role == QS_ROLE_SHIPPER);
		CHECK(type != QS_CTL_STATUS || role == QS_ROLE_ACCEPTOR || role == QS_ROLE_SHIPPER);
	}
	close(sv[0]);
	close(sv[1]);
}

static void test_supervisor(void)
{
	current_test = "supervisor table";
	for (int role = 0; role < NROLES; role++)
		for (uint32_t type = 0; type <= QS_CTL_LAST + 1; type++)
			for (int v = 0; v < NVARIANTS; v++)
				for (int claim = 0; claim < NROLES; claim++)
					sup_case((enum qs_role)role, type, (uint32_t)claim, (enum variant)v);
	/* What every child must be able to do, and what each role needs. */
	ready_calls = status_calls = resolve_calls = kills = 0;
	for (int role = QS_ROLE_ACCEPTOR; role < NROLES; role++)
		sup_case((enum qs_role)role, QS_CTL_READY, (uint32_t)role, EXACT);
	CHECK_EQ(ready_calls, 4);
	sup_case(QS_ROLE_ACCEPTOR, QS_CTL_STATUS, QS_ROLE_ACCEPTOR, EXACT);
	sup_case(QS_ROLE_SHIPPER, QS_CTL_STATUS, QS_ROLE_SHIPPER, EXACT);
	CHECK_EQ(status_calls, 2);
	sup_case(QS_ROLE_SHIPPER, QS_CTL_RESOLVE, QS_ROLE_SHIPPER, EXACT);
	CHECK_EQ(resolve_calls, 1);
	CHECK_EQ(kills, 0);
}

/* After a refusal nothing more is read from that child. */
static void test_supervisor_stops_reading(void)
{
	current_test = "supervisor stops reading a compromised child";
	int sv[2];
	CHECK(pair(sv) == 0);
	struct qs_proc c = {.role = QS_ROLE_PARSER, .slot = 0, .generation = 1, .ctl = sv[0]};
	send_msg(sv[1], QS_CTL_RESOLVE, QS_ROLE_PARSER, 0, 1, EXACT);
	send_msg(sv[1], QS_CTL_READY, QS_ROLE_PARSER, 0, 1, EXACT);
	unsigned r0 = ready_calls, k0 = kills;
	qs_control_read(NULL, &c);
	CHECK_EQ(kills - k0, 1);
	CHECK_EQ(ready_calls - r0, 0);
	close(sv[0]);
	close(sv[1]);
}

/* ---- the child runtime ---- */

static unsigned role_calls, stops;

static int count_msg(void *arg, const void *msg)
{
	(void)arg;
	const struct qs_ctl_hdr *h = msg;
	CHECK(h->type != QS_CTL_RESOLVED || ((const struct qs_ctl_resolved *)msg)->text[QS_CTL_TEXT - 1] == 0);
	role_calls++;
	return 0;
}

static void count_stop(void *arg, bool urgent, const char *why)
{
	(void)arg;
	(void)why;
	CHECK(!urgent);
	stops++;
}

static void child_case(struct qs_runtime *rt, int peer, uint32_t type, uint32_t claim, enum variant v)
{
	send_msg(peer, type, claim, 0, 0, v);
	const struct qs_ctl_rule *r = rule(qs_child_accepts, qs_child_accepts_n, type);
	/* The other end is the supervisor: a header naming anyone else is forged. */
	bool allowed = r && (r->senders & QS_CTL_FROM(QS_ROLE_SUPERVISOR)) && r->size == variant_len(v, type) &&
		       v != OTHER_SLOT && v != OTHER_GEN && claim == QS_ROLE_SUPERVISOR;
	unsigned acted0 = role_calls + stops, refused0 = rt->refused, warned0 = warnings;
	rt->stop_called = false; /* every SHUTDOWN case counts */
	event_base_loop(rt->base, EVLOOP_NONBLOCK);
	unsigned acted = role_calls + stops - acted0, refused = rt->refused - refused0, warned = warnings - warned0;
	if (acted != allowed || refused != !allowed || warned != !allowed)
		fprintf(stderr, "  child: %s claimed by %s, variant %d: acted %u, refused %u (%s)\n", qs_ctl_name(type),
			qs_role_name(claim), (int)v, acted, refused, last_line);
	CHECK_EQ(acted, allowed);
	CHECK_EQ(refused, !allowed);
	CHECK_EQ(warned, !allowed);
	if (acted) { /* from the supervisor only, and only what the supervisor sends */
		CHECK_EQ(claim, QS_ROLE_SUPERVISOR);
		CHECK_EQ(variant_len(v, type), type_size(type));
		CHECK(type == QS_CTL_SHUTDOWN || type == QS_CTL_DRAIN || type == QS_CTL_PEER_RESTART ||
		      type == QS_CTL_RESOLVED || type == QS_CTL_TENANTS || type == QS_CTL_ACCEPTOR ||
		      type == QS_CTL_SIGNERS);
	}
}

/* A parser's runtime on one end of a socketpair; sv[0] plays the supervisor. */
static void parser_runtime(struct qs_runtime *rt, int sv[2])
{
	CHECK(pair(sv) == 0);
	static struct qs_config cfg;
	cfg.role = QS_ROLE_PARSER;
	cfg.ctl_fd = sv[1];
	CHECK(qs_runtime_init(rt, &cfg, count_stop, NULL) == 0);
}

static void parser_runtime_end(struct qs_runtime *rt, int sv[2])
{
	qs_runtime_free(rt);
	close(sv[0]);
	close(sv[1]);
}

static void test_child(void)
{
	current_test = "child runtime table";
	int sv[2];
	struct qs_runtime rt;
	parser_runtime(&rt, sv);
	for (uint32_t t = QS_CTL_READY; t <= QS_CTL_LAST; t++)
		qs_runtime_on(&rt, (enum qs_ctl_type)t, count_msg);
	for (int claim = 0; claim < NROLES; claim++)
		for (uint32_t type = 0; type <= QS_CTL_LAST + 1; type++)
			for (int v = 0; v < NVARIANTS; v++)
				child_case(&rt, sv[0], type, (uint32_t)claim, (enum variant)v);
	/* What every child must take from the supervisor. */
	stops = role_calls = 0;
	child_case(&rt, sv[0], QS_CTL_SHUTDOWN, QS_ROLE_SUPERVISOR, EXACT);
	CHECK_EQ(stops, 1);
	child_case(&rt, sv[0], QS_CTL_DRAIN, QS_ROLE_SUPERVISOR, EXACT);
	child_case(&rt, sv[0], QS_CTL_PEER_RESTART, QS_ROLE_SUPERVISOR, EXACT);
	child_case(&rt, sv[0], QS_CTL_RESOLVED, QS_ROLE_SUPERVISOR, EXACT);
	child_case(&rt, sv[0], QS_CTL_TENANTS, QS_ROLE_SUPERVISOR, EXACT);
	child_case(&rt, sv[0], QS_CTL_ACCEPTOR, QS_ROLE_SUPERVISOR, EXACT);
	child_case(&rt, sv[0], QS_CTL_SIGNERS, QS_ROLE_SUPERVISOR, EXACT);
	CHECK_EQ(role_calls, 6);
	parser_runtime_end(&rt, sv);
}

/* A role that registered no handler for a message refuses it (a parser told to drain). */
static void test_child_unregistered(void)
{
	current_test = "child without a handler";
	int sv[2];
	struct qs_runtime rt;
	parser_runtime(&rt, sv);
	unsigned calls0 = role_calls;
	send_msg(sv[0], QS_CTL_DRAIN, QS_ROLE_SUPERVISOR, 0, 0, EXACT);
	event_base_loop(rt.base, EVLOOP_NONBLOCK);
	CHECK_EQ(rt.refused, 1);
	CHECK_EQ(role_calls, calls0);
	parser_runtime_end(&rt, sv);
}

/* The data messages' endpoints (ipc/msg.c): each takes its hop's types only. */
static void test_inboxes(void)
{
	current_test = "data message inboxes";
	static const struct {
		enum qs_msg_inbox inbox;
		uint32_t takes; /* bits 1 << enum qs_msg_type */
	} want[] = {
		{QS_INBOX_FRAMES, 1u << QS_MSG_FRAMES},
		{QS_INBOX_EVENTS, 1u << QS_MSG_EVENTS},
		{QS_INBOX_ANSWERS, 1u << QS_MSG_ANSWERS | 1u << QS_MSG_STATUS},
	};
	struct qs_batch b = {0};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		for (int type = QS_MSG_FRAMES; type <= QS_MSG_STATUS; type++) {
			CHECK(qs_batch_begin(&b, (enum qs_msg_type)type, 0) == 0);
			struct qs_batch_iter it;
			const char *why = NULL;
			int rc = qs_batch_receive(&it, want[i].inbox, b.buf, b.len, &why);
			CHECK_EQ(rc, (want[i].takes >> type & 1) ? 0 : -1);
			CHECK(rc == 0 || (why && why[0]));
		}
	qs_batch_free(&b);
}

/* The lowest free descriptor: unchanged when nothing received was kept open. */
static int lowest_free_fd(void)
{
	int f = dup(0);
	close(f);
	return f;
}

/* QS_CTL_TENANTS carries a descriptor (SCM_RIGHTS); one beside any other
 * message, or beside a TENANTS of the wrong size, is closed on receipt. */
static void test_fd_passing(void)
{
	current_test = "descriptor beside a message";
	int sv[2], pipefd[2];
	CHECK(pair(sv) == 0);
	CHECK(pipe(pipefd) == 0);
	struct stat want, got;
	CHECK(fstat(pipefd[0], &want) == 0);
	int free0 = lowest_free_fd();
	struct qs_ctl_fd m;
	qs_ctl_init(&m, sizeof(m), QS_CTL_TENANTS, NULL);
	m.fd = 12345; /* what the sender writes there means nothing */
	CHECK_EQ(qs_ctl_send_fd(sv[0], &m, sizeof(m), pipefd[0]), 0);
	union qs_ctl_any r;
	CHECK_EQ(qs_ctl_recv(sv[1], &r), (long)sizeof(m));
	CHECK(r.fdmsg.fd >= 0 && r.fdmsg.fd != 12345);
	CHECK(fstat(r.fdmsg.fd, &got) == 0 && got.st_ino == want.st_ino);
	qs_ctl_release(&r, sizeof(m));
	CHECK_EQ(r.fdmsg.fd, -1);
	CHECK_EQ(lowest_free_fd(), free0);
	/* the same descriptor beside a STATUS, and beside a TENANTS one byte long */
	struct qs_ctl_status_msg st;
	qs_ctl_init(&st, sizeof(st), QS_CTL_STATUS, NULL);
	CHECK_EQ(qs_ctl_send_fd(sv[0], &st, sizeof(st), pipefd[0]), 0);
	CHECK_EQ(qs_ctl_recv(sv[1], &r), (long)sizeof(st));
	CHECK_EQ(lowest_free_fd(), free0);
	unsigned char longer[sizeof(m) + 1] = {0};
	memcpy(longer, &m, sizeof(m));
	CHECK_EQ(qs_ctl_send_fd(sv[0], longer, sizeof(longer), pipefd[0]), 0);
	CHECK_EQ(qs_ctl_recv(sv[1], &r), (long)sizeof(longer));
	CHECK_EQ(lowest_free_fd(), free0);
	/* a TENANTS without a descriptor holds none */
	CHECK_EQ(qs_ctl_send(sv[0], &m, sizeof(m)), 0);
	CHECK_EQ(qs_ctl_recv(sv[1], &r), (long)sizeof(m));
	CHECK_EQ(r.fdmsg.fd, -1);
	close(pipefd[0]);
	close(pipefd[1]);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	qs_log_init("test", false);
	test_supervisor();
	test_supervisor_stops_reading();
	test_child();
	test_child_unregistered();
	test_inboxes();
	test_fd_passing();
	return check_report();
}

/* The role table (roles/table.c): its invariants, the supervisor's layout
 * read from it, and docs/ARCHITECTURE.md's copy of it. The docs open with the
 * table as this program prints it (`test_roles --print`); the test fails when
 * one is edited without the other. */
#include <stddef.h>
#include <event2/event.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "check.h"
#include "roles/roles.h"
#include "ipc/runtime.h"
#include "supervisor/control.h"
#include "supervisor/proc.h"

#define BEGIN_MARK "<!-- role-table begin"
#define END_MARK "<!-- role-table end -->"

#define T(x) {QS_CTL_##x, #x}
static const struct {
	int type;
	const char *name;
} ctl_names[] = {T(READY), T(STATUS), T(PEER_RESTART), T(DRAIN), T(SHUTDOWN), T(RESOLVE), T(RESOLVED),
		   T(TENANTS), T(ACCEPTOR), T(SIGNERS)};
#undef T

static const char *ctl_name(int type)
{
	for (size_t i = 0; i < sizeof(ctl_names) / sizeof(ctl_names[0]); i++)
		if (ctl_names[i].type == type)
			return ctl_names[i].name;
	return NULL;
}

/* ----- the markdown the docs carry ----- */

static void mask(FILE *f, uint32_t m)
{
	const char *sep = "";
	for (int t = QS_CTL_READY; t <= QS_CTL_LAST; t++)
		if (m & QS_CTL_BIT(t)) {
			fprintf(f, "%s%s", sep, ctl_name(t));
			sep = ", ";
		}
	fprintf(f, "%s |", *sep ? "" : "none");
}

static const char *count_text(enum qs_role_count c)
{
	return c == QS_COUNT_PARSERS	 ? "`--parsers`"
	       : c == QS_COUNT_ACCEPTORS ? "`--acceptors`"
	       : c == QS_COUNT_METRICS	 ? "1 with `--metrics-addr`"
					 : "1";
}

static const char *reload_text(enum qs_role_reload r)
{
	return r == QS_RELOAD_OVERLAP ? "overlap" : r == QS_RELOAD_GENERATION ? "generation" : "restart";
}

static void fds_text(FILE *f, uint32_t fds)
{
	fprintf(f, "%s%s%s%s%s%s%s |", fds & QS_FD_CTL ? " ctl 3" : "", fds & QS_FD_UDP ? ", UDP 4" : "",
		fds & QS_FD_LISTEN ? ", TCP listen 4" : "", fds & QS_FD_CONFIG ? ", config 5" : "",
		fds & QS_FD_PAGE ? ", own page 6" : "", fds & QS_FD_PAGES ? ", all pages 6.. read-only" : "",
		fds & QS_FD_LIMITS ? ", tenants' limits 7" : "");
}

static void notes_text(FILE *f, const struct qs_role_def *d)
{
	const char *sep = " ";
	if (d->holds_frames) {
		fprintf(f, "%sholds frames%s", sep, d->hands_over ? " (hands them over)" : "");
		sep = ", ";
	}
	if (d->hops) {
		fprintf(f, "%shop trace", sep);
		sep = ", ";
	}
	if (d->umask0) {
		fprintf(f, "%sumask 0", sep);
		sep = ", ";
	}
	if (d->huge_heap)
		fprintf(f, "%shuge-page heap", sep);
	fprintf(f, " |\n");
}

static void families_text(FILE *f, uint32_t fam)
{
	static const struct {
		int af;
		const char *name;
	} names[] = {{AF_UNIX, "unix"}, {AF_INET, "inet"}, {AF_INET6, "inet6"}};
	const char *sep = " ";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (fam & QS_AF(names[i].af)) {
			fprintf(f, "%s%s", sep, names[i].name);
			sep = ", ";
		}
	fprintf(f, " |");
}

static void syscalls_text(FILE *f, const char *const *s)
{
	for (size_t i = 0; s && s[i]; i++)
		fprintf(f, "%s%s", i ? ", " : " ", s[i]);
	fprintf(f, " |\n");
}

static const struct qs_role_def *by_start(unsigned rank)
{
	for (unsigned i = 0; i < qs_roles_n; i++)
		if (qs_roles[i].start == rank)
			return &qs_roles[i];
	return NULL;
}

static void lifecycle_table(FILE *f)
{
	fprintf(f, "| role | entry | processes | start | reload | stop | descriptors | sends | receives | also |\n"
		   "|---|---|---|---|---|---|---|---|---|---|\n");
	for (unsigned rank = 1; rank <= qs_roles_n; rank++) {
		const struct qs_role_def *d = by_start(rank);
		fprintf(f, "| %s | `%s` | %s | %u | %u, %s | %u |", qs_role_name(d->role), d->main_name,
			count_text(d->count), d->start, d->reload, reload_text(d->reload_how), d->stop);
		fds_text(f, d->fds);
		fputc(' ', f);
		mask(f, d->ctl_sends);
		fputc(' ', f);
		mask(f, d->ctl_receives);
		notes_text(f, d);
	}
}

static void sandbox_table(FILE *f)
{
	fprintf(f, "| role | user | chroot | network | dumpable | sockets | TSYNC | system calls beyond the base |\n"
		   "|---|---|---|---|---|---|---|---|\n");
	for (unsigned rank = 1; rank <= qs_roles_n; rank++) {
		const struct qs_role_def *d = by_start(rank);
		const struct qs_role_sandbox *s = &d->sandbox;
		fprintf(f, "| %s | %s | %s | %s | %s |", qs_role_name(d->role), s->user ? "`--user`" : "stays",
			s->chroot ? "runtime dir" : "none", s->new_netns ? "own empty netns" : "host",
			s->dumpable ? "yes" : "no");
		families_text(f, s->families);
		fprintf(f, " %s |", s->tsync ? "yes" : "no");
		syscalls_text(f, s->syscalls);
	}
}

/* The text between the markers, as the docs must carry it. */
static char *render(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	lifecycle_table(f);
	fprintf(f, "\n");
	sandbox_table(f);
	fclose(f);
	return buf;
}

/* ----- the checks ----- */

static void every_role_once(void)
{
	current_test = "every child role has one entry";
	CHECK(qs_role_def(QS_ROLE_SUPERVISOR) == NULL);
	CHECK_EQ(qs_roles_n, QS_ROLE_COUNT - 1);
	for (int r = QS_ROLE_SUPERVISOR + 1; r < QS_ROLE_COUNT; r++) {
		unsigned n = 0;
		for (unsigned i = 0; i < qs_roles_n; i++)
			n += qs_roles[i].role == (enum qs_role)r;
		CHECK_EQ(n, 1);
		CHECK(qs_role_def((enum qs_role)r) && qs_role_def((enum qs_role)r)->main);
		CHECK_EQ(qs_role_by_name(qs_role_name((enum qs_role)r)), r);
	}
	CHECK_EQ(qs_role_by_name("supervisor"), -1);
}

/* Each rank 1..n is used by exactly one role (start and reload). */
static bool permutation(size_t off)
{
	for (unsigned rank = 1; rank <= qs_roles_n; rank++) {
		unsigned n = 0;
		for (unsigned i = 0; i < qs_roles_n; i++)
			n += *(const unsigned *)((const char *)&qs_roles[i] + off) == rank;
		if (n != 1)
			return false;
	}
	return true;
}

/* Start downstream first, reload in the same order, stop in the reverse
 * (upstream first: acceptors finish with their clients while the rest runs). */
static void orders(void)
{
	current_test = "orders";
	CHECK(permutation(offsetof(struct qs_role_def, start)));
	CHECK(permutation(offsetof(struct qs_role_def, reload)));
	CHECK(permutation(offsetof(struct qs_role_def, stop)));
	for (unsigned i = 0; i < qs_roles_n; i++) {
		const struct qs_role_def *d = &qs_roles[i];
		CHECK_EQ(d->reload, d->start);
		CHECK_EQ(d->stop, qs_roles_n + 1 - d->start);
	}
	/* The data path: acceptor -> parser -> shipper; the keyholder signs for acceptors. */
	const struct qs_role_def *k = qs_role_def(QS_ROLE_KEYHOLDER), *s = qs_role_def(QS_ROLE_SHIPPER),
				 *p = qs_role_def(QS_ROLE_PARSER), *a = qs_role_def(QS_ROLE_ACCEPTOR);
	CHECK(k->start < s->start && s->start < p->start && p->start < a->start);
}

static void descriptors_and_messages(void)
{
	current_test = "descriptors and control messages";
	const uint32_t up = QS_CTL_BIT(QS_CTL_READY) | QS_CTL_BIT(QS_CTL_STATUS) | QS_CTL_BIT(QS_CTL_RESOLVE);
	bool resend_told = false, frames_held = false;
	for (int t = QS_CTL_READY; t <= QS_CTL_LAST; t++)
		CHECK(ctl_name(t) != NULL); /* a new message type must be named here and in the docs */
	for (unsigned i = 0; i < qs_roles_n; i++) {
		const struct qs_role_def *d = &qs_roles[i];
		/* A child told --config refuses to start without its sealed copy. */
		CHECK((d->fds & (QS_FD_CTL | QS_FD_CONFIG)) == (QS_FD_CTL | QS_FD_CONFIG));
		/* A generation is new sockets in the other steering bank. */
		CHECK(d->reload_how != QS_RELOAD_GENERATION || (d->fds & QS_FD_UDP));
		/* the pages take 6 on: the limits' 7 would be one of them */
		CHECK(!((d->fds & QS_FD_PAGES) && (d->fds & QS_FD_LIMITS)));
		CHECK(d->ctl_sends & QS_CTL_BIT(QS_CTL_READY));
		CHECK(d->ctl_receives & QS_CTL_BIT(QS_CTL_SHUTDOWN));
		CHECK((d->ctl_sends & ~up) == 0);       /* children report and ask */
		CHECK((d->ctl_receives & up) == 0);     /* the supervisor decides */
		resend_told |= (d->ctl_receives & QS_CTL_BIT(QS_CTL_PEER_RESTART)) != 0;
		frames_held |= d->holds_frames;
	}
	CHECK(!frames_held || resend_told);
}

static const struct qs_ctl_rule *rule_for(const struct qs_ctl_rule *t, size_t n, int type)
{
	for (size_t i = 0; i < n; i++)
		if ((int)t[i].type == type)
			return &t[i];
	return NULL;
}

/* The receivers' dispatch tables (supervisor/control.c, ipc/runtime.c) and
 * the role table say the same: a role may send a type exactly when the
 * supervisor's table takes it from that role, and the supervisor sends a
 * role only types the child runtime's table takes from the supervisor. */
static void dispatch_tables_agree(void)
{
	current_test = "dispatch tables agree with the role table";
	for (unsigned i = 0; i < qs_roles_n; i++) {
		const struct qs_role_def *d = &qs_roles[i];
		for (int t = QS_CTL_READY; t <= QS_CTL_LAST; t++) {
			const struct qs_ctl_rule *up = rule_for(qs_sup_accepts, qs_sup_accepts_n, t);
			const struct qs_ctl_rule *down = rule_for(qs_child_accepts, qs_child_accepts_n, t);
			bool sends = (d->ctl_sends & QS_CTL_BIT(t)) != 0;
			bool taken = up && (up->senders & QS_CTL_FROM(d->role));
			if (sends != taken)
				fprintf(stderr, "  %s, control type %d: role table sends=%d, supervisor's table takes=%d\n",
					qs_role_name(d->role), t, sends, taken);
			CHECK(sends == taken);
			if (d->ctl_receives & QS_CTL_BIT(t))
				CHECK(down && (down->senders & QS_CTL_FROM(QS_ROLE_SUPERVISOR)));
		}
	}
}

static void sandboxes(void)
{
	current_test = "sandboxes";
	for (unsigned i = 0; i < qs_roles_n; i++) {
		const struct qs_role_sandbox *s = &qs_roles[i].sandbox;
		CHECK(s->user);
		CHECK(s->families & QS_AF(AF_UNIX)); /* the channels, ZeroMQ's ipc:// */
		CHECK(!s->new_netns || (s->families & ~QS_AF(AF_UNIX)) == 0);
		for (size_t k = 0; s->syscalls && s->syscalls[k]; k++) {
			bool known = seccomp_syscall_resolve_name(s->syscalls[k]) != __NR_SCMP_ERROR;
			if (!known)
				fprintf(stderr, "%s: unknown system call %s\n", qs_role_name(qs_roles[i].role),
					s->syscalls[k]);
			CHECK(known);
		}
	}
}

/* The supervisor's table of processes, laid out from the role table. */
static void supervisor_layout(void)
{
	current_test = "supervisor layout";
	static struct qs_config cfg;
	cfg.parsers = 2;
	cfg.config_fd = -1;
	const int udp[3] = {40, 41, 42};
	struct event_base *base = event_base_new();
	struct qs_procs p = {0};
	CHECK(qs_procs_init(&p, &cfg, 3, 0, NULL, udp, base) == 0);
	const enum qs_role want[] = {QS_ROLE_KEYHOLDER, QS_ROLE_SHIPPER, QS_ROLE_PARSER, QS_ROLE_PARSER,
				     QS_ROLE_ACCEPTOR, QS_ROLE_ACCEPTOR, QS_ROLE_ACCEPTOR};
	const unsigned slot[] = {0, 0, 0, 1, 0, 1, 2};
	CHECK_EQ(p.n, 7);
	CHECK_EQ(p.stop_phases, 5);
	for (unsigned i = 0; i < p.n && i < 7; i++) {
		CHECK_EQ(p.proc[i].role, want[i]);
		CHECK_EQ(p.proc[i].slot, slot[i]);
		CHECK(p.proc[i].def == qs_role_def(want[i]));
		CHECK_EQ(p.proc[i].udp_fd, want[i] == QS_ROLE_ACCEPTOR ? udp[slot[i]] : -1);
		CHECK_EQ(p.reload_order[i], i);
	}
	CHECK_EQ(qs_procs_count(&p, QS_ROLE_PARSER), 2);
	for (unsigned i = 0; i < p.n; i++)
		event_free(p.proc[i].restart_ev);
	free(p.proc);
	free(p.reload_order);
	/* --metrics-addr: one metrics process more, started first (it depends on no one) */
	snprintf(cfg.metrics_addr, sizeof(cfg.metrics_addr), "9464");
	struct qs_procs m = {0};
	CHECK(qs_procs_init(&m, &cfg, 3, 0, NULL, udp, base) == 0);
	CHECK_EQ(m.n, 8);
	CHECK_EQ(m.proc[0].role, QS_ROLE_METRICS);
	CHECK_EQ(qs_procs_count(&m, QS_ROLE_METRICS), 1);
	for (unsigned i = 0; i < m.n; i++)
		event_free(m.proc[i].restart_ev);
	free(m.proc);
	free(m.reload_order);
	event_base_free(base);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* docs/ARCHITECTURE.md carries render() between its markers. */
static void docs_agree(void)
{
	current_test = "docs/ARCHITECTURE.md carries the role table";
	const char *path = QS_SOURCE_DIR "/docs/ARCHITECTURE.md";
	char *doc = read_file(path), *want = render();
	CHECK(doc != NULL && want != NULL);
	if (!doc || !want)
		goto out;
	char *b = strstr(doc, BEGIN_MARK), *e = strstr(doc, END_MARK);
	char *nl = b ? strchr(b, '\n') : NULL;
	CHECK(nl && e && nl < e);
	if (!nl || !e || e < nl)
		goto out;
	*e = 0;
	bool same = !strcmp(nl + 1, want);
	if (!same)
		fprintf(stderr, "%s: the role table differs from roles/table.c; it should read:\n%s\n"
				"(tests/test_roles --print prints it)\n", path, want);
	CHECK(same);
out:
	free(doc);
	free(want);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--print")) {
		char *s = render();
		fputs(s ? s : "", stdout);
		free(s);
		return s ? 0 : 1;
	}
	every_role_once();
	orders();
	descriptors_and_messages();
	dispatch_tables_agree();
	sandboxes();
	supervisor_layout();
	docs_agree();
	return check_report();
}

/* The supervisor's table of child processes: who runs, how each is started,
 * and restart with backoff. One entry per (role, slot), laid out from the
 * role table (roles/roles.h) in start order. */
#ifndef QS_PROC_H
#define QS_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/clock.h"
#include "common/config.h"
#include "ipc/ctl.h"
#include "roles/roles.h"

struct event_base;
struct event;
struct qs_sl_region;

/* One (role, slot): the processes that run it one after the other (restarts),
 * and during a reload's overlap the previous one too (old_pid). */
struct qs_proc {
	enum qs_role role;
	const struct qs_role_def *def; /* its role's entry in the role table */
	unsigned slot;
	unsigned generation; /* bumps on every start (the process generation: docs/ARCHITECTURE.md, "Glossary") */
	pid_t pid;           /* 0 when not running */
	int ctl;             /* supervisor's end of the control socketpair */
	int udp_fd;          /* acceptors: the slot's UDP socket, kept across restarts */
	unsigned key;        /* acceptors: steering key (first byte of their connection IDs) */
	int old_udp_fd;      /* acceptors: the previous generation's socket, closed when it ends */
	bool ready;          /* sent QS_CTL_READY since its last start */
	bool ever_ready;
	bool replacing;      /* stopped by a reload: start again at once when it exits */
	bool planned;        /* a reload's stop-and-start of this slot runs: it counts as ready
			      * until the new process is (readiness: supervisor/metrics.c) */
	bool lost_frames;    /* its last process died (crash, signal, kill) instead of exiting
			      * cleanly after finishing what it held: the acceptors must resend */
	pid_t old_pid;       /* reload overlap: the previous process, still finishing */
	int old_ctl;
	unsigned starts;
	uint64_t started_ms;
	unsigned backoff_ms;
	struct event *ctl_ev;
	struct event *restart_ev;
	struct qs_ctl_status st; /* the current process's last report (status.h) */
	unsigned st_gen;         /* generation that sent it */
	char st_text[QS_CTL_TEXT];
	bool have_st;
	/* --metrics-addr: the slot's two metrics pages (common/metrics_page.h), -1
	 * without; the current process writes page[lane], a reload's old one
	 * page[old_lane] (the other), so each page has one writer */
	int page_fd[2];
	struct qs_mpage *page[2];
	unsigned lane, old_lane;
};

struct qs_procs {
	struct qs_proc *proc; /* in start order */
	unsigned n;
	unsigned *reload_order; /* indices into proc, in reload order */
	unsigned stop_phases;   /* the highest stop rank of the role table */
	char **argv; /* the original command line, re-used for every child */
	int argc;
	char runtime_dir[4096];
	char user[64]; /* resolved --user for the children */
	int config_fd;  /* sealed copy of the validated --config text (-1: none), at fd 5 in every child */
	unsigned acceptors; /* running acceptor slots (1 when steering fell back) */
	struct event_base *base;
	bool stopping;
	/* --metrics-addr: the metrics process's listening socket and the pages it
	 * reads (read-only descriptors: the supervisor's, then the directory's order) */
	int listen_fd;
	int sup_page_ro;
	int *pages_ro;
	unsigned npages_ro;
	/* the tenants' limit state shared by the acceptors (QS_FD_LIMITS): the
	 * supervisor only zeroes a gone acceptor's column, never reads it */
	int limits_fd;
	struct qs_sl_region *limits;
	void (*on_ctl)(struct qs_procs *p, struct qs_proc *c); /* a control message is readable */
	void (*on_exit)(struct qs_procs *p, struct qs_proc *c, int status);
	void (*on_old_exit)(struct qs_procs *p, struct qs_proc *c, int status); /* an old_pid ended */
};

/* Builds the table from the role table: each role's slots, roles in their
 * start order (downstream before upstream, so nothing is sent towards a role
 * not yet there), and the reload order. */
int qs_procs_init(struct qs_procs *p, const struct qs_config *cfg, unsigned acceptors, int argc,
		  char **argv, const int *udp_fds, struct event_base *base);
int qs_proc_start(struct qs_procs *p, struct qs_proc *c);
/* Starts a new process for the entry while the current one keeps running as
 * old_pid (it is asked to stop once the new one is ready). */
int qs_proc_start_overlapping(struct qs_procs *p, struct qs_proc *c);
/* Schedules a restart with backoff (100 ms doubling to 10 s; reset after 30 s of health). */
void qs_proc_schedule_restart(struct qs_procs *p, struct qs_proc *c);
/* The tenants' limit state the acceptors share (QS_FD_LIMITS), before any
 * child starts; -1 with the reason logged. */
int qs_procs_limits_init(struct qs_procs *p);
/* Reaps exited children; calls on_exit for each. */
void qs_procs_reap(struct qs_procs *p);
struct qs_proc *qs_procs_find_pid(struct qs_procs *p, pid_t pid);
unsigned qs_procs_running(const struct qs_procs *p, int role /* -1 = any */);
bool qs_procs_all_ready(const struct qs_procs *p);
unsigned qs_procs_count(const struct qs_procs *p, enum qs_role role); /* table entries */
/* Processes (current and old) of the roles stopped in that stop phase (1..stop_phases). */
unsigned qs_procs_running_in_phase(const struct qs_procs *p, unsigned phase);
/* Asks a child to stop cleanly: QS_CTL_SHUTDOWN, or SIGTERM when the control
 * socket cannot take it. Never both: a child that already stopped on the
 * message has given up its handlers, and a late SIGTERM would kill it. */
void qs_proc_ask_stop(struct qs_proc *c); /* the current and any old process */
void qs_proc_ask_old_stop(struct qs_proc *c);
/* The old process of an acceptor entry: a new generation serves, move its clients now. */
void qs_proc_ask_old_drain(struct qs_proc *c);
/* Kills the current process (SIGKILL) and stops listening to it; the normal
 * restart path follows when it is reaped. */
void qs_proc_kill(struct qs_proc *c);

#endif

/* Who may ask the keyholder for signatures: the acceptors, and nothing else
 * that runs as the children's user (QS_CTL_SIGNERS, ipc/ctl.h). The
 * supervisor knows every acceptor's pid; the keyholder believes only it. */
#ifndef QS_SUPERVISOR_SIGNERS_H
#define QS_SUPERVISOR_SIGNERS_H

#include <sys/types.h>

struct qs_procs;

struct qs_proc;

/* A process of entry c started or ended: if it is an acceptor or a
 * keyholder, the whole list to every keyholder process (and a reload's old
 * one). A message that cannot go now is sent again by qs_signers_retry. */
void qs_signers_changed(struct qs_procs *p, const struct qs_proc *c);
/* Once a second: the list again if the last one did not go. */
void qs_signers_retry(struct qs_procs *p);
/* In a forked child of entry c, before its exec: if it is an acceptor, its
 * own pid to the keyholders, so that it is known there before it can connect
 * (the supervisor's list after the fork may come later). Async-signal-safe. */
void qs_signers_announce(const struct qs_procs *p, const struct qs_proc *c, pid_t self);

#endif

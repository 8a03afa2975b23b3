/* The control channel between the supervisor and each child: a SOCK_SEQPACKET
 * socketpair (no ZeroMQ: the supervisor forks and must never own a ZeroMQ
 * context). Fixed-size typed messages; a receiver drops anything whose size
 * or type is wrong. The child side may only report and ask; the supervisor decides. */
#ifndef QS_IPC_CTL_H
#define QS_IPC_CTL_H

#include <stdint.h>

enum qs_ctl_type {
	QS_CTL_READY = 1,      /* child -> sup: serving */
	QS_CTL_STATUS,         /* child -> sup: one-line status in text */
	QS_CTL_PEER_RESTART,   /* sup -> acceptors: a parser/shipper (role, slot) was restarted */
	QS_CTL_DRAIN,          /* sup -> acceptor: stop taking connections, finish, exit */
	QS_CTL_SHUTDOWN,       /* sup -> child: stop cleanly now */
};

struct qs_ctl_msg {
	uint32_t type;
	uint32_t role;
	uint32_t slot;
	uint32_t generation;
	char text[240];
};

/* Non-blocking send/receive of one message; 0 ok, -1 error/EOF, 1 nothing (EAGAIN). */
int qs_ctl_send(int fd, const struct qs_ctl_msg *m);
int qs_ctl_recv(int fd, struct qs_ctl_msg *m);

#endif

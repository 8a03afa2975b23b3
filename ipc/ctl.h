/* The control channel between the supervisor and each child: a SOCK_SEQPACKET
 * socketpair (no ZeroMQ: the supervisor forks and must never own a ZeroMQ
 * context). One datagram is one message: a header and the body of its type,
 * each type with its own exact size. A receiver dispatches through a table of
 * {type, roles allowed to send it, exact size, handler} (qs_ctl_dispatch):
 * anything else is refused with the reason. The child side may only report
 * and ask; the supervisor decides. docs/ARCHITECTURE.md, "Control messages". */
#ifndef QS_IPC_CTL_H
#define QS_IPC_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct qs_config;

enum qs_ctl_type {
	QS_CTL_READY = 1,      /* child -> sup: serving (header only) */
	QS_CTL_STATUS,         /* child -> sup, once a second: struct qs_ctl_status_msg */
	QS_CTL_PEER_RESTART,   /* sup -> acceptors: a parser/shipper was restarted (struct qs_ctl_peer) */
	QS_CTL_DRAIN,          /* sup -> acceptor: stop taking connections, finish, exit (header only) */
	QS_CTL_SHUTDOWN,       /* sup -> child: stop cleanly now (header only) */
	QS_CTL_RESOLVE,        /* shipper -> sup: look a configured Logstash host:port up again */
	QS_CTL_RESOLVED,       /* sup -> shipper: it resolves to addr (addr_len 0: it did not) */
	QS_CTL_TENANTS,        /* sup -> acceptors, parsers: a new sealed configuration (struct qs_ctl_fd)
				* whose tenants apply in place (docs/ARCHITECTURE.md, "Tenants reloaded in place") */
	QS_CTL_ACCEPTOR,       /* sup -> parsers, shipper: an acceptor channel is served now, or no more
				* (struct qs_ctl_acceptor; docs/ARCHITECTURE.md, "Idle") */
	QS_CTL_SIGNERS,        /* sup -> keyholder: the processes it may sign for (struct qs_ctl_signers) */
};
#define QS_CTL_LAST QS_CTL_SIGNERS

/* A role's bit in a rule's senders (enum qs_role, common/config.h). */
#define QS_CTL_FROM(role) (1u << (role))

/* Every message starts with the sender's identity as the sender states it.
 * A receiver never believes it: it knows who is at the other end of the
 * socket, and refuses a message whose header says otherwise. The supervisor
 * sends role QS_ROLE_SUPERVISOR, slot 0, generation 0. */
struct qs_ctl_hdr {
	uint32_t type;
	uint32_t role;
	uint32_t slot;
	uint32_t generation; /* the process generation (docs/ARCHITECTURE.md, "Glossary") */
};

/* What a child has done since it started (totals) and holds now (gauges), for
 * the service's one-line status; 0 where its role has no such thing. */
struct qs_ctl_status {
	uint64_t acked;       /* acceptor: events acknowledged to clients (total) */
	uint64_t rejected;    /* acceptor: events rejected (total) */
	uint64_t connections; /* acceptor: open QUIC connections */
	uint64_t backlog;     /* shipper: spool bytes not yet sent to Logstash */
	uint64_t spool_bytes; /* shipper: spool bytes on disk */
	uint64_t spool_limit; /* shipper: --spool-max-bytes */
	uint32_t output_up;   /* shipper: connected to Logstash, or the output file open */
	uint32_t accepting;   /* shipper: 0 while it refuses events (spool full, write error) */
};

#define QS_CTL_TEXT 320 /* holds a --logstash-addr entry (300) */

/* QS_CTL_STATUS. */
struct qs_ctl_status_msg {
	struct qs_ctl_hdr h;
	struct qs_ctl_status st;
	char text[QS_CTL_TEXT]; /* the shipper's output in use ("logstash HOST:PORT"), or "" */
};

/* QS_CTL_PEER_RESTART: which process was restarted. */
struct qs_ctl_peer {
	struct qs_ctl_hdr h;
	uint32_t role, slot, generation;
};

/* QS_CTL_ACCEPTOR: the acceptor on channel serves now (serving 1: connect
 * to it at once rather than at the next retry), or its process is gone for
 * good (0: an old generation that finished after a reload; stop retrying). */
struct qs_ctl_acceptor {
	struct qs_ctl_hdr h;
	uint32_t channel, serving;
};

/* QS_CTL_RESOLVE: the --logstash-addr entry, as configured. */
struct qs_ctl_resolve {
	struct qs_ctl_hdr h;
	char text[QS_CTL_TEXT];
};

/* QS_CTL_RESOLVED: the entry (as asked) and what it resolves to now. */
struct qs_ctl_resolved {
	struct qs_ctl_hdr h;
	char text[QS_CTL_TEXT];
	struct sockaddr_storage addr;
	uint32_t addr_len;
	uint32_t pad;
};

/* QS_CTL_TENANTS: the descriptor travels beside the message (SCM_RIGHTS).
 * Whatever the sender wrote in fd, the receiver's qs_ctl_recv writes the
 * descriptor it received there (-1: none came); qs_ctl_release closes it. */
struct qs_ctl_fd {
	struct qs_ctl_hdr h;
	int32_t fd;
	uint32_t pad;
};

/* QS_CTL_SIGNERS: the acceptors' pids, the only processes the keyholder
 * serves (the peer's pid from SO_PEERCRED; every child runs as the same user,
 * so the socket's file mode tells them apart from no other child). all 1: the
 * whole list (the current and a reload's old acceptors), sent by the
 * supervisor whenever an acceptor or a keyholder starts or an acceptor ends;
 * all 0: one more, sent by a forked acceptor itself before its exec, so that
 * it is there before that acceptor can connect. docs/ARCHITECTURE.md, "What a
 * compromised child can still reach". */
#define QS_SIGNERS_MAX 128 /* 2 * QS_MAX_ACCEPTORS: a reload's overlap */
struct qs_ctl_signers {
	struct qs_ctl_hdr h;
	uint32_t all, n;
	int32_t pid[QS_SIGNERS_MAX];
};

/* Room for any message (and one byte more: a longer one is seen as too long). */
union qs_ctl_any {
	struct qs_ctl_hdr h;
	struct qs_ctl_status_msg status;
	struct qs_ctl_peer peer;
	struct qs_ctl_acceptor acceptor;
	struct qs_ctl_resolve resolve;
	struct qs_ctl_resolved resolved;
	struct qs_ctl_fd fdmsg;
	struct qs_ctl_signers signers; /* the largest (ipc/ctl.c) */
	char bytes[sizeof(struct qs_ctl_signers) + 1];
};

/* One row of a receiver's table. The handler gets the receiver's context and
 * the message, already checked to be of this type, this size, from an allowed
 * sender, with its text fields NUL-terminated. It returns 0 when it acted on
 * it, -1 when this receiver has no use for it (refused all the same). */
struct qs_ctl_rule {
	uint32_t type;
	uint32_t senders; /* QS_CTL_FROM(role) | ... */
	uint32_t size;    /* the exact size of the message */
	int (*fn)(void *ctx, const void *msg);
};
#define QS_CTL_RULE(type, body, senders, fn) {(type), (senders), sizeof(body), (fn)}

/* Checks msg (len bytes as received) against the table and calls the row's
 * handler. from: who the other end of the socket is (type unused). Returns 0
 * when handled, -1 when refused, with *why for the log: unknown type, wrong
 * size, a header claiming another sender, a sender not allowed, no handler. */
int qs_ctl_dispatch(const struct qs_ctl_rule *rules, size_t n, const struct qs_ctl_hdr *from, union qs_ctl_any *msg,
		    size_t len, void *ctx, const char **why);
/* A message's name for the log ("READY", ...; "unknown" outside the enum). */
const char *qs_ctl_name(uint32_t type);

/* Zeroes a message of size bytes and fills its header: the sender is the
 * child that cfg describes, or the supervisor with cfg NULL. */
void qs_ctl_init(void *msg, size_t size, uint32_t type, const struct qs_config *cfg);
/* Non-blocking send of one message of size bytes; 0 ok, -1 error, 1 not now (EAGAIN). */
int qs_ctl_send(int fd, const void *msg, size_t size);
/* The same, with the descriptor pass_fd beside it (SCM_RIGHTS); for QS_CTL_TENANTS. */
int qs_ctl_send_fd(int fd, const void *msg, size_t size, int pass_fd);
/* Non-blocking receive of one message: its length (> 0; more than
 * sizeof(*m) when it was cut), 0 nothing now, -1 the peer is gone. A
 * descriptor that came with it is kept only in a QS_CTL_TENANTS message of
 * its exact size (m->fdmsg.fd), and closed otherwise. */
ssize_t qs_ctl_recv(int fd, union qs_ctl_any *m);
/* Closes the descriptor a received message holds, if any (after dispatch). */
void qs_ctl_release(union qs_ctl_any *m, size_t len);

#endif

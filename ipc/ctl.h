/* The control channel between the supervisor and each child: a SOCK_SEQPACKET
 * socketpair (no ZeroMQ: the supervisor forks and must never own a ZeroMQ
 * context). Fixed-size typed messages; a receiver drops anything whose size
 * or type is wrong. The child side may only report and ask; the supervisor decides. */
#ifndef QS_IPC_CTL_H
#define QS_IPC_CTL_H

#include <stdint.h>
#include <sys/socket.h>

enum qs_ctl_type {
	QS_CTL_READY = 1,      /* child -> sup: serving */
	QS_CTL_STATUS,         /* child -> sup, once a second: struct qs_ctl_status */
	QS_CTL_PEER_RESTART,   /* sup -> acceptors: a parser/shipper (role, slot) was restarted */
	QS_CTL_DRAIN,          /* sup -> acceptor: stop taking connections, finish, exit */
	QS_CTL_SHUTDOWN,       /* sup -> child: stop cleanly now */
	QS_CTL_RESOLVE,        /* shipper -> sup: look text (a configured Logstash host:port) up again */
	QS_CTL_RESOLVED,       /* sup -> shipper: text resolves to addr (addr_len 0: it did not) */
};
#define QS_CTL_LAST QS_CTL_RESOLVED

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
/* With QS_CTL_STATUS, qs_ctl_msg.text is the shipper's output in use ("logstash HOST:PORT"). */

struct qs_ctl_msg {
	uint32_t type;
	uint32_t role;
	uint32_t slot;
	uint32_t generation;
	struct qs_ctl_status st; /* QS_CTL_STATUS */
	struct sockaddr_storage addr; /* QS_CTL_RESOLVED */
	uint32_t addr_len;
	char text[320]; /* holds a --logstash-addr entry (300) */
};

/* Non-blocking send/receive of one message; 0 ok, -1 error/EOF, 1 nothing (EAGAIN). */
int qs_ctl_send(int fd, const struct qs_ctl_msg *m);
int qs_ctl_recv(int fd, struct qs_ctl_msg *m);
/* Sends QS_CTL_STATUS (text: a name for it, or NULL); a report that cannot go
 * now is skipped (the next follows). */
void qs_ctl_report(int fd, uint32_t role, uint32_t slot, uint32_t generation, const struct qs_ctl_status *st,
		   const char *text);

#endif

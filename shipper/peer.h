/* What the TCP peer (Logstash) has read, as far as its kernel lets us know
 * (settle.h says how the output uses it; docs/SPOOL.md, "What json_lines can
 * promise"). */
#ifndef QS_SHIPPER_PEER_H
#define QS_SHIPPER_PEER_H

#include <stdint.h>

/* With a window scale of 14 (the largest) or none: a peer without window
 * scaling may still have a large buffer behind its 64 KiB window. */
#define QS_PEER_UNREAD_UNKNOWN (2 * ((uint64_t)65535 << 14))

/* The most the peer on connected socket fd can hold acknowledged but unread:
 * twice its largest possible window, 65535 << the window scale its SYN
 * announced. Linux picks that scale so the largest receive buffer it allows
 * fits (max of tcp_rmem[2] and rmem_max); SO_RCVBUF may double rmem_max. */
uint64_t qs_peer_unread_max(int fd);

/* After shutdown(fd, SHUT_WR): reads what the peer sends (discarded) until it
 * closes. 1: not yet; 0: it closed cleanly with every byte we sent
 * acknowledged, so it read them all (a socket closed with unread data sends
 * a reset); -1: not proven (errno: the reset's, or EPIPE when it closed
 * before acknowledging everything). Bounded work per call. */
int qs_peer_drain_read(int fd);

#endif

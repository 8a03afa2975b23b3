#ifndef QS_SOCKETS_H
#define QS_SOCKETS_H

struct qs_config;

/* Opens the UDP sockets for `n` acceptor slots on the server address: the
 * socket passed by systemd socket activation for slot 0 when there is one,
 * otherwise (and for further slots) sockets bound here with SO_REUSEPORT.
 * The supervisor keeps them for the life of the service, so an acceptor that
 * restarts gets the same socket and packets queue meanwhile.
 * With n > 1 the sockets share the port through connection-ID steering
 * (steer.h). Returns 0; 1 (QS_STEER_UNAVAILABLE) when steering could not be
 * set up: only fds[0] is left, and exactly one acceptor must run, since plain
 * SO_REUSEPORT would break connections at random; -1 with a one-line reason
 * logged on errors. */
int qs_udp_open(const struct qs_config *cfg, int *fds, unsigned n);

/* A new socket in the same reuseport group as `fd` (same address and port),
 * for the next generation of acceptors; -1 (logged) if it cannot be bound. */
int qs_udp_bind_like(int fd);

#endif

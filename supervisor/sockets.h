#ifndef QS_SOCKETS_H
#define QS_SOCKETS_H

struct qs_config;

/* Opens the UDP sockets for `n` acceptor slots on the server address: the
 * socket passed by systemd socket activation for slot 0 when there is one,
 * otherwise (and for further slots) sockets bound here with SO_REUSEPORT.
 * The supervisor keeps them for the life of the service, so an acceptor that
 * restarts gets the same socket and packets queue meanwhile.
 * Returns 0, or -1 with a one-line reason logged. */
int qs_udp_open(const struct qs_config *cfg, int *fds, unsigned n);

#endif

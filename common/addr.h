/* host:port parsing shared by the daemon and the client tools. */
#ifndef QS_ADDR_H
#define QS_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct qs_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Parses "1.2.3.4:port", "[v6]:port" or "name:port" (resolved with getaddrinfo).
 * Returns 0; -1 with a reason in err when the text is malformed; -2 (reason
 * in err) when it is well formed but the name does not resolve now. */
int qs_addr_parse(const char *text, struct qs_addr *out, char *err, size_t errlen);
/* The host part of such a text (without the brackets); 0, or -1 if malformed. */
int qs_addr_host(const char *text, char *host, size_t len);
/* host is an IPv4 or IPv6 literal, not a name. */
bool qs_addr_is_ip(const char *host);

/* Formats the address as "ip" and stores the port; for event enrichment. */
void qs_addr_ip_string(const struct sockaddr *sa, char *buf, size_t len, unsigned *port);

#endif

#include "common/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "host:port" or "[v6]:port": the host into host[256] and where the port
 * starts; -1 with a reason in err when malformed. */
static int split_host(const char *text, char host[256], const char **port_out, char *err, size_t errlen)
{
	const char *port;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "'%s': expected [ipv6]:port", text);
			return -1;
		}
		size_t hl = (size_t)(close - text - 1);
		if (hl == 0 || hl >= 256) {
			snprintf(err, errlen, "'%s': bad IPv6 address", text);
			return -1;
		}
		memcpy(host, text + 1, hl);
		host[hl] = 0;
		port = close + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon || colon == text || strchr(text, ':') != colon) {
			snprintf(err, errlen, "'%s': expected host:port", text);
			return -1;
		}
		size_t hl = (size_t)(colon - text);
		if (hl >= 256) {
			snprintf(err, errlen, "'%s': host too long", text);
			return -1;
		}
		memcpy(host, text, hl);
		host[hl] = 0;
		port = colon + 1;
	}
	*port_out = port;
	return 0;
}

int qs_addr_host(const char *text, char *host, size_t len)
{
	char h[256], err[8];
	const char *port;
	if (split_host(text, h, &port, err, sizeof(err)) < 0)
		return -1;
	snprintf(host, len, "%s", h);
	return 0;
}

bool qs_addr_is_ip(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int qs_addr_parse(const char *text, struct qs_addr *out, char *err, size_t errlen)
{
	char host[256];
	const char *port;
	if (split_host(text, host, &port, err, errlen) < 0)
		return -1;
	char *end;
	long p = strtol(port, &end, 10);
	if (*port == 0 || *end != 0 || p < 1 || p > 65535) {
		snprintf(err, errlen, "'%s': port must be 1..65535", text);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "'%s': %s", text, gai_strerror(rc));
		return -2;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

void qs_addr_ip_string(const struct sockaddr *sa, char *buf, size_t len, unsigned *port)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, len);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, buf, len);
		*port = ntohs(s6->sin6_port);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, buf, len);
		*port = ntohs(s4->sin_port);
	} else {
		snprintf(buf, len, "unknown");
		*port = 0;
	}
}

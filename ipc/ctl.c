#include "ipc/ctl.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/config.h"

const char *qs_ctl_name(uint32_t type)
{
	static const char *const names[] = {
		[QS_CTL_READY] = "READY",       [QS_CTL_STATUS] = "STATUS",     [QS_CTL_PEER_RESTART] = "PEER_RESTART",
		[QS_CTL_DRAIN] = "DRAIN",       [QS_CTL_SHUTDOWN] = "SHUTDOWN", [QS_CTL_RESOLVE] = "RESOLVE",
		[QS_CTL_RESOLVED] = "RESOLVED",
	};
	return type >= QS_CTL_READY && type <= QS_CTL_LAST ? names[type] : "unknown";
}

/* Whatever the sender wrote, every text field ends in a NUL. */
static void terminate_text(union qs_ctl_any *m)
{
	switch (m->h.type) {
	case QS_CTL_STATUS: m->status.text[QS_CTL_TEXT - 1] = 0; break;
	case QS_CTL_RESOLVE: m->resolve.text[QS_CTL_TEXT - 1] = 0; break;
	case QS_CTL_RESOLVED: m->resolved.text[QS_CTL_TEXT - 1] = 0; break;
	default: break;
	}
}

static const struct qs_ctl_rule *find(const struct qs_ctl_rule *rules, size_t n, uint32_t type)
{
	for (size_t i = 0; i < n; i++)
		if (rules[i].type == type)
			return &rules[i];
	return NULL;
}

static const char *check(const struct qs_ctl_rule *r, const struct qs_ctl_hdr *from, const union qs_ctl_any *msg,
			 size_t len)
{
	if (len < sizeof(msg->h))
		return "shorter than a header";
	if (!r)
		return "a type this receiver does not accept";
	if (len != r->size)
		return "the wrong size for its type";
	if (msg->h.role != from->role || msg->h.slot != from->slot || msg->h.generation != from->generation)
		return "a header naming another sender";
	if (from->role >= 32 || !(r->senders & QS_CTL_FROM(from->role)))
		return "a type its sender's role may not send";
	return NULL;
}

int qs_ctl_dispatch(const struct qs_ctl_rule *rules, size_t n, const struct qs_ctl_hdr *from, union qs_ctl_any *msg,
		    size_t len, void *ctx, const char **why)
{
	const struct qs_ctl_rule *r = len >= sizeof(msg->h) ? find(rules, n, msg->h.type) : NULL;
	if ((*why = check(r, from, msg, len)))
		return -1;
	terminate_text(msg);
	if (r->fn(ctx, msg) != 0) {
		*why = "a type this receiver has no handler for";
		return -1;
	}
	return 0;
}

void qs_ctl_init(void *msg, size_t size, uint32_t type, const struct qs_config *cfg)
{
	memset(msg, 0, size);
	struct qs_ctl_hdr h = {.type = type, .role = cfg ? (uint32_t)cfg->role : QS_ROLE_SUPERVISOR,
			       .slot = cfg ? cfg->slot : 0, .generation = cfg ? cfg->generation : 0};
	memcpy(msg, &h, sizeof(h));
}

int qs_ctl_send(int fd, const void *msg, size_t size)
{
	if (fd < 0)
		return -1;
	ssize_t n = send(fd, msg, size, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)size)
		return 0;
	return (n < 0 && errno == EAGAIN) ? 1 : -1;
}

ssize_t qs_ctl_recv(int fd, union qs_ctl_any *m)
{
	/* MSG_TRUNC: the datagram's real length, so a longer one is never taken
	 * for one of the size that fits. */
	memset(m, 0, sizeof(*m)); /* a short one leaves no stale bytes behind */
	ssize_t n = recv(fd, m, sizeof(*m), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	return n == 0 ? -1 : n;
}

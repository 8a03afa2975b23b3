#include "ipc/ctl.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/config.h"

_Static_assert(sizeof(struct qs_ctl_resolved) < sizeof(struct qs_ctl_signers) &&
		       sizeof(struct qs_ctl_status_msg) < sizeof(struct qs_ctl_signers),
	       "qs_ctl_any.bytes: one byte more than the largest message");
_Static_assert(QS_SIGNERS_MAX == 2 * QS_MAX_ACCEPTORS, "a pid for each acceptor of two generations");

const char *qs_ctl_name(uint32_t type)
{
	static const char *const names[] = {
		[QS_CTL_READY] = "READY",       [QS_CTL_STATUS] = "STATUS",     [QS_CTL_PEER_RESTART] = "PEER_RESTART",
		[QS_CTL_DRAIN] = "DRAIN",       [QS_CTL_SHUTDOWN] = "SHUTDOWN", [QS_CTL_RESOLVE] = "RESOLVE",
		[QS_CTL_RESOLVED] = "RESOLVED", [QS_CTL_TENANTS] = "TENANTS",
		[QS_CTL_ACCEPTOR] = "ACCEPTOR", [QS_CTL_SIGNERS] = "SIGNERS",
	};
	return type >= QS_CTL_READY && type <= QS_CTL_LAST ? names[type] : "unknown";
}

/* Whatever the sender wrote, a message's text ends inside it and holds no control character: the
 * supervisor puts a STATUS text into its sd_notify STATUS= line, where a
 * newline from a compromised child started an assignment of its own
 * (WATCHDOG_USEC=, MAINPID=, STOPPING=1), and into log lines. */
static void clean_text(union qs_ctl_any *m)
{
	char *t = NULL;
	switch (m->h.type) {
	case QS_CTL_STATUS: t = m->status.text; break;
	case QS_CTL_RESOLVE: t = m->resolve.text; break;
	case QS_CTL_RESOLVED: t = m->resolved.text; break;
	default: return;
	}
	t[QS_CTL_TEXT - 1] = 0;
	for (; *t; t++)
		if ((unsigned char)*t < 0x20 || *t == 0x7f)
			*t = '?';
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
	clean_text(msg);
	if (r->fn(ctx, msg) != 0) {
		*why = "one its receiver refuses";
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

int qs_ctl_send_fd(int fd, const void *msg, size_t size, int pass_fd)
{
	if (fd < 0 || pass_fd < 0)
		return -1;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = size};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	ssize_t n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)size)
		return 0;
	return (n < 0 && errno == EAGAIN) ? 1 : -1;
}

/* The descriptors that came with a message: every one is closed but the
 * single one a QS_CTL_TENANTS message of its exact size may carry. */
static int take_fds(struct msghdr *mh, bool keep_one)
{
	int kept = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (keep_one && kept < 0)
				kept = f;
			else
				close(f);
		}
	}
	return kept;
}

ssize_t qs_ctl_recv(int fd, union qs_ctl_any *m)
{
	/* MSG_TRUNC: the datagram's real length, so a longer one is never taken
	 * for one of the size that fits. */
	memset(m, 0, sizeof(*m)); /* a short one leaves no stale bytes behind */
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	bool fd_type = n == (ssize_t)sizeof(m->fdmsg) && m->h.type == QS_CTL_TENANTS;
	int got = take_fds(&mh, fd_type);
	if (fd_type)
		m->fdmsg.fd = got;
	return n == 0 ? -1 : n;
}

void qs_ctl_release(union qs_ctl_any *m, size_t len)
{
	if (len == sizeof(m->fdmsg) && m->h.type == QS_CTL_TENANTS && m->fdmsg.fd >= 0) {
		close(m->fdmsg.fd);
		m->fdmsg.fd = -1;
	}
}

#include "ipc/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int qs_ctl_send(int fd, const struct qs_ctl_msg *m)
{
	if (fd < 0)
		return -1;
	ssize_t n = send(fd, m, sizeof(*m), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)sizeof(*m))
		return 0;
	return (n < 0 && errno == EAGAIN) ? 1 : -1;
}

int qs_ctl_recv(int fd, struct qs_ctl_msg *m)
{
	struct qs_ctl_msg tmp;
	ssize_t n = recv(fd, &tmp, sizeof(tmp), MSG_DONTWAIT);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 1 : -1;
	if (n == 0)
		return -1;
	if (n != (ssize_t)sizeof(tmp) || tmp.type < QS_CTL_READY || tmp.type > QS_CTL_LAST)
		return 1; /* malformed: dropped */
	tmp.text[sizeof(tmp.text) - 1] = 0;
	*m = tmp;
	return 0;
}

void qs_ctl_report(int fd, uint32_t role, uint32_t slot, uint32_t generation, const struct qs_ctl_status *st,
		   const char *text)
{
	struct qs_ctl_msg m;
	memset(&m, 0, sizeof(m));
	m.type = QS_CTL_STATUS;
	m.role = role;
	m.slot = slot;
	m.generation = generation;
	m.st = *st;
	if (text)
		snprintf(m.text, sizeof(m.text), "%s", text);
	(void)qs_ctl_send(fd, &m);
}

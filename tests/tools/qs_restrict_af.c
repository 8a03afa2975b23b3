/* qs_restrict_af: runs a command as systemd's RestrictAddressFamilies= would,
 * for tests of the unit's list without systemd as PID 1.
 *
 *   qs_restrict_af FAMILY[,FAMILY...] COMMAND [ARG...]
 *
 * FAMILY is unix, inet, inet6 or netlink. A seccomp filter (inherited by every
 * child and kept across exec, as systemd's is) makes socket() fail with
 * EAFNOSUPPORT for any other family; then COMMAND is executed. */
#include <errno.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int family(const char *name)
{
	static const struct {
		const char *name;
		int af;
	} names[] = {{"unix", AF_UNIX}, {"inet", AF_INET}, {"inet6", AF_INET6}, {"netlink", AF_NETLINK}};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i].name))
			return names[i].af;
	return -1;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: qs_restrict_af FAMILY[,FAMILY...] COMMAND [ARG...]\n");
		return 2;
	}
	bool allowed[AF_MAX] = {false};
	for (char *f = strtok(argv[1], ","); f; f = strtok(NULL, ",")) {
		int af = family(f);
		if (af < 0) {
			fprintf(stderr, "qs_restrict_af: unknown family '%s'\n", f);
			return 2;
		}
		allowed[af] = true;
	}
	/* as systemd builds it: one rule per family left out, and one for those past AF_MAX */
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = ctx ? 0 : -1;
	for (int af = 0; rc == 0 && af < AF_MAX; af++)
		if (!allowed[af])
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
					      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)af));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)AF_MAX));
	if (rc != 0 || seccomp_load(ctx) != 0) {
		fprintf(stderr, "qs_restrict_af: cannot install the filter\n");
		return 2;
	}
	seccomp_release(ctx);
	execvp(argv[2], argv + 2);
	fprintf(stderr, "qs_restrict_af: %s: %s\n", argv[2], strerror(errno));
	return 127;
}

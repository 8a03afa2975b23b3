#include "supervisor/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/log_journal.h"
#include "ipc/keysign.h"

int qs_rundir_prepare(const char *configured, char *out, size_t outlen, bool *made)
{
	const char *env = getenv("RUNTIME_DIRECTORY");
	*made = false;
	if (configured[0] || (env && env[0])) {
		snprintf(out, outlen, "%s", configured[0] ? configured : env);
		if (mkdir(out, 0700) != 0 && errno != EEXIST) {
			qs_err("cannot create runtime directory %s: %s", out, strerror(errno));
			return -1;
		}
		chmod(out, 0700);
		return 0;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(out, outlen, "%s/quicstash.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (!mkdtemp(out)) {
		qs_err("cannot create a runtime directory: %s", strerror(errno));
		return -1;
	}
	*made = true;
	return 0;
}

/* What the roles leave in a runtime directory that must not outlive the
 * service: ipc:// endpoints, channel sockets, the keyholder's socket. */
static bool is_socket_name(const char *name)
{
	size_t l = strlen(name);
	return (l > 7 && !strcmp(name + l - 7, ".frames")) || (l > 8 && !strcmp(name + l - 8, ".answers")) ||
	       (l > 7 && !strcmp(name + l - 7, ".events")) || !strcmp(name, QS_KEYSIGN_SOCKET) ||
	       !strncmp(name, QS_KEYSIGN_SOCKET ".", sizeof(QS_KEYSIGN_SOCKET)); /* a keyholder's before its rename */
}

void qs_rundir_cleanup(const char *dir, bool made)
{
	qs_journal_root_cleanup(dir); /* a directory, left by the children's journald binding */
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		char path[4096 + 300];
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (made || is_socket_name(e->d_name)) {
				snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
				if (unlink(path) != 0 && errno != ENOENT)
					qs_warn("cannot remove %s: %s", path, strerror(errno));
			}
		}
		closedir(d);
	}
	if (made && rmdir(dir) != 0)
		qs_warn("cannot remove the runtime directory %s: %s", dir, strerror(errno));
}

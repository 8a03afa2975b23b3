#include "supervisor/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

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

void qs_rundir_cleanup(const char *dir, bool made)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		char path[4096 + 300];
		while ((e = readdir(d))) {
			size_t l = strlen(e->d_name);
			bool ours = (l > 7 && !strcmp(e->d_name + l - 7, ".frames")) ||
				    (l > 8 && !strcmp(e->d_name + l - 8, ".answers")) ||
				    (l > 7 && !strcmp(e->d_name + l - 7, ".events"));
			if (ours) {
				snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
				unlink(path);
			}
		}
		closedir(d);
	}
	if (made)
		rmdir(dir);
}

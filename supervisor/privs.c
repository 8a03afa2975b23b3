#include "supervisor/privs.h"

#include <cap-ng.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/sandbox.h"

const char *qs_child_user(const struct qs_config *cfg, char *buf, size_t len)
{
	if (strcmp(cfg->user, "nobody") != 0 || !getpwnam("quicstash"))
		snprintf(buf, len, "%s", cfg->user);
	else
		snprintf(buf, len, "quicstash");
	return buf;
}

static void chown_files(int dfd, uid_t uid, gid_t gid)
{
	DIR *d = fdopendir(dup(dfd));
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    st.st_uid != uid)
			fchownat(dfd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW);
	}
	closedir(d);
}

int qs_own_dir(const char *dir, const char *user, int with_files)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		qs_err("cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		qs_err("unknown user '%s' (--user)", user);
		return -1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 || fchown(dfd, pw->pw_uid, pw->pw_gid) != 0 || fchmod(dfd, 0700) != 0) {
		qs_err("cannot give %s to user %s: %s", dir, user, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	if (with_files)
		chown_files(dfd, pw->pw_uid, pw->pw_gid);
	close(dfd);
	return 0;
}

/* What the supervisor keeps to confine its children (see the unit's CapabilityBoundingSet=). */
static const unsigned supervisor_caps[] = {CAP_SETUID,	    CAP_SETGID,		 CAP_SYS_CHROOT, CAP_SYS_ADMIN,
					   CAP_CHOWN,	    CAP_FOWNER,		 CAP_KILL,	 CAP_NET_BIND_SERVICE,
					   CAP_NET_ADMIN,   CAP_BPF,		 CAP_DAC_READ_SEARCH, CAP_DAC_OVERRIDE};

void qs_supervisor_drop_caps(void)
{
	if (geteuid() != 0)
		return;
	int what = qs_caps_applicable();
	/* Keep only those of the list it has: one missing (a container's bounding set without
	 * CAP_BPF, a unit's drop-in) must not make the whole drop fail and leave it all the rest. */
	bool had[sizeof(supervisor_caps) / sizeof(supervisor_caps[0])];
	for (size_t i = 0; i < sizeof(had); i++)
		had[i] = capng_have_capability(CAPNG_PERMITTED, supervisor_caps[i]);
	capng_clear(CAPNG_SELECT_BOTH);
	for (size_t i = 0; i < sizeof(had); i++)
		if (had[i])
			capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET, supervisor_caps[i]);
	if (capng_apply(what) != 0)
		qs_warn("could not drop the supervisor's unneeded capabilities");
}

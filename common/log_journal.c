#include "common/log_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#define SD_JOURNAL_SUPPRESS_LOCATION /* the caller's CODE_FILE/LINE/FUNC, not this file's */
#include <systemd/sd-journal.h>
#include <unistd.h>

bool qs_journal_detect(void)
{
	/* systemd's rule (systemd.exec(5), $JOURNAL_STREAM): the variable is
	 * inherited by everything we start, so only trust it while stderr is
	 * still the very stream it names. */
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!v || sscanf(v, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

#define MAX_FIELDS 16

struct fields {
	struct iovec iov[MAX_FIELDS];
	int n;
	char buf[4096];
	size_t used;
};

static void add(struct fields *f, const char *key, const char *fmt, const char *val)
{
	if (f->n >= MAX_FIELDS || !val || f->used >= sizeof(f->buf))
		return;
	char *at = f->buf + f->used;
	int len = snprintf(at, sizeof(f->buf) - f->used, "%s=", key);
	if (len < 0 || (size_t)len >= sizeof(f->buf) - f->used)
		return;
	int vlen = snprintf(at + len, sizeof(f->buf) - f->used - (size_t)len, fmt, val);
	if (vlen < 0)
		return;
	size_t total = (size_t)len + (size_t)vlen;
	if (total >= sizeof(f->buf) - f->used)
		total = sizeof(f->buf) - f->used - 1; /* cut, still one KEY=value */
	f->iov[f->n++] = (struct iovec){at, total};
	f->used += total + 1;
}

int qs_journal_send(const struct qs_journal_msg *m)
{
	struct fields f = {.n = 0};
	char num[3][24];
	snprintf(num[0], sizeof(num[0]), "%d", m->level);
	snprintf(num[1], sizeof(num[1]), "%d", m->line);
	snprintf(num[2], sizeof(num[2]), "%u", m->suppressed);
	add(&f, "MESSAGE", "%s", m->text);
	add(&f, "PRIORITY", "%s", num[0]);
	/* Children run as /proc/self/exe: libsystemd's default identifier would be "exe". */
	add(&f, "SYSLOG_IDENTIFIER", "%s", "quicstashd");
	add(&f, "QUICSTASH_ROLE", "%s", m->who);
	if (m->file) {
		add(&f, "CODE_FILE", "%s", m->file);
		add(&f, "CODE_LINE", "%s", num[1]);
		add(&f, "CODE_FUNC", "%s", m->func);
	}
	if (m->suppressed)
		add(&f, "QUICSTASH_SUPPRESSED", "%s", num[2]);
	for (const struct qs_log_kv *kv = m->kv; kv && kv->key; kv++)
		add(&f, kv->key, "%s", kv->val);
	return sd_journal_sendv(f.iov, f.n);
}

/* One directory level below DIRFD, made if missing, never through a link;
 * 0755 whatever the umask: the children's user must get through it. */
static int sub_dir(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0755) != 0 && errno != EEXIST)
		return -1;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && fchmod(fd, 0755) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ROOT/run/systemd/journal/socket, an empty regular file, made if missing and
 * held by O_PATH: whatever the children's user put there instead is never
 * opened (a FIFO would block an open for writing). -1 with errno. */
static int open_target(const char *root)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	const char *parts[] = {"run", "systemd", "journal"};
	for (size_t i = 0; i < 3 && fd >= 0; i++) {
		int next = sub_dir(fd, parts[i]);
		close(fd);
		fd = next;
	}
	if (fd < 0)
		return -1;
	int made = openat(fd, "socket", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (made >= 0)
		close(made);
	int target = openat(fd, "socket", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	close(fd);
	struct stat st;
	if (target >= 0 && (fstat(target, &st) != 0 || !S_ISREG(st.st_mode))) {
		close(target);
		errno = EEXIST;
		return -1;
	}
	return target;
}

int qs_journal_into_root(const char *root, char *err, size_t errlen)
{
	struct stat st;
	errno = 0;
	if (stat(QS_JOURNAL_SOCKET, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", QS_JOURNAL_SOCKET, errno ? strerror(errno) : "not a socket");
		return -1;
	}
	/* The namespace first: a mount point is the file as seen in the namespace
	 * that mounts on it (a file opened before unshare() gives EINVAL). */
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		snprintf(err, errlen, "a private mount namespace: %s", strerror(errno));
		return -1;
	}
	int target = open_target(root);
	if (target < 0) {
		snprintf(err, errlen, "%s/run/systemd/journal/socket: %s", root, strerror(errno));
		return -1;
	}
	char at[64];
	snprintf(at, sizeof(at), "/proc/self/fd/%d", target); /* the file just opened, whatever the path does now */
	int rc = mount(QS_JOURNAL_SOCKET, at, NULL, MS_BIND, NULL);
	if (rc != 0)
		snprintf(err, errlen, "binding %s into %s: %s", QS_JOURNAL_SOCKET, root, strerror(errno));
	close(target);
	return rc;
}

void qs_journal_root_cleanup(const char *root)
{
	char p[4096];
	const char *rel[] = {"run/systemd/journal/socket", "run/systemd/journal", "run/systemd", "run"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", root, rel[i]);
		if (i == 0)
			unlink(p);
		else
			rmdir(p);
	}
}

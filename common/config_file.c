/* The --config file: read whole and bounded by the supervisor, kept as a
 * sealed copy for the children, and applied line by line (NAME = VALUE, the
 * option table's long names of the options a file may set). */
#include "common/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h> /* memfd_create */
#include <sys/stat.h>
#include <unistd.h>

#include "common/options.h"
#include "common/secretfile.h"
#include "common/tenants.h"

/* A --config file: bounded, as every byte read from a file is. */
#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_LINE 8192
/* What makes a memfd the supervisor's sealed copy: nobody can change it any more. */
#define CONFIG_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static char *trim(char *t)
{
	while (*t == ' ' || *t == '\t')
		t++;
	char *e = t + strlen(t);
	while (e > t && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return t;
}

/* "FILE:LINE: " of the line being applied. */
static char where[4200];

static int apply_line(struct qs_config *cfg, char *line)
{
	char *eq = strchr(line, '=');
	char *name = trim(line), *value = (char *)"";
	if (eq) {
		*eq = 0;
		name = trim(line);
		value = trim(eq + 1);
	}
	const struct qs_option *o = qs_option_for_file(name);
	if (!o) {
		fprintf(stderr, "quicstashd: %sunknown option '%s'\n", where, name);
		return -1;
	}
	if (!qs_option_takes_value(o) && *value && strcmp(value, "true") && strcmp(value, "yes"))
		return qs_option_bad(name, value, "takes no value (or true)");
	return qs_option_apply(cfg, o, value);
}

/* Every byte counts: a NUL byte or a line longer than CONFIG_MAX_LINE is an
 * error at its line (fgets skipped a line starting with NUL and cut a long one
 * in two, its tail read as a line). */
int qs_config_apply_text(struct qs_config *cfg, const char *text, size_t len, const char *name)
{
	static char line[CONFIG_MAX_LINE + 1];
	int lineno = 0, rc = 0;
	size_t pos = 0;
	while (rc == 0 && pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl != NULL);
		snprintf(where, sizeof(where), "%s:%d: ", name, ++lineno);
		qs_option_where(where);
		if (n > CONFIG_MAX_LINE || memchr(start, 0, n)) {
			fprintf(stderr, "quicstashd: %s%s\n", where,
				n > CONFIG_MAX_LINE ? "line longer than 8192 bytes" : "NUL byte in the line");
			rc = -1;
			break;
		}
		memcpy(line, start, n);
		line[n] = 0;
		char *t = trim(line);
		if (*t && *t != '#')
			rc = apply_line(cfg, t);
	}
	qs_option_where(NULL);
	return rc;
}

/* The text a child was handed: only a sealed memfd, so that what it runs is
 * exactly what the supervisor validated. The descriptor is closed after. */
static int read_handed(int fd, char **text, size_t *len)
{
	int seals = fcntl(fd, F_GET_SEALS);
	int rc = -1;
	if (seals < 0 || (seals & CONFIG_SEALS) != CONFIG_SEALS)
		fprintf(stderr, "quicstashd: --sealed-config-fd %d: not the supervisor's sealed copy\n", fd);
	else if ((rc = qs_file_read_fd(fd, CONFIG_MAX_BYTES, false, text, len)) < 0)
		fprintf(stderr, "quicstashd: --sealed-config-fd %d: %s\n", fd, qs_private_strerror(errno));
	close(fd);
	return rc;
}

/* The supervisor's copy of the text it validated, for its children (proc.c
 * puts it at QS_CHILD_CONFIG_FD): sealed, so no process can change it. */
int qs_config_seal(const char *text, size_t len)
{
	int fd = memfd_create("quicstash-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t done = 0;
	while (fd >= 0 && done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (fd < 0 || done < len || fcntl(fd, F_ADD_SEALS, CONFIG_SEALS) != 0) {
		fprintf(stderr, "quicstashd: cannot keep a sealed copy of the configuration: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A child reads the sealed copy it was handed (never the path: the file may
 * have changed since the supervisor validated it), the supervisor the file
 * (at start and on SIGHUP). */
int qs_config_load(const struct qs_config_args *a, char **text, size_t *len)
{
	*text = NULL;
	if (a->fd == -2) {
		fprintf(stderr, "quicstashd: --sealed-config-fd: expected a descriptor\n");
		return -1;
	}
	if (a->fd >= 0)
		return read_handed(a->fd, text, len);
	if (!a->path)
		return 0;
	if (a->child) {
		fprintf(stderr, "quicstashd: --config %s: a child takes its configuration from the supervisor\n", a->path);
		return -1;
	}
	if (qs_file_read(a->path, CONFIG_MAX_BYTES, false, text, len) < 0) {
		fprintf(stderr, "quicstashd: --config %s: %s\n", a->path,
			errno == EFBIG ? "larger than 1 MiB" : qs_private_strerror(errno));
		return -1;
	}
	return 0;
}

/* A reload applied in place (QS_CTL_TENANTS): the tenants of a sealed copy the
 * supervisor sent. mmap, not pread: the parsers' and acceptors' sandboxes
 * allow no pread, and the copy is sealed against writes. */
struct qs_tenants *qs_config_handed_tenants(int fd, const char *name)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & CONFIG_SEALS) != CONFIG_SEALS || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size <= 0 || st.st_size > CONFIG_MAX_BYTES + 1 + QS_TENANTS_MAX_BYTES) {
		fprintf(stderr, "quicstashd: reload: the tenants handed over are not the supervisor's sealed copy\n");
		return NULL;
	}
	size_t len = (size_t)st.st_size;
	const char *text = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (text == MAP_FAILED) {
		fprintf(stderr, "quicstashd: reload: cannot read the tenants handed over: %s\n", strerror(errno));
		return NULL;
	}
	const char *nul = memchr(text, 0, len);
	struct qs_tenants *ts = NULL;
	if (!nul)
		fprintf(stderr, "quicstashd: reload: the copy handed over holds no tenants\n");
	else
		ts = qs_tenants_parse(nul + 1, len - (size_t)(nul + 1 - text), name, "quicstashd: ", false, NULL);
	munmap((void *)text, len);
	return ts;
}

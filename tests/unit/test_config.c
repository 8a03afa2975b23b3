/* The --config reader (issue 26, points 5 and 7): every byte counts, getopt's
 * abbreviations read the file, the supervisor keeps a sealed copy, and a child
 * parses only that copy (never the path, which may have changed). */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/config.h"

static char dir[] = "/tmp/qs-unit-config-XXXXXX";
static char path[256];
static struct qs_config cfg;

static void write_file(const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
	close(fd);
}

/* Parses as the supervisor would (plus extra options); the sealed copy is closed. */
static enum qs_config_result parse(const char *opt, const char *val, const char *extra)
{
	char *argv[8] = {"quicstashd", (char *)opt, (char *)val, "-s", "127.0.0.1:1", (char *)extra, NULL};
	int argc = extra ? 6 : 5;
	enum qs_config_result r = qs_config_parse(argc, argv, &cfg);
	if (cfg.config_fd >= 0)
		close(cfg.config_fd);
	return r;
}

static void test_bad_bytes(void)
{
	current_test = "bad bytes";
	write_file("parsers = 3\n", 12);
	CHECK_EQ(parse("--config", path, NULL), QS_CONFIG_OK);
	CHECK_EQ(cfg.parsers, 3);
	write_file("parsers = 3\n\0parsers = many\n", 28); /* fgets skipped the line */
	CHECK_EQ(parse("--config", path, NULL), QS_CONFIG_ERROR);
	static char big[9000 + 32];
	memset(big, 'x', sizeof(big));
	memcpy(big, "# ", 2);
	memcpy(big + 9000, "\nparsers = 2\n", 13); /* fgets parsed the tail as a line */
	write_file(big, 9013);
	CHECK_EQ(parse("--config", path, NULL), QS_CONFIG_ERROR);
	CHECK_EQ(parse("--config", dir, NULL), QS_CONFIG_ERROR); /* a directory */
}

static void test_abbreviation(void)
{
	current_test = "--conf";
	write_file("parsers = 5\n", 12);
	CHECK_EQ(parse("--conf", path, NULL), QS_CONFIG_OK);
	CHECK_EQ(cfg.parsers, 5);
	write_file("parsers = many\n", 15);
	CHECK_EQ(parse("--conf", path, NULL), QS_CONFIG_ERROR);
}

/* The child's side: a sealed copy at some descriptor, the path never read. */
static void test_handed(void)
{
	current_test = "handed over";
	write_file("parsers = 7\n", 12);
	char *argv[] = {"quicstashd", "--config", path, "-s", "127.0.0.1:1", NULL};
	CHECK_EQ(qs_config_parse(5, argv, &cfg), QS_CONFIG_OK);
	int sealed = cfg.config_fd;
	CHECK(sealed >= 0);
	CHECK(write(sealed, "x", 1) < 0); /* nobody may change it */
	write_file("parsers = many\n", 15); /* the file changes after the supervisor read it */
	char fdtext[16];
	snprintf(fdtext, sizeof(fdtext), "%d", dup(sealed));
	char *child[] = {"quicstashd", "--config", path, "-s", "127.0.0.1:1", "--role", "parser",
			 "--sealed-config-fd", fdtext, NULL};
	CHECK_EQ(qs_config_parse(9, child, &cfg), QS_CONFIG_OK);
	CHECK_EQ(cfg.parsers, 7);
	CHECK(fcntl(atoi(fdtext), F_GETFD) < 0); /* read and closed */
	/* a child never reads the path itself */
	char *nocopy[] = {"quicstashd", "--config", path, "--role", "parser", NULL};
	CHECK_EQ(qs_config_parse(5, nocopy, &cfg), QS_CONFIG_ERROR);
	/* an unsealed descriptor is not the supervisor's copy */
	int plain = memfd_create("x", MFD_CLOEXEC);
	CHECK(write(plain, "parsers = 2\n", 12) == 12);
	snprintf(fdtext, sizeof(fdtext), "%d", plain);
	CHECK_EQ(qs_config_parse(9, child, &cfg), QS_CONFIG_ERROR);
	close(sealed);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/q.conf", dir);
	test_bad_bytes();
	test_abbreviation();
	test_handed();
	unlink(path);
	rmdir(dir);
	return check_report();
}

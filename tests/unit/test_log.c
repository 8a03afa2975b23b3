/* Unit tests of logging (common/log.c, common/log_limit.c): the per call site
 * rate limit with a clock of the test's own, the stderr format, and the
 * JOURNAL_STREAM check that decides between stderr and journald. */
#include "tests/unit/check.h"

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/log_limit.h"

static struct qs_log_limit lim;

static unsigned admit_n(const void *key, unsigned n, uint64_t now, unsigned *reported)
{
	unsigned passed = 0;
	for (unsigned i = 0; i < n; i++) {
		struct qs_log_site *rep;
		char text[32];
		snprintf(text, sizeof(text), "message %u", i);
		passed += qs_log_limit_admit(&lim, key, 4, text, now, &rep);
		if (rep) {
			*reported += rep->suppressed;
			qs_log_limit_reported(rep);
		}
	}
	return passed;
}

static void test_burst_then_report(void)
{
	current_test = "burst then report";
	memset(&lim, 0, sizeof(lim));
	static const char a[] = "site a", b[] = "site b";
	unsigned reported = 0;
	uint64_t t0 = 5ull * QS_LOG_INTERVAL_NS;
	CHECK_EQ(admit_n(a, 1000, t0, &reported), QS_LOG_BURST);
	CHECK_EQ(reported, 0);
	/* another call site has a budget of its own */
	CHECK_EQ(admit_n(b, 3, t0 + 1, &reported), 3);
	/* nothing is due before the interval ends */
	CHECK(qs_log_limit_due(&lim, t0 + QS_LOG_INTERVAL_NS - 1, false) == NULL);
	struct qs_log_site *s = qs_log_limit_due(&lim, t0 + QS_LOG_INTERVAL_NS, false);
	CHECK(s != NULL && s->key == a);
	if (s) {
		CHECK_EQ(s->suppressed, 1000 - QS_LOG_BURST);
		CHECK_STR(s->last, "message 999");
		qs_log_limit_reported(s);
	}
	CHECK(qs_log_limit_due(&lim, t0 + QS_LOG_INTERVAL_NS, true) == NULL);
	/* a new interval: a new burst */
	CHECK_EQ(admit_n(a, 20, t0 + QS_LOG_INTERVAL_NS, &reported), QS_LOG_BURST);
	/* the next message after the interval reports the count itself when no tick did */
	reported = 0;
	CHECK_EQ(admit_n(a, 1, t0 + 2 * QS_LOG_INTERVAL_NS, &reported), 1);
	CHECK_EQ(reported, 20 - QS_LOG_BURST);
	/* at exit everything suppressed is due, interval over or not */
	admit_n(b, 50, t0 + 2 * QS_LOG_INTERVAL_NS, &reported);
	s = qs_log_limit_due(&lim, t0 + 2 * QS_LOG_INTERVAL_NS, true);
	CHECK(s != NULL && s->key == b && s->suppressed == 50 - QS_LOG_BURST); /* b's interval ended too: a full burst */
}

static void test_table_full(void)
{
	current_test = "table full: sites past it are not limited";
	memset(&lim, 0, sizeof(lim));
	static char keys[QS_LOG_SITES + 1];
	unsigned reported = 0;
	for (int i = 0; i < QS_LOG_SITES; i++)
		admit_n(&keys[i], 1, 1, &reported);
	CHECK_EQ(admit_n(&keys[QS_LOG_SITES], 100, 1, &reported), 100);
}

/* qs_log through stderr: the format is today's, and 1,000 lines from one call
 * site become QS_LOG_BURST. */
static void test_stderr(void)
{
	current_test = "stderr";
	char path[] = "/tmp/qs_test_log.XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	unsetenv("JOURNAL_STREAM");
	qs_log_init("tester", false);
	CHECK(!qs_log_to_journal());
	for (int i = 0; i < 1000; i++)
		qs_warn_kv(QS_KV({QS_LOG_CODE, "x"}), "flood %d", i);
	/* JOURNAL_STREAM names another file: still stderr */
	setenv("JOURNAL_STREAM", "1:1", 1);
	qs_log_init("tester", false);
	CHECK(!qs_log_to_journal());
	/* JOURNAL_STREAM names stderr: journald (nothing is sent here) */
	struct stat st;
	fstat(STDERR_FILENO, &st);
	char v[64];
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	qs_log_init("tester", false);
	CHECK(qs_log_to_journal());
	unsetenv("JOURNAL_STREAM");
	qs_log_init("tester", false);
	dup2(saved, STDERR_FILENO);
	close(saved);
	FILE *f = fopen(path, "r");
	char line[256], first[256] = "";
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		if (n++ == 0)
			snprintf(first, sizeof(first), "%s", line);
	if (f)
		fclose(f);
	close(fd);
	unlink(path);
	CHECK_EQ(n, QS_LOG_BURST);
	char want[64];
	snprintf(want, sizeof(want), "<4>tester[%d]: flood 0\n", (int)getpid());
	CHECK_STR(first, want);
	CHECK_STR(qs_log_errno_name(ECONNREFUSED), "ECONNREFUSED");
	CHECK(qs_log_errno_name(0) == NULL);
}

int main(void)
{
	test_burst_then_report();
	test_table_full();
	test_stderr();
	return check_report();
}

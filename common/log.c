#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log_format.h"
#include "common/log_journal.h"
#include "common/log_limit.h"

/* The shipper's helper threads log too: one lock around the rate limit and
 * the sinks (one line at a time, never interleaved). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_who[32] = "quicstashd";
static bool log_debug, log_journal, log_atexit, log_json, log_tty;
static bool log_stream; /* stderr is the journal stream (journald's fallback): priorities, no JSON */
static enum qs_log_style log_style;
static struct qs_log_limit log_limit;

static void flush_at_exit(void);

/* Called with log_mu held. */
static void set_style(void)
{
	log_style = log_stream ? QS_LOG_STYLE_TEXT
		    : log_json ? QS_LOG_STYLE_JSON
		    : log_tty  ? QS_LOG_STYLE_TEXT_TIME
			       : QS_LOG_STYLE_TEXT;
}

void qs_log_init(const char *who, bool debug)
{
	pthread_mutex_lock(&log_mu);
	snprintf(log_who, sizeof(log_who), "%s", who);
	log_debug = debug;
	log_journal = log_stream = qs_journal_detect();
	log_tty = isatty(STDERR_FILENO);
	set_style();
	pthread_mutex_unlock(&log_mu);
	if (!log_atexit) {
		log_atexit = true;
		atexit(flush_at_exit);
	}
}

void qs_log_set_json(bool json)
{
	pthread_mutex_lock(&log_mu);
	log_json = json;
	set_style();
	pthread_mutex_unlock(&log_mu);
}

const char *qs_log_errno_name(int err)
{
	const char *n = err ? strerrorname_np(err) : NULL;
	return n || !err ? n : "unknown";
}

bool qs_log_debug_enabled(void)
{
	return log_debug;
}

bool qs_log_to_journal(void)
{
	return log_journal;
}

static void to_stderr(const struct qs_journal_msg *m)
{
	char line[16384]; /* a message of 1 KiB, every byte escaped as JSON's \u00XX */
	size_t len = qs_log_format(line, sizeof(line), log_style, m, (int)getpid(), qs_realtime_ns());
	/* One write per line so lines from several processes do not interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

/* Called with log_mu held. */
static void emit(const struct qs_journal_msg *m)
{
	if (!log_journal || qs_journal_send(m) < 0)
		to_stderr(m);
}

static void report(struct qs_log_site *s)
{
	char text[QS_LOG_LAST + 64];
	snprintf(text, sizeof(text), "%s ... (%u similar messages suppressed)", s->last, s->suppressed);
	emit(&(struct qs_journal_msg){.level = s->level, .who = log_who, .text = text, .suppressed = s->suppressed});
	qs_log_limit_reported(s);
}

static void vlog(enum qs_log_level lvl, const struct qs_log_kv *kv, const char *file, int line, const char *func,
		 const char *fmt, va_list ap)
{
	char text[1024];
	vsnprintf(text, sizeof(text), fmt, ap);
	struct qs_log_site *due;
	pthread_mutex_lock(&log_mu);
	bool pass = qs_log_limit_admit(&log_limit, fmt, (int)lvl, text, qs_now_ns(), &due);
	if (due)
		report(due);
	if (pass)
		emit(&(struct qs_journal_msg){.level = (int)lvl, .who = log_who, .text = text, .kv = kv, .file = file,
					      .line = line, .func = func});
	pthread_mutex_unlock(&log_mu);
}

void qs_log(enum qs_log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(lvl, NULL, NULL, 0, NULL, fmt, ap);
	va_end(ap);
}

void qs_log_at(enum qs_log_level lvl, const struct qs_log_kv *kv, const char *file, int line, const char *func,
	       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(lvl, kv, file, line, func, fmt, ap);
	va_end(ap);
}

static void flush_due(bool force)
{
	/* At exit another thread may be stopped holding the lock: then no report. */
	if (force ? pthread_mutex_trylock(&log_mu) != 0 : pthread_mutex_lock(&log_mu) != 0)
		return;
	uint64_t now = qs_now_ns();
	for (struct qs_log_site *s; (s = qs_log_limit_due(&log_limit, now, force));)
		report(s);
	pthread_mutex_unlock(&log_mu);
}

void qs_log_tick(void)
{
	flush_due(false);
}

static void flush_at_exit(void)
{
	flush_due(true);
}

void qs_log_before_chroot(const char *root)
{
	if (!log_journal)
		return;
	char err[256];
	if (qs_journal_into_root(root, err, sizeof(err)) == 0)
		return;
	/* stderr is still the journal stream: lines keep their priority, lose their fields. */
	log_journal = false;
	qs_warn("journald: %s; logging to stderr", err);
}

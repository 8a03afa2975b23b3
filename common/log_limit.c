#include "common/log_limit.h"

#include <stdio.h>

static struct qs_log_site *find(struct qs_log_limit *l, const void *key)
{
	size_t h = ((uintptr_t)key >> 3) * 2654435761u;
	for (size_t i = 0; i < QS_LOG_SITES; i++) {
		struct qs_log_site *s = &l->site[(h + i) % QS_LOG_SITES];
		if (s->key == key)
			return s;
		if (!s->key) {
			s->key = key;
			return s;
		}
	}
	return NULL;
}

bool qs_log_limit_admit(struct qs_log_limit *l, const void *key, int level, const char *text, uint64_t now_ns,
			struct qs_log_site **report)
{
	*report = NULL;
	struct qs_log_site *s = find(l, key);
	if (!s)
		return true;
	if (s->passed == 0 || now_ns - s->start_ns >= QS_LOG_INTERVAL_NS) {
		if (s->suppressed)
			*report = s; /* its interval ended; the caller reports, then resets it */
		s->start_ns = now_ns;
		s->passed = 1;
		return true;
	}
	if (s->passed < QS_LOG_BURST) {
		s->passed++;
		return true;
	}
	s->suppressed++;
	s->level = level;
	if (text)
		snprintf(s->last, sizeof(s->last), "%s", text);
	return false;
}

struct qs_log_site *qs_log_limit_due(struct qs_log_limit *l, uint64_t now_ns, bool force)
{
	for (size_t i = 0; i < QS_LOG_SITES; i++) {
		struct qs_log_site *s = &l->site[i];
		if (s->key && s->suppressed && (force || now_ns - s->start_ns >= QS_LOG_INTERVAL_NS))
			return s;
	}
	return NULL;
}

void qs_log_limit_reported(struct qs_log_site *s)
{
	s->suppressed = 0;
}

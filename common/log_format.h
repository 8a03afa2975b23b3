/* common/log.c's stderr sink: one line per message, in one of three forms.
 *
 *   text       <PRIORITY>role[pid]: message          (systemd's stream reads the priority)
 *   text+time  2026-12-06T10:12:47.123Z <6>role[pid]: message   (stderr is a terminal)
 *   json       {"time":"2026-12-06T10:12:47.123Z","level":"info","role":"shipper","pid":812,
 *               "message":"...","peer":"192.0.2.7","peer_port":"443","code":"ECONNREFUSED"}
 *
 * JSON is built with cJSON (quotes, backslashes and control bytes escaped);
 * bytes that are not UTF-8 (a client's text may hold anything) become U+FFFD
 * first, so that every line is one valid JSON object. The fields are the
 * message's journal fields (log.h), QUICSTASH_ dropped and lower-cased, and
 * "suppressed" for a report of suppressed messages. */
#ifndef QS_LOG_FORMAT_H
#define QS_LOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/log_journal.h"

enum qs_log_style { QS_LOG_STYLE_TEXT = 0, QS_LOG_STYLE_TEXT_TIME, QS_LOG_STYLE_JSON };

/* Writes m as one line ending in '\n' into out (cap bytes; a longer message
 * is cut, never the JSON's closing); returns its length. time_ns: CLOCK_REALTIME. */
size_t qs_log_format(char *out, size_t cap, enum qs_log_style style, const struct qs_journal_msg *m, int pid,
		     uint64_t time_ns);

/* Copies src into out (cap bytes, NUL-terminated) with every byte that is
 * not part of a valid UTF-8 sequence replaced by U+FFFD. */
void qs_utf8_clean(char *out, size_t cap, const char *src);

#endif

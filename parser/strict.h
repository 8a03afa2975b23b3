/* What cJSON accepts and JSON (RFC 8259) does not, found in a frame that
 * cJSON has parsed. The raw paths forward the client's bytes and the slow
 * path its spellings (spelling.h), so such text would reach Logstash's strict
 * parser unchanged and fail there, after we had acknowledged the event:
 *  - a number with a leading zero (01, -01), or a '.' or '-' with no digit
 *    after it (1., 1.e5, -.5);
 *  - a \u escape without four hex digits (cJSON reads "\uZZZZ" as U+0000);
 *  - a number longer than QS_JSON_NUMBER_MAX characters (docs/PROTOCOL.md:
 *    a limit on every event, whichever path it takes);
 *  - text that is not UTF-8 (RFC 8259 8.1; cJSON copies any byte, Logstash
 *    would put U+FFFD in place of the bad ones without a word).
 * Still let through, because the output cannot carry them: raw control bytes
 * (inside strings they are escaped, outside they are whitespace to cJSON and
 * dropped by the slow path) and a leading UTF-8 BOM. */
#ifndef QS_PARSER_STRICT_H
#define QS_PARSER_STRICT_H

#include <stdbool.h>
#include <stddef.h>

#define QS_JSON_NUMBER_MAX 63

struct qs_json_strict {
	bool control;  /* a byte below 0x20 occurs: the raw paths must not copy the text */
	size_t bad_at; /* not strict: where the offending number, escape or byte is */
	const char *why;
};

/* One pass over json[0..len): false when the text is not strict JSON. */
bool qs_json_strict(const char *json, size_t len, struct qs_json_strict *r);

/* Each implementation alone, for tests to compare on text cJSON accepted:
 * byte by byte, or 64-byte blocks (SSE2, or AVX2 where the CPU has it).
 * 1 strict, 0 not, -1 not here. */
enum qs_strict_impl { QS_STRICT_BYTES, QS_STRICT_SSE2, QS_STRICT_AVX2 };
int qs_json_strict_impl(enum qs_strict_impl impl, const char *json, size_t len, struct qs_json_strict *r);

#endif

/* The client's own spelling of every scalar, put back into cJSON's tree.
 *
 * The slow path of parser/enrich.c edits cJSON's tree and prints it. cJSON
 * keeps a number only as a double and a string only up to its first U+0000,
 * so printing would change what the client sent: 12345678901234567891
 * becomes 12345678901234567000, 1e999 becomes null, "a\u0000b" becomes "a".
 * Each number and string value is therefore turned into a cJSON_Raw node that
 * holds its exact text from the frame, and prints as that text. */
#ifndef QS_PARSER_SPELLING_H
#define QS_PARSER_SPELLING_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* root: what cJSON parsed from json[0..len). Returns 0, or a reject code
 * (enum qs_reject_code) with the reason in *why: QS_REJ_INVALID_JSON when the
 * event cannot be kept as sent, QS_REJ_INTERNAL when out of memory (or if
 * text and tree ever disagreed). */
int qs_spelling_restore(cJSON *root, const char *json, size_t len, const char **why);

#endif

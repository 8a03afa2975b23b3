/* Newline-delimited input for quicstash-send: files in order, or stdin, read
 * lazily in chunks; pipes are read without blocking the event loop. */
#ifndef QS_SEND_INPUT_H
#define QS_SEND_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

struct qs_input {
	char **files; /* NULL: stdin */
	int nfiles, cur;
	int fd;
	int saved_flags; /* stdin's file flags, restored at the end */
	char *buf;
	size_t cap, start, end;
	size_t max_line;
	uint64_t line; /* number of the last line returned, in the current file */
	bool eof;      /* of the current file */
	struct event_base *base;
	struct event *ev;
	void (*readable)(void *ud);
	void *ud;
};

enum { QS_IN_LINE = 1, QS_IN_WAIT = 0, QS_IN_END = -1, QS_IN_ERROR = -2 };

int qs_input_open(struct qs_input *in, struct event_base *base, char **files, int nfiles, size_t max_line,
		  void (*readable)(void *ud), void *ud, char *err, size_t errlen);
/* QS_IN_LINE: line and len hold the next line without its newline (valid until
 * the next call), in->cur the file index, in->line its number. QS_IN_WAIT: a
 * pipe has no data yet, readable() will be called. */
int qs_input_next(struct qs_input *in, const char **line, size_t *len, char *err, size_t errlen);
const char *qs_input_name(const struct qs_input *in, int file);
void qs_input_close(struct qs_input *in);

/* The whole input in memory (for --raw). */
int qs_input_slurp(char **files, int nfiles, uint8_t **data, size_t *len, char *err, size_t errlen);

#endif

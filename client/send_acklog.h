/* quicstash-send's --ack-log: one line per acknowledged (durable) input line,
 * "L" or "FILE:L" with several input files, appended as each ack arrives.
 *
 * A line is written with one write() on an O_APPEND file, so a killed client
 * leaves whole lines (the page cache keeps them); the file is fdatasync'ed
 * every tick and at exit, so a machine crash loses at most the last moments'
 * lines: those input lines are sent again (a duplicate, never a loss). A torn
 * last line (crash, full disk) is cut off when the file is opened. With
 * --resume the lines already in it are read back and skipped. */
#ifndef QS_SEND_ACKLOG_H
#define QS_SEND_ACKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct send_acklog {
	int fd;
	bool dirty;       /* written since the last fdatasync */
	int nfiles;       /* input files (1 for stdin) */
	uint64_t **done;  /* --resume: per input file, a bitmap of lines acknowledged before */
	size_t *words;    /* the length of each bitmap, in 64-bit words */
	uint64_t entries; /* lines found in the log at start */
};

/* Opens (creates) path for appending: a regular file, no symlink, locked
 * against a second quicstash-send. A torn last line is cut off (reported on
 * stderr). resume: reads the acknowledged lines back; an entry that names no
 * input is an error (the log belongs to another input). -1 with err. */
int acklog_open(struct send_acklog *a, const char *path, bool resume, char **files, int nfiles, char *err,
		size_t errlen);
/* Whether line (1-based) of input file was acknowledged by an earlier run. */
bool acklog_done(const struct send_acklog *a, int file, uint64_t line);
/* Appends "entry\n" with one write(); -1 when it failed (full disk, I/O error). */
int acklog_append(struct send_acklog *a, const char *entry);
/* fdatasync when something was written since the last one. */
void acklog_sync(struct send_acklog *a);
void acklog_close(struct send_acklog *a);

#endif

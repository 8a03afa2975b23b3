/* A scrape of the Prometheus text format (0.0.4) parsed into samples, for
 * quicstash-top. The text comes from the network: every limit below bounds
 * the work and memory one scrape may cost, whatever it holds. */
#ifndef QS_TOP_EXPO_H
#define QS_TOP_EXPO_H

#include <stdbool.h>
#include <stddef.h>

#define EXPO_MAX_SAMPLES 4096 /* more are ignored (counted in dropped) */
#define EXPO_NAME_MAX 128     /* longer names: the line is skipped */
#define EXPO_LABELS_MAX 256   /* label text after unescaping, "k=v" pairs joined */
#define EXPO_LINE_MAX 1024    /* longer lines are skipped */

struct expo_sample {
	char name[EXPO_NAME_MAX];
	/* pairs as "key\037value\036key\037value\036": separators no label can hold
	 * once parsed (control characters in values are replaced by '?') */
	char labels[EXPO_LABELS_MAX];
	double value;
};

struct expo {
	struct expo_sample *s;
	size_t n;
	size_t skipped; /* lines that were not comments, blank or a parsable sample */
	size_t dropped; /* samples beyond EXPO_MAX_SAMPLES */
};

/* Parses len bytes (no terminator needed) into e, whose samples array has room
 * for EXPO_MAX_SAMPLES; returns the number of samples. */
size_t expo_parse(struct expo *e, const char *text, size_t len);
/* The label's value in s, copied into buf; false if s has no such label. */
bool expo_label(const struct expo_sample *s, const char *key, char *buf, size_t len);
/* Sum of every sample named name (all label sets); *found tells whether any was. */
double expo_sum(const struct expo *e, const char *name, bool *found);
/* Sum of the samples named name whose label key equals value. */
double expo_sum_where(const struct expo *e, const char *name, const char *key, const char *value);

#endif

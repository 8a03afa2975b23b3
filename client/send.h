/* quicstash-send: what its parts share. */
#ifndef QS_SEND_H
#define QS_SEND_H

#include <stdbool.h>
#include <stddef.h>

#include "client/qs_client.h"

struct send_opts {
	struct qs_client_opts client;
	double timeout_s;   /* no progress for this long: exit 2 */
	const char *ack_log;
	const char *token_file;
	bool resume;        /* skip the input lines ack_log holds */
	bool quiet, raw;
	char **files;
	int nfiles;
	size_t window;      /* event bytes held at most before reading pauses */
	double max_rate;    /* events per second at most (0: no limit) */
	char token[QS_AUTH_TOKEN_MAX]; /* --token-file or QUICSTASH_TOKEN (client.token points here) */
	unsigned long test_rebind_after; /* hidden test hook: rebind the local port after N acks (0: never) */
};

#define SEND_EXIT_OK 0
#define SEND_EXIT_REJECTED 1
#define SEND_EXIT_ERROR 2

int send_events(const struct send_opts *o);
int send_raw(const struct send_opts *o);
double send_now(void);

#endif

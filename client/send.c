/* quicstash-send: ship newline-delimited JSON to quicstashd and wait until it is durable. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/send.h"
#include "common/clock.h"

static const char usage[] =
	"usage: quicstash-send [options] [FILE...]\n"
	"Sends one event per line of newline-delimited JSON (FILEs in order, or stdin) to\n"
	"quicstashd over QUIC and waits until each is acknowledged (durable) or rejected.\n"
	"Blank lines are skipped but counted. Prints one line per rejection with its input\n"
	"line, and 'sent N acked A rejected R in T s (X/s)' on stderr (sent: events that\n"
	"left; X: answers a second). SIGINT (Ctrl-C) or SIGTERM closes the connection,\n"
	"prints that line as it stands and exits 2.\n\n"
	"  -s, --server-addr HOST:PORT  server (default 127.0.0.1:4433; [v6]:port, names)\n"
	"  -c, --cert FILE              trust: the server's certificate or a PEM CA bundle\n"
	"                               (default server_cert.der)\n"
	"      --server-name NAME       name to verify in the certificate (default: the host)\n"
	"      --streams N              concurrent QUIC streams, 1..64 (default 4)\n"
	"      --timeout SECONDS        give up after this long without progress (default 30)\n"
	"      --max-rate N             send at most N events per second on average (default:\n"
	"                               as fast as the server acknowledges)\n"
	"      --ack-log FILE           append the line number of each acknowledged event\n"
	"                               (FILE:LINE with several input files) as it comes:\n"
	"                               written at once (a killed client keeps them),\n"
	"                               fdatasync'ed every 0.25 s and at exit; a torn last\n"
	"                               line is cut off; a regular file, no symlink, one\n"
	"                               quicstash-send at a time\n"
	"      --resume                 with --ack-log: skip the input lines it holds (sent\n"
	"                               and acknowledged by an earlier run on the same input,\n"
	"                               in the same order); the rest is sent ('skipped K')\n"
	"      --handshake-retries N    a first handshake that fails on the server's side\n"
	"                               (its TLS internal_error, connection refused) is\n"
	"                               retried up to N times within 30 s, backing off from\n"
	"                               0.1 s to 2 s with jitter (default 8; 0: never). A busy\n"
	"                               server is always retried, a bad certificate never\n"
	"      --token-file FILE        authenticate with the bearer token in FILE (one line;\n"
	"                               default: the QUICSTASH_TOKEN variable, if set)\n"
	"      --client-cert FILE       authenticate with this PEM client certificate...\n"
	"      --client-key FILE        ...and its PEM key. A refused authentication\n"
	"                               prints the server's reason and exits 2\n"
	"      --raw                    send the input bytes as they are on one stream (no\n"
	"                               header, no framing) and print every answer on stdout\n"
	"  -q, --quiet                  no summary, progress or reconnect notices\n"
	"  -h, --help                   this help\n"
	"  -V, --version                print the version\n\n"
	"Exit: 0 all acknowledged, 1 some rejected, 2 error, timeout or interrupted.\n";

enum { OPT_TIMEOUT = 256, OPT_ACK_LOG, OPT_RESUME, OPT_HS_RETRIES, OPT_STREAMS, OPT_SERVER_NAME, OPT_RAW,
       OPT_TEST_REBIND, OPT_MAX_RATE, OPT_TEST_HOLD, OPT_TEST_UNREAD, OPT_TEST_RESET, OPT_TEST_SOURCE,
       OPT_TEST_RAW_RESET, OPT_TOKEN_FILE, OPT_CLIENT_CERT, OPT_CLIENT_KEY };

static const struct option long_opts[] = {
	{"server-addr", required_argument, NULL, 's'},
	{"cert", required_argument, NULL, 'c'},
	{"server-name", required_argument, NULL, OPT_SERVER_NAME},
	{"streams", required_argument, NULL, OPT_STREAMS},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"ack-log", required_argument, NULL, OPT_ACK_LOG},
	{"resume", no_argument, NULL, OPT_RESUME},
	{"handshake-retries", required_argument, NULL, OPT_HS_RETRIES},
	{"max-rate", required_argument, NULL, OPT_MAX_RATE},
	{"raw", no_argument, NULL, OPT_RAW},
	{"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	{"client-cert", required_argument, NULL, OPT_CLIENT_CERT},
	{"client-key", required_argument, NULL, OPT_CLIENT_KEY},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
#ifdef QS_TEST_HOOKS /* hidden, test builds only (docs/ARCHITECTURE.md, "Test-only hooks") */
	/* hidden, for tests: move to a new local UDP port after N acks (NAT rebinding) */
	{"test-rebind-after", required_argument, NULL, OPT_TEST_REBIND},
	/* hidden, for tests: --raw on N streams that are never finished (incomplete frames held) */
	{"test-hold-streams", required_argument, NULL, OPT_TEST_HOLD},
	/* hidden, for tests: never give the server credit for its answers (a client that does not read) */
	{"test-unread-answers", no_argument, NULL, OPT_TEST_UNREAD},
	/* hidden, for tests: --raw, but the first N streams are reset once the server has their bytes */
	{"test-reset-streams", required_argument, NULL, OPT_TEST_RESET},
	/* hidden, for tests: --raw without FIN, then RESET_STREAM once the server has the bytes; answers still read */
	{"test-raw-reset", no_argument, NULL, OPT_TEST_RAW_RESET},
	/* hidden, for tests: send from this local address (one of 127.0.0.0/8: another source) */
	{"test-source-addr", required_argument, NULL, OPT_TEST_SOURCE},
#endif
	{0},
};

double send_now(void)
{
	return (double)qs_now_ns() / 1e9;
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "quicstash-send: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see --help)\n");
	return -1;
}

#ifdef QS_TEST_HOOKS
/* The count of a raw-mode test option: 1..100 streams. */
static int raw_streams_count(const char *arg, const char *err_fmt, unsigned *out)
{
	char *end;
	long n = strtol(arg, &end, 10);
	if (*arg == 0 || *end != 0 || n < 1 || n > 100)
		return bad(err_fmt, arg);
	*out = (unsigned)n;
	return 0;
}

/* The hidden test options; 1 when ch is none of them. */
static int parse_test_option(struct send_opts *o, int ch, const char *arg)
{
	char *end;
	switch (ch) {
	case OPT_TEST_REBIND:
		o->test_rebind_after = strtoul(arg, &end, 10);
		if (*arg == 0 || *end != 0)
			return bad("--test-rebind-after '%s': expected a number of acknowledged events", arg);
		return 0;
	case OPT_TEST_HOLD:
		o->raw = true;
		return raw_streams_count(arg, "--test-hold-streams '%s': expected 1..100", &o->client.raw_hold_streams);
	case OPT_TEST_RESET:
		o->raw = true;
		return raw_streams_count(arg, "--test-reset-streams '%s': expected 1..100", &o->client.raw_reset_streams);
	case OPT_TEST_SOURCE: o->client.source_addr = arg; return 0;
	case OPT_TEST_RAW_RESET:
		o->raw = o->client.raw_reset_read = true;
		return 0;
	case OPT_TEST_UNREAD:
		o->client.unread_answers = true;
		return 0;
	default: return 1;
	}
}
#endif

static int parse_one(struct send_opts *o, int ch, const char *arg, char **argv)
{
	char *end;
#ifdef QS_TEST_HOOKS
	int rc = parse_test_option(o, ch, arg);
	if (rc <= 0)
		return rc;
#endif
	switch (ch) {
	case 's': o->client.server_addr = arg; return 0;
	case 'c': o->client.trust_file = arg; return 0;
	case OPT_SERVER_NAME: o->client.server_name = arg; return 0;
	case OPT_ACK_LOG: o->ack_log = arg; return 0;
	case OPT_RESUME: o->resume = true; return 0;
	case OPT_HS_RETRIES: {
		long n = strtol(arg, &end, 10);
		if (*arg == 0 || *end != 0 || n < 0 || n > 1000)
			return bad("--handshake-retries '%s': expected 0..1000", arg);
		o->client.handshake_retries = n ? (unsigned)n : QS_CLIENT_NO_RETRY;
		return 0;
	}
	case OPT_RAW: o->raw = true; return 0;
	case OPT_TOKEN_FILE: o->token_file = arg; return 0;
	case OPT_CLIENT_CERT: o->client.client_cert = arg; return 0;
	case OPT_CLIENT_KEY: o->client.client_key = arg; return 0;
	case 'q': o->quiet = true; return 0;
	case OPT_STREAMS: {
		long n = strtol(arg, &end, 10);
		if (*arg == 0 || *end != 0 || n < 1 || n > 64)
			return bad("--streams '%s': expected 1..64", arg);
		o->client.streams = (unsigned)n;
		return 0;
	}
	case OPT_MAX_RATE:
		o->max_rate = strtod(arg, &end);
		if (*arg == 0 || *end != 0 || !(o->max_rate > 0) || o->max_rate > 1e9)
			return bad("--max-rate '%s': expected a positive number of events per second", arg);
		return 0;
	case OPT_TIMEOUT:
		o->timeout_s = strtod(arg, &end);
		if (*arg == 0 || *end != 0 || !(o->timeout_s > 0) || o->timeout_s > 1e9)
			return bad("--timeout '%s': expected a positive number of seconds", arg);
		return 0;
	case 'h': fputs(usage, stdout); exit(SEND_EXIT_OK);
	case 'V': printf("quicstash-send %s\n", QS_VERSION); exit(SEND_EXIT_OK);
	case ':': return bad("option %s needs an argument", argv[optind - 1]);
	default: return bad("unknown option %s", argv[optind - 1]);
	}
}

static int parse_args(struct send_opts *o, int argc, char **argv)
{
	*o = (struct send_opts){
		.client = {.server_addr = "127.0.0.1:4433", .trust_file = "server_cert.der", .streams = 4},
		.timeout_s = 30,
		.window = 64u << 20,
	};
	opterr = 0; /* our own one-line messages */
	int ch;
	while ((ch = getopt_long(argc, argv, ":s:c:qhV", long_opts, NULL)) != -1)
		if (parse_one(o, ch, optarg, argv) < 0)
			return -1;
	if (o->resume && (!o->ack_log || o->raw))
		return bad("%s", o->raw ? "--resume does not go with --raw" : "--resume needs --ack-log FILE");
	o->client.debug = getenv("QUICSTASH_DEBUG") != NULL; /* ngtcp2's packet log */
	char err[400];
	if (qs_client_token(o->token_file, o->token, sizeof(o->token), &o->client.token_len, err, sizeof(err)) < 0)
		return bad("%s", err);
	o->client.token = o->client.token_len ? o->token : NULL;
	o->files = argv + optind;
	o->nfiles = argc - optind;
	return 0;
}

int main(int argc, char **argv)
{
	struct send_opts o;
	if (parse_args(&o, argc, argv) < 0)
		return SEND_EXIT_ERROR;
	signal(SIGPIPE, SIG_IGN);
	return o.raw ? send_raw(&o) : send_events(&o);
}

/* quicstash-bench: load generator for quicstashd, built on the client library.
 *
 * C connections (spread over T threads, one libevent loop each) x S streams per
 * connection send JSON events -- a fixed-size synthetic event or the lines of a
 * corpus file -- either as fast as the server acknowledges them (full load,
 * at most --window unresolved events per connection) or at a target --rate.
 * It reports events/s, MB/s, the acknowledgement latency distribution and
 * errors, as text or as one JSON object (--json).
 *
 * Acknowledgement latency = time the server's acknowledgement (the library's
 * on_ack for that sequence number) arrives minus the time the event was handed
 * to qs_client_send(). With --rate, it is measured from the event's *intended*
 * send time (start + k/rate), so a stalled server is not hidden by the load
 * generator waiting for it (no coordinated omission).
 *
 * Events/s and MB/s count acknowledged events (JSON bytes, without framing)
 * over the time from the first send to the last acknowledgement. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/evbase.h"
#include "bench/histogram.h"
#include "client/qs_client.h"

/* ---------- options ---------- */

#define BENCH_MAX_TOKENS 16

struct opts {
	const char *server;
	const char *cert;
	const char *server_name;
	/* authentication (docs/TENANTS.md): connection i presents token i mod ntokens */
	const char *token_file[BENCH_MAX_TOKENS], *client_cert, *client_key;
	unsigned ntoken_files, ntokens;
	char token[BENCH_MAX_TOKENS][QS_AUTH_TOKEN_MAX];
	size_t token_len[BENCH_MAX_TOKENS];
	unsigned connections;
	unsigned streams;
	unsigned threads;
	unsigned size;
	const char *corpus;
	double rate;     /* events/s in total, 0: as fast as acknowledged */
	double duration; /* seconds of sending, 0: until count */
	double warmup;   /* seconds at the start whose latencies are reported apart */
	uint64_t count;  /* events in total, 0: duration (or the whole corpus) */
	unsigned window; /* unresolved events per connection */
	double connect_timeout;
	double drain_timeout;
	double stall_timeout;
	uint32_t range_events;
	bool json;
	bool progress;
	const char *label;
	double spread;          /* the first connections are made over this many seconds (0: at once) */
	bool reconnect;         /* then all reconnect at once, resuming (a reconnect storm) */
	const char *phase_file; /* written when the reconnect storm is about to start */
	bool no_resume;         /* full handshakes only (what resumption saves) */
};

static struct opts O = {
	.server = "127.0.0.1:4433",
	.connections = 4,
	.streams = 4,
	.threads = 1,
	.size = 256,
	.window = 2048,
	.connect_timeout = 10,
	.drain_timeout = 30,
	.stall_timeout = 15,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: quicstash-bench [options]\n"
		"Load generator for quicstashd: events over QUIC, counting acknowledgements.\n\n"
		"  -s, --server ADDR          quicstashd address host:port (127.0.0.1:4433)\n"
		"      --cert FILE            the server's certificate (or a CA bundle) to trust\n"
		"      --server-name NAME     name to verify in the certificate (host of --server)\n"
		"      --token-file FILE      authenticate with this bearer token (default: QUICSTASH_TOKEN);\n"
		"                             repeatable (up to 16): connection i uses the (i mod N)th\n"
		"      --client-cert FILE     authenticate with this PEM client certificate,\n"
		"      --client-key FILE      and its PEM key\n"
		"  -c, --connections C        QUIC connections (4)\n"
		"  -S, --streams S            concurrent streams per connection (4)\n"
		"  -T, --threads T            sending threads, one event loop each (1)\n"
		"      --size BYTES           synthetic event size in bytes (256)\n"
		"      --corpus FILE          send the lines of FILE (newline-delimited JSON) instead\n"
		"  -r, --rate N               target events/s in total (0: as fast as acknowledged)\n"
		"  -d, --duration SECONDS     send for this long\n"
		"  -n, --count N              send N events (default: the whole corpus, else 10 s)\n"
		"  -w, --window N             unresolved events allowed per connection (2048)\n"
		"      --warmup SECONDS       latencies of events due in the first SECONDS are reported\n"
		"                             apart (cold start), not in the percentiles (0)\n"
		"      --range-events N       events per stream before FIN (library default)\n"
		"      --connect-timeout S    give up when not all connected after S s (10)\n"
		"      --drain-timeout S      wait at most S s for outstanding acks at the end (30)\n"
		"      --stall-timeout S      stop when nothing was acknowledged for S s (15; 0: never)\n"
		"      --label TEXT           label copied into the report\n"
		"      --json                 one JSON object on stdout instead of text\n"
		"      --progress             a line per second on stderr\n"
		"      --spread SECONDS       make the connections over SECONDS instead of at once (0)\n"
		"      --reconnect            once every event is acknowledged, every connection\n"
		"                             reconnects at once with its TLS session ticket (a\n"
		"                             reconnect storm): reported as reconnect_s, resumed, ...\n"
		"      --phase-file FILE      written (and 0.5 s waited) just before that reconnect\n"
		"      --no-resume            never resume a TLS session: full handshakes only\n"
		"  -h, --help                 this help\n");
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int parse_opts(int argc, char **argv)
{
	enum {
		OPT_CERT = 1000, OPT_NAME, OPT_SIZE, OPT_CORPUS, OPT_CTO, OPT_DTO, OPT_STO, OPT_RANGE, OPT_LABEL,
		OPT_JSON, OPT_PROG, OPT_WARM, OPT_TOKEN, OPT_CCERT, OPT_CKEY,
		OPT_SPREAD, OPT_RECONNECT, OPT_PHASE, OPT_NORESUME
	};
	static const struct option lo[] = {
		{"server", required_argument, NULL, 's'},
		{"cert", required_argument, NULL, OPT_CERT},
		{"server-name", required_argument, NULL, OPT_NAME},
		{"token-file", required_argument, NULL, OPT_TOKEN},
		{"client-cert", required_argument, NULL, OPT_CCERT},
		{"client-key", required_argument, NULL, OPT_CKEY},
		{"connections", required_argument, NULL, 'c'},
		{"streams", required_argument, NULL, 'S'},
		{"threads", required_argument, NULL, 'T'},
		{"size", required_argument, NULL, OPT_SIZE},
		{"corpus", required_argument, NULL, OPT_CORPUS},
		{"rate", required_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 'd'},
		{"count", required_argument, NULL, 'n'},
		{"window", required_argument, NULL, 'w'},
		{"warmup", required_argument, NULL, OPT_WARM},
		{"range-events", required_argument, NULL, OPT_RANGE},
		{"connect-timeout", required_argument, NULL, OPT_CTO},
		{"drain-timeout", required_argument, NULL, OPT_DTO},
		{"stall-timeout", required_argument, NULL, OPT_STO},
		{"label", required_argument, NULL, OPT_LABEL},
		{"json", no_argument, NULL, OPT_JSON},
		{"progress", no_argument, NULL, OPT_PROG},
		{"spread", required_argument, NULL, OPT_SPREAD},
		{"reconnect", no_argument, NULL, OPT_RECONNECT},
		{"phase-file", required_argument, NULL, OPT_PHASE},
		{"no-resume", no_argument, NULL, OPT_NORESUME},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	uint64_t u;
	while ((c = getopt_long(argc, argv, "s:c:S:T:r:d:n:w:h", lo, NULL)) != -1) {
		switch (c) {
		case 's': O.server = optarg; break;
		case OPT_CERT: O.cert = optarg; break;
		case OPT_NAME: O.server_name = optarg; break;
		case OPT_TOKEN:
			if (O.ntoken_files == BENCH_MAX_TOKENS) goto bad;
			O.token_file[O.ntoken_files++] = optarg;
			break;
		case OPT_CCERT: O.client_cert = optarg; break;
		case OPT_CKEY: O.client_key = optarg; break;
		case 'c':
			if (!parse_u64(optarg, 1, 10000, &u)) goto bad;
			O.connections = (unsigned)u;
			break;
		case 'S':
			if (!parse_u64(optarg, 1, 64, &u)) goto bad;
			O.streams = (unsigned)u;
			break;
		case 'T':
			if (!parse_u64(optarg, 1, 64, &u)) goto bad;
			O.threads = (unsigned)u;
			break;
		case OPT_SIZE:
			if (!parse_u64(optarg, 16, 64u << 20, &u)) goto bad;
			O.size = (unsigned)u;
			break;
		case OPT_CORPUS: O.corpus = optarg; break;
		case 'r':
			if (!parse_double(optarg, &O.rate)) goto bad;
			break;
		case 'd':
			if (!parse_double(optarg, &O.duration)) goto bad;
			break;
		case 'n':
			if (!parse_u64(optarg, 1, UINT64_MAX, &O.count)) goto bad;
			break;
		case 'w':
			if (!parse_u64(optarg, 1, 1u << 24, &u)) goto bad;
			O.window = (unsigned)u;
			break;
		case OPT_WARM:
			if (!parse_double(optarg, &O.warmup)) goto bad;
			break;
		case OPT_RANGE:
			if (!parse_u64(optarg, 1, UINT32_MAX, &u)) goto bad;
			O.range_events = (uint32_t)u;
			break;
		case OPT_CTO:
			if (!parse_double(optarg, &O.connect_timeout)) goto bad;
			break;
		case OPT_DTO:
			if (!parse_double(optarg, &O.drain_timeout)) goto bad;
			break;
		case OPT_STO:
			if (!parse_double(optarg, &O.stall_timeout)) goto bad;
			break;
		case OPT_LABEL: O.label = optarg; break;
		case OPT_JSON: O.json = true; break;
		case OPT_PROG: O.progress = true; break;
		case OPT_SPREAD:
			if (!parse_double(optarg, &O.spread)) goto bad;
			break;
		case OPT_RECONNECT: O.reconnect = true; break;
		case OPT_PHASE: O.phase_file = optarg; break;
		case OPT_NORESUME: O.no_resume = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		continue;
	bad:
		fprintf(stderr, "quicstash-bench: bad value for option: '%s'\n", optarg);
		return -1;
	}
	if (optind != argc) {
		fprintf(stderr, "quicstash-bench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (O.threads > O.connections)
		O.threads = O.connections;
	char err[400];
	for (unsigned i = 0; i < (O.ntoken_files ? O.ntoken_files : 1); i++) {
		if (qs_client_token(O.ntoken_files ? O.token_file[i] : NULL, O.token[i], sizeof(O.token[i]), &O.token_len[i],
				    err, sizeof(err)) < 0) {
			fprintf(stderr, "quicstash-bench: %s\n", err);
			return -1;
		}
		O.ntokens += O.token_len[i] != 0;
	}
	return 0;
}

/* ---------- events: a corpus or one synthetic event ---------- */

struct payload {
	const char *data;  /* the corpus mapping, or the synthetic event */
	uint64_t *off;     /* line i is data[off[i] .. off[i] + len[i]) */
	uint32_t *len;
	uint64_t n;
	double mean_len;
};

static struct payload P;
static size_t corpus_map_len; /* 0: P.data is the malloc'ed synthetic event */

static int load_corpus(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "quicstash-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (st.st_size == 0) {
		fprintf(stderr, "quicstash-bench: %s: empty\n", path);
		return -1;
	}
	const char *d = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	if (d == MAP_FAILED) {
		fprintf(stderr, "quicstash-bench: mmap %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t size = (size_t)st.st_size, cap = size / 200 + 16, n = 0;
	uint64_t *off = malloc(cap * sizeof(*off));
	uint32_t *len = malloc(cap * sizeof(*len));
	double total = 0;
	for (size_t pos = 0; pos < size && off && len;) {
		const char *nl = memchr(d + pos, '\n', size - pos);
		size_t end = nl ? (size_t)(nl - d) : size, l = end - pos;
		if (l && d[end - 1] == '\r')
			l--;
		if (l > 0) {
			if (l > UINT32_MAX) {
				fprintf(stderr, "quicstash-bench: %s: line too long\n", path);
				return -1;
			}
			if (n == cap) {
				cap *= 2;
				uint64_t *o2 = realloc(off, cap * sizeof(*off));
				uint32_t *l2 = realloc(len, cap * sizeof(*len));
				if (o2) off = o2;
				if (l2) len = l2;
				if (!o2 || !l2) {
					fprintf(stderr, "quicstash-bench: out of memory\n");
					return -1;
				}
			}
			off[n] = pos;
			len[n] = (uint32_t)l;
			total += (double)l;
			n++;
		}
		pos = end + 1;
	}
	if (!off || !len || n == 0) {
		fprintf(stderr, "quicstash-bench: %s: no lines\n", path);
		return -1;
	}
	P = (struct payload){.data = d, .off = off, .len = len, .n = n, .mean_len = total / (double)n};
	corpus_map_len = size;
	return 0;
}

static int make_synthetic(unsigned size)
{
	static const char head[] = "{\"log\":{\"level\":\"INFO\"},\"message\":\"";
	static const char tail[] = "\"}";
	char *e = malloc(size + 1);
	if (!e)
		return -1;
	size_t h = sizeof(head) - 1, t = sizeof(tail) - 1;
	if (size < h + t + 1) {
		snprintf(e, size + 1, "{}%*s", (int)(size - 2), "");
	} else {
		memcpy(e, head, h);
		for (size_t i = h; i < size - t; i++)
			e[i] = (char)('a' + (i % 26));
		memcpy(e + size - t, tail, t);
	}
	e[size] = 0;
	P.data = e;
	P.off = calloc(1, sizeof(*P.off));
	P.len = malloc(sizeof(*P.len));
	if (!P.off || !P.len)
		return -1;
	P.len[0] = size;
	P.n = 1;
	P.mean_len = size;
	return 0;
}

static void free_payload(void)
{
	if (corpus_map_len)
		munmap((void *)P.data, corpus_map_len);
	else
		free((void *)P.data);
	free(P.off);
	free(P.len);
	P = (struct payload){0};
}

/* ---------- time ---------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------- per-thread state ---------- */

struct worker;

struct conn {
	struct worker *w;
	struct qs_client *cl;
	unsigned idx;
	bool connected, ever_connected, failed, closed;
	uint64_t inflight; /* handed to the library, not yet acked or rejected */
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct event *refill_ev, *tick_ev;
	struct conn *conns;
	unsigned nconns;
	unsigned rr; /* round-robin next connection */

	/* the share of the load */
	uint64_t quota;    /* events to send (UINT64_MAX: until the deadline) */
	uint64_t next_ev;  /* payload index of the next event */
	double rate;       /* events/s for this worker, 0: full load */
	uint64_t start_ns; /* when sending started */
	uint64_t warm_end_ns; /* events due before this are the warm-up's (--warmup) */
	uint64_t stop_ns;  /* no new sends after (duration mode) */
	uint64_t drain_deadline;
	bool started, sending_done, all_done;
	bool refill_pending;
	int finished; /* worker_main returned (read by the main thread) */

	/* results */
	uint64_t sent, acked, rejected, send_fail, lost, goaway, failed_conns;
	uint64_t acked_bytes, sent_bytes;
	uint64_t first_send_ns, last_ack_ns;
	uint64_t connected_ns; /* when the last of its connections came up (0: not all did) */
	uint64_t handshakes;   /* handshakes completed, reconnections included */
	unsigned first_nth;    /* its first connection's number over all workers (the token) */
	uint64_t reconnected_ns, recon_handshakes, resumed; /* --reconnect: when all were up again, and how */
	size_t max_payload; /* the largest UDP payload a connection sent at the end (PMTU discovery) */
	uint64_t last_progress_ns; /* last ack or rejection (or the start) */
	bool stalled;
	struct qs_hist hist;
	struct qs_hist lag; /* --rate: how late each event was handed over (now - due) */
	struct qs_hist warm; /* latencies of the events due during --warmup */
	char first_error[256];
};

static pthread_barrier_t start_barrier;
static volatile sig_atomic_t interrupted;
static uint64_t global_start_ns;
static uint64_t connect_start_ns; /* the workers start connecting */

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void note_error(struct worker *w, const char *fmt, const char *a, const char *b)
{
	if (!w->first_error[0])
		snprintf(w->first_error, sizeof(w->first_error), fmt, a, b);
}

/* ---------- library callbacks ---------- */

static void cb_ack(void *ud, uint64_t seq, uint64_t tag)
{
	(void)seq;
	struct conn *c = ud;
	struct worker *w = c->w;
	uint64_t t = now_ns();
	/* tag = the time the event was handed over (or was due, with --rate) */
	qs_hist_record(tag < w->warm_end_ns ? &w->warm : &w->hist, t > tag ? t - tag : 0);
	__atomic_fetch_add(&w->acked, 1, __ATOMIC_RELAXED); /* read by --progress */
	w->last_ack_ns = t;
	w->last_progress_ns = t;
	if (c->inflight)
		c->inflight--;
	if (!w->refill_pending) {
		w->refill_pending = true;
		event_active(w->refill_ev, EV_TIMEOUT, 0);
	}
}

static void cb_reject(void *ud, uint64_t seq, uint64_t tag, uint16_t code, const char *reason)
{
	(void)tag;
	struct conn *c = ud;
	struct worker *w = c->w;
	w->rejected++;
	w->last_progress_ns = now_ns();
	if (c->inflight)
		c->inflight--;
	if (!w->first_error[0])
		snprintf(w->first_error, sizeof(w->first_error), "event %" PRIu64 " rejected: %s (%s)", seq,
			 qs_reject_name(code), reason ? reason : "");
	if (!w->refill_pending) {
		w->refill_pending = true;
		event_active(w->refill_ev, EV_TIMEOUT, 0);
	}
}

static void cb_state(void *ud, enum qs_client_state st, const char *reason)
{
	struct conn *c = ud;
	struct worker *w = c->w;
	switch (st) {
	case QS_CLIENT_CONNECTED:
		c->connected = c->ever_connected = true;
		w->handshakes++;
		break;
	case QS_CLIENT_LOST:
		c->connected = false;
		w->lost++;
		note_error(w, "connection lost: %s%s", reason ? reason : "", "");
		break;
	case QS_CLIENT_GOAWAY:
		c->connected = false;
		w->goaway++;
		break;
	case QS_CLIENT_FAILED:
		c->connected = false;
		c->failed = true;
		w->failed_conns++;
		note_error(w, "connection failed: %s%s", reason ? reason : "", "");
		break;
	case QS_CLIENT_CLOSED:
		c->connected = false;
		c->closed = true;
		break;
	}
}

/* ---------- sending ---------- */

static uint64_t outstanding(const struct worker *w)
{
	uint64_t s = 0;
	for (unsigned i = 0; i < w->nconns; i++)
		s += w->conns[i].inflight;
	return s;
}

/* Picks a live connection with room in its window (round-robin), or NULL. */
static struct conn *pick_conn(struct worker *w)
{
	for (unsigned k = 0; k < w->nconns; k++) {
		struct conn *c = &w->conns[(w->rr + k) % w->nconns];
		if (!c->failed && c->inflight < O.window) {
			w->rr = (unsigned)((w->rr + k + 1) % w->nconns);
			return c;
		}
	}
	return NULL;
}

static bool send_one(struct worker *w, uint64_t tag)
{
	struct conn *c = pick_conn(w);
	if (!c)
		return false;
	uint64_t i = w->next_ev;
	const char *data = P.data + P.off[i];
	uint32_t len = P.len[i];
	int64_t seq = qs_client_send(c->cl, data, len, tag);
	if (seq < 0) {
		w->send_fail++;
		note_error(w, "qs_client_send failed%s%s", "", "");
		return false;
	}
	c->inflight++;
	__atomic_fetch_add(&w->sent, 1, __ATOMIC_RELAXED);
	w->sent_bytes += len;
	if (++w->next_ev == P.n)
		w->next_ev = 0;
	return true;
}

static void finish_sending(struct worker *w)
{
	if (w->sending_done)
		return;
	w->sending_done = true;
	for (unsigned i = 0; i < w->nconns; i++)
		if (!w->conns[i].failed)
			qs_client_flush(w->conns[i].cl);
	w->drain_deadline = now_ns() + (uint64_t)(O.drain_timeout * 1e9);
}

static bool all_failed(const struct worker *w)
{
	for (unsigned i = 0; i < w->nconns; i++)
		if (!w->conns[i].failed)
			return false;
	return true;
}

/* Sends what is due and the windows allow; decides when the worker is done. */
static void pump(struct worker *w)
{
	if (!w->started || w->all_done)
		return;
	uint64_t now = now_ns();
	if (interrupted || all_failed(w))
		finish_sending(w);
	if (O.stall_timeout > 0 && outstanding(w) && now - w->last_progress_ns >= (uint64_t)(O.stall_timeout * 1e9)) {
		/* the server stopped answering: give up now rather than at an outer timeout */
		if (!w->stalled)
			note_error(w, "no acknowledgement for --stall-timeout seconds: stopped%s%s", "", "");
		w->stalled = true;
		finish_sending(w);
		w->drain_deadline = now;
	}
	if (!w->sending_done) {
		if (w->stop_ns && now >= w->stop_ns)
			finish_sending(w);
	}
	if (!w->sending_done) {
		unsigned burst = 0;
		while (w->sent < w->quota && burst < 65536) {
			uint64_t tag;
			if (w->rate > 0) {
				/* the k-th event is due at start + k / rate */
				uint64_t due_ns = w->start_ns + (uint64_t)((double)w->sent * 1e9 / w->rate);
				if (due_ns > now)
					break;
				tag = due_ns;
			} else {
				/* handed over now: one clock read per 64 events bounds the
				 * error to the time 64 sends take (microseconds) */
				if (burst % 64 == 63)
					now = now_ns();
				tag = now;
			}
			if (!send_one(w, tag))
				break; /* (a window full: the event is tried again, its lag counted once sent) */
			if (w->rate > 0 && tag >= w->warm_end_ns)
				qs_hist_record(&w->lag, now - tag);
			if (!w->first_send_ns)
				w->first_send_ns = tag;
			burst++;
		}
		if (w->sent >= w->quota)
			finish_sending(w);
	}
	if (w->sending_done && !w->all_done) {
		if (outstanding(w) == 0 || now >= w->drain_deadline || all_failed(w)) {
			w->all_done = true;
			event_base_loopbreak(w->base);
		}
	}
}

static void refill_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct worker *w = arg;
	w->refill_pending = false;
	pump(w);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pump(arg);
}

/* Connection i of worker w (its client connects from w's loop); -1 on failure
 * (said on stderr). */
static int new_client(struct worker *w, unsigned i)
{
	struct conn *c = &w->conns[i];
	unsigned nth = w->first_nth + i;
	c->w = w;
	c->idx = i;
	struct qs_client_opts co = {
		.server_addr = O.server,
		.trust_file = O.cert,
		.server_name = O.server_name,
		.token = O.ntokens ? O.token[nth % O.ntokens] : NULL,
		.token_len = O.ntokens ? O.token_len[nth % O.ntokens] : 0,
		.client_cert = O.client_cert,
		.client_key = O.client_key,
		.streams = O.streams,
		.range_events = O.range_events,
		.no_resume = O.no_resume,
	};
	struct qs_client_callbacks cb = {.on_ack = cb_ack, .on_reject = cb_reject, .on_state = cb_state};
	char err[256] = "";
	c->cl = qs_client_new(w->base, &co, &cb, c, err, sizeof(err));
	if (!c->cl) {
		fprintf(stderr, "quicstash-bench: %s\n", err[0] ? err : "qs_client_new failed");
		return -1;
	}
	return 0;
}

/* --spread: connection i is made at i/n of the spread, the loop running between. */
static int spread_connect(struct worker *w)
{
	uint64_t t0 = now_ns(), span = (uint64_t)(O.spread * 1e9);
	for (unsigned i = 0; i < w->nconns && !interrupted;) {
		if (now_ns() - t0 >= span * i / w->nconns) {
			if (new_client(w, i++) < 0)
				return -1;
			continue;
		}
		event_base_loop(w->base, EVLOOP_NONBLOCK);
		usleep(200);
	}
	return interrupted ? -1 : 0;
}

static int wait_connected(struct worker *w, uint64_t *up_ns);

static struct {
	pthread_barrier_t ready, go; /* every worker done sending; the storm starts */
	uint64_t start_ns;           /* when the reconnect storm started */
	double cpu0;                 /* the process's CPU then */
} R;

/* --reconnect: every connection reconnects at once, with its session ticket.
 * The main thread starts it for all workers together (run_workers). */
static void reconnect_all(struct worker *w, bool ok)
{
	pthread_barrier_wait(&R.ready);
	pthread_barrier_wait(&R.go);
	if (!ok || interrupted)
		return;
	uint64_t hs = w->handshakes;
	for (unsigned i = 0; i < w->nconns; i++)
		qs_client_reconnect(w->conns[i].cl);
	struct timeval watchdog = {0, 100000};
	event_add(w->tick_ev, &watchdog);
	if (wait_connected(w, &w->reconnected_ns) < 0)
		w->reconnected_ns = 0;
	event_del(w->tick_ev);
	w->recon_handshakes = w->handshakes - hs;
	for (unsigned i = 0; i < w->nconns; i++)
		w->resumed += qs_client_resumed(w->conns[i].cl);
}

/* Runs the loop until every connection is up (or failed), bounded in time;
 * *up_ns: when they were. */
static int wait_connected(struct worker *w, uint64_t *up_ns)
{
	uint64_t deadline = now_ns() + (uint64_t)(O.connect_timeout * 1e9);
	for (;;) {
		unsigned up = 0, failed = 0;
		for (unsigned i = 0; i < w->nconns; i++) {
			up += w->conns[i].connected;
			failed += w->conns[i].failed;
		}
		if (failed)
			return -1;
		if (up == w->nconns) {
			*up_ns = now_ns();
			return 0;
		}
		if (now_ns() >= deadline || interrupted) {
			note_error(w, "not all connections up after --connect-timeout%s%s", "", "");
			return -1;
		}
		event_base_loop(w->base, EVLOOP_ONCE);
	}
}

static void close_all(struct worker *w)
{
	for (unsigned i = 0; i < w->nconns; i++)
		if (w->conns[i].cl && !w->conns[i].closed)
			qs_client_close(w->conns[i].cl);
	uint64_t deadline = now_ns() + 2000000000ull;
	for (;;) {
		bool open = false;
		for (unsigned i = 0; i < w->nconns; i++)
			if (w->conns[i].cl && !w->conns[i].closed && !w->conns[i].failed)
				open = true;
		if (!open || now_ns() >= deadline)
			break;
		event_base_loop(w->base, EVLOOP_ONCE);
	}
	for (unsigned i = 0; i < w->nconns; i++)
		if (w->conns[i].cl)
			qs_client_free(w->conns[i].cl);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct timeval watchdog = {0, 100000}; /* wakes the loop while connecting */
	event_add(w->tick_ev, &watchdog);
	int rc = O.spread > 0 ? spread_connect(w) : 0;
	if (rc == 0)
		rc = wait_connected(w, &w->connected_ns);
	event_del(w->tick_ev);
	/* everyone starts together, even after a failure (so the barrier never hangs) */
	pthread_barrier_wait(&start_barrier);
	if (rc == 0 && !interrupted) {
		w->start_ns = global_start_ns;
		w->warm_end_ns = w->start_ns + (uint64_t)(O.warmup * 1e9);
		w->last_progress_ns = now_ns();
		w->started = true;
		if (O.duration > 0)
			w->stop_ns = w->start_ns + (uint64_t)(O.duration * 1e9);
		struct timeval tv = {0, w->rate > 0 ? 1000 : 100000}; /* 1 ms pacing; 100 ms watchdog */
		event_add(w->tick_ev, &tv);
		pump(w);
		while (!w->all_done) {
			event_base_loop(w->base, EVLOOP_ONCE);
			if (!w->all_done && (interrupted || (w->sending_done && now_ns() >= w->drain_deadline)))
				pump(w);
		}
		event_del(w->tick_ev);
	}
	if (O.reconnect)
		reconnect_all(w, rc == 0 && !interrupted);
	for (unsigned i = 0; i < w->nconns && w->conns[i].cl; i++) {
		size_t m = qs_client_path_max_payload(w->conns[i].cl);
		w->max_payload = m > w->max_payload ? m : w->max_payload;
	}
	close_all(w);
	__atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* ---------- report ---------- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* Builds every worker's loop, connections and share of the load; false on
 * failure (said on stderr). With --spread the connections are made later,
 * by the worker itself (spread_connect). */
static bool setup_workers(struct worker *ws, unsigned T)
{
	unsigned nth = 0; /* the connection's number over all workers: its token */
	for (unsigned t = 0; t < T; t++) {
		struct worker *w = &ws[t];
		w->id = t;
		qs_hist_init(&w->hist);
		qs_hist_init(&w->lag);
		qs_hist_init(&w->warm);
		w->nconns = O.connections / T + (t < O.connections % T);
		w->conns = calloc(w->nconns, sizeof(*w->conns));
		w->base = qs_event_base_new();
		if (!w->conns || !w->base)
			return false;
		w->refill_ev = event_new(w->base, -1, 0, refill_cb, w);
		w->tick_ev = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
		w->quota = O.count ? O.count / T + (t < O.count % T) : UINT64_MAX;
		w->rate = O.rate > 0 ? O.rate / T : 0;
		w->next_ev = P.n * t / T; /* each thread starts at its own place in the corpus */
		w->first_nth = nth;
		nth += w->nconns;
		for (unsigned i = 0; O.spread <= 0 && i < w->nconns; i++)
			if (new_client(w, i) < 0)
				return false;
	}
	return true;
}

static void free_workers(struct worker *ws, unsigned T)
{
	for (unsigned t = 0; t < T; t++) {
		if (ws[t].refill_ev)
			event_free(ws[t].refill_ev);
		if (ws[t].tick_ev)
			event_free(ws[t].tick_ev);
		if (ws[t].base)
			event_base_free(ws[t].base);
		free(ws[t].conns);
	}
	free(ws);
}

static void progress_line(struct worker *ws, unsigned T, uint64_t *last_report, uint64_t *last_acked)
{
	uint64_t acked = 0, sent = 0;
	for (unsigned t = 0; t < T; t++) {
		acked += __atomic_load_n(&ws[t].acked, __ATOMIC_RELAXED);
		sent += __atomic_load_n(&ws[t].sent, __ATOMIC_RELAXED);
	}
	uint64_t n = now_ns();
	fprintf(stderr, "quicstash-bench: sent %" PRIu64 " acked %" PRIu64 " (%.0f/s)\n", sent, acked,
		(double)(acked - *last_acked) * 1e9 / (double)(n - *last_report));
	*last_acked = acked;
	*last_report = n;
}

static double process_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* --reconnect, in the main thread: once every worker is done sending, says so
 * in the phase file (the harness reads the server's CPU then), waits, and
 * starts the storm in every worker together. */
static void start_reconnect(void)
{
	pthread_barrier_wait(&R.ready);
	if (O.phase_file) {
		FILE *f = fopen(O.phase_file, "w");
		if (f)
			fclose(f);
		usleep(500000);
	}
	R.cpu0 = process_cpu();
	R.start_ns = now_ns();
	pthread_barrier_wait(&R.go);
}

/* Starts the workers together and waits for all of them; false if a thread
 * cannot be started. */
static bool run_workers(struct worker *ws, unsigned T)
{
	pthread_barrier_init(&start_barrier, NULL, T + 1);
	pthread_barrier_init(&R.ready, NULL, T + 1);
	pthread_barrier_init(&R.go, NULL, T + 1);
	connect_start_ns = now_ns();
	for (unsigned t = 0; t < T; t++)
		if (pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]) != 0) {
			fprintf(stderr, "quicstash-bench: pthread_create failed\n");
			return false;
		}
	/* the workers connect, then wait here; the clock starts when all are ready */
	global_start_ns = now_ns() + 1000000; /* written before the barrier releases them */
	pthread_barrier_wait(&start_barrier);
	if (O.reconnect)
		start_reconnect();
	uint64_t last_report = now_ns(), last_acked = 0;
	for (;;) {
		unsigned finished = 0;
		for (unsigned t = 0; t < T; t++)
			finished += (unsigned)__atomic_load_n(&ws[t].finished, __ATOMIC_ACQUIRE);
		if (finished == T)
			break;
		usleep(20000);
		if (O.progress && now_ns() - last_report >= 1000000000ull)
			progress_line(ws, T, &last_report, &last_acked);
	}
	for (unsigned t = 0; t < T; t++)
		pthread_join(ws[t].thread, NULL);
	pthread_barrier_destroy(&start_barrier);
	pthread_barrier_destroy(&R.ready);
	pthread_barrier_destroy(&R.go);
	return true;
}

/* Everything the report says, merged over the workers. */
struct totals {
	struct qs_hist h, lag, warm;
	uint64_t sent, acked, rejected, send_fail, lost, goaway, failed, unresolved, errors;
	uint64_t sent_bytes, acked_bytes, handshakes;
	double connect_s; /* from the start until every connection was up (-1: some never were) */
	double reconnect_s, reconnect_cpu; /* --reconnect: until all were up again (-1: not all), CPU since */
	uint64_t recon_handshakes, resumed;
	size_t max_payload;
	double elapsed, eps, mbps, cpu;
	double lat_us[4], lat_max, lat_mean, lag_us[4], warm_us[2], warm_max;
	const char *first_error;
};

static void merge(struct totals *r, const struct worker *ws, unsigned T)
{
	uint64_t first = UINT64_MAX, last = 0;
	qs_hist_init(&r->h);
	qs_hist_init(&r->lag);
	qs_hist_init(&r->warm);
	r->first_error = "";
	uint64_t up = 0; /* when the last worker had all its connections up */
	bool all_up = true, all_back = true;
	uint64_t back = 0;
	for (unsigned t = 0; t < T; t++) {
		const struct worker *w = &ws[t];
		r->handshakes += w->handshakes;
		r->recon_handshakes += w->recon_handshakes;
		r->resumed += w->resumed;
		all_back = all_back && w->reconnected_ns;
		back = w->reconnected_ns > back ? w->reconnected_ns : back;
		all_up = all_up && w->connected_ns;
		up = w->connected_ns > up ? w->connected_ns : up;
		qs_hist_merge(&r->h, &w->hist);
		qs_hist_merge(&r->lag, &w->lag);
		qs_hist_merge(&r->warm, &w->warm);
		r->max_payload = w->max_payload > r->max_payload ? w->max_payload : r->max_payload;
		r->sent += w->sent;
		r->acked += w->acked;
		r->rejected += w->rejected;
		r->send_fail += w->send_fail;
		r->lost += w->lost;
		r->goaway += w->goaway;
		r->failed += w->failed_conns;
		r->sent_bytes += w->sent_bytes;
		r->unresolved += w->sent - w->acked - w->rejected;
		if (w->first_send_ns && w->first_send_ns < first)
			first = w->first_send_ns;
		if (w->last_ack_ns > last)
			last = w->last_ack_ns;
		if (!r->first_error[0] && w->first_error[0])
			r->first_error = w->first_error;
	}
	/* acknowledged bytes: sent bytes scaled by the acknowledged share (events are
	 * acknowledged in order per stream, and the corpus lines are interleaved) */
	r->acked_bytes = r->sent ? (uint64_t)((double)r->sent_bytes * (double)r->acked / (double)r->sent) : 0;
	r->elapsed = (first != UINT64_MAX && last > first) ? (double)(last - first) / 1e9 : 0;
	r->eps = r->elapsed > 0 ? (double)r->acked / r->elapsed : 0;
	r->mbps = r->elapsed > 0 ? (double)r->acked_bytes / r->elapsed / 1e6 : 0;
	r->connect_s = all_up ? (double)(up - connect_start_ns) / 1e9 : -1;
	r->reconnect_s = O.reconnect && all_back ? (double)(back - R.start_ns) / 1e9 : -1;
	r->errors = r->rejected + r->send_fail + r->lost + r->failed + r->unresolved;
}

static void figures(struct totals *r)
{
	r->cpu = process_cpu();
	r->reconnect_cpu = O.reconnect ? r->cpu - R.cpu0 : 0;
	const double ps[] = {50, 90, 99, 99.9};
	for (int i = 0; i < 4; i++) {
		r->lat_us[i] = (double)qs_hist_percentile(&r->h, ps[i]) / 1e3;
		/* the generator's own lateness (--rate): part of every latency, not the server's doing */
		r->lag_us[i] = (double)qs_hist_percentile(&r->lag, ps[i]) / 1e3;
	}
	r->lat_max = r->h.count ? (double)r->h.max / 1e3 : 0;
	r->lat_mean = qs_hist_mean(&r->h) / 1e3;
	r->warm_us[0] = (double)qs_hist_percentile(&r->warm, 50) / 1e3;
	r->warm_us[1] = (double)qs_hist_percentile(&r->warm, 99) / 1e3;
	r->warm_max = r->warm.count ? (double)r->warm.max / 1e3 : 0;
}

static void print_json(const struct totals *r, unsigned T)
{
	printf("{\"label\":");
	json_str(stdout, O.label ? O.label : "");
	printf(",\"server\":");
	json_str(stdout, O.server);
	printf(",\"connections\":%u,\"streams\":%u,\"threads\":%u,\"window\":%u,", O.connections, O.streams, T,
	       O.window);
	printf("\"corpus\":");
	json_str(stdout, O.corpus ? O.corpus : "");
	printf(",\"mean_event_bytes\":%.1f,\"rate_target\":%.1f,", P.mean_len, O.rate);
	printf("\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"unresolved\":%" PRIu64
	       ",\"send_failures\":%" PRIu64 ",\"connections_lost\":%" PRIu64 ",\"connections_failed\":%" PRIu64
	       ",\"goaways\":%" PRIu64 ",\"errors\":%" PRIu64 ",",
	       r->sent, r->acked, r->rejected, r->unresolved, r->send_fail, r->lost, r->failed, r->goaway, r->errors);
	printf("\"elapsed_s\":%.6f,\"events_per_s\":%.1f,\"mb_per_s\":%.3f,\"acked_bytes\":%" PRIu64 ",",
	       r->elapsed, r->eps, r->mbps, r->acked_bytes);
	printf("\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f,\"mean\":%.1f,"
	       "\"count\":%" PRIu64 "},",
	       r->lat_us[0], r->lat_us[1], r->lat_us[2], r->lat_us[3], r->lat_max, r->lat_mean, r->h.count);
	printf("\"send_lag_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"count\":%" PRIu64 "},",
	       r->lag_us[0], r->lag_us[1], r->lag_us[2], r->lag_us[3], r->lag.count);
	printf("\"warmup_s\":%.3f,\"warmup_latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f,\"count\":%" PRIu64
	       "},", O.warmup, r->warm_us[0], r->warm_us[1], r->warm_max, r->warm.count);
	printf("\"max_udp_payload\":%zu,", r->max_payload);
	printf("\"connect_s\":%.3f,\"handshakes\":%" PRIu64 ",", r->connect_s, r->handshakes);
	if (O.reconnect)
		printf("\"reconnect_s\":%.3f,\"reconnect_handshakes\":%" PRIu64 ",\"resumed\":%" PRIu64
		       ",\"reconnect_cpu_s\":%.3f,", r->reconnect_s, r->recon_handshakes, r->resumed, r->reconnect_cpu);
	printf("\"client_cpu_s\":%.3f,\"interrupted\":%s,\"first_error\":", r->cpu, interrupted ? "true" : "false");
	json_str(stdout, r->first_error);
	printf("}\n");
}

static void print_text(const struct totals *r, unsigned T)
{
	printf("quicstash-bench %s%s%s-> %s: %u connections x %u streams, %u thread(s), window %u\n",
	       O.label ? "[" : "", O.label ? O.label : "", O.label ? "] " : "", O.server, O.connections,
	       O.streams, T, O.window);
	printf("  events    sent %" PRIu64 "  acked %" PRIu64 "  rejected %" PRIu64 "  unresolved %" PRIu64 "\n",
	       r->sent, r->acked, r->rejected, r->unresolved);
	printf("  errors    %" PRIu64 " (rejected %" PRIu64 ", unresolved %" PRIu64 ", send failures %" PRIu64
	       ", connections lost %" PRIu64 ", failed %" PRIu64 "; goaways %" PRIu64 ")\n",
	       r->errors, r->rejected, r->unresolved, r->send_fail, r->lost, r->failed, r->goaway);
	if (r->first_error[0])
		printf("  first error: %s\n", r->first_error);
	printf("  elapsed   %.3f s   %.0f events/s   %.2f MB/s (mean event %.1f bytes%s)\n", r->elapsed, r->eps,
	       r->mbps, P.mean_len, O.rate > 0 ? ", rate-limited" : "");
	printf("  ack latency (us): p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  mean %.0f\n", r->lat_us[0],
	       r->lat_us[1], r->lat_us[2], r->lat_us[3], r->lat_max, r->lat_mean);
	if (r->lag.count)
		printf("  send lag (us, handed over after the due time): p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f\n",
		       r->lag_us[0], r->lag_us[1], r->lag_us[2], r->lag_us[3]);
	if (r->warm.count)
		printf("  warm-up (events due in the first %.2f s, not above): %" PRIu64 " events, ack latency (us) "
		       "p50 %.0f  p99 %.0f  max %.0f\n", O.warmup, r->warm.count, r->warm_us[0], r->warm_us[1],
		       r->warm_max);
	printf("  packets   UDP payload up to %zu bytes (path MTU discovery)\n", r->max_payload);
	if (r->connect_s >= 0)
		printf("  connect   all %u connections up in %.3f s (%" PRIu64 " handshakes)\n", O.connections,
		       r->connect_s, r->handshakes);
	else
		printf("  connect   not all connections came up (%" PRIu64 " handshakes)\n", r->handshakes);
	if (O.reconnect)
		printf("  reconnect %s %.3f s (%" PRIu64 " handshakes, %" PRIu64 " resumed), client CPU %.2f s\n",
		       r->reconnect_s >= 0 ? "all up again in" : "NOT all up again; started", r->reconnect_s,
		       r->recon_handshakes, r->resumed, r->reconnect_cpu);
	printf("  client CPU %.2f s\n", r->cpu);
}

int main(int argc, char **argv)
{
	if (parse_opts(argc, argv) < 0)
		return 2;
	if (O.corpus ? load_corpus(O.corpus) < 0 : make_synthetic(O.size) < 0)
		return 1;
	if (!O.count && O.duration <= 0) {
		if (O.corpus)
			O.count = P.n;
		else
			O.duration = 10;
	}
	struct sigaction sa = {.sa_handler = on_sigint};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	unsigned T = O.threads;
	struct worker *ws = calloc(T, sizeof(*ws));
	if (!ws || !setup_workers(ws, T) || !run_workers(ws, T))
		return 1;
	static struct totals r; /* three histograms: not on the stack */
	merge(&r, ws, T);
	figures(&r);
	if (O.json)
		print_json(&r, T);
	else
		print_text(&r, T);
	free_workers(ws, T);
	free_payload();
	return (r.errors || r.acked == 0) ? 1 : 0;
}

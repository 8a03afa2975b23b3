/* The option table: the one place an option of quicstashd is declared. Its
 * order is --help's. Adding an option is one entry here plus its field in
 * struct qs_config (tests/unit/test_options.c checks every entry). */
#include "common/options.h"

#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/tenants.h"

#define FIELD(f) .offset = offsetof(struct qs_config, f), .size = sizeof(((struct qs_config *)0)->f)
#define GIVEN(f) .given = offsetof(struct qs_config, f) + 1
#define BOUNDS(lo, hi, text) .min = (lo), .max = (hi), .bounds = (text)
/* Set by a file or the command line; a reload applies a change. */
#define FILE_RELOAD .scope = QS_SCOPE_RELOAD, .flags = QS_OPT_FILE
/* Set by a file or the command line; a reload that changes it is refused. */
#define FILE_RESTART .scope = QS_SCOPE_RESTART, .flags = QS_OPT_FILE
/* The supervisor's arguments for its children. */
#define HIDDEN .scope = QS_SCOPE_ARGV, .flags = QS_OPT_HIDDEN

static const char *const durability_names[] = {"fsync", "write", NULL};   /* enum qs_durability */
static const char *const balance_names[] = {"failover", "round-robin", NULL}; /* enum qs_balance */
static const char *const retry_names[] = {"auto", "always", "never", NULL}; /* enum qs_retry */
static const char *const log_format_names[] = {"text", "json", NULL};       /* enum qs_log_fmt */
static const char *const auth_names[] = {"none", "token", "mtls", "any", NULL}; /* enum qs_auth */

static void print_version(void)
{
	printf("quicstashd %s\n", QS_VERSION);
}

static int set_role(struct qs_config *cfg, const char *arg)
{
	int r = qs_role_by_name(arg);
	if (r < 0)
		return qs_option_bad("role", arg, "unknown role");
	cfg->role = (enum qs_role)r;
	return 0;
}

/* --sealed-config-fd is read before the others (config.c, config_args): which
 * configuration text applies decides what the other options start from. */
static int set_read_first(struct qs_config *cfg, const char *arg)
{
	(void)cfg;
	(void)arg;
	return 0;
}

const struct qs_option qs_options[] = {
	{"server-addr", 's', QS_OPT_STR, FILE_RESTART, FIELD(server_addr_text), .def = "127.0.0.1:4433",
	 .arg = "ADDR", .help = "UDP address to listen on ([::1]:4433 for IPv6)"},
	{"logstash-addr", 'l', QS_OPT_STR, FILE_RELOAD, FIELD(logstash_text), .def = "127.0.0.1:5000", .arg = "ADDR",
	 .help = "Logstash tcp/json_lines input; a list A,B,... (up to 8) fails over to the next; "
		 "or file:PATH to append events to a local file; or amqp://HOST:PORT/VHOST,... for RabbitMQ"},
	{"logstash-timeout", 0, QS_OPT_UINT, FILE_RELOAD, FIELD(logstash_timeout_s),
	 BOUNDS(1, 3600, "expected 1..3600 seconds"), .def = "30", .arg = "S",
	 .help = "reconnect when Logstash does not accept a connection, or TCP-acknowledge data or "
		 "keepalives, within S seconds"},
	{"logstash-linger", 0, QS_OPT_UINT, FILE_RELOAD, FIELD(logstash_linger_ms),
	 BOUNDS(0, 10000, "expected 0..10000 milliseconds"), .def = "5", .arg = "MS",
	 .help = "events made durable wait up to MS milliseconds to go to Logstash in one write with those that "
		 "follow, unless 64K are waiting (their acknowledgements never wait for it; 0: each group commit "
		 "is written at once)"},
	{"logstash-tls", 0, QS_OPT_FLAG, FILE_RELOAD, FIELD(logstash_tls),
	 .help = "TLS to Logstash (its tcp input with ssl_enable)"},
	{"logstash-ca", 0, QS_OPT_STR, FILE_RELOAD, FIELD(logstash_ca), .def_help = "the system's trust store",
	 .arg = "FILE", .help = "PEM CA bundle Logstash's certificate must chain to; its name is checked "
				"against the host of each --logstash-addr entry"},
	{"logstash-cert", 0, QS_OPT_STR, FILE_RELOAD, FIELD(logstash_cert), .arg = "FILE",
	 .help = "PEM client certificate for Logstash, with --logstash-key"},
	{"logstash-key", 0, QS_OPT_STR, FILE_RELOAD, FIELD(logstash_key), .arg = "FILE",
	 .help = "its PEM private key, mode 0600"},
	{"logstash-balance", 0, QS_OPT_ENUM, FILE_RELOAD, FIELD(logstash_balance), .names = balance_names,
	 .def = "failover", .arg = "MODE",
	 .help = "with several -l Logstash hosts: failover (one at a time) or round-robin (batches spread over "
		 "a connection to each live host)"},
	{"amqp-exchange", 0, QS_OPT_STR, FILE_RELOAD, FIELD(amqp_exchange), .def_help = "the default exchange",
	 .arg = "NAME", .help = "with -l amqp://...: the RabbitMQ exchange events are published to"},
	{"amqp-routing-key", 0, QS_OPT_STR, FILE_RELOAD, FIELD(amqp_routing_key), .def = "quicstash", .arg = "KEY",
	 .help = "with -l amqp://...: the routing key (with the default exchange: the queue's name)"},
	{"amqp-credentials", 0, QS_OPT_STR, FILE_RELOAD, FIELD(amqp_credentials), .def_help = "guest:guest",
	 .arg = "FILE", .help = "with -l amqp://...: user:password on one line, mode 0600, read only by the shipper"},
	{"max-connections", 'm', QS_OPT_UINT, FILE_RELOAD, FIELD(max_connections),
	 BOUNDS(1, 1000000, "expected 1..1000000"), .def = "10000", .arg = "N",
	 .help = "concurrent QUIC connections"},
	{"max-connections-per-source", 0, QS_OPT_UINT, FILE_RELOAD, FIELD(max_conns_per_source),
	 GIVEN(have_conns_per_source), BOUNDS(0, 1000000, "expected 0..1000000"),
	 .def_help = "1/8 of -m, at least 1", .arg = "N",
	 .help = "of them from one source address (an IPv6 /64); more are refused as busy (0: no limit)"},
	{"max-handshakes-per-source", 0, QS_OPT_UINT, FILE_RELOAD, FIELD(max_handshakes_per_source),
	 BOUNDS(0, 1000000, "expected 0..1000000 a second"), .def = "50", .arg = "R",
	 .help = "new connections a second from one source, in bursts of up to 2R (0: no limit)"},
	{"cert-path", 'c', QS_OPT_STR, FILE_RELOAD, FIELD(cert_path), .def = "server_cert.der", .arg = "FILE",
	 .help = "certificate, PEM or DER; generated self-signed when missing"},
	{"key-path", 0, QS_OPT_STR, FILE_RELOAD, FIELD(key_path), .def = "server_key.pem", .arg = "FILE",
	 .help = "private key, mode 0600"},
	{"secret-path", 0, QS_OPT_STR, FILE_RELOAD, FIELD(secret_path), .def = "quicstash.secret", .arg = "FILE",
	 .help = "QUIC token and stateless-reset secret, mode 0600; made when missing"},
	{"spool-dir", 0, QS_OPT_STR, FILE_RESTART, FIELD(spool_dir), .def = "spool", .arg = "DIR",
	 .help = "durable spool directory"},
	{"spool-max-bytes", 0, QS_OPT_SIZE, FILE_RELOAD, FIELD(spool_max_bytes),
	 BOUNDS(1024 * 1024, UINT64_MAX, "expected a size of at least 1M"), .def = "1G", .arg = "N",
	 .help = "spool size limit, suffixes K M G"},
	{"durability", 0, QS_OPT_ENUM, FILE_RELOAD, FIELD(durability), .names = durability_names, .def = "fsync",
	 .arg = "MODE", .help = "what the spool does before events are acknowledged"},
	{"acceptors", 0, QS_OPT_UINT, FILE_RESTART, FIELD(acceptors), BOUNDS(1, QS_MAX_ACCEPTORS, "expected 1..64"),
	 .def = "1", .arg = "N", .help = "QUIC acceptor processes"},
	{"parsers", 0, QS_OPT_UINT, FILE_RESTART, FIELD(parsers), BOUNDS(1, QS_MAX_PARSERS, "expected 1..64"),
	 .def_help = "one per 2 CPUs, at least 1", .arg = "N", .help = "parser worker processes"},
	{"max-message-size", 0, QS_OPT_SIZE, FILE_RELOAD, FIELD(max_message_size),
	 BOUNDS(64, QS_MAX_MESSAGE_LIMIT, "expected 64 bytes..64M"), .def = "1M", .arg = "N",
	 .help = "largest accepted frame, suffixes K M"},
	{"max-incomplete-bytes", 0, QS_OPT_SIZE, FILE_RELOAD, FIELD(max_incomplete_bytes),
	 BOUNDS(1024 * 1024, UINT64_MAX, "expected a size of at least 1M"), .def = "256M", .arg = "N",
	 .help = "incomplete frames held for clients, all together; past it the connection holding the most "
		 "is closed (retry later)"},
	{"idle-timeout", 0, QS_OPT_UINT, FILE_RELOAD, FIELD(idle_timeout_s),
	 BOUNDS(1, 3600, "expected 1..3600 seconds"), .def = "60", .arg = "S",
	 .help = "QUIC idle timeout in seconds"},
	{"receive-coalesce", 0, QS_OPT_UINT, FILE_RELOAD, FIELD(receive_coalesce_us),
	 BOUNDS(0, 10000, "expected 0..10000 microseconds"), .def = "1000", .arg = "US",
	 .help = "while packets flow, read them every US microseconds (counted from the newest packet's arrival) "
		 "instead of on each arrival, so that every hop after it handles a batch at one wake-up instead of "
		 "an event at each (0: on each arrival)"},
	{"retry", 0, QS_OPT_ENUM, FILE_RELOAD, FIELD(retry), .names = retry_names, .def = "auto", .arg = "MODE",
	 .help = "when QUIC Retry is used"},
	{"stats-interval", 0, QS_OPT_UINT, FILE_RELOAD, FIELD(stats_interval_s),
	 BOUNDS(0, 86400, "expected 0..86400 seconds"), .def = "300", .arg = "S",
	 .help = "log the status line and the events counted since the last one every S seconds (0: never)"},
	{"metrics-addr", 0, QS_OPT_STR, FILE_RESTART, FIELD(metrics_addr), .def_help = "off", .arg = "[HOST:]PORT",
	 .help = "serve Prometheus metrics, /healthz and /readyz over HTTP here (host: 127.0.0.1 unless given)"},
	{"runtime-dir", 0, QS_OPT_STR, FILE_RESTART, FIELD(runtime_dir), .def_help = "a fresh one", .arg = "DIR",
	 .help = "private directory for IPC sockets"},
	{"user", 0, QS_OPT_STR, FILE_RESTART, FIELD(user), .def = "nobody", .arg = "NAME",
	 .help = "unprivileged user for the children"},
	{"tenants", 0, QS_OPT_STR, FILE_RELOAD, FIELD(tenants_path), .arg = "FILE",
	 .help = "tenants file: who may send and how each authenticates (docs/TENANTS.md); re-read on SIGHUP"},
	{"auth", 0, QS_OPT_ENUM, FILE_RELOAD, FIELD(auth), GIVEN(have_auth), .names = auth_names,
	 .def_help = "none; any with --tenants", .arg = "MODE",
	 .help = "how clients authenticate: a bearer token, a client certificate (mtls), either (any)"},
	{"client-ca", 0, QS_OPT_STR, FILE_RELOAD, FIELD(client_ca), .arg = "FILE",
	 .help = "PEM CA bundle client certificates must chain to (--auth mtls or any)"},
	{"hash-token", 0, QS_OPT_ACTION, QS_SCOPE_ARGV, 0, .run = qs_hash_token_main,
	 .help = "read a token line on standard input, print its token-sha256 line for the tenants file"},
	{"check-config", 0, QS_OPT_FLAG, QS_SCOPE_ARGV, 0, FIELD(check_config),
	 .help = "validate the configuration and tenants files, print FILE:LINE: for each error, exit 0 or 1"},
	{"config", 0, QS_OPT_STR, QS_SCOPE_ARGV, 0, FIELD(config_path), .arg = "FILE",
	 .help = "read options from FILE (name = value lines, long option names; the command line wins); "
		 "re-read on SIGHUP"},
	{"check-spool", 0, QS_OPT_STR, QS_SCOPE_ARGV, 0, FIELD(spool_dir), GIVEN(check_spool), .arg = "DIR",
	 .help = "verify a spool offline and exit (1 on damage)"},
	{"repair", 0, QS_OPT_FLAG, QS_SCOPE_ARGV, 0, FIELD(repair), .help = "with --check-spool: cut damaged tails"},
	{"debug", 'd', QS_OPT_FLAG, FILE_RELOAD, FIELD(debug), .help = "debug logging"},
	{"log-format", 0, QS_OPT_ENUM, FILE_RELOAD, FIELD(log_format), .names = log_format_names, .def = "text",
	 .arg = "FORMAT", .help = "stderr's lines: text (the time first on a terminal) or json, one object a line "
				  "for log shippers (journald, when stderr is its stream, is not affected)"},
	{"help", 'h', QS_OPT_ACTION, QS_SCOPE_ARGV, 0, .run = qs_options_help, .help = "this help"},
	{"version", 'V', QS_OPT_ACTION, QS_SCOPE_ARGV, 0, .run = print_version, .help = "print the version"},
	/* hidden: the supervisor's arguments for its children */
	{"role", 0, QS_OPT_CUSTOM, HIDDEN, FIELD(role), .set = set_role},
	{"slot", 0, QS_OPT_UINT, HIDDEN, FIELD(slot), BOUNDS(0, 255, "expected 0..255")},
	{"generation", 0, QS_OPT_UINT, HIDDEN, FIELD(generation), BOUNDS(0, UINT32_MAX, "expected a number")},
	{"ctl-fd", 0, QS_OPT_UINT, HIDDEN, FIELD(ctl_fd), BOUNDS(0, 65535, "expected a descriptor")},
	{"steer-key", 0, QS_OPT_UINT, HIDDEN, FIELD(steer_key), GIVEN(have_steer_key),
	 BOUNDS(0, 255, "expected 0..255")},
	{"sealed-config-fd", 0, QS_OPT_CUSTOM, HIDDEN, .set = set_read_first},
};

const size_t qs_options_count = sizeof(qs_options) / sizeof(qs_options[0]);

/* getopt_long's value for an option without a short name: its index past this. */
#define LONG_BASE 256
#define COUNT (sizeof(qs_options) / sizeof(qs_options[0]))

const struct option *qs_options_getopt(const char **shortopts)
{
	static struct option longs[COUNT + 1];
	static char shorts[1 + 2 * COUNT + 1] = ":";
	if (!longs[0].name) {
		char *s = shorts + 1;
		for (size_t i = 0; i < COUNT; i++) {
			const struct qs_option *o = &qs_options[i];
			bool value = qs_option_takes_value(o);
			longs[i] = (struct option){o->name, value ? required_argument : no_argument, NULL,
						   o->short_name ? o->short_name : LONG_BASE + (int)i};
			if (o->short_name) {
				*s++ = o->short_name;
				if (value)
					*s++ = ':';
			}
		}
	}
	*shortopts = shorts;
	return longs;
}

const struct qs_option *qs_option_by_getopt(int c)
{
	if (c >= LONG_BASE && (size_t)(c - LONG_BASE) < COUNT)
		return &qs_options[c - LONG_BASE];
	for (size_t i = 0; c > 0 && i < COUNT; i++)
		if (qs_options[i].short_name == c)
			return &qs_options[i];
	return NULL;
}

const struct qs_option *qs_option_for_file(const char *name)
{
	for (size_t i = 0; i < COUNT; i++)
		if (!strcmp(qs_options[i].name, name) && (qs_options[i].flags & QS_OPT_FILE))
			return &qs_options[i];
	return NULL;
}

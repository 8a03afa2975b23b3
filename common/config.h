/* quicstashd's configuration: every process parses the same command line (the
 * supervisor re-execs itself with the original arguments plus its hidden
 * --role/--slot options), so a child never needs the supervisor's memory.
 * The --config file is read by the supervisor alone (at start, on SIGHUP); a
 * child parses the sealed copy of the text the supervisor validated, handed
 * over at QS_CHILD_CONFIG_FD (--sealed-config-fd), and never opens the path. */
#ifndef QS_CONFIG_H
#define QS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/* The processes of quicstashd. Each child role's properties are its entry in
 * the role table (roles/table.c); here only the names the command line and
 * the logs use. */
enum qs_role {
	QS_ROLE_SUPERVISOR = 0,
	QS_ROLE_ACCEPTOR,
	QS_ROLE_PARSER,
	QS_ROLE_SHIPPER,
	QS_ROLE_KEYHOLDER,
	QS_ROLE_METRICS,
	QS_ROLE_COUNT
};
enum qs_durability { QS_DURABILITY_FSYNC = 0, QS_DURABILITY_WRITE };
enum qs_balance { QS_BALANCE_FAILOVER = 0, QS_BALANCE_ROUND_ROBIN };
enum qs_retry { QS_RETRY_AUTO = 0, QS_RETRY_ALWAYS, QS_RETRY_NEVER };
enum qs_log_fmt { QS_LOG_FMT_TEXT = 0, QS_LOG_FMT_JSON };
/* --auth: how clients prove their tenant (docs/TENANTS.md) */
enum qs_auth { QS_AUTH_NONE = 0, QS_AUTH_TOKEN, QS_AUTH_MTLS, QS_AUTH_ANY };

struct qs_tenants;

#define QS_MAX_ACCEPTORS 64
#define QS_MAX_PARSERS 64
/* Size of the --secret-path file: the key material behind stateless-reset,
 * Retry and NEW_TOKEN tokens, shared by every acceptor and every restart. */
#define QS_SECRET_LEN 32
/* Logstash addresses in one --logstash-addr list (failover). */
#define QS_MAX_LOGSTASH 8
/* Upper bound for --max-message-size: keeps every size in u32 and IPC batches sane. */
#define QS_MAX_MESSAGE_LIMIT (64u * 1024 * 1024)

struct qs_config {
	/* user-facing options: each declared, with its default, bounds and reload
	 * scope, in the option table (common/options.c) */
	char server_addr_text[300];
	struct qs_addr server_addr;
	char logstash_text[4096];
	bool output_is_file;       /* -l file:PATH */
	char output_path[4096];    /* when output_is_file */
	struct qs_addr logstash_addr[QS_MAX_LOGSTASH]; /* -l A,B,...: the next is tried when one fails */
	char logstash_name[QS_MAX_LOGSTASH][300];      /* each as written, for the log */
	unsigned logstash_count;
	unsigned logstash_timeout_s; /* connect, and TCP-unacknowledged data or keepalives, limit */
	unsigned logstash_linger_ms; /* small commits wait this long to go to Logstash together (0: at once) */
	bool logstash_tls;             /* json_lines over TLS (Logstash tcp input with ssl_enable) */
	char logstash_ca[4096];        /* PEM CA bundle to trust; empty: the system's */
	char logstash_cert[4096];      /* PEM client certificate and key, or empty */
	char logstash_key[4096];
	enum qs_balance logstash_balance; /* several Logstash hosts: one at a time, or all (output_balance.c) */
	bool output_is_amqp;         /* -l amqp://HOST:PORT/VHOST,...: RabbitMQ (shipper/output_amqp.c) */
	bool amqp_tls;               /* amqps:// (the TLS files: --logstash-ca, -cert, -key) */
	char amqp_vhost[256];        /* the URL's path, decoded ("/" when empty) */
	char amqp_exchange[256];     /* --amqp-exchange ("": the default exchange) */
	char amqp_routing_key[256];  /* --amqp-routing-key */
	char amqp_credentials[4096]; /* --amqp-credentials FILE: user:password, mode 0600 */
	unsigned max_connections;
	unsigned max_conns_per_source;      /* per source address (IPv6: /64); 0: no limit */
	bool have_conns_per_source;         /* else 1/8 of max_connections */
	unsigned max_handshakes_per_source; /* new connections a second per source (burst 2x); 0: no limit */
	char cert_path[4096];
	char key_path[4096];
	char secret_path[4096];     /* QS_SECRET_LEN random bytes, mode 0600, kept across restarts */
	bool debug;
	enum qs_log_fmt log_format; /* stderr's lines: text, or one JSON object each */
	char spool_dir[4096];
	unsigned acceptors;
	unsigned parsers;
	uint32_t max_message_size;
	enum qs_durability durability;
	uint64_t spool_max_bytes;
	uint64_t max_incomplete_bytes; /* incomplete frames the acceptors hold, together */
	char runtime_dir[4096];     /* ipc:// sockets live here; empty: the supervisor makes one */
	char user[64];              /* unprivileged user for children */
	enum qs_retry retry;
	unsigned idle_timeout_s;
	unsigned receive_coalesce_us; /* acceptor: while packets flow, read them this often (0: on arrival) */
	unsigned stats_interval_s;  /* a stats line in the log this often; 0: never */
	char metrics_addr[300];     /* --metrics-addr [HOST:]PORT; empty: no metrics endpoint */

	/* tenants (docs/TENANTS.md) */
	char tenants_path[4096];    /* --tenants FILE; empty: no tenants */
	enum qs_auth auth;          /* without --auth: none, or any with a tenants file */
	bool have_auth;
	char client_ca[4096];       /* --client-ca: PEM CA bundle client certificates must chain to */
	bool check_config;          /* --check-config: validate, report every error, exit 0 or 1 */
	/* The parsed tenants file: a child's copy of the text the supervisor
	 * validated (the supervisor keeps none); NULL without --tenants. */
	struct qs_tenants *tenants;

	char config_path[4096];     /* --config FILE, re-read on SIGHUP (by the supervisor only) */
	/* The supervisor: a sealed memfd with the text of the file it validated
	 * (close it when done), -1 without --config. A child: -1 (it read and
	 * closed the copy it was handed). */
	int config_fd;

	/* offline spool check mode */
	bool check_spool;
	bool repair;

	/* hidden, set by the supervisor for its children (slot, generation,
	 * steering key: docs/ARCHITECTURE.md, "Glossary") */
	enum qs_role role;
	unsigned slot;       /* acceptor or parser index */
	unsigned generation; /* bumps on every (re)start of a slot */
	unsigned steer_key;  /* acceptors: first byte of their connection IDs (default: slot) */
	bool have_steer_key;
	int ctl_fd;          /* control socket to the supervisor, -1 if none */
};

/* QS_CONFIG_INVALID: --check-config found errors (exit 1). */
enum qs_config_result { QS_CONFIG_OK = 0, QS_CONFIG_EXIT_OK, QS_CONFIG_ERROR, QS_CONFIG_INVALID };

/* Parses argv into cfg. Prints help/version (QS_CONFIG_EXIT_OK) or a one-line
 * error to stderr (QS_CONFIG_ERROR: exit 2). */
enum qs_config_result qs_config_parse(int argc, char **argv, struct qs_config *cfg);

const char *qs_role_name(enum qs_role role);
/* The child role of that name (--role), or -1. */
int qs_role_by_name(const char *name);

/* A service-wide limit (-m, --max-incomplete-bytes) as each acceptor's share:
 * steering spreads new connections evenly, so each takes ceil(total / N). */
static inline uint64_t qs_config_acceptor_share(const struct qs_config *cfg, uint64_t total)
{
	unsigned n = cfg->acceptors ? cfg->acceptors : 1;
	return (total + n - 1) / n;
}

#endif

/* Descriptors a child finds open after exec. */
#define QS_CHILD_CTL_FD 3 /* control socketpair to the supervisor */
#define QS_CHILD_UDP_FD 4 /* acceptors: the UDP socket of their slot */
#define QS_CHILD_CONFIG_FD 5 /* the supervisor's sealed copy of the --config text */
#define QS_CHILD_LISTEN_FD 4 /* the metrics process: its TCP listening socket */
/* With --metrics-addr: a child's own metrics page (common/metrics_page.h),
 * writable; the metrics process finds the supervisor's page here and every
 * page its directory lists after it, read-only. */
#define QS_CHILD_PAGE_FD 6
/* Acceptors: the tenants' limit state they all share (common/shared_limits.h). */
#define QS_CHILD_LIMITS_FD 7

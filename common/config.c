#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h> /* sched_getaffinity, CPU_COUNT (_GNU_SOURCE comes from the build) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h> /* memfd_create */
#include <unistd.h>

#include "common/secretfile.h"

/* A --config file: bounded, as every byte read from a file is. */
#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_LINE 8192
/* What makes a memfd the supervisor's sealed copy: nobody can change it any more. */
#define CONFIG_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

enum {
	OPT_KEY = 1000, OPT_SECRET, OPT_SPOOL, OPT_ACCEPTORS, OPT_PARSERS, OPT_MAXMSG, OPT_DURABILITY,
	OPT_SPOOL_MAX, OPT_MAX_INCOMPLETE, OPT_RUNTIME, OPT_USER, OPT_RETRY, OPT_IDLE, OPT_CHECK,
	OPT_REPAIR, OPT_LS_TIMEOUT, OPT_LS_TLS, OPT_LS_CA, OPT_LS_CERT, OPT_LS_KEY, OPT_STATS, OPT_ROLE, OPT_SLOT, OPT_GEN, OPT_CTLFD, OPT_CONFIG, OPT_STEERKEY, OPT_CONFIGFD,
	OPT_PER_SOURCE = 900, OPT_HS_PER_SOURCE, /* below OPT_ROLE: a --config file may set them */
};

static const struct option long_opts[] = {
	{"server-addr", required_argument, NULL, 's'},
	{"logstash-addr", required_argument, NULL, 'l'},
	{"logstash-timeout", required_argument, NULL, OPT_LS_TIMEOUT},
	{"logstash-tls", no_argument, NULL, OPT_LS_TLS},
	{"logstash-ca", required_argument, NULL, OPT_LS_CA},
	{"logstash-cert", required_argument, NULL, OPT_LS_CERT},
	{"logstash-key", required_argument, NULL, OPT_LS_KEY},
	{"max-connections", required_argument, NULL, 'm'},
	{"max-connections-per-source", required_argument, NULL, OPT_PER_SOURCE},
	{"max-handshakes-per-source", required_argument, NULL, OPT_HS_PER_SOURCE},
	{"cert-path", required_argument, NULL, 'c'},
	{"key-path", required_argument, NULL, OPT_KEY},
	{"secret-path", required_argument, NULL, OPT_SECRET},
	{"debug", no_argument, NULL, 'd'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"spool-dir", required_argument, NULL, OPT_SPOOL},
	{"acceptors", required_argument, NULL, OPT_ACCEPTORS},
	{"parsers", required_argument, NULL, OPT_PARSERS},
	{"max-message-size", required_argument, NULL, OPT_MAXMSG},
	{"durability", required_argument, NULL, OPT_DURABILITY},
	{"spool-max-bytes", required_argument, NULL, OPT_SPOOL_MAX},
	{"max-incomplete-bytes", required_argument, NULL, OPT_MAX_INCOMPLETE},
	{"runtime-dir", required_argument, NULL, OPT_RUNTIME},
	{"user", required_argument, NULL, OPT_USER},
	{"retry", required_argument, NULL, OPT_RETRY},
	{"idle-timeout", required_argument, NULL, OPT_IDLE},
	{"stats-interval", required_argument, NULL, OPT_STATS},
	{"check-spool", required_argument, NULL, OPT_CHECK},
	{"repair", no_argument, NULL, OPT_REPAIR},
	{"config", required_argument, NULL, OPT_CONFIG},
	/* hidden: the supervisor's arguments for its children */
	{"role", required_argument, NULL, OPT_ROLE},
	{"slot", required_argument, NULL, OPT_SLOT},
	{"generation", required_argument, NULL, OPT_GEN},
	{"ctl-fd", required_argument, NULL, OPT_CTLFD},
	{"steer-key", required_argument, NULL, OPT_STEERKEY},
	{"sealed-config-fd", required_argument, NULL, OPT_CONFIGFD},
	{NULL, 0, NULL, 0},
};

static void usage(void)
{
	printf("Usage: quicstashd [options]\n"
	       "QUIC log ingestion server: JSON events in over QUIC, out to Logstash.\n\n"
	       "  -s, --server-addr ADDR      UDP address to listen on (127.0.0.1:4433; [::1]:4433)\n"
	       "  -l, --logstash-addr ADDR    Logstash tcp/json_lines input (127.0.0.1:5000); a\n"
	       "                              list A,B,... (up to 8) fails over to the next;\n"
	       "                              or file:PATH to append events to a local file\n"
	       "      --logstash-timeout S    reconnect when Logstash does not accept a connection,\n"
	       "                              or TCP-acknowledge data or keepalives, within S s (30)\n"
	       "      --logstash-tls          TLS to Logstash (its tcp input with ssl_enable)\n"
	       "      --logstash-ca FILE      PEM CA bundle Logstash's certificate must chain to\n"
	       "                              (the system's trust store); its name is checked\n"
	       "                              against the host of each --logstash-addr entry\n"
	       "      --logstash-cert FILE    PEM client certificate for Logstash, with\n"
	       "      --logstash-key FILE     its PEM private key\n"
	       "  -m, --max-connections N     concurrent QUIC connections (10000)\n"
	       "      --max-connections-per-source N  of them from one source address (an\n"
	       "                              IPv6 /64); more are refused as busy (1/8 of -m,\n"
	       "                              at least 1; 0: no limit)\n"
	       "      --max-handshakes-per-source R  new connections a second from one\n"
	       "                              source, in bursts of up to 2R (50; 0: no limit)\n"
	       "  -c, --cert-path FILE        certificate, PEM or DER (server_cert.der);\n"
	       "                              generated self-signed when missing\n"
	       "      --key-path FILE         private key (server_key.pem), mode 0600\n"
	       "      --secret-path FILE      QUIC token and stateless-reset secret\n"
	       "                              (quicstash.secret), mode 0600; made when missing\n"
	       "      --spool-dir DIR         durable spool directory (spool)\n"
	       "      --spool-max-bytes N     spool size limit, suffixes K M G (1G)\n"
	       "      --durability MODE       fsync (default) or write\n"
	       "      --acceptors N           QUIC acceptor processes (1)\n"
	       "      --parsers N             parser worker processes (one per 2 CPUs, at least 1)\n"
	       "      --max-message-size N    largest accepted frame, suffixes K M (1M)\n"
	       "      --max-incomplete-bytes N  incomplete frames held for clients, all\n"
	       "                              together (256M); past it the connection\n"
	       "                              holding the most is closed (retry later)\n"
	       "      --idle-timeout S        QUIC idle timeout in seconds (60)\n"
	       "      --retry MODE            QUIC Retry: auto, always, never (auto)\n"
	       "      --stats-interval S      log the status line and the events counted since\n"
	       "                              the last one every S seconds (300; 0: never)\n"
	       "      --runtime-dir DIR       private directory for IPC sockets (a fresh one)\n"
	       "      --user NAME             unprivileged user for the children (nobody)\n"
	       "      --config FILE           read options from FILE (name = value lines, long\n"
	       "                              option names; the command line wins); re-read on SIGHUP\n"
	       "      --check-spool DIR       verify a spool offline and exit (1 on damage)\n"
	       "      --repair                with --check-spool: cut damaged tails\n"
	       "  -d, --debug                 debug logging\n"
	       "  -h, --help                  this help\n"
	       "  -V, --version               print the version\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out, bool suffixes)
{
	char *end;
	errno = 0;
	if (*s == '-' || *s == 0)
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	uint64_t mul = 1;
	if (suffixes && *end) {
		switch (*end) {
		case 'k': case 'K': mul = 1024ull; break;
		case 'm': case 'M': mul = 1024ull * 1024; break;
		case 'g': case 'G': mul = 1024ull * 1024 * 1024; break;
		default: return -1;
		}
		end++;
	}
	if (*end)
		return -1;
	if (v > max / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* A cgroup v2 CPU quota (a container's --cpus, systemd's CPUQuota=) in whole
 * CPUs rounded up, or 0 when there is none or it cannot be read. */
static unsigned cgroup_cpu_quota(void)
{
	char line[4096], path[4200];
	unsigned cpus = 0;
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) { /* the unified hierarchy */
			line[strcspn(line, "\n")] = 0;
			snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max", line + 3);
			FILE *q = fopen(path, "re");
			unsigned long long quota, period;
			if (q && fscanf(q, "%llu %llu", &quota, &period) == 2 && period)
				cpus = (unsigned)((quota + period - 1) / period); /* "max ..." does not scan */
			if (q)
				fclose(q);
		}
	fclose(f);
	return cpus;
}

/* One parser per two CPUs this process may use (its affinity, capped by a
 * cgroup quota), at least one. Measured on 2 cores (docs/PERFORMANCE.md): a
 * second parser brought no throughput (a parser moves ~750k events/s per
 * core) but one more process and ZeroMQ I/O thread to wake, and higher
 * latency at half load. */
static unsigned default_parsers(void)
{
	cpu_set_t set;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned cpus = online > 0 ? (unsigned)online : 1;
	if (sched_getaffinity(0, sizeof(set), &set) == 0) /* fails beyond 1024 CPUs: keep the count online */
		cpus = (unsigned)CPU_COUNT(&set);
	unsigned quota = cgroup_cpu_quota();
	if (quota && quota < cpus)
		cpus = quota;
	unsigned n = cpus / 2;
	return n < 1 ? 1 : n > QS_MAX_PARSERS ? QS_MAX_PARSERS : n;
}

static void set_defaults(struct qs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->server_addr_text, sizeof(cfg->server_addr_text), "127.0.0.1:4433");
	snprintf(cfg->logstash_text, sizeof(cfg->logstash_text), "127.0.0.1:5000");
	cfg->logstash_timeout_s = 30;
	cfg->max_connections = 10000;
	cfg->max_handshakes_per_source = 50;
	snprintf(cfg->cert_path, sizeof(cfg->cert_path), "server_cert.der");
	snprintf(cfg->key_path, sizeof(cfg->key_path), "server_key.pem");
	snprintf(cfg->secret_path, sizeof(cfg->secret_path), "quicstash.secret");
	snprintf(cfg->spool_dir, sizeof(cfg->spool_dir), "spool");
	cfg->acceptors = 1;
	cfg->parsers = default_parsers();
	cfg->max_message_size = 1024 * 1024;
	cfg->durability = QS_DURABILITY_FSYNC;
	cfg->spool_max_bytes = 1024ull * 1024 * 1024;
	cfg->max_incomplete_bytes = 256ull * 1024 * 1024;
	snprintf(cfg->user, sizeof(cfg->user), "nobody");
	cfg->retry = QS_RETRY_AUTO;
	cfg->idle_timeout_s = 60;
	cfg->stats_interval_s = 300;
	cfg->role = QS_ROLE_SUPERVISOR;
	cfg->ctl_fd = -1;
	cfg->config_fd = -1;
}

/* "FILE:LINE: " while a --config file is applied, so an error points at its line. */
static char err_where[4200];

static int copy_str(char *dst, size_t len, const char *src, const char *what)
{
	if (strlen(src) >= len || *src == 0) {
		fprintf(stderr, "quicstashd: %s%s: value empty or too long\n", err_where, what);
		return -1;
	}
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static int bad(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "quicstashd: %s--%s '%s': %s\n", err_where, opt, val, want);
	return -1;
}

/* Applies one option; -1 on a bad value (message already printed). */
static int apply(struct qs_config *cfg, int c, const char *arg)
{
	uint64_t v;
	switch (c) {
	case 's': return copy_str(cfg->server_addr_text, sizeof(cfg->server_addr_text), arg, "--server-addr");
	case 'l': return copy_str(cfg->logstash_text, sizeof(cfg->logstash_text), arg, "--logstash-addr");
	case OPT_LS_TIMEOUT:
		if (parse_u64(arg, 3600, &v, false) || v == 0)
			return bad("logstash-timeout", arg, "expected 1..3600 seconds");
		cfg->logstash_timeout_s = (unsigned)v;
		return 0;
	case OPT_LS_TLS: cfg->logstash_tls = true; return 0;
	case OPT_LS_CA: return copy_str(cfg->logstash_ca, sizeof(cfg->logstash_ca), arg, "--logstash-ca");
	case OPT_LS_CERT: return copy_str(cfg->logstash_cert, sizeof(cfg->logstash_cert), arg, "--logstash-cert");
	case OPT_LS_KEY: return copy_str(cfg->logstash_key, sizeof(cfg->logstash_key), arg, "--logstash-key");
	case 'm':
		if (parse_u64(arg, 1000000, &v, false) || v == 0)
			return bad("max-connections", arg, "expected 1..1000000");
		cfg->max_connections = (unsigned)v;
		return 0;
	case OPT_PER_SOURCE:
		if (parse_u64(arg, 1000000, &v, false))
			return bad("max-connections-per-source", arg, "expected 0..1000000");
		cfg->max_conns_per_source = (unsigned)v;
		cfg->have_conns_per_source = true;
		return 0;
	case OPT_HS_PER_SOURCE:
		if (parse_u64(arg, 1000000, &v, false))
			return bad("max-handshakes-per-source", arg, "expected 0..1000000 a second");
		cfg->max_handshakes_per_source = (unsigned)v;
		return 0;
	case 'c': return copy_str(cfg->cert_path, sizeof(cfg->cert_path), arg, "--cert-path");
	case OPT_KEY: return copy_str(cfg->key_path, sizeof(cfg->key_path), arg, "--key-path");
	case OPT_SECRET: return copy_str(cfg->secret_path, sizeof(cfg->secret_path), arg, "--secret-path");
	case 'd': cfg->debug = true; return 0;
	case OPT_SPOOL: return copy_str(cfg->spool_dir, sizeof(cfg->spool_dir), arg, "--spool-dir");
	case OPT_ACCEPTORS:
		if (parse_u64(arg, QS_MAX_ACCEPTORS, &v, false) || v == 0)
			return bad("acceptors", arg, "expected 1..64");
		cfg->acceptors = (unsigned)v;
		return 0;
	case OPT_PARSERS:
		if (parse_u64(arg, QS_MAX_PARSERS, &v, false) || v == 0)
			return bad("parsers", arg, "expected 1..64");
		cfg->parsers = (unsigned)v;
		return 0;
	case OPT_MAXMSG:
		if (parse_u64(arg, QS_MAX_MESSAGE_LIMIT, &v, true) || v < 64)
			return bad("max-message-size", arg, "expected 64 bytes..64M");
		cfg->max_message_size = (uint32_t)v;
		return 0;
	case OPT_DURABILITY:
		if (!strcmp(arg, "fsync")) cfg->durability = QS_DURABILITY_FSYNC;
		else if (!strcmp(arg, "write")) cfg->durability = QS_DURABILITY_WRITE;
		else return bad("durability", arg, "expected fsync or write");
		return 0;
	case OPT_SPOOL_MAX:
		if (parse_u64(arg, UINT64_MAX, &v, true) || v < 1024 * 1024)
			return bad("spool-max-bytes", arg, "expected a size of at least 1M");
		cfg->spool_max_bytes = v;
		return 0;
	case OPT_MAX_INCOMPLETE:
		if (parse_u64(arg, UINT64_MAX, &v, true) || v < 1024 * 1024)
			return bad("max-incomplete-bytes", arg, "expected a size of at least 1M");
		cfg->max_incomplete_bytes = v;
		return 0;
	case OPT_IDLE:
		if (parse_u64(arg, 3600, &v, false) || v == 0)
			return bad("idle-timeout", arg, "expected 1..3600 seconds");
		cfg->idle_timeout_s = (unsigned)v;
		return 0;
	case OPT_STATS:
		if (parse_u64(arg, 86400, &v, false))
			return bad("stats-interval", arg, "expected 0..86400 seconds");
		cfg->stats_interval_s = (unsigned)v;
		return 0;
	case OPT_RUNTIME: return copy_str(cfg->runtime_dir, sizeof(cfg->runtime_dir), arg, "--runtime-dir");
	case OPT_USER: return copy_str(cfg->user, sizeof(cfg->user), arg, "--user");
	case OPT_RETRY:
		if (!strcmp(arg, "auto")) cfg->retry = QS_RETRY_AUTO;
		else if (!strcmp(arg, "always")) cfg->retry = QS_RETRY_ALWAYS;
		else if (!strcmp(arg, "never")) cfg->retry = QS_RETRY_NEVER;
		else return bad("retry", arg, "expected auto, always or never");
		return 0;
	case OPT_CHECK:
		cfg->check_spool = true;
		return copy_str(cfg->spool_dir, sizeof(cfg->spool_dir), arg, "--check-spool");
	case OPT_REPAIR: cfg->repair = true; return 0;
	case OPT_CONFIG: return copy_str(cfg->config_path, sizeof(cfg->config_path), arg, "--config");
	case OPT_ROLE:
		if (qs_role_by_name(arg) < 0) return bad("role", arg, "unknown role");
		cfg->role = (enum qs_role)qs_role_by_name(arg);
		return 0;
	case OPT_SLOT:
		if (parse_u64(arg, 255, &v, false)) return bad("slot", arg, "expected 0..255");
		cfg->slot = (unsigned)v;
		return 0;
	case OPT_GEN:
		if (parse_u64(arg, UINT32_MAX, &v, false)) return bad("generation", arg, "expected a number");
		cfg->generation = (unsigned)v;
		return 0;
	case OPT_STEERKEY:
		if (parse_u64(arg, 255, &v, false)) return bad("steer-key", arg, "expected 0..255");
		cfg->steer_key = (unsigned)v;
		cfg->have_steer_key = true;
		return 0;
	case OPT_CONFIGFD: return 0; /* read before the other options (config_args) */
	case OPT_CTLFD:
		if (parse_u64(arg, 65535, &v, false)) return bad("ctl-fd", arg, "expected a descriptor");
		cfg->ctl_fd = (int)v;
		return 0;
	}
	return -1;
}

/* --logstash-addr A,B,...: each resolved; all TCP (file: stands alone). */
static int parse_logstash_list(struct qs_config *cfg)
{
	char err[512], list[sizeof(cfg->logstash_text)];
	memcpy(list, cfg->logstash_text, sizeof(list));
	cfg->logstash_count = 0;
	char *save = NULL;
	for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		unsigned i = cfg->logstash_count;
		if (i == QS_MAX_LOGSTASH) {
			fprintf(stderr, "quicstashd: --logstash-addr: at most %d addresses\n", QS_MAX_LOGSTASH);
			return -1;
		}
		while (*item == ' ')
			item++;
		if (!strncmp(item, "file:", 5)) {
			fprintf(stderr, "quicstashd: --logstash-addr '%s': file: output takes no other address\n", item);
			return -1;
		}
		int rc = strlen(item) >= sizeof(cfg->logstash_name[i]) ? -1
			 : qs_addr_parse(item, &cfg->logstash_addr[i], err, sizeof(err));
		if (rc == -2 && cfg->role == QS_ROLE_SUPERVISOR) /* told once, by the supervisor */
			fprintf(stderr, "quicstashd: --logstash-addr %s; starting anyway, it is looked up again "
					"before each connect\n", err);
		if (rc == -2) /* DNS may not be up yet (boot): the shipper asks again (resolve.h) */
			memset(&cfg->logstash_addr[i], 0, sizeof(cfg->logstash_addr[i]));
		else if (rc < 0) {
			fprintf(stderr, "quicstashd: --logstash-addr %s\n",
				strlen(item) >= sizeof(cfg->logstash_name[i]) ? "address too long" : err);
			return -1;
		}
		snprintf(cfg->logstash_name[i], sizeof(cfg->logstash_name[i]), "%s", item);
		cfg->logstash_count++;
	}
	size_t len = strlen(cfg->logstash_text);
	if (!cfg->logstash_count || cfg->logstash_text[0] == ',' || cfg->logstash_text[len - 1] == ',' ||
	    strstr(cfg->logstash_text, ",,")) {
		fprintf(stderr, "quicstashd: --logstash-addr '%s': empty address in the list\n", cfg->logstash_text);
		return -1;
	}
	return 0;
}

/* The TLS options only make sense together: never plain TCP by a typo. */
static int check_tls_options(const struct qs_config *cfg)
{
	const char *why = NULL;
	if (!cfg->logstash_tls && (cfg->logstash_ca[0] || cfg->logstash_cert[0] || cfg->logstash_key[0]))
		why = "--logstash-ca, --logstash-cert and --logstash-key need --logstash-tls";
	else if (cfg->logstash_tls && cfg->output_is_file)
		why = "--logstash-tls: the output is a file (--logstash-addr file:...)";
	else if (!cfg->logstash_cert[0] != !cfg->logstash_key[0])
		why = "--logstash-cert and --logstash-key go together";
	if (why)
		fprintf(stderr, "quicstashd: %s\n", why);
	return why ? -1 : 0;
}

/* The supervisor opens what its children will open from the configuration
 * (the output file, as the shipper does) and checks the private keys as the
 * QUIC secret is checked: a mistake is an exit 2 at start, a refused reload
 * after, never a child in a restart loop. */
static int check_files(const struct qs_config *cfg)
{
	if (cfg->output_is_file) {
		int fd = open(cfg->output_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
		if (fd < 0) {
			fprintf(stderr, "quicstashd: --logstash-addr file:%s: %s\n", cfg->output_path, strerror(errno));
			return -1;
		}
		close(fd);
	}
	const char *key[2] = {cfg->key_path, cfg->logstash_key}, *opt[2] = {"--key-path", "--logstash-key"};
	for (int i = 0; i < 2; i++)
		if (key[i][0] && qs_file_check(key[i], SIZE_MAX, true) < 0 && errno == EPERM) {
			fprintf(stderr, "quicstashd: %s %s: %s\n", opt[i], key[i], qs_private_strerror(errno));
			return -1;
		}
	return 0;
}

/* Resolves the address options once all options are known. */
static int resolve(struct qs_config *cfg)
{
	char err[512];
	if (qs_addr_parse(cfg->server_addr_text, &cfg->server_addr, err, sizeof(err))) {
		fprintf(stderr, "quicstashd: --server-addr %s\n", err);
		return -1;
	}
	if (!strncmp(cfg->logstash_text, "file:", 5)) {
		cfg->output_is_file = true;
		if (copy_str(cfg->output_path, sizeof(cfg->output_path), cfg->logstash_text + 5, "--logstash-addr file:"))
			return -1;
	} else if (parse_logstash_list(cfg) < 0) {
		return -1;
	}
	if (check_tls_options(cfg) < 0)
		return -1;
	if (cfg->repair && !cfg->check_spool) {
		fprintf(stderr, "quicstashd: --repair goes with --check-spool DIR\n");
		return -1;
	}
	/* One source may take 1/8 of -m by default: at least eight hosts are needed to fill it. */
	if (!cfg->have_conns_per_source)
		cfg->max_conns_per_source = (cfg->max_connections + 7) / 8;
	/* each acceptor's share must hold a frame of the largest size while it arrives */
	unsigned n = cfg->acceptors ? cfg->acceptors : 1;
	if (qs_config_acceptor_share(cfg, cfg->max_incomplete_bytes) < cfg->max_message_size) {
		fprintf(stderr, "quicstashd: --max-incomplete-bytes %llu: each of the %u acceptor(s) needs at least "
			"--max-message-size (%u bytes), or the largest frames could never arrive\n",
			(unsigned long long)cfg->max_incomplete_bytes, n, cfg->max_message_size);
		return -1;
	}
	return cfg->role == QS_ROLE_SUPERVISOR ? check_files(cfg) : 0;
}

static char *trim(char *t)
{
	while (*t == ' ' || *t == '\t')
		t++;
	char *e = t + strlen(t);
	while (e > t && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return t;
}

/* Options a file may not set: they belong to the command line or the supervisor. */
static bool file_may_set(int val)
{
	return val != 'h' && val != 'V' && val != OPT_CONFIG && val != OPT_CHECK && val != OPT_REPAIR &&
	       val < OPT_ROLE;
}

static int apply_line(struct qs_config *cfg, char *line)
{
	char *eq = strchr(line, '=');
	char *name = trim(line), *value = (char *)"";
	if (eq) {
		*eq = 0;
		name = trim(line);
		value = trim(eq + 1);
	}
	for (const struct option *o = long_opts; o->name; o++) {
		if (strcmp(o->name, name) != 0 || !file_may_set(o->val))
			continue;
		if (o->has_arg == no_argument && *value && strcmp(value, "true") && strcmp(value, "yes"))
			return bad(name, value, "takes no value (or true)");
		return apply(cfg, o->val, value);
	}
	fprintf(stderr, "quicstashd: %sunknown option '%s'\n", err_where, name);
	return -1;
}

/* Applies the NAME = VALUE lines of text. Every byte counts: a NUL byte or a
 * line longer than CONFIG_MAX_LINE is an error at its line (fgets skipped a
 * line starting with NUL and cut a long one in two, its tail read as a line). */
static int apply_text(struct qs_config *cfg, const char *text, size_t len, const char *name)
{
	static char line[CONFIG_MAX_LINE + 1];
	int lineno = 0, rc = 0;
	size_t pos = 0;
	while (rc == 0 && pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl != NULL);
		snprintf(err_where, sizeof(err_where), "%s:%d: ", name, ++lineno);
		if (n > CONFIG_MAX_LINE || memchr(start, 0, n)) {
			fprintf(stderr, "quicstashd: %s%s\n", err_where,
				n > CONFIG_MAX_LINE ? "line longer than 8192 bytes" : "NUL byte in the line");
			rc = -1;
			break;
		}
		memcpy(line, start, n);
		line[n] = 0;
		char *t = trim(line);
		if (*t && *t != '#')
			rc = apply_line(cfg, t);
	}
	err_where[0] = 0;
	return rc;
}

/* The options that decide where the configuration comes from, found with
 * getopt_long itself so that its abbreviations (--conf, --co=) count too. */
struct config_args {
	const char *path; /* --config */
	int fd;           /* --sealed-config-fd: the sealed copy a child was handed */
	bool child;       /* --role */
};

static void config_args(int argc, char **argv, struct config_args *a)
{
	*a = (struct config_args){.fd = -1};
	optind = 0; /* a full re-initialisation: this runs again on every reload */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":s:l:m:c:dhV", long_opts, NULL)) != -1) {
		uint64_t v;
		if (c == OPT_CONFIG)
			a->path = optarg;
		else if (c == OPT_ROLE)
			a->child = true;
		else if (c == OPT_CONFIGFD)
			a->fd = parse_u64(optarg, 65535, &v, false) ? -2 : (int)v;
	}
}

/* The text a child was handed: only a sealed memfd, so that what it runs is
 * exactly what the supervisor validated. The descriptor is closed after. */
static int read_handed(int fd, char **text, size_t *len)
{
	int seals = fcntl(fd, F_GET_SEALS);
	int rc = -1;
	if (seals < 0 || (seals & CONFIG_SEALS) != CONFIG_SEALS)
		fprintf(stderr, "quicstashd: --sealed-config-fd %d: not the supervisor's sealed copy\n", fd);
	else if ((rc = qs_file_read_fd(fd, CONFIG_MAX_BYTES, false, text, len)) < 0)
		fprintf(stderr, "quicstashd: --sealed-config-fd %d: %s\n", fd, qs_private_strerror(errno));
	close(fd);
	return rc;
}

/* The supervisor's copy of the text it validated, for its children (proc.c
 * puts it at QS_CHILD_CONFIG_FD): sealed, so no process can change it. */
static int seal_copy(const char *text, size_t len)
{
	int fd = memfd_create("quicstash-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t done = 0;
	while (fd >= 0 && done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (fd < 0 || done < len || fcntl(fd, F_ADD_SEALS, CONFIG_SEALS) != 0) {
		fprintf(stderr, "quicstashd: cannot keep a sealed copy of the configuration: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Reads the configuration text: a child from the sealed copy it was handed
 * (never the path: the file may have changed since the supervisor validated
 * it), the supervisor from the file (at start and on SIGHUP). *text is NULL
 * when there is no configuration file. */
static int load_config(const struct config_args *a, char **text, size_t *len)
{
	*text = NULL;
	if (a->fd == -2) {
		fprintf(stderr, "quicstashd: --sealed-config-fd: expected a descriptor\n");
		return -1;
	}
	if (a->fd >= 0)
		return read_handed(a->fd, text, len);
	if (!a->path)
		return 0;
	if (a->child) {
		fprintf(stderr, "quicstashd: --config %s: a child takes its configuration from the supervisor\n", a->path);
		return -1;
	}
	if (qs_file_read(a->path, CONFIG_MAX_BYTES, false, text, len) < 0) {
		fprintf(stderr, "quicstashd: --config %s: %s\n", a->path,
			errno == EFBIG ? "larger than 1 MiB" : qs_private_strerror(errno));
		return -1;
	}
	return 0;
}

static enum qs_config_result parse_argv(int argc, char **argv, struct qs_config *cfg)
{
	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":s:l:m:c:dhV", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h': usage(); return QS_CONFIG_EXIT_OK;
		case 'V': printf("quicstashd %s\n", QS_VERSION); return QS_CONFIG_EXIT_OK;
		case ':':
			fprintf(stderr, "quicstashd: option '%s' needs a value (try --help)\n", argv[optind - 1]);
			return QS_CONFIG_ERROR;
		case '?':
			fprintf(stderr, "quicstashd: unknown option '%s' (try --help)\n", argv[optind - 1]);
			return QS_CONFIG_ERROR;
		default:
			if (apply(cfg, c, optarg))
				return QS_CONFIG_ERROR;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "quicstashd: unexpected argument '%s' (try --help)\n", argv[optind]);
		return QS_CONFIG_ERROR;
	}
	if (!cfg->have_steer_key)
		cfg->steer_key = cfg->slot;
	if (cfg->check_spool)
		return QS_CONFIG_OK;
	return resolve(cfg) ? QS_CONFIG_ERROR : QS_CONFIG_OK;
}

enum qs_config_result qs_config_parse(int argc, char **argv, struct qs_config *cfg)
{
	struct config_args a;
	char *text;
	size_t len = 0;
	set_defaults(cfg);
	config_args(argc, argv, &a);
	if (load_config(&a, &text, &len) < 0)
		return QS_CONFIG_ERROR;
	const char *name = a.path ? a.path : "the configuration handed over";
	enum qs_config_result r = text && apply_text(cfg, text, len, name) < 0 ? QS_CONFIG_ERROR
										 : parse_argv(argc, argv, cfg);
	if (r == QS_CONFIG_OK && text && cfg->role == QS_ROLE_SUPERVISOR && !cfg->check_spool &&
	    (cfg->config_fd = seal_copy(text, len)) < 0)
		r = QS_CONFIG_ERROR;
	free(text);
	return r;
}

static const char *const role_names[QS_ROLE_COUNT] = {
	[QS_ROLE_SUPERVISOR] = "supervisor", [QS_ROLE_ACCEPTOR] = "acceptor", [QS_ROLE_PARSER] = "parser",
	[QS_ROLE_SHIPPER] = "shipper",       [QS_ROLE_KEYHOLDER] = "keyholder",
};

const char *qs_role_name(enum qs_role role)
{
	return (unsigned)role < QS_ROLE_COUNT ? role_names[role] : "supervisor";
}

int qs_role_by_name(const char *name)
{
	for (int r = QS_ROLE_SUPERVISOR + 1; r < QS_ROLE_COUNT; r++) /* the supervisor is no --role */
		if (!strcmp(name, role_names[r]))
			return r;
	return -1;
}

/* The command line and the --config text made into a struct qs_config: both
 * through the option table (common/options.c), then the checks that involve
 * several options and the files the children will open. */
#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <sched.h> /* sched_getaffinity, CPU_COUNT (_GNU_SOURCE comes from the build) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config_file.h"
#include "common/options.h"
#include "common/secretfile.h"
#include "common/tenants.h"
#include "common/tlsfiles.h"

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

/* The table's defaults, and what it cannot write as an option's value. */
static void set_defaults(struct qs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	qs_options_defaults(cfg);
	cfg->parsers = default_parsers();
	cfg->role = QS_ROLE_SUPERVISOR;
	cfg->ctl_fd = -1;
	cfg->config_fd = -1;
}

/* amqp://HOST:PORT/VHOST (amqps:// with TLS): the item keeps HOST:PORT; the
 * vhost (the path, %XX-decoded, "/" when empty) and the scheme must be the
 * same for every entry, which are nodes of one cluster. */
static int amqp_item(struct qs_config *cfg, char *item, bool first)
{
	bool tls = !strncmp(item, "amqps://", 8), amqp = tls || !strncmp(item, "amqp://", 7);
	if (!first && (amqp != cfg->output_is_amqp || tls != cfg->amqp_tls)) {
		fprintf(stderr, "quicstashd: --logstash-addr '%s': %s\n", item,
			amqp != cfg->output_is_amqp ? "amqp:// and Logstash entries do not mix"
						    : "amqp:// and amqps:// entries do not mix");
		return -1;
	}
	cfg->output_is_amqp = amqp;
	cfg->amqp_tls = tls;
	if (!amqp)
		return 0;
	if (tls)
		memmove(item, item + 1, strlen(item + 1) + 1); /* "amqps://" -> "mqps://": 7 to strip, as amqp:// */
	memmove(item, item + 7, strlen(item + 7) + 1);
	char *slash = strchr(item, '/'), vhost[sizeof(cfg->amqp_vhost)] = "/";
	if (slash && slash[1]) {
		size_t k = 0;
		for (const char *p = slash + 1; *p && k + 1 < sizeof(vhost); p++) {
			unsigned v;
			if (*p == '%' && sscanf(p + 1, "%2x", &v) == 1 && p[1] && p[2] && v) {
				vhost[k++] = (char)v;
				p += 2;
			} else {
				vhost[k++] = *p;
			}
		}
		vhost[k] = 0;
	}
	if (slash)
		*slash = 0;
	if (!first && strcmp(vhost, cfg->amqp_vhost)) {
		fprintf(stderr, "quicstashd: --logstash-addr: every amqp:// entry must name the same vhost\n");
		return -1;
	}
	memcpy(cfg->amqp_vhost, vhost, sizeof(vhost));
	return 0;
}

/* --logstash-addr A,B,...: each resolved; all TCP, or all AMQP (file: stands alone). */
static int parse_logstash_list(struct qs_config *cfg)
{
	char err[512], list[sizeof(cfg->logstash_text)];
	memcpy(list, cfg->logstash_text, sizeof(list));
	cfg->logstash_count = 0;
	cfg->output_is_amqp = cfg->amqp_tls = false;
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
		if (amqp_item(cfg, item, i == 0) < 0)
			return -1;
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
	if (!cfg->logstash_tls && !cfg->amqp_tls && (cfg->logstash_ca[0] || cfg->logstash_cert[0] || cfg->logstash_key[0]))
		why = "--logstash-ca, --logstash-cert and --logstash-key need --logstash-tls (or amqps://)";
	else if (cfg->logstash_tls && cfg->output_is_file)
		why = "--logstash-tls: the output is a file (--logstash-addr file:...)";
	else if (cfg->logstash_tls && cfg->output_is_amqp)
		why = "--logstash-tls: for TLS to RabbitMQ use amqps://";
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
	const char *key[3] = {cfg->key_path, cfg->logstash_key, cfg->amqp_credentials};
	const char *opt[3] = {"--key-path", "--logstash-key", "--amqp-credentials"};
	for (int i = 0; i < 3; i++)
		if (key[i][0] && qs_file_check(key[i], SIZE_MAX, true) < 0 && errno == EPERM) {
			fprintf(stderr, "quicstashd: %s %s: %s\n", opt[i], key[i], qs_private_strerror(errno));
			return -1;
		}
	struct stat st; /* the shipper opens it without following a link: say so now, not in a restart loop */
	if (cfg->amqp_credentials[0] && lstat(cfg->amqp_credentials, &st) == 0 && S_ISLNK(st.st_mode)) {
		fprintf(stderr, "quicstashd: --amqp-credentials %s: a symbolic link (refused)\n", cfg->amqp_credentials);
		return -1;
	}
	return 0;
}

/* The acceptors load --client-ca (a PEM bundle or a DER certificate): one they could not load
 * would leave them in a restart loop, so the supervisor tries it first. */
static int check_client_ca(const char *path)
{
	gnutls_certificate_credentials_t cred;
	if (qs_file_check(path, SIZE_MAX, false) < 0) {
		fprintf(stderr, "quicstashd: --client-ca %s: %s\n", path, qs_private_strerror(errno));
		return -1;
	}
	char err[512];
	if (gnutls_certificate_allocate_credentials(&cred) != 0)
		return -1;
	int rc = qs_tls_add_trust(cred, path, err, sizeof(err));
	gnutls_certificate_free_credentials(cred);
	if (rc < 0)
		fprintf(stderr, "quicstashd: --client-ca %s\n", err);
	return rc;
}

/* --auth and its companions; without --auth, a tenants file means every
 * client must authenticate, by either means. */
static int check_auth(struct qs_config *cfg)
{
	static const char *const names[] = {"none", "token", "mtls", "any"};
	const char *why = NULL;
	if (!cfg->have_auth)
		cfg->auth = cfg->tenants_path[0] ? QS_AUTH_ANY : QS_AUTH_NONE;
	if (cfg->auth != QS_AUTH_NONE && !cfg->tenants_path[0])
		why = "needs --tenants FILE (the tenants clients authenticate as)";
	else if (cfg->auth == QS_AUTH_MTLS && !cfg->client_ca[0])
		why = "needs --client-ca FILE";
	if (why)
		fprintf(stderr, "quicstashd: --auth %s %s\n", names[cfg->auth], why);
	else if (cfg->client_ca[0] && cfg->role == QS_ROLE_SUPERVISOR)
		return check_client_ca(cfg->client_ca);
	return why ? -1 : 0;
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
		const char *path = cfg->logstash_text + 5;
		if (*path == 0 || strlen(path) >= sizeof(cfg->output_path)) {
			fprintf(stderr, "quicstashd: --logstash-addr file:: value empty or too long\n");
			return -1;
		}
		memcpy(cfg->output_path, path, strlen(path) + 1);
	} else if (parse_logstash_list(cfg) < 0) {
		return -1;
	}
	if (check_tls_options(cfg) < 0)
		return -1;
	if (check_auth(cfg) < 0)
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

/* The options that decide where the configuration comes from, found with
 * getopt_long itself so that its abbreviations (--conf, --co=) count too. */
static void config_args(int argc, char **argv, struct qs_config_args *a)
{
	const char *shortopts;
	const struct option *longs = qs_options_getopt(&shortopts);
	*a = (struct qs_config_args){.fd = -1};
	optind = 0; /* a full re-initialisation: this runs again on every reload */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longs, NULL)) != -1) {
		const struct qs_option *o = qs_option_by_getopt(c);
		uint64_t v;
		if (!o)
			continue;
		if (!strcmp(o->name, "config"))
			a->path = optarg;
		else if (!strcmp(o->name, "role"))
			a->child = true;
		else if (!strcmp(o->name, "check-config"))
			a->check = true;
		else if (!strcmp(o->name, "sealed-config-fd"))
			a->fd = qs_parse_u64(optarg, 65535, &v, false) ? -2 : (int)v;
	}
}

static enum qs_config_result parse_argv(int argc, char **argv, struct qs_config *cfg)
{
	const char *shortopts;
	const struct option *longs = qs_options_getopt(&shortopts);
	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, shortopts, longs, NULL)) != -1) {
		const struct qs_option *o = qs_option_by_getopt(c);
		if (c == ':') {
			fprintf(stderr, "quicstashd: option '%s' needs a value (try --help)\n", argv[optind - 1]);
			return QS_CONFIG_ERROR;
		}
		if (!o) {
			fprintf(stderr, "quicstashd: unknown option '%s' (try --help)\n", argv[optind - 1]);
			return QS_CONFIG_ERROR;
		}
		if (o->type == QS_OPT_ACTION) {
			o->run();
			return QS_CONFIG_EXIT_OK;
		}
		if (qs_option_apply(cfg, o, optarg))
			return QS_CONFIG_ERROR;
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

/* The tenants file: the supervisor reads and validates it (every error with
 * --check-config, else the first); a child parses the copy it was handed,
 * never the path. */
static enum qs_config_result load_tenants(struct qs_config *cfg, const struct qs_config_args *a, const char *handed,
					  size_t handed_len)
{
	if (!cfg->tenants_path[0])
		return QS_CONFIG_OK;
	if (a->child && !handed) {
		fprintf(stderr, "quicstashd: --tenants %s: a child takes its tenants from the supervisor\n",
			cfg->tenants_path);
		return QS_CONFIG_ERROR;
	}
	const char *prefix = a->check ? "" : "quicstashd: ";
	cfg->tenants = handed ? qs_tenants_parse(handed, handed_len, cfg->tenants_path, prefix, false, NULL)
			      : qs_tenants_load(cfg->tenants_path, prefix, a->check, NULL);
	return cfg->tenants ? QS_CONFIG_OK : a->check ? QS_CONFIG_INVALID : QS_CONFIG_ERROR;
}

/* The supervisor's sealed copy for its children: the configuration text, and
 * after a NUL byte the tenants file's. */
static int seal(struct qs_config *cfg, const char *text, size_t len)
{
	if (!cfg->tenants) {
		cfg->config_fd = qs_config_seal(text, len);
		return cfg->config_fd < 0 ? -1 : 0;
	}
	size_t total = len + 1 + cfg->tenants->len;
	char *buf = malloc(total);
	if (!buf)
		return -1;
	if (len)
		memcpy(buf, text, len);
	buf[len] = 0;
	memcpy(buf + len + 1, cfg->tenants->text, cfg->tenants->len);
	cfg->config_fd = qs_config_seal(buf, total);
	free(buf);
	return cfg->config_fd < 0 ? -1 : 0;
}

enum qs_config_result qs_config_parse(int argc, char **argv, struct qs_config *cfg)
{
	struct qs_config_args a;
	char *text;
	size_t len = 0, cfg_len = 0;
	set_defaults(cfg);
	config_args(argc, argv, &a);
	if (qs_config_load(&a, &text, &len) < 0)
		return QS_CONFIG_ERROR;
	const char *handed = NULL, *nul = a.fd >= 0 && text ? memchr(text, 0, len) : NULL;
	cfg_len = nul ? (size_t)(nul - text) : len;
	if (nul)
		handed = nul + 1;
	const char *name = a.path ? a.path : "the configuration handed over";
	enum qs_config_result r = text && qs_config_apply_text(cfg, text, cfg_len, name) < 0 ? QS_CONFIG_ERROR
										     : parse_argv(argc, argv, cfg);
	if (r == QS_CONFIG_OK && !cfg->check_spool)
		r = load_tenants(cfg, &a, handed, handed ? len - cfg_len - 1 : 0);
	if (r == QS_CONFIG_OK && cfg->check_config) {
		printf("configuration valid\n");
		r = QS_CONFIG_EXIT_OK;
	}
	if (r == QS_CONFIG_OK && (text || cfg->tenants) && cfg->role == QS_ROLE_SUPERVISOR && !cfg->check_spool &&
	    seal(cfg, text ? text : "", cfg_len) < 0)
		r = QS_CONFIG_ERROR;
	if (cfg->role == QS_ROLE_SUPERVISOR) { /* its children parse their own copy */
		qs_tenants_free(cfg->tenants);
		cfg->tenants = NULL;
	}
	if (r == QS_CONFIG_ERROR && a.check)
		r = QS_CONFIG_INVALID;
	free(text);
	return r;
}

static const char *const role_names[QS_ROLE_COUNT] = {
	[QS_ROLE_SUPERVISOR] = "supervisor", [QS_ROLE_ACCEPTOR] = "acceptor", [QS_ROLE_PARSER] = "parser",
	[QS_ROLE_SHIPPER] = "shipper",       [QS_ROLE_KEYHOLDER] = "keyholder",
	[QS_ROLE_METRICS] = "metrics",
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

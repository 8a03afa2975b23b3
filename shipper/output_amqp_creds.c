/* --amqp-credentials FILE: "user:password" on one line (a final newline
 * allowed), read by the shipper alone, before it confines itself: opened
 * without following a link, refused when group or others may read it, as a
 * private key is (common/secretfile.h). Without the option: guest:guest,
 * which RabbitMQ accepts from loopback only. */
#include "shipper/output_parts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/secretfile.h"

#define CREDS_MAX 600

/* Splits "user:password\n" into c. 0, or -1 with the reason in *why. */
static int parse(char *buf, size_t len, struct qs_amqp_creds *c, const char **why)
{
	if (len && buf[len - 1] == '\n')
		buf[--len] = 0;
	if (len && buf[len - 1] == '\r')
		buf[--len] = 0;
	char *colon = strchr(buf, ':');
	if (memchr(buf, '\n', len) || memchr(buf, 0, len))
		*why = "expected one line";
	else if (!colon || colon == buf)
		*why = "expected user:password";
	else if ((size_t)(colon - buf) >= sizeof(c->user) || strlen(colon + 1) >= sizeof(c->pass))
		*why = "user or password too long";
	else {
		memcpy(c->user, buf, (size_t)(colon - buf));
		memcpy(c->pass, colon + 1, strlen(colon + 1));
		return 0;
	}
	return -1;
}

#define PEM_MAX (8u << 20)
#define SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

void qs_amqp_creds_free(struct qs_amqp_creds *c)
{
	if (!c)
		return;
	qs_file_free(c->ca, c->ca_len);
	qs_file_free(c->cert, c->cert_len);
	qs_file_free(c->key, c->key_len);
	explicit_bzero(c, sizeof(*c));
	free(c);
}

/* amqps://: the PEM files, read now (the shipper's root is empty after). */
static int load_tls(const struct qs_config *cfg, struct qs_amqp_creds *c)
{
	const char *path[3] = {cfg->logstash_ca[0] ? cfg->logstash_ca : SYSTEM_CA, cfg->logstash_cert, cfg->logstash_key};
	char **buf[3] = {&c->ca, &c->cert, &c->key};
	size_t *len[3] = {&c->ca_len, &c->cert_len, &c->key_len};
	for (int i = 0; i < 3; i++) {
		if (path[i][0] && qs_file_read(path[i], PEM_MAX, i == 2, buf[i], len[i]) < 0) {
			qs_err("amqps: %s: %s", path[i], qs_private_strerror(errno));
			return -1;
		}
	}
	out_amqps_prepare();
	return 0;
}

static int load_user(const struct qs_config *cfg, struct qs_amqp_creds *c);

struct qs_amqp_creds *qs_output_amqp_load(const struct qs_config *cfg)
{
	if (!cfg->output_is_amqp)
		return NULL;
	struct qs_amqp_creds *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (load_user(cfg, c) < 0 || (cfg->amqp_tls && load_tls(cfg, c) < 0)) {
		qs_amqp_creds_free(c);
		return NULL;
	}
	return c;
}

/* user:password from --amqp-credentials, or guest:guest. */
static int load_user(const struct qs_config *cfg, struct qs_amqp_creds *c)
{
	const char *path = cfg->amqp_credentials;
	if (!path[0]) {
		memcpy(c->user, "guest", 6);
		memcpy(c->pass, "guest", 6);
		return 0;
	}
	char *buf = NULL;
	size_t len = 0;
	const char *why = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0 || qs_file_read_fd(fd, CREDS_MAX, true, &buf, &len) < 0)
		why = errno == ELOOP ? "a symbolic link (refused)" : qs_private_strerror(errno);
	else if (parse(buf, len, c, &why) == 0)
		why = NULL;
	if (fd >= 0)
		close(fd);
	qs_file_free(buf, len);
	if (!why)
		return 0;
	qs_err("--amqp-credentials %s: %s", path, why);
	return -1;
}

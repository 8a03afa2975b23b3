/* See common/tenants.h. The file: "[defaults]" and "[tenant NAME]" sections
 * of "key = value" lines, '#' comments (docs/TENANTS.md). Every byte is
 * checked: a NUL byte, a line over 8 KiB or a file over 1 MiB is an error. */
#include "common/tenants.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdarg.h>
#include <nettle/memops.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/options.h"
#include "common/secretfile.h"

#define LINE_MAX_BYTES 8192

/* The limit keys, in the order of their bit in qs_tenant_limits.set. */
static const struct {
	const char *key;
	size_t off;
	uint64_t max;
	bool size; /* K/M/G suffixes */
} limit_keys[] = {
	{"events-per-second", offsetof(struct qs_tenant_limits, events_per_second), 1000000000ull, false},
	{"bytes-per-second", offsetof(struct qs_tenant_limits, bytes_per_second), UINT64_MAX, true},
	{"max-connections", offsetof(struct qs_tenant_limits, max_connections), 1000000, false},
	{"spool-quota", offsetof(struct qs_tenant_limits, spool_quota), UINT64_MAX, true},
	{"max-message-size", offsetof(struct qs_tenant_limits, max_message_size), 64ull * 1024 * 1024, true},
	{"on-limit", offsetof(struct qs_tenant_limits, on_limit), 0, false},
};
#define NLIMITS (sizeof(limit_keys) / sizeof(limit_keys[0]))

struct parse {
	struct qs_tenants *ts;
	const char *name, *prefix;
	unsigned line, errors;
	bool all;
	int section; /* -2: none yet, -1: [defaults], else the tenant's index */
	bool had_defaults;
};

static void __attribute__((format(printf, 2, 3))) bad(struct parse *p, const char *fmt, ...)
{
	if (p->errors++ && !p->all)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s%s:%u: ", p->prefix, p->name, p->line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

uint64_t qs_tenant_id(const char *name)
{
	uint8_t h[32];
	char buf[16 + QS_TENANT_NAME_MAX + 1];
	int n = snprintf(buf, sizeof(buf), "quicstash tenant%s", name);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, (size_t)n, h) != 0)
		return 1;
	uint64_t id = 0;
	for (int i = 0; i < 8; i++)
		id = id << 8 | h[i];
	return id ? id : 1;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > QS_TENANT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') && !(s[i] >= '0' && s[i] <= '9') &&
		    !strchr("._-", s[i]))
			return false;
	return true;
}

static char *trim(char *t)
{
	while (*t == ' ' || *t == '\t')
		t++;
	char *e = t + strlen(t);
	while (e > t && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = 0;
	return t;
}

static void section(struct parse *p, char *s)
{
	char *end = strchr(s, ']');
	if (!end || end[1]) {
		bad(p, "malformed section header (expected [defaults] or [tenant NAME])");
		p->section = -3; /* its keys are ignored, not reported again */
		return;
	}
	*end = 0;
	s = trim(s + 1);
	if (!strcmp(s, "defaults")) {
		if (p->had_defaults)
			bad(p, "[defaults] given twice");
		p->had_defaults = true;
		p->section = -1;
		return;
	}
	if (strncmp(s, "tenant", 6) || (s[6] != ' ' && s[6] != '\t')) {
		bad(p, "unknown section [%s] (expected [defaults] or [tenant NAME])", s);
		p->section = -3;
		return;
	}
	char *name = trim(s + 6);
	p->section = -3;
	if (!valid_name(name)) {
		bad(p, "bad tenant name '%s' (1 to %d of A-Z a-z 0-9 . _ -)", name, QS_TENANT_NAME_MAX);
		return;
	}
	struct qs_tenants *ts = p->ts;
	uint64_t id = qs_tenant_id(name);
	for (size_t i = 0; i < ts->n; i++) {
		if (!strcmp(ts->t[i].name, name)) {
			bad(p, "duplicate tenant '%s' (first at line %u)", name, ts->t[i].line);
			return;
		}
		if (ts->t[i].id == id) { /* 2^-64: say so rather than mix two tenants up */
			bad(p, "tenant '%s' has the id of tenant '%s': rename one", name, ts->t[i].name);
			return;
		}
	}
	struct qs_tenant *nt = realloc(ts->t, (ts->n + 1) * sizeof(*nt));
	if (!nt) {
		bad(p, "out of memory");
		return;
	}
	ts->t = nt;
	struct qs_tenant *t = &ts->t[ts->n];
	memset(t, 0, sizeof(*t));
	memcpy(t->name, name, strlen(name) + 1);
	t->id = id;
	t->line = p->line;
	p->section = (int)ts->n++;
}

static int hex_nibble(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void add_token(struct parse *p, struct qs_tenant *t, const char *v)
{
	uint8_t h[QS_TOKEN_HASH_LEN];
	if (strlen(v) != 2 * QS_TOKEN_HASH_LEN) {
		bad(p, "malformed token-sha256 (expected 64 hex digits, as quicstashd --hash-token prints)");
		return;
	}
	for (size_t i = 0; i < QS_TOKEN_HASH_LEN; i++) {
		int hi = hex_nibble(v[2 * i]), lo = hex_nibble(v[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			bad(p, "malformed token-sha256 (expected 64 hex digits, as quicstashd --hash-token prints)");
			return;
		}
		h[i] = (uint8_t)(hi << 4 | lo);
	}
	for (size_t i = 0; i < p->ts->n; i++)
		for (size_t k = 0; k < p->ts->t[i].ntokens; k++)
			if (!memcmp(p->ts->t[i].tokens[k], h, sizeof(h))) {
				if (&p->ts->t[i] == t)
					bad(p, "token given twice for tenant '%s'", t->name);
				else
					bad(p, "token shared by tenants '%s' and '%s'", p->ts->t[i].name, t->name);
				return;
			}
	void *nt = realloc(t->tokens, (t->ntokens + 1) * sizeof(*t->tokens));
	if (!nt) {
		bad(p, "out of memory");
		return;
	}
	t->tokens = nt;
	memcpy(t->tokens[t->ntokens++], h, sizeof(h));
}

/* cert-subject or cert-san: one tenant per value. */
static void add_name(struct parse *p, struct qs_tenant *t, const char *key, const char *v, bool subject)
{
	if (!*v) {
		bad(p, "%s: empty value", key);
		return;
	}
	for (size_t i = 0; i < p->ts->n; i++) {
		struct qs_tenant *o = &p->ts->t[i];
		char **l = subject ? o->subjects : o->sans;
		for (size_t k = 0; k < (subject ? o->nsubjects : o->nsans); k++)
			if (!strcmp(l[k], v)) {
				bad(p, "%s '%s' already belongs to tenant '%s'", key, v, o->name);
				return;
			}
	}
	char ***list = subject ? &t->subjects : &t->sans;
	size_t *n = subject ? &t->nsubjects : &t->nsans;
	char **nl = realloc(*list, (*n + 1) * sizeof(**list));
	char *copy = strdup(v);
	if (nl)
		*list = nl;
	if (!nl || !copy) {
		free(copy);
		bad(p, "out of memory");
		return;
	}
	(*list)[(*n)++] = copy;
}

static void set_limit(struct parse *p, struct qs_tenant_limits *l, size_t k, const char *v)
{
	uint64_t x;
	if (l->set & (1u << k)) {
		bad(p, "%s given twice", limit_keys[k].key);
		return;
	}
	if (!strcmp(limit_keys[k].key, "on-limit")) {
		if (strcmp(v, "throttle") && strcmp(v, "reject")) {
			bad(p, "on-limit: '%s' (expected throttle or reject)", v);
			return;
		}
		x = strcmp(v, "throttle") ? QS_ON_LIMIT_REJECT : QS_ON_LIMIT_THROTTLE;
	} else if (qs_parse_u64(v, limit_keys[k].max, &x, limit_keys[k].size) < 0) {
		bad(p, "%s: bad number '%s' (expected %s)", limit_keys[k].key, v,
		    limit_keys[k].size ? "a size, suffixes K M G" : "a whole number");
		return;
	}
	*(uint64_t *)((char *)l + limit_keys[k].off) = x;
	l->set |= 1u << k;
}

static void key_value(struct parse *p, char *line)
{
	char *eq = strchr(line, '=');
	if (!eq) {
		bad(p, "expected KEY = VALUE or a [section]");
		return;
	}
	*eq = 0;
	char *key = trim(line), *v = trim(eq + 1);
	if (p->section == -3)
		return; /* under a section already reported */
	if (p->section == -2) {
		bad(p, "'%s' outside a section ([defaults] or [tenant NAME] first)", key);
		return;
	}
	struct qs_tenant *t = p->section >= 0 ? &p->ts->t[p->section] : NULL;
	for (size_t k = 0; k < NLIMITS; k++)
		if (!strcmp(key, limit_keys[k].key)) {
			set_limit(p, t ? &t->lim : &p->ts->defaults, k, v);
			return;
		}
	bool cred = !strcmp(key, "token-sha256") || !strcmp(key, "cert-subject") || !strcmp(key, "cert-san");
	if (!cred)
		bad(p, "unknown key '%s'", key);
	else if (!t)
		bad(p, "%s belongs in a [tenant NAME] section, not [defaults]", key);
	else if (!strcmp(key, "token-sha256"))
		add_token(p, t, v);
	else
		add_name(p, t, key, v, !strcmp(key, "cert-subject"));
}

uint64_t qs_credential_id(const uint8_t hash[QS_TOKEN_HASH_LEN])
{
	uint64_t id = 0;
	for (int i = 0; i < 8; i++)
		id = id << 8 | hash[i];
	return id;
}

static uint64_t cert_credential(const char *name)
{
	uint8_t h[QS_TOKEN_HASH_LEN];
	char buf[5 + LINE_MAX_BYTES + 1];
	int n = snprintf(buf, sizeof(buf), "cert %s", name);
	if (n < 0 || gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, (size_t)n, h) != 0)
		return 0;
	return qs_credential_id(h);
}

bool qs_tenant_has_credential(const struct qs_tenant *t, uint64_t cred)
{
	for (size_t i = 0; i < t->ncreds; i++)
		if (t->creds[i] == cred)
			return true;
	return false;
}

static int by_id_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct qs_tenant_key *)a)->id, y = ((const struct qs_tenant_key *)b)->id;
	return x < y ? -1 : x > y;
}

/* The id index: every frame names its tenant by id (parser, shipper), and a
 * linear search per frame grows with the tenants file. */
static int index_ids(struct qs_tenants *ts)
{
	if (!ts->n)
		return 0;
	if (!(ts->by_id = malloc(ts->n * sizeof(*ts->by_id))))
		return -1;
	for (size_t i = 0; i < ts->n; i++)
		ts->by_id[i] = (struct qs_tenant_key){ts->t[i].id, i};
	qsort(ts->by_id, ts->n, sizeof(*ts->by_id), by_id_cmp);
	return 0;
}

/* Every tenant's credential ids, once the file is read. */
static int credentials(struct qs_tenants *ts)
{
	for (size_t i = 0; i < ts->n; i++) {
		struct qs_tenant *t = &ts->t[i];
		size_t n = t->ntokens + t->nsubjects + t->nsans, k = 0;
		if (n && !(t->creds = malloc(n * sizeof(*t->creds))))
			return -1;
		for (size_t j = 0; j < t->ntokens; j++)
			t->creds[k++] = qs_credential_id(t->tokens[j]);
		for (size_t j = 0; j < t->nsubjects; j++)
			t->creds[k++] = cert_credential(t->subjects[j]);
		for (size_t j = 0; j < t->nsans; j++)
			t->creds[k++] = cert_credential(t->sans[j]);
		t->ncreds = k;
	}
	return 0;
}

/* A key a tenant does not set comes from [defaults]. */
static void inherit(struct qs_tenants *ts)
{
	for (size_t i = 0; i < ts->n; i++)
		for (size_t k = 0; k < NLIMITS; k++) {
			struct qs_tenant_limits *l = &ts->t[i].lim;
			if (!(l->set & (1u << k)) && (ts->defaults.set & (1u << k)))
				*(uint64_t *)((char *)l + limit_keys[k].off) =
					*(const uint64_t *)((const char *)&ts->defaults + limit_keys[k].off);
		}
}

struct qs_tenants *qs_tenants_parse(const char *text, size_t len, const char *name, const char *prefix,
				    bool all_errors, unsigned *errors)
{
	static char line[LINE_MAX_BYTES + 1];
	struct parse p = {.name = name, .prefix = prefix, .all = all_errors, .section = -2};
	p.ts = calloc(1, sizeof(*p.ts));
	if (!p.ts || !(p.ts->text = malloc(len + 1))) {
		fprintf(stderr, "%s%s: out of memory\n", prefix, name);
		free(p.ts);
		if (errors)
			*errors = 1;
		return NULL;
	}
	memcpy(p.ts->text, text, len);
	p.ts->text[len] = 0;
	p.ts->len = len;
	for (size_t pos = 0; pos < len && (p.all || !p.errors);) {
		const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl != NULL);
		p.line++;
		if (n > LINE_MAX_BYTES || memchr(start, 0, n)) {
			bad(&p, n > LINE_MAX_BYTES ? "line longer than 8192 bytes" : "NUL byte in the line");
			continue;
		}
		memcpy(line, start, n);
		line[n] = 0;
		char *t = trim(line);
		if (!*t || *t == '#')
			continue;
		if (*t == '[')
			section(&p, t);
		else
			key_value(&p, t);
	}
	if (errors)
		*errors = p.errors;
	if (p.errors) {
		qs_tenants_free(p.ts);
		return NULL;
	}
	inherit(p.ts);
	if (credentials(p.ts) < 0 || index_ids(p.ts) < 0) {
		fprintf(stderr, "%s%s: out of memory\n", prefix, name);
		qs_tenants_free(p.ts);
		if (errors)
			*errors = 1;
		return NULL;
	}
	return p.ts;
}

struct qs_tenants *qs_tenants_load(const char *path, const char *prefix, bool all_errors, unsigned *errors)
{
	char *text = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0 || qs_file_read_fd(fd, QS_TENANTS_MAX_BYTES, false, &text, &len) < 0) {
		fprintf(stderr, "%s%s: %s\n", prefix, path,
			errno == EFBIG ? "larger than 1 MiB"
			: errno == ELOOP ? "a symbolic link (give the file's own path)" : qs_private_strerror(errno));
		if (fd >= 0)
			close(fd);
		if (errors)
			*errors = 1;
		return NULL;
	}
	close(fd);
	struct qs_tenants *ts = qs_tenants_parse(text, len, path, prefix, all_errors, errors);
	free(text);
	return ts;
}

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

void qs_tenants_free(struct qs_tenants *ts)
{
	if (!ts)
		return;
	for (size_t i = 0; i < ts->n; i++) {
		free(ts->t[i].tokens);
		free(ts->t[i].creds);
		free_list(ts->t[i].subjects, ts->t[i].nsubjects);
		free_list(ts->t[i].sans, ts->t[i].nsans);
	}
	free(ts->t);
	free(ts->by_id);
	free(ts->text);
	free(ts);
}

const struct qs_tenant *qs_tenants_by_token(const struct qs_tenants *ts, const void *token, size_t len,
					    uint64_t *cred)
{
	uint8_t h[QS_TOKEN_HASH_LEN];
	const struct qs_tenant *found = NULL;
	if (!ts || gnutls_hash_fast(GNUTLS_DIG_SHA256, token, len, h) != 0)
		return NULL;
	*cred = qs_credential_id(h);
	/* No early exit: the time taken does not tell which hash, if any, matched. */
	for (size_t i = 0; i < ts->n; i++)
		for (size_t k = 0; k < ts->t[i].ntokens; k++)
			if (memeql_sec(ts->t[i].tokens[k], h, sizeof(h)))
				found = &ts->t[i];
	return found;
}

const struct qs_tenant *qs_tenants_by_cert(const struct qs_tenants *ts, const char *dn, const char *const *sans,
					   size_t nsans, uint64_t *cred)
{
	for (size_t i = 0; ts && i < ts->n; i++) {
		const struct qs_tenant *t = &ts->t[i];
		const char *hit = NULL;
		for (size_t k = 0; dn && k < t->nsubjects && !hit; k++)
			if (!strcmp(t->subjects[k], dn))
				hit = dn;
		for (size_t k = 0; k < t->nsans && !hit; k++)
			for (size_t j = 0; j < nsans && !hit; j++)
				if (!strcmp(t->sans[k], sans[j]))
					hit = sans[j];
		if (hit) {
			*cred = cert_credential(hit);
			return t;
		}
	}
	return NULL;
}

bool qs_tenants_knows(const void *tables, uint64_t id)
{
	return qs_tenants_by_id(*(struct qs_tenants *const *)tables, id) != NULL;
}

const struct qs_tenant *qs_tenants_by_id(const struct qs_tenants *ts, uint64_t id)
{
	if (!ts || !ts->by_id) {
		for (size_t i = 0; ts && i < ts->n; i++)
			if (ts->t[i].id == id)
				return &ts->t[i];
		return NULL;
	}
	size_t lo = 0, hi = ts->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ts->by_id[mid].id == id)
			return &ts->t[ts->by_id[mid].idx];
		if (ts->by_id[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void qs_hash_token_main(void)
{
	static char buf[QS_TOKEN_MAX + 2];
	size_t n = fread(buf, 1, sizeof(buf), stdin);
	char *nl = memchr(buf, '\n', n);
	if (nl)
		n = (size_t)(nl - buf); /* the newline ends the line; it is not part of the token */
	if (n == 0 || n > QS_TOKEN_MAX || memchr(buf, 0, n)) {
		fprintf(stderr, "quicstashd: --hash-token: expected one line of 1 to %d bytes on standard input\n",
			QS_TOKEN_MAX);
		exit(1);
	}
	uint8_t h[QS_TOKEN_HASH_LEN];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, n, h) != 0)
		exit(1);
	printf("token-sha256 = ");
	for (size_t i = 0; i < sizeof(h); i++)
		printf("%02x", h[i]);
	printf("\n");
	memset(buf, 0, sizeof(buf));
}

/* The tenants file (--tenants, docs/TENANTS.md): who may send, how each one
 * proves it (token hashes, certificate subjects and SANs) and its limits.
 *
 * Only the supervisor reads the file (at start, on SIGHUP, --check-config);
 * it hands the validated text to its children with the sealed configuration
 * (common/config_file.c) and each child parses its own copy. A tenant is
 * named across processes by its id (qs_tenant_id): a hash of its name, so an
 * id still means the same tenant to a parser started by a reload that
 * reordered, added or removed others. */
#ifndef QS_TENANTS_H
#define QS_TENANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QS_TENANT_NAME_MAX 63
#define QS_TOKEN_HASH_LEN 32  /* SHA-256 */
#define QS_TOKEN_MAX 1024     /* bytes of a bearer token on the wire */
#define QS_TENANTS_MAX_BYTES (1024 * 1024)

enum qs_on_limit { QS_ON_LIMIT_THROTTLE = 0, QS_ON_LIMIT_REJECT };

/* Limits of a tenant (they take effect with issue 21 items 4 and 5; parsed
 * and validated now). 0: no limit. */
struct qs_tenant_limits {
	uint64_t events_per_second;
	uint64_t bytes_per_second;
	uint64_t max_connections;
	uint64_t spool_quota;
	uint64_t max_message_size;
	uint64_t on_limit; /* enum qs_on_limit */
	unsigned set;      /* bit i: the i-th limit key was given (else [defaults] applies) */
};

struct qs_tenant {
	char name[QS_TENANT_NAME_MAX + 1];
	uint64_t id; /* qs_tenant_id(name), never 0 */
	uint8_t (*tokens)[QS_TOKEN_HASH_LEN];
	size_t ntokens;
	char **subjects, **sans; /* cert-subject (a DN as RFC 4514 writes it), cert-san */
	size_t nsubjects, nsans;
	struct qs_tenant_limits lim;
	unsigned line;
	uint64_t *creds; /* the credential ids of its tokens, subjects and SANs (qs_credential_id) */
	size_t ncreds;
};

struct qs_tenant_key {
	uint64_t id;
	size_t idx;
};

struct qs_tenants {
	struct qs_tenant *t;
	size_t n;
	struct qs_tenant_key *by_id; /* in id order: qs_tenants_by_id per frame in O(log n) */
	struct qs_tenant_limits defaults;
	char *text; /* the validated text, handed to the children */
	size_t len;
};

/* Parses and validates the text of a tenants file named name. Each error is
 * printed as "<prefix>NAME:LINE: what" on stderr; with all_errors every one
 * is (--check-config), else only the first. Returns the table, or NULL after
 * an error (*errors: how many; may be NULL). */
struct qs_tenants *qs_tenants_parse(const char *text, size_t len, const char *name, const char *prefix,
				    bool all_errors, unsigned *errors);
/* Reads the file (bounded, a regular file, not through a link) and parses it. */
struct qs_tenants *qs_tenants_load(const char *path, const char *prefix, bool all_errors, unsigned *errors);
void qs_tenants_free(struct qs_tenants *ts);

/* A tenant's id from its name: the first 8 bytes of SHA-256("quicstash tenant" || name), never 0. */
uint64_t qs_tenant_id(const char *name);
/* A credential's id, which names it across processes (the FRAMES record) so
 * that a parser holding a newer tenants file can tell a revoked one: the first
 * 8 bytes of the token's SHA-256, or of SHA-256("cert " || subject or SAN). */
uint64_t qs_credential_id(const uint8_t hash[QS_TOKEN_HASH_LEN]);
/* Whether the tenant still has that credential. */
bool qs_tenant_has_credential(const struct qs_tenant *t, uint64_t cred);
/* The tenant presenting this bearer token, or NULL; *cred: its credential id.
 * Every configured hash is compared, each in constant time. */
const struct qs_tenant *qs_tenants_by_token(const struct qs_tenants *ts, const void *token, size_t len,
					    uint64_t *cred);
/* The tenant whose cert-subject is dn or one of whose cert-san is in sans, or
 * NULL; *cred: the id of the name that matched. */
const struct qs_tenant *qs_tenants_by_cert(const struct qs_tenants *ts, const char *dn, const char *const *sans,
					   size_t nsans, uint64_t *cred);
const struct qs_tenant *qs_tenants_by_id(const struct qs_tenants *ts, uint64_t id);
/* Whether *(struct qs_tenants **)tables has a tenant of that id (a callback's
 * shape: the table behind the pointer may be replaced by a reload). */
bool qs_tenants_knows(const void *tables, uint64_t id);

/* --hash-token: reads one token line on stdin, prints its token-sha256 line. */
void qs_hash_token_main(void);

#endif

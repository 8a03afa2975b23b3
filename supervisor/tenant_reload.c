#include "supervisor/tenant_reload.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/config_file.h"
#include "common/log.h"
#include "common/options.h"
#include "common/tenants.h"
#include "ipc/ctl.h"
#include "roles/roles.h"
#include "supervisor/proc.h"

/* A file as the reload sees it: replaced or rewritten, it differs. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool exists;
};

static struct {
	struct qs_config cfg; /* the configuration in force (options only: no tenants, no fd of its own) */
	struct file_id files[3];
} S;

static struct file_id file_id(const char *path)
{
	struct file_id f = {0};
	struct stat st;
	if (path[0] && stat(path, &st) == 0)
		f = (struct file_id){st.st_dev, st.st_ino, st.st_size, st.st_mtim, true};
	return f;
}

static bool same_file(const struct file_id *a, const struct file_id *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void file_ids(const struct qs_config *cfg, struct file_id out[3])
{
	out[0] = file_id(cfg->cert_path);
	out[1] = file_id(cfg->client_ca);
	out[2] = file_id(cfg->secret_path);
}

void qs_tenant_reload_applied(const struct qs_config *cfg)
{
	S.cfg = *cfg;
	S.cfg.tenants = NULL;
	S.cfg.config_fd = -1;
	file_ids(cfg, S.files);
}

bool qs_tenant_reload_in_place(const struct qs_config *next, char *why, size_t len)
{
	if (!next->tenants_path[0]) {
		snprintf(why, len, "no tenants file");
		return false;
	}
	for (size_t i = 0; i < qs_options_count; i++) {
		const struct qs_option *o = &qs_options[i];
		if (o->scope != QS_SCOPE_ARGV && !qs_option_same(o, &S.cfg, next)) {
			snprintf(why, len, "--%s changed", o->name);
			return false;
		}
	}
	struct file_id now[3];
	file_ids(next, now);
	for (int i = 0; i < 3; i++)
		if (!same_file(&now[i], &S.files[i])) {
			static const char *const names[] = {"--cert", "--client-ca", "--secret"};
			snprintf(why, len, "the %s file changed", names[i]);
			return false;
		}
	return true;
}

/* How many of a's n items of size sz b's m do not hold. */
static size_t missing(const void *a, size_t n, const void *b, size_t m, size_t sz)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t j = 0; j < m && !found; j++)
			found = memcmp((const char *)a + i * sz, (const char *)b + j * sz, sz) == 0;
		k += !found;
	}
	return k;
}

struct diff {
	size_t added, removed, tok_added, tok_revoked, cred_added, cred_revoked, limits;
};

static void compare(const struct qs_tenants *o, const struct qs_tenants *n, struct diff *d)
{
	for (size_t i = 0; i < n->n; i++)
		d->added += !qs_tenants_by_id(o, n->t[i].id);
	for (size_t i = 0; i < o->n; i++) {
		const struct qs_tenant *a = &o->t[i], *b = qs_tenants_by_id(n, a->id);
		if (!b) {
			d->removed++;
			continue;
		}
		size_t tr = missing(a->tokens, a->ntokens, b->tokens, b->ntokens, QS_TOKEN_HASH_LEN);
		size_t ta = missing(b->tokens, b->ntokens, a->tokens, a->ntokens, QS_TOKEN_HASH_LEN);
		d->tok_revoked += tr;
		d->tok_added += ta;
		/* certificate names: the credentials that are not tokens */
		d->cred_revoked += missing(a->creds, a->ncreds, b->creds, b->ncreds, sizeof(uint64_t)) - tr;
		d->cred_added += missing(b->creds, b->ncreds, a->creds, a->ncreds, sizeof(uint64_t)) - ta;
		struct qs_tenant_limits la = a->lim, lb = b->lim;
		la.set = lb.set = 0;
		d->limits += memcmp(&la, &lb, sizeof(la)) != 0;
	}
}

static void part(char *out, size_t len, size_t *at, size_t n, const char *what)
{
	if (n && *at < len)
		*at += (size_t)snprintf(out + *at, len - *at, "%s%zu %s", *at ? ", " : "", n, what);
}

void qs_tenant_reload_summary(int old_fd, int new_fd, const char *name, char *out, size_t len)
{
	struct qs_tenants *o = qs_config_handed_tenants(old_fd, name), *n = qs_config_handed_tenants(new_fd, name);
	struct diff d = {0};
	if (o && n)
		compare(o, n, &d);
	size_t at = 0;
	out[0] = 0;
	part(out, len, &at, d.added, "added");
	part(out, len, &at, d.removed, "removed");
	part(out, len, &at, d.tok_added, "token(s) added");
	part(out, len, &at, d.tok_revoked, "token(s) revoked");
	part(out, len, &at, d.cred_added, "certificate name(s) added");
	part(out, len, &at, d.cred_revoked, "certificate name(s) revoked");
	part(out, len, &at, d.limits, "with new limits");
	if (!at)
		snprintf(out, len, "%s", o && n ? "no change" : "(the previous tenants unreadable)");
	qs_tenants_free(o);
	qs_tenants_free(n);
}

bool qs_tenant_reload_takes(const struct qs_proc *c)
{
	return (c->def->ctl_receives & QS_CTL_BIT(QS_CTL_TENANTS)) != 0;
}

unsigned qs_tenant_reload_send(struct qs_procs *p, int fd)
{
	unsigned sent = 0;
	for (unsigned i = 0; i < p->n; i++) {
		struct qs_proc *c = &p->proc[i];
		if (!c->pid || !qs_tenant_reload_takes(c))
			continue; /* not running: its restart reads the new copy */
		struct qs_ctl_fd m;
		qs_ctl_init(&m, sizeof(m), QS_CTL_TENANTS, NULL);
		m.fd = -1;
		if (qs_ctl_send_fd(c->ctl, &m, sizeof(m), fd) == 0)
			sent++;
		else
			qs_err("reload: cannot hand the tenants to %s %u; it keeps the old ones until it restarts",
			       qs_role_name(c->role), c->slot);
	}
	return sent;
}

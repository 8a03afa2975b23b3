#include "keyholder/keyholder.h"

#include <errno.h>
#include <event2/event.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tlsfiles.h"
#include "ipc/chan.h"
#include "ipc/keysign.h"
#include "ipc/runtime.h"
#include "roles/confine.h"

#define MAX_CLIENTS (QS_MAX_ACCEPTORS * 2)

static int load_key(const char *path, gnutls_privkey_t *key)
{
	char err[512];
	gnutls_x509_privkey_t xk;
	if (qs_tls_load_key(path, &xk, err, sizeof(err)) < 0) {
		qs_err("%s", err);
		return -1;
	}
	int rc = gnutls_privkey_init(key);
	if (rc == 0) {
		rc = gnutls_privkey_import_x509(*key, xk, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
		if (rc < 0)
			gnutls_privkey_deinit(*key);
	}
	if (rc < 0) {
		gnutls_x509_privkey_deinit(xk);
		qs_err("key %s: %s", path, gnutls_strerror(rc));
		return -1;
	}
	return 0;
}

/* Binds a new name beside the socket path and renames it over the path: the
 * path always leads to a keyholder that serves, also while a reload's new
 * keyholder takes over from the old one (role table: overlap). The old one
 * keeps its listening socket, unreachable by name now, and answers the
 * connections it has until it is told to stop; an acceptor whose request dies
 * with it asks again on a fresh connection, which reaches this one
 * (ipc/keysign.c, kc_call). */
static int listen_socket(const char *dir, const char *user)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[sizeof(sa.sun_path)];
	if (snprintf(path, sizeof(path), "%s/%s", dir, QS_KEYSIGN_SOCKET) >= (int)sizeof(path) ||
	    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d", path, (int)getpid()) >= (int)sizeof(sa.sun_path)) {
		qs_err("runtime directory path too long for %s", QS_KEYSIGN_SOCKET);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	unlink(sa.sun_path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
		qs_err("keyholder socket %s: %s", sa.sun_path, strerror(errno));
		return -1;
	}
	/* Only the children's user may ask for signatures. */
	chmod(sa.sun_path, 0600);
	struct passwd *pw = geteuid() == 0 ? getpwnam(user) : NULL;
	if (pw && chown(sa.sun_path, pw->pw_uid, pw->pw_gid) != 0) {
		qs_err("chown %s: %s", sa.sun_path, strerror(errno));
		unlink(sa.sun_path);
		return -1;
	}
	if (rename(sa.sun_path, path) != 0) {
		qs_err("keyholder socket %s: %s", path, strerror(errno));
		unlink(sa.sun_path);
		return -1;
	}
	return fd;
}

/* The acceptors connected now (at most MAX_CLIENTS), each a request at a
 * time, and the pids the supervisor says are acceptors (ipc/ctl.h,
 * QS_CTL_SIGNERS): nothing else is served. */
struct keyholder {
	struct qs_runtime rt;
	const struct qs_keysign_key *key;
	struct event *listen_ev;
	struct event *client_ev[MAX_CLIENTS];
	pid_t client_pid[MAX_CLIENTS];
	unsigned n;
	pid_t signer[QS_SIGNERS_MAX];
	unsigned nsigners;
};

static void drop_client(struct keyholder *k, unsigned i)
{
	close(event_get_fd(k->client_ev[i]));
	event_free(k->client_ev[i]);
	k->client_ev[i] = k->client_ev[--k->n];
	k->client_pid[i] = k->client_pid[k->n];
	k->client_ev[k->n] = NULL;
	if (k->n == MAX_CLIENTS - 1)
		event_add(k->listen_ev, NULL); /* a place again */
}

/* One request, one answer; a bad request or a failed send ends the connection. */
static void on_request(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct keyholder *k = arg;
	static struct qs_keysign_rep rep;
	static uint8_t req[sizeof(struct qs_keysign_req) + 1];
	ssize_t r = recv(fd, req, sizeof(req), 0);
	ssize_t w = r > 0 ? qs_keysign_serve(k->key, req, (size_t)r, &rep) : -1;
	if (w >= 0 && send(fd, &rep, (size_t)w, MSG_NOSIGNAL) == w)
		return;
	for (unsigned i = 0; i < k->n; i++)
		if (event_get_fd(k->client_ev[i]) == fd)
			return drop_client(k, i);
}

static unsigned peer_count(const struct keyholder *k, pid_t pid)
{
	unsigned n = 0;
	for (unsigned i = 0; i < k->n; i++)
		n += k->client_pid[i] == pid;
	return n;
}

static bool is_signer(const struct keyholder *k, pid_t pid)
{
	for (unsigned i = 0; i < k->nsigners; i++)
		if (k->signer[i] == pid)
			return true;
	return false;
}

/* QS_CTL_SIGNERS: the whole list (a connection of a pid no longer in it is
 * closed: its acceptor ended), or one more. */
static int on_signers(void *arg, const void *msg)
{
	struct keyholder *k = arg;
	const struct qs_ctl_signers *m = msg;
	if (m->n > QS_SIGNERS_MAX)
		return -1;
	if (m->all)
		k->nsigners = 0;
	for (unsigned i = 0; i < m->n; i++)
		if (!is_signer(k, m->pid[i]) && k->nsigners < QS_SIGNERS_MAX)
			k->signer[k->nsigners++] = m->pid[i];
	for (unsigned i = k->n; m->all && i-- > 0;)
		if (!is_signer(k, k->client_pid[i]))
			drop_client(k, i);
	return 0;
}

/* An acceptor's pid: known, or known once the messages already sent are read
 * (a forked acceptor sends its own before its exec). */
static bool may_sign(struct keyholder *k, pid_t pid)
{
	if (pid <= 0)
		return false;
	if (!is_signer(k, pid))
		qs_runtime_poll_ctl(&k->rt);
	return is_signer(k, pid);
}

static void on_connect(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	struct keyholder *k = arg;
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	/* Every child runs as the same user and can reach this socket: only the
	 * acceptors are served (a parser or the shipper, compromised, would have
	 * the server's signature on any handshake it holds). */
	pid_t pid = qs_peer_pid(c);
	if (!may_sign(k, pid)) {
		qs_warn("refused a connection from pid %d: not an acceptor of this server", (int)pid);
		close(c);
		return;
	}
	/* QS_PEER_CONNS_MAX a process: else one could take every place, and the
	 * acceptors started after it could not sign */
	if (peer_count(k, pid) >= QS_PEER_CONNS_MAX) {
		qs_warn("refused a connection from pid %d: it holds %d already", (int)pid, QS_PEER_CONNS_MAX);
		close(c);
		return;
	}
	struct event *ev = event_new(k->rt.base, c, EV_READ | EV_PERSIST, on_request, k);
	if (!ev || event_add(ev, NULL) != 0) {
		if (ev)
			event_free(ev);
		close(c);
		return;
	}
	k->client_pid[k->n] = pid;
	k->client_ev[k->n++] = ev;
	/* Full: the next connections wait in the backlog until one leaves. The
	 * listener is not watched meanwhile (level-triggered, it spun the CPU). */
	if (k->n == MAX_CLIENTS)
		event_del(k->listen_ev);
}

static void on_stop(void *arg, bool urgent, const char *why)
{
	(void)urgent;
	(void)why;
	struct keyholder *k = arg;
	event_base_loopexit(k->rt.base, NULL);
}

static void serve(struct keyholder *k, int lfd)
{
	k->listen_ev = event_new(k->rt.base, lfd, EV_READ | EV_PERSIST, on_connect, k);
	if (!k->listen_ev || event_add(k->listen_ev, NULL) != 0) {
		qs_err("cannot watch the keyholder socket");
		return;
	}
	qs_runtime_ready(&k->rt);
	event_base_dispatch(k->rt.base);
	while (k->n)
		drop_client(k, k->n - 1);
	event_free(k->listen_ev);
}

/* Loads the key, confines the process and serves until told to stop. */
static int run(struct keyholder *k, const struct qs_config *cfg)
{
	gnutls_privkey_t key;
	if (load_key(cfg->key_path, &key) < 0)
		return 1;
	struct qs_keysign_key ks;
	int rc = qs_keysign_key_init(&ks, key);
	if (rc < 0) {
		qs_err("key %s: %s", cfg->key_path, gnutls_strerror(rc));
		gnutls_privkey_deinit(key);
		return 1;
	}
	k->key = &ks;
	qs_runtime_on(&k->rt, QS_CTL_SIGNERS, on_signers);
	rc = 1;
	int lfd = listen_socket(cfg->runtime_dir, cfg->user);
	if (lfd < 0)
		goto out;
	const char *rundir;
	if (qs_confine(cfg, &rundir) < 0)
		goto out;
	serve(k, lfd);
	rc = 0;
out:
	qs_keysign_key_deinit(&ks);
	gnutls_privkey_deinit(key); /* and the x509 key it owns (AUTO_RELEASE) */
	return rc;
}

int keyholder_main(const struct qs_config *cfg)
{
	static struct keyholder k;
	int rc = qs_runtime_init(&k.rt, cfg, on_stop, &k) == 0 ? run(&k, cfg) : 1;
	qs_runtime_free(&k.rt);
	return rc;
}

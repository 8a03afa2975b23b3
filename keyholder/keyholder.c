#include "keyholder/keyholder.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tlsfiles.h"
#include "ipc/ctl.h"
#include "ipc/keysign.h"
#include "roles/confine.h"

#define MAX_CLIENTS (QS_MAX_ACCEPTORS * 2)

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

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

static int listen_socket(const char *dir, const char *user)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, QS_KEYSIGN_SOCKET) >=
	    (int)sizeof(sa.sun_path)) {
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
		return -1;
	}
	return fd;
}

static void serve(int lfd, int ctl, const struct qs_keysign_key *key)
{
	struct pollfd pfd[MAX_CLIENTS + 2];
	int n = 2;
	pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = ctl, .events = POLLIN};
	static struct qs_keysign_rep rep;
	static uint8_t req[sizeof(struct qs_keysign_req) + 1];
	while (!stop) {
		if (poll(pfd, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & (POLLIN | POLLHUP))
			break; /* the supervisor spoke (only shutdown is defined) or went away */
		if ((pfd[0].revents & POLLIN) && n < MAX_CLIENTS + 2) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0)
				pfd[n++] = (struct pollfd){.fd = c, .events = POLLIN};
		}
		for (int i = 2; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			ssize_t r = recv(pfd[i].fd, req, sizeof(req), 0);
			ssize_t w = r > 0 ? qs_keysign_serve(key, req, (size_t)r, &rep) : -1;
			if (w < 0 || send(pfd[i].fd, &rep, (size_t)w, MSG_NOSIGNAL) != w) {
				close(pfd[i].fd);
				pfd[i--] = pfd[--n];
			}
		}
	}
}

int keyholder_main(const struct qs_config *cfg)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
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
	rc = 1;
	int lfd = listen_socket(cfg->runtime_dir, cfg->user);
	if (lfd < 0)
		goto out;
	const char *rundir;
	if (qs_confine(cfg, &rundir) < 0)
		goto out;
	struct qs_ctl_msg ready = {.type = QS_CTL_READY, .role = QS_ROLE_KEYHOLDER};
	qs_ctl_send(cfg->ctl_fd, &ready);
	serve(lfd, cfg->ctl_fd, &ks);
	rc = 0;
out:
	qs_keysign_key_deinit(&ks);
	gnutls_privkey_deinit(key); /* and the x509 key it owns (AUTO_RELEASE) */
	return rc;
}

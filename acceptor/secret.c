/* The secret every acceptor shares: stateless-reset tokens, Retry tokens and
 * NEW_TOKEN tokens are made from it, so any acceptor, a restarted one and a
 * restarted service recognise what another made. It is the --secret-path
 * file (common/secretfile.h), which the supervisor makes before any acceptor
 * starts; read here at start, before the sandbox. */
#include <errno.h>
#include <gnutls/crypto.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/secretfile.h"

int acc_secret_load(struct acc *a)
{
	if (qs_secret_read(a->cfg->secret_path, a->secret) == 0)
		return 0;
	/* Serving with a secret of our own beats not serving: only resets and
	 * tokens of other acceptors and earlier runs go unrecognised. */
	qs_err("secret %s: %s; using a per-process QUIC secret: stateless resets and address-validation "
	       "tokens will not be recognised across acceptors and restarts",
	       a->cfg->secret_path, qs_secret_strerror(errno));
	return gnutls_rnd(GNUTLS_RND_KEY, a->secret, sizeof(a->secret)) == 0 ? 0 : -1;
}

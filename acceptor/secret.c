/* The secret every acceptor shares: stateless-reset tokens, Retry tokens and
 * NEW_TOKEN tokens are made from it, so any acceptor, a restarted one and a
 * restarted service recognise what another made; and the key of event.id's
 * session part (common/eventid.h), so a client's resend gets the same id from
 * any of them; and the master key of TLS session tickets (ticket.c), so a
 * client resumes with any of them. It is the --secret-path
 * file (common/secretfile.h), which the supervisor makes before any acceptor
 * starts; read here at start, before the sandbox. */
#include <errno.h>
#include <gnutls/crypto.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/secretfile.h"

static int load(struct acc *a)
{
	if (qs_secret_read(a->cfg->secret_path, a->secret) == 0)
		return 0;
	/* Serving with a secret of our own beats not serving: only resets and
	 * tokens of other acceptors and earlier runs go unrecognised, and event
	 * ids of resends differ (duplicates downstream, never a collision). */
	qs_err("secret %s: %s; using a per-process QUIC secret: stateless resets and address-validation "
	       "tokens will not be recognised across acceptors and restarts, and resent events get new event ids",
	       a->cfg->secret_path, qs_secret_strerror(errno));
	return gnutls_rnd(GNUTLS_RND_KEY, a->secret, sizeof(a->secret)) == 0 ? 0 : -1;
}

int acc_secret_load(struct acc *a)
{
	if (load(a) != 0)
		return -1;
	if (qs_eventid_key(a->secret, a->eventid_key) != 0) {
		qs_err("cannot derive the event id key from the secret");
		return -1;
	}
	if (acc_ticket_key(a) != 0) {
		qs_err("cannot derive the session ticket key from the secret");
		return -1;
	}
	return 0;
}

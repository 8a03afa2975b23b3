/* The session part of event.id: a keyed hash of the client's session id.
 *
 * A client names its session in the stream header (common/wire.h) so that its
 * resends get the same event.id. Were that id put downstream as it is, anyone
 * reading events could take it and, as a client, produce the same event.id
 * for an event of their own (with Elasticsearch's _id = event.id, replacing
 * the victim's). So the acceptor sends the parser, and event.id carries,
 *
 *   id_session = first 16 bytes of HMAC-SHA256(K_id, u32be(len(scope)) || scope || session)
 *   K_id       = HKDF-Expand-SHA256(the server's QUIC secret, "quicstash event-id v1", 32)
 *
 * which nobody can compute without the secret, nor invert to the session id.
 * The same (scope, session) gives the same id for every acceptor and after
 * restarts, as long as the --secret-path file is kept. scope is reserved for
 * what the client cannot choose (the authenticated tenant, once it exists);
 * empty today. Its length prefix keeps (scope, session) pairs apart. */
#ifndef QS_EVENTID_H
#define QS_EVENTID_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/wire.h"

#define QS_EVENTID_KEY_LEN 32
#define QS_EVENTID_LABEL "quicstash event-id v1"

/* K_id from the server's secret. 0, or -1 (GnuTLS failed). */
int qs_eventid_key(const uint8_t secret[QS_SECRET_LEN], uint8_t key[QS_EVENTID_KEY_LEN]);

/* id_session for a client's session id within scope (scope may be NULL when
 * scope_len is 0). 0, or -1 (scope longer than 4 GiB, GnuTLS failed). */
int qs_eventid_session(const uint8_t key[QS_EVENTID_KEY_LEN], const void *scope, size_t scope_len,
		       const uint8_t session[QS_SESSION_ID_LEN], uint8_t out[QS_SESSION_ID_LEN]);

#endif

/* Where an incoming UDP packet goes: an existing connection (by DCID), a new
 * connection (after address validation with Retry when --retry asks for it),
 * a refusal (over --max-connections or shutting down), a Version Negotiation
 * packet, or, for a short-header packet of an unknown connection, a
 * stateless reset (or nothing, when it belongs to another live acceptor). */
#include <gnutls/crypto.h>
#include <inttypes.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "common/steer_cid.h"
#include "ipc/zsock.h"

#define ACC_REFUSE_LOG_NS (10ull * 1000000000)

static void send_version_negotiation(struct acc *a, const struct sockaddr *from, socklen_t fromlen,
				     const ngtcp2_version_cid *vc, size_t pktlen)
{
	/* Only answer datagrams that could carry an Initial: no amplification. */
	if (pktlen < NGTCP2_MAX_UDP_PAYLOAD_SIZE)
		return;
	static const uint32_t versions[] = {NGTCP2_PROTO_VER_V1, NGTCP2_PROTO_VER_V2};
	uint8_t buf[256], rnd;
	gnutls_rnd(GNUTLS_RND_NONCE, &rnd, 1);
	ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buf, sizeof(buf), rnd, vc->scid, vc->scidlen,
							      vc->dcid, vc->dcidlen, versions, 2);
	if (n > 0)
		acc_udp_send(a, from, fromlen, buf, (size_t)n);
}

/* -m is for the whole service: steering spreads new connections evenly, so
 * each acceptor takes its share. */
static unsigned conn_limit(const struct acc *a)
{
	return (unsigned)qs_config_acceptor_share(a->cfg, a->cfg->max_connections);
}

/* Answers a new connection's Initial with CONNECTION_CLOSE carrying code. */
static void send_close(struct acc *a, const struct sockaddr *from, socklen_t fromlen, const ngtcp2_pkt_hd *hd,
		       uint64_t code, const char *reason)
{
	uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
	ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(buf, sizeof(buf), hd->version, &hd->scid, &hd->dcid,
							      code, (const uint8_t *)reason,
							      reason ? strlen(reason) : 0);
	if (n > 0)
		acc_udp_send(a, from, fromlen, buf, (size_t)n);
}

/* A refused connection gets CONNECTION_REFUSED in an Initial, never silence:
 * the client then knows to back off or try another server. */
static void refuse_attempt(struct acc *a, const struct sockaddr *from, socklen_t fromlen, const ngtcp2_pkt_hd *hd,
			   const char *reason)
{
	send_close(a, from, fromlen, hd, NGTCP2_CONNECTION_REFUSED, reason);
	acc_attempt_note(a, hd, from, reason); /* its copies are refused alike (attempts.c) */
}

static void refuse(struct acc *a, const struct sockaddr *from, socklen_t fromlen, const ngtcp2_pkt_hd *hd)
{
	refuse_attempt(a, from, fromlen, hd, a->stopping ? "busy: shutting down" : "busy: connection limit reached");
	a->refused++;
	qs_mp_add(QS_M_REFUSED_LIMIT, 1);
	uint64_t now = qs_now_ns();
	if (now - a->refuse_log_mono >= ACC_REFUSE_LOG_NS || !a->refuse_log_mono) {
		qs_info_kv(QS_KV({QS_LOG_CODE, a->stopping ? "shutting_down" : "connection_limit"}),
			   "refused %u new connection(s): %s (limit %u)", a->refused,
			a->stopping ? "shutting down" : "connection limit reached", conn_limit(a));
		a->refused = 0;
		a->refuse_log_mono = now;
	}
}

/* A storm: queued, new connections' Initials waited behind each other until
 * their clients timed out; refused, their clients come back spread out while
 * the handshakes under way finish (no log line: counted). */
static void refuse_storm(struct acc *a, const struct sockaddr *from, socklen_t fromlen, const ngtcp2_pkt_hd *hd)
{
	refuse_attempt(a, from, fromlen, hd, "busy: too many handshakes, retry later");
	a->n_hs_refused++;
	qs_mp_add(QS_M_REFUSED_LIMIT, 1);
}

static void to_existing(struct acc_conn *c, const struct sockaddr *from, socklen_t fromlen, const uint8_t *pkt,
			size_t len)
{
	switch (c->state) {
	case ACC_CONN_ACTIVE:
		acc_conn_read(c, from, fromlen, pkt, len);
		return;
	case ACC_CONN_CLOSING:
		/* The peer did not get our CONNECTION_CLOSE yet; at most one resend per ms. */
		if (qs_now_ns() - c->close_last_mono > 1000000)
			acc_conn_send_close(c);
		return;
	case ACC_CONN_DRAINING:
		return;
	}
}

/* ---- stateless reset ---- */

/* Stateless resets: a bucket of as many as this acceptor may have connections
 * (at least ACC_SR_MIN), refilled at that many per second. After a crash or
 * restart every client of the old process needs one, and a client that gets
 * none waits out its idle timeout (30 s for quicstash-send): a fixed 100 per
 * second left most of 10,000 clients waiting. A reset is smaller than the
 * packet that asked for it, so the limit bounds only our CPU (an HMAC and a
 * send each, ~5 us). */
#define ACC_SR_MIN 100
#define ACC_SR_MIN_PKT (NGTCP2_STATELESS_RESET_TOKENLEN + NGTCP2_MIN_STATELESS_RESET_RANDLEN + 1 + 1)
#define ACC_STATS_LOG_NS (1000ull * 1000000)

static bool sr_take(struct acc *a)
{
	uint64_t now = qs_now_ns(), limit = conn_limit(a);
	if (limit < ACC_SR_MIN)
		limit = ACC_SR_MIN;
	if (!a->sr_refill_mono) {
		a->sr_bucket = limit;
		a->sr_refill_mono = now;
	}
	uint64_t add = (now - a->sr_refill_mono) * limit / 1000000000ull;
	if (add) {
		a->sr_bucket = add >= limit - a->sr_bucket ? limit : a->sr_bucket + add;
		a->sr_refill_mono = now;
	}
	if (!a->sr_bucket)
		return false;
	a->sr_bucket--;
	return true;
}

/* Whether a steering key names another acceptor that is running now: one of
 * this generation's slots (same bank, slot below --acceptors). Keys of the
 * other bank belong to a generation that is gone (after a crash and restart
 * of the service, whose first generation is bank 0 again) or on its way out
 * (a reload keeps the old generation's sockets in the steering map until it
 * has closed its connections, so its packets do not come here); keys of
 * slots beyond --acceptors belong to a run with more acceptors. */
static bool live_sibling(const struct acc *a, unsigned key)
{
	unsigned mine = a->cfg->steer_key;
	return key != mine && key / QS_KEY_BANK == mine / QS_KEY_BANK && key % QS_KEY_BANK < a->cfg->acceptors;
}

/* A short-header packet for a connection we do not have. If its DCID carries
 * the steering key of a live sibling, the packet was misrouted (e.g. while
 * the steering map was being updated): a reset would kill a healthy
 * connection, so drop it. Otherwise the connection is gone (this acceptor or
 * the whole service restarted, or it never existed): answer with a stateless
 * reset so the client gives up at once instead of at its idle timeout. The
 * reset is always shorter than the packet that triggered it (no
 * amplification, and no reset loops between two endpoints), and rate-limited. */
static void stateless_reset(struct acc *a, const struct sockaddr *from, socklen_t fromlen,
			    const ngtcp2_version_cid *vc, size_t pktlen)
{
	int key = qs_steer_cid_key(vc->dcid, vc->dcidlen);
	if (key >= 0 && live_sibling(a, (unsigned)key)) {
		a->n_misrouted++;
		return;
	}
	if (pktlen < ACC_SR_MIN_PKT || !sr_take(a))
		return;
	ngtcp2_cid cid;
	ngtcp2_cid_init(&cid, vc->dcid, vc->dcidlen);
	uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
	if (ngtcp2_crypto_generate_stateless_reset_token(token, a->secret, sizeof(a->secret), &cid) != 0)
		return;
	/* RFC 9000 10.3: at least 1 + 5 random + 16 token bytes, 1 byte less than
	 * what came in for small packets; 40 bytes otherwise (looks like a short
	 * packet with an 18-byte CID). */
	size_t rlen = pktlen <= 43 ? pktlen - NGTCP2_STATELESS_RESET_TOKENLEN - 2 : 41 - NGTCP2_STATELESS_RESET_TOKENLEN - 1;
	uint8_t rnd[64], buf[128];
	if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, rlen) != 0)
		return;
	ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, sizeof(buf), token, rnd, rlen);
	if (n <= 0 || (size_t)n >= pktlen)
		return;
	acc_udp_send(a, from, fromlen, buf, (size_t)n);
	a->n_resets++;
}

/* ---- address validation ---- */

#define ACC_RETRY_TOKEN_TTL (10 * NGTCP2_SECONDS)
#define ACC_REGULAR_TOKEN_TTL (3600 * NGTCP2_SECONDS)
#define ACC_AUTO_HANDSHAKES 64 /* --retry auto: more handshakes than this in progress ... */

/* ... or more than half of --max-connections in use. */
static bool retry_needed(const struct acc *a)
{
	switch (a->cfg->retry) {
	case QS_RETRY_ALWAYS: return true;
	case QS_RETRY_NEVER: return false;
	case QS_RETRY_AUTO: break;
	}
	return a->handshaking > ACC_AUTO_HANDSHAKES || (uint64_t)a->nconns * 2 > conn_limit(a);
}

/* The Retries sent in this and the last half second that no token answered
 * yet: their clients come back within a round trip, so a new attempt is
 * refused when they would fill the cap (else a burst of Initials all got a
 * Retry while few handshakes were in progress, and the tokens then found the
 * cap full). Unanswered after a second, a Retry is taken as lost. They count
 * as much as Retries were answered of the last ACC_RETRY_RATIO_MIN sent (or
 * the cap, if lower), counted over as many windows as that takes: spoofed
 * Initials, whose Retries nobody answers, may fill the cap for one window but
 * not longer (test_storm "spoofed"), and no longer when they trickle in fewer
 * a window than that (the share was measured only in a window that sent as
 * many alone, so a trickle kept the first share, 100%, for good: beside CPU
 * hogs under ASan, "spoofed"'s probes started slowly enough once). */
#define ACC_RETRY_WINDOW_NS (500ull * 1000000)
#define ACC_RETRY_RATIO_MIN 16

static unsigned retries_out(struct acc *a, uint64_t now)
{
	if (now - a->retry_win_mono >= ACC_RETRY_WINDOW_NS) {
		bool next = now - a->retry_win_mono < 2 * ACC_RETRY_WINDOW_NS;
		a->retry_prev = next ? a->retry_cur : 0;
		a->retry_cur = 0;
		if (a->retry_sent_w >= (a->hs_cap < ACC_RETRY_RATIO_MIN ? a->hs_cap : ACC_RETRY_RATIO_MIN)) {
			a->retry_ans_pct = a->retry_ans_w >= a->retry_sent_w ? 100 : 100 * a->retry_ans_w / a->retry_sent_w;
			a->retry_sent_w = a->retry_ans_w = 0;
		}
		a->retry_win_mono = now;
	}
	return (a->retry_cur + a->retry_prev) * a->retry_ans_pct / 100;
}

/* Answers an Initial with a Retry: a token binding the client's address and
 * its original DCID, and a new server CID (steering contract) to come back to.
 * The Retry is far smaller than the >= 1200-byte Initial that caused it, and
 * never more than 3 times its size. */
static void send_retry(struct acc *a, const struct sockaddr *from, socklen_t fromlen, const ngtcp2_pkt_hd *hd,
		       size_t pktlen, bool copy)
{
	ngtcp2_cid scid;
	uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN2];
	uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
	if (acc_make_cid(a, &scid, NULL) != 0)
		return;
	ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token2(token, a->secret, sizeof(a->secret), hd->version,
							      (const ngtcp2_sockaddr *)from, fromlen, &scid,
							      &hd->dcid, qs_realtime_ns());
	if (tl < 0)
		return;
	size_t max = 3 * pktlen < sizeof(buf) ? 3 * pktlen : sizeof(buf);
	ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, max, hd->version, &hd->scid, &scid, &hd->dcid, token,
						   (size_t)tl);
	if (n <= 0)
		return;
	acc_udp_send(a, from, fromlen, buf, (size_t)n);
	a->n_retries++;
	if (copy)
		return; /* its attempt answers one Retry at most: counted once */
	a->retry_cur++;
	a->retry_sent_w++;
	acc_attempt_note(a, hd, from, NULL);
}

static void send_invalid_token(struct acc *a, const struct sockaddr *from, socklen_t fromlen,
			       const ngtcp2_pkt_hd *hd)
{
	send_close(a, from, fromlen, hd, NGTCP2_INVALID_TOKEN, NULL);
	a->n_bad_tokens++;
}

/* Checks the token of a new connection's Initial. Returns 0 to go on (with
 * *type and, after a Retry, *odcid set), or -1 when the packet was answered
 * (Retry, INVALID_TOKEN) or dropped. */
static int validate(struct acc *a, const struct sockaddr *from, socklen_t fromlen, ngtcp2_pkt_hd *hd,
		    size_t pktlen, ngtcp2_cid *odcid, bool *have_odcid, ngtcp2_token_type *type)
{
	bool need = retry_needed(a);
	*type = NGTCP2_TOKEN_TYPE_UNKNOWN;
	*have_odcid = false;
	if (!hd->tokenlen) {
		if (need) {
			send_retry(a, from, fromlen, hd, pktlen, false);
			return -1;
		}
		return 0;
	}
	uint64_t now = qs_realtime_ns();
	switch (hd->token[0]) {
	case NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2: {
		int rv = ngtcp2_crypto_verify_retry_token2(odcid, hd->token, hd->tokenlen, a->secret,
							   sizeof(a->secret), hd->version,
							   (const ngtcp2_sockaddr *)from, fromlen, &hd->dcid,
							   ACC_RETRY_TOKEN_TTL, now);
		if (rv == 0) {
			*have_odcid = true;
			*type = NGTCP2_TOKEN_TYPE_RETRY;
			return 0;
		}
		if (rv == NGTCP2_CRYPTO_ERR_VERIFY_TOKEN) { /* forged, expired or from elsewhere */
			send_invalid_token(a, from, fromlen, hd);
			return -1;
		}
		break; /* unreadable: as if there were no token */
	}
	case NGTCP2_CRYPTO_TOKEN_MAGIC_REGULAR:
		if (hd->dcid.datalen < NGTCP2_MIN_INITIAL_DCIDLEN) {
			send_invalid_token(a, from, fromlen, hd);
			return -1;
		}
		if (ngtcp2_crypto_verify_regular_token(hd->token, hd->tokenlen, a->secret, sizeof(a->secret),
						       (const ngtcp2_sockaddr *)from, fromlen,
						       ACC_REGULAR_TOKEN_TTL, now) == 0) {
			*type = NGTCP2_TOKEN_TYPE_NEW_TOKEN;
			return 0;
		}
		break;
	default:
		break;
	}
	/* no usable token */
	hd->token = NULL;
	hd->tokenlen = 0;
	if (need) {
		send_retry(a, from, fromlen, hd, pktlen, false);
		return -1;
	}
	return 0;
}

void acc_dispatch_stats(struct acc *a)
{
	uint64_t now = qs_now_ns();
	if (now - a->stat_log_mono < ACC_STATS_LOG_NS)
		return;
	if (a->n_accepted == a->logged_accepted && a->n_resets == a->logged_resets && a->n_misrouted == a->logged_misrouted &&
	    a->n_retries == a->logged_retries && a->n_bad_tokens == a->logged_bad_tokens && a->n_shed == a->logged_shed &&
	    a->n_src_refused == a->logged_src_refused && a->n_auth_refused == a->logged_auth_refused &&
	    a->n_hs_refused == a->logged_hs_refused && a->n_stale == a->logged_stale && a->n_resumed == a->logged_resumed &&
	    a->n_copies == a->logged_copies)
		return;
	a->stat_log_mono = now;
	qs_info("slot %u: connections accepted %" PRIu64 ", stateless resets sent %" PRIu64
		", misrouted packets dropped %" PRIu64 ", Retry sent %" PRIu64 ", invalid tokens %" PRIu64
		", closed for hoarding incomplete frames %" PRIu64 ", refused over per-source limits %" PRIu64
		", refused authentication %" PRIu64 ", refused during a storm %" PRIu64
		", stale Initials dropped %" PRIu64 " (longest wait %" PRIu64 " ms)"
		", Initials read after established packets %" PRIu64 ", handshakes resumed %" PRIu64
		", copies of answered attempts answered alike %" PRIu64,
		a->cfg->slot, a->n_accepted, a->n_resets, a->n_misrouted, a->n_retries, a->n_bad_tokens, a->n_shed,
		a->n_src_refused, a->n_auth_refused, a->n_hs_refused, a->n_stale, a->initial_wait_max_ns / 1000000, a->n_deferred,
		a->n_resumed, a->n_copies);
	a->logged_resumed = a->n_resumed;
	a->logged_copies = a->n_copies;
	a->logged_stale = a->n_stale;
	a->logged_hs_refused = a->n_hs_refused;
	a->logged_auth_refused = a->n_auth_refused;
	a->logged_src_refused = a->n_src_refused;
	a->logged_shed = a->n_shed;
	a->logged_accepted = a->n_accepted;
	a->logged_resets = a->n_resets;
	a->logged_misrouted = a->n_misrouted;
	a->logged_retries = a->n_retries;
	a->logged_bad_tokens = a->n_bad_tokens;
}

/* A new attempt's Initial that waited out ACC_STALE_INITIAL_NS in the queue
 * (acc.h). The realtime clock is the kernel's stamp's; a clock stepped back
 * makes nothing stale, one stepped forward drops one queue's worth at most. */
static bool stale_initial(struct acc *a)
{
	if (!a->rx_pkt_ns)
		return false;
	uint64_t now = qs_realtime_ns();
	uint64_t wait = now > a->rx_pkt_ns ? now - a->rx_pkt_ns : 0;
	if (wait > a->initial_wait_max_ns)
		a->initial_wait_max_ns = wait; /* the stats line's, to tell how near the bound a storm comes */
	return wait > ACC_STALE_INITIAL_NS;
}

/* A copy of an attempt answered in the last seconds (its client's PTO sent
 * it again, attempts.c) gets the same answer: answered as new, a copy of a
 * refused attempt got a Retry or a connection its client had given up. */
static void answer_copy(struct acc *a, const struct sockaddr *from, socklen_t fromlen, const ngtcp2_pkt_hd *hd,
			size_t pktlen, const struct acc_attempt_slot *seen)
{
	const char *reason = acc_attempt_reason(seen);
	a->n_copies++;
	if (reason)
		send_close(a, from, fromlen, hd, NGTCP2_CONNECTION_REFUSED, reason);
	else
		send_retry(a, from, fromlen, hd, pktlen, true);
}

/* A datagram that opens no known connection's packet: a new attempt's
 * Initial (udp.c reads these after the established ones during a storm). */
bool acc_new_attempt(const struct acc *a, const uint8_t *pkt, size_t len)
{
	ngtcp2_version_cid vc;
	return ngtcp2_pkt_decode_version_cid(&vc, pkt, len, QS_STEER_CID_LEN) == 0 && vc.version &&
	       !acc_cidmap_get(&a->map, vc.dcid, vc.dcidlen);
}

void acc_conn_packet(struct acc *a, const struct sockaddr *from, socklen_t fromlen, uint8_t *pkt, size_t len)
{
	ngtcp2_version_cid vc;
	int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, QS_STEER_CID_LEN);
	if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
		send_version_negotiation(a, from, fromlen, &vc, len);
		return;
	}
	if (rv != 0)
		return;
	struct acc_conn *c = acc_cidmap_get(&a->map, vc.dcid, vc.dcidlen);
	if (c) {
		to_existing(c, from, fromlen, pkt, len);
		return;
	}
	if (!vc.version) { /* short header for a connection we do not have */
		stateless_reset(a, from, fromlen, &vc, len);
		return;
	}
	ngtcp2_pkt_hd hd;
	if (ngtcp2_accept(&hd, pkt, len) != 0)
		return;
	if (stale_initial(a)) {
		a->n_stale++;
		return;
	}
	const struct acc_attempt_slot *seen = acc_attempt_seen(a, &hd, from);
	if (seen) {
		answer_copy(a, from, fromlen, &hd, len, seen);
		return;
	}
	if (a->stopping || a->nconns >= conn_limit(a)) {
		refuse(a, from, fromlen, &hd);
		return;
	}
	/* Tokens are checked below; here only whether one could let it in. A
	 * new attempt counts the clients already sent a Retry, who come back. */
	if (hd.tokenlen ? a->handshaking >= ACC_VALIDATED_CAP(a->hs_cap)
			: a->handshaking + retries_out(a, qs_now_ns()) >= a->hs_cap) {
		refuse_storm(a, from, fromlen, &hd);
		return;
	}
	int32_t src;
	const char *busy = acc_src_check(a, from, &src);
	if (busy) { /* before Retry: a source over its limits costs one packet each way */
		refuse_attempt(a, from, fromlen, &hd, busy);
		acc_src_refused(a, src, busy);
		return;
	}
	ngtcp2_cid odcid;
	bool have_odcid;
	ngtcp2_token_type type;
	if (validate(a, from, fromlen, &hd, len, &odcid, &have_odcid, &type) != 0)
		return;
	if (a->handshaking >= a->hs_cap && type == NGTCP2_TOKEN_TYPE_UNKNOWN) {
		refuse_storm(a, from, fromlen, &hd); /* its token was no use */
		return;
	}
	if (type == NGTCP2_TOKEN_TYPE_RETRY) { /* one Retry answered */
		a->retry_ans_w++;
		if (a->retry_cur)
			a->retry_cur--;
		else if (a->retry_prev)
			a->retry_prev--;
	}
	c = acc_conn_new(a, from, fromlen, &hd, have_odcid ? &odcid : NULL, type);
	if (!c) {
		qs_warn("could not create a QUIC connection");
		return;
	}
	a->n_accepted++;
	qs_mp_add(QS_M_CONN_ACCEPTED, 1);
	c->src = acc_src_admit(a, from); /* after validation: spoofed first Initials use up nobody's rate */
	acc_conn_read(c, from, fromlen, pkt, len);
}

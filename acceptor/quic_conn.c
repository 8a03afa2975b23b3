/* QUIC connections: accept, read, write, timers, closing and draining.
 * ngtcp2 does the protocol; this file feeds it packets and time, and turns
 * its callbacks into stream events. A connection is only freed from loop
 * level (packet dispatch or its timer), never inside an ngtcp2 callback. */
#include <event2/event.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/addr.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics_page.h"
#include "common/steer_cid.h"

#define ACC_MAX_PKTS_PER_WRITE 64

static uint64_t ts_now(void) { return qs_now_ns(); }

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	return ((struct acc_conn *)ref->user_data)->qc;
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

/* Server CIDs follow the steering contract of common/steer_cid.h: 18 bytes,
 * byte 0 is the steering key (our slot), byte 1 its check byte, the rest
 * random. Used for the first SCID, every NEW_CONNECTION_ID and Retry SCIDs.
 * token (may be NULL) gets the CID's stateless-reset token, made from the
 * secret shared by all acceptors, so a restarted acceptor can reset it. */
int acc_make_cid(struct acc *a, ngtcp2_cid *cid, uint8_t *token)
{
	cid->datalen = QS_STEER_CID_LEN;
	qs_steer_cid_prefix(cid->data, a->cfg->steer_key);
	if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data + 2, QS_STEER_CID_LEN - 2))
		return -1;
	if (!token)
		return 0;
	return ngtcp2_crypto_generate_stateless_reset_token(token, a->secret, sizeof(a->secret), cid);
}

static int get_new_cid_cb(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
	(void)qc;
	(void)cidlen;
	struct acc_conn *c = ud;
	if (acc_make_cid(c->a, cid, token) || acc_cidmap_put(&c->a->map, cid, c))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int remove_cid_cb(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *ud)
{
	(void)qc;
	acc_cidmap_del(&((struct acc_conn *)ud)->a->map, cid);
	return 0;
}

static int stream_open_cb(ngtcp2_conn *qc, int64_t id, void *ud)
{
	if (!ngtcp2_is_bidi_stream(id))
		return 0;
	struct acc_stream *s = acc_stream_new(ud, id);
	if (!s)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	qs_mp_add(QS_M_STREAMS, 1);
	ngtcp2_conn_set_stream_user_data(qc, id, s);
	return 0;
}

static int recv_stream_data_cb(ngtcp2_conn *qc, uint32_t flags, int64_t id, uint64_t off, const uint8_t *data,
			       size_t len, void *ud, void *sud)
{
	(void)qc;
	(void)id;
	(void)off;
	(void)ud;
	if (!sud)
		return 0;
	if (acc_stream_recv(sud, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int acked_cb(ngtcp2_conn *qc, int64_t id, uint64_t off, uint64_t len, void *ud, void *sud)
{
	(void)qc;
	(void)id;
	(void)ud;
	if (sud)
		acc_stream_acked(sud, off + len);
	return 0;
}

static int stream_close_cb(ngtcp2_conn *qc, uint32_t flags, int64_t id, uint64_t err, void *ud, void *sud)
{
	(void)flags;
	(void)err;
	(void)ud;
	if (sud)
		acc_stream_free(sud);
	if (!ngtcp2_conn_is_local_stream(qc, id) && ngtcp2_is_bidi_stream(id))
		ngtcp2_conn_extend_max_streams_bidi(qc, 1);
	return 0;
}

/* The client reset its side of the stream (RESET_STREAM): it gets the answers
 * for what arrived, a cut frame rejected as truncated, then our FIN. */
static int stream_reset_cb(ngtcp2_conn *qc, int64_t id, uint64_t size, uint64_t err, void *ud, void *sud)
{
	(void)qc;
	(void)id;
	(void)size;
	(void)err;
	(void)ud;
	if (sud && acc_stream_reset_in(sud))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

/* The client will not read the answers (STOP_SENDING): the stream is
 * abandoned both ways (ngtcp2 answers with RESET_STREAM itself). */
static int stop_sending_cb(ngtcp2_conn *qc, int64_t id, uint64_t err, void *ud, void *sud)
{
	(void)err;
	if (sud)
		acc_stream_stop_out(sud);
	ngtcp2_conn_shutdown_stream(qc, 0, id, QS_APP_CANCELLED);
	acc_conn_mark_dirty(ud);
	return 0;
}

static int extend_stream_data_cb(ngtcp2_conn *qc, int64_t id, uint64_t max, void *ud, void *sud)
{
	(void)qc;
	(void)id;
	(void)max;
	(void)sud;
	acc_conn_mark_dirty(ud);
	return 0;
}

/* Handshake done: the address is validated now; give the client a NEW_TOKEN
 * so that its next connection from this address skips the Retry. */
static int handshake_completed_cb(ngtcp2_conn *qc, void *ud)
{
	struct acc_conn *c = ud;
	struct acc *a = c->a;
	if (!c->hs_done) {
		c->hs_done = true;
		a->handshaking--;
		qs_mp_add(QS_M_HANDSHAKES, 1);
	}
	/* resumed: no server Certificate, so the transcript hook never finished */
	acc_transcript_free(c);
	c->ts_done = true;
	if (acc_auth_handshake(c))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	acc_ticket_handshake(c);
	const ngtcp2_path *p = ngtcp2_conn_get_path(qc);
	uint8_t token[NGTCP2_CRYPTO_MAX_REGULAR_TOKENLEN];
	ngtcp2_ssize n = ngtcp2_crypto_generate_regular_token(token, a->secret, sizeof(a->secret), p->remote.addr,
							      p->remote.addrlen, qs_realtime_ns());
	if (n > 0 && ngtcp2_conn_submit_new_token(qc, token, (size_t)n) != 0)
		qs_debug("could not submit NEW_TOKEN");
	return 0;
}

static const ngtcp2_callbacks conn_callbacks = {
	.handshake_completed = handshake_completed_cb,
	.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
	.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
	.encrypt = ngtcp2_crypto_encrypt_cb,
	.decrypt = ngtcp2_crypto_decrypt_cb,
	.hp_mask = ngtcp2_crypto_hp_mask_cb,
	.recv_stream_data = recv_stream_data_cb,
	.acked_stream_data_offset = acked_cb,
	.stream_open = stream_open_cb,
	.stream_close = stream_close_cb,
	.rand = rand_cb,
	.get_new_connection_id = get_new_cid_cb,
	.remove_connection_id = remove_cid_cb,
	.update_key = ngtcp2_crypto_update_key_cb,
	.stream_reset = stream_reset_cb,
	.extend_max_stream_data = extend_stream_data_cb,
	.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	.stream_stop_sending = stop_sending_cb,
	.version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static void path_init(struct acc *a, ngtcp2_path *p, const struct sockaddr *from, socklen_t fromlen)
{
	memset(p, 0, sizeof(*p));
	p->local.addr = (ngtcp2_sockaddr *)&a->local;
	p->local.addrlen = a->local_len;
	p->remote.addr = (ngtcp2_sockaddr *)from;
	p->remote.addrlen = fromlen;
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);

static void set_params(struct acc *a, ngtcp2_transport_params *tp, const ngtcp2_pkt_hd *hd,
		       const ngtcp2_cid *retry_odcid)
{
	ngtcp2_transport_params_default(tp);
	tp->initial_max_streams_bidi = 128;
	tp->initial_max_streams_uni = 0;
	tp->initial_max_stream_data_bidi_remote = a->stream_window;
	tp->initial_max_data = ACC_CONN_WINDOW_INITIAL;
	tp->max_idle_timeout = (uint64_t)a->cfg->idle_timeout_s * NGTCP2_SECONDS;
	tp->active_connection_id_limit = 7;
	tp->max_udp_payload_size = ACC_MAX_PKT;
	tp->stateless_reset_token_present = 1;
	tp->original_dcid = retry_odcid ? *retry_odcid : hd->dcid;
	tp->original_dcid_present = 1;
	if (retry_odcid) { /* after our Retry the client's DCID is the Retry's SCID */
		tp->retry_scid = hd->dcid;
		tp->retry_scid_present = 1;
	}
}

struct acc_conn *acc_conn_new(struct acc *a, const struct sockaddr *from, socklen_t fromlen,
				 const ngtcp2_pkt_hd *hd, const ngtcp2_cid *retry_odcid, ngtcp2_token_type token_type)
{
	struct acc_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->a = a;
	c->src = ACC_NONE;
	c->ref.get_conn = get_conn;
	c->ref.user_data = c;
	ngtcp2_ccerr_default(&c->err);
	ngtcp2_settings st;
	ngtcp2_settings_default(&st);
	st.initial_ts = ts_now();
	/* A connection's window starts small and grows (ngtcp2's auto-tuning:
	 * doubled when credit goes back faster than two round trips) up to
	 * conn_window for clients that keep it busy: what a stalled spool leaves
	 * in this process is the sum of the windows, so idle and slow clients
	 * must not each hold 16 MiB of promise. Stream windows do not grow:
	 * they must take a whole frame of the largest size from the start. */
	st.max_window = a->conn_window;
	st.max_stream_window = a->stream_window;
	/* A client gives up a handshake after 10 s (ours does); without a bound
	 * of our own its half-open connection kept a place (and counted in
	 * the handshakes in progress) until the 60 s idle timeout, so after a
	 * storm the clients coming back found the places taken by their own
	 * abandoned attempts. */
	st.handshake_timeout = ACC_HANDSHAKE_TIMEOUT;
	st.ack_thresh = ACC_ACK_THRESH;
	if (token_type != NGTCP2_TOKEN_TYPE_UNKNOWN && hd->tokenlen) {
		/* a verified token: the address is validated, no 3x limit */
		st.token = hd->token;
		st.tokenlen = hd->tokenlen;
		st.token_type = token_type;
	}
	ngtcp2_transport_params tp;
	set_params(a, &tp, hd, retry_odcid);
	ngtcp2_cid scid;
	ngtcp2_path path;
	path_init(a, &path, from, fromlen);
	if (acc_make_cid(a, &scid, tp.stateless_reset_token) ||
	    ngtcp2_conn_server_new(&c->qc, &hd->scid, &scid, &path, hd->version, &conn_callbacks, &st, &tp, NULL,
				   c)) {
		free(c);
		return NULL;
	}
	c->odcid = hd->dcid;
	c->timer = evtimer_new(a->base, conn_timer_cb, c);
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
	a->nconns++;
	a->handshaking++;
	if (acc_tls_session(a, c) || acc_cidmap_put(&a->map, &scid, c) || acc_cidmap_put(&a->map, &c->odcid, c)) {
		acc_conn_free(c);
		return NULL;
	}
	return c;
}

static struct acc_stream *next_writer(struct acc_stream *s);

/* ngtcp2 acknowledges a packet an eighth of the RTT after it came (on
 * loopback: at once, in the write that follows the read), so at everyday
 * rates every batch of a client's events cost a packet with the ACK alone
 * and, a millisecond later, another with the answers. While answers are due,
 * nothing else waits to be sent and few packets wait for their ACK, the
 * write after a read is skipped (acc_conn_flush) and the timer (whatever it
 * is for: the ACK, loss detection, keep-alive) may be ACC_ACK_RIDE late; the
 * answers' write takes the ACK along. Many packets unacknowledged (a client
 * sending fast, whose window needs the ACKs) write at once as before. */
static bool ack_can_ride(struct acc_conn *c)
{
	return c->state == ACC_CONN_ACTIVE && c->hs_done && c->frames && c->rx_unacked < ACC_ACK_THRESH &&
	       !next_writer(c->streams);
}

static void conn_update_timer(struct acc_conn *c)
{
	ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->qc);
	if (exp == UINT64_MAX) {
		evtimer_del(c->timer);
		return;
	}
	if (ack_can_ride(c))
		exp += ACC_ACK_RIDE;
	uint64_t now = ts_now(), d = exp > now ? exp - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(d / NGTCP2_SECONDS),
			     .tv_usec = (suseconds_t)((d % NGTCP2_SECONDS) / 1000)};
	evtimer_add(c->timer, &tv);
}

/* Closing/draining: keep the connection ~3 x PTO to answer stray packets. */
static void linger(struct acc_conn *c, enum acc_conn_state state)
{
	c->state = state;
	/* it carries nothing more: its tenant's place is free now, not ~3 PTO
	 * later (a client moving after a go-away reconnects at once) */
	acc_limit_gone(c);
	uint64_t d = 3 * ngtcp2_conn_get_pto(c->qc);
	struct timeval tv = {.tv_sec = (time_t)(d / NGTCP2_SECONDS),
			     .tv_usec = (suseconds_t)((d % NGTCP2_SECONDS) / 1000)};
	evtimer_add(c->timer, &tv);
}

void acc_conn_send_close(struct acc_conn *c)
{
	const ngtcp2_path *p = ngtcp2_conn_get_path(c->qc);
	if (c->closelen)
		acc_udp_send(c->a, (const struct sockaddr *)p->remote.addr, p->remote.addrlen, c->closebuf,
			     c->closelen);
	c->close_last_mono = ts_now();
}

static void start_closing(struct acc_conn *c)
{
	if (c->state != ACC_CONN_ACTIVE)
		return;
	if (ngtcp2_conn_in_draining_period(c->qc)) {
		linger(c, ACC_CONN_DRAINING);
		return;
	}
	ngtcp2_path_storage ps;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_pkt_info pi;
	ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, c->closebuf, sizeof(c->closebuf),
							    &c->err, ts_now());
	c->closelen = n > 0 ? (size_t)n : 0;
	linger(c, ACC_CONN_CLOSING);
	acc_conn_send_close(c);
}

void acc_conn_close(struct acc_conn *c, uint64_t app_error)
{
	if (app_error)
		ngtcp2_ccerr_set_application_error(&c->err, app_error, NULL, 0);
	else
		ngtcp2_ccerr_default(&c->err);
	start_closing(c);
}

void acc_conn_close_reason(struct acc_conn *c, uint64_t app_error, const char *reason)
{
	ngtcp2_ccerr_set_application_error(&c->err, app_error, (const uint8_t *)reason, strlen(reason));
	start_closing(c);
}

void acc_conn_refuse(struct acc_conn *c, const char *reason)
{
	ngtcp2_ccerr_set_transport_error(&c->err, NGTCP2_CONNECTION_REFUSED, (const uint8_t *)reason, strlen(reason));
	start_closing(c);
}

void acc_conn_fail(struct acc_conn *c, int rv)
{
	if (qs_log_debug_enabled()) {
		char ip[64], ports[8];
		unsigned port = 0;
		qs_addr_ip_string(ngtcp2_conn_get_path(c->qc)->remote.addr, ip, sizeof(ip), &port);
		snprintf(ports, sizeof(ports), "%u", port);
		qs_debug_kv(QS_KV({QS_LOG_PEER, ip}, {QS_LOG_PORT, ports}, {QS_LOG_CODE, ngtcp2_strerror(rv)}),
			    "connection error from %s port %u: %s", ip, port, ngtcp2_strerror(rv));
	}
	if (!c->err.error_code) {
		if (rv == NGTCP2_ERR_CRYPTO)
			ngtcp2_ccerr_set_tls_alert(&c->err, ngtcp2_conn_get_tls_alert(c->qc), NULL, 0);
		else
			ngtcp2_ccerr_set_liberr(&c->err, rv, NULL, 0);
	}
	start_closing(c);
}

void acc_conn_read(struct acc_conn *c, const struct sockaddr *from, socklen_t fromlen, const uint8_t *pkt,
		      size_t len)
{
	ngtcp2_path path;
	path_init(c->a, &path, from, fromlen);
	ngtcp2_pkt_info pi = {0};
	int rv = ngtcp2_conn_read_pkt(c->qc, &path, &pi, pkt, len, ts_now());
	if (rv == 0) {
		bool other = c->dirty_write; /* what the packet's callbacks asked for counts */
		c->rx_unacked++;
		acc_ticket_refresh(c);
		acc_conn_mark_dirty(c);
		c->dirty_write = other;
		return;
	}
	switch (rv) {
	case NGTCP2_ERR_DRAINING:
		linger(c, ACC_CONN_DRAINING);
		return;
	case NGTCP2_ERR_DROP_CONN:
		acc_conn_free(c);
		return;
	default:
		acc_conn_fail(c, rv);
	}
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acc_conn *c = arg;
	if (c->state != ACC_CONN_ACTIVE) {
		acc_conn_free(c);
		return;
	}
	int rv = ngtcp2_conn_handle_expiry(c->qc, ts_now());
	if (rv == NGTCP2_ERR_IDLE_CLOSE) {
		qs_debug("connection idle timeout");
		acc_conn_free(c);
		return;
	}
	if (rv) {
		acc_conn_fail(c, rv);
		return;
	}
	acc_conn_write(c);
}

static struct acc_stream *next_writer(struct acc_stream *s)
{
	while (s && !acc_stream_wants_write(s))
		s = s->next;
	return s;
}

/* Packs pending stream data of every stream into packets, up to a burst limit. */
void acc_conn_write(struct acc_conn *c)
{
	if (c->state != ACC_CONN_ACTIVE || acc_auth_close_revoked(c))
		return;
	uint8_t buf[65536];
	size_t maxpl = ngtcp2_conn_get_max_tx_udp_payload_size(c->qc);
	if (maxpl > sizeof(buf))
		maxpl = sizeof(buf);
	ngtcp2_path_storage ps;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_pkt_info pi;
	uint64_t ts = ts_now();
	struct acc_stream *s = next_writer(c->streams);
	int npkts = 0;
	while (npkts < ACC_MAX_PKTS_PER_WRITE) {
		ngtcp2_vec vec[16];
		bool fin = false;
		size_t nvec = s ? acc_stream_vecs(s, vec, 16, &fin) : 0;
		uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
		ngtcp2_ssize ndata = -1;
		ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, buf, maxpl, &ndata, flags,
							   s ? s->id : -1, vec, nvec, ts);
		if (ndata >= 0 && s)
			acc_stream_consumed(s, (size_t)ndata, fin);
		if (n == NGTCP2_ERR_WRITE_MORE || n == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
		    n == NGTCP2_ERR_STREAM_SHUT_WR) {
			s = next_writer(s->next);
			continue;
		}
		if (n < 0) {
			acc_conn_fail(c, (int)n);
			return;
		}
		if (n == 0)
			break;
		acc_udp_send(c->a, (const struct sockaddr *)ps.path.remote.addr, ps.path.remote.addrlen, buf,
			     (size_t)n);
		npkts++;
		if (s && !acc_stream_wants_write(s))
			s = next_writer(s->next);
	}
	if (npkts)
		c->rx_unacked = 0;
	ngtcp2_conn_update_pkt_tx_time(c->qc, ts);
	if (npkts == ACC_MAX_PKTS_PER_WRITE) /* more to send: continue next loop pass */
		acc_conn_mark_dirty(c);
	conn_update_timer(c);
}

void acc_conn_flush(struct acc_conn *c)
{
	bool other = c->dirty_write;
	c->dirty_write = false;
	if (!other && ack_can_ride(c))
		conn_update_timer(c);
	else
		acc_conn_write(c);
}

void acc_conn_mark_dirty(struct acc_conn *c)
{
	c->dirty_write = true;
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = c->a->dirty;
	c->a->dirty = c;
	acc_schedule_flush(c->a);
}

void acc_conn_free(struct acc_conn *c)
{
	struct acc *a = c->a;
	acc_tenant_count_conn(c, -1);
	acc_limit_gone(c);
	while (c->streams)
		acc_stream_free(c->streams);
	if (c->qc) {
		size_t n = ngtcp2_conn_get_scid(c->qc, NULL);
		ngtcp2_cid *ids = calloc(n ? n : 1, sizeof(*ids));
		if (ids) {
			n = ngtcp2_conn_get_scid(c->qc, ids);
			for (size_t i = 0; i < n; i++)
				acc_cidmap_del(&a->map, &ids[i]);
			free(ids);
		}
		acc_cidmap_del(&a->map, &c->odcid);
		ngtcp2_conn_del(c->qc);
	}
	if (c->tls)
		gnutls_deinit(c->tls);
	acc_transcript_free(c);
	if (c->timer)
		event_free(c->timer);
	for (struct acc_conn **pp = &a->dirty; *pp; pp = &(*pp)->dirty_next)
		if (*pp == c) {
			*pp = c->dirty_next;
			break;
		}
	if (c->prev)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->nconns--;
	acc_src_release(a, c->src);
	if (!c->hs_done)
		a->handshaking--;
	free(c);
}

/* Where an incoming UDP packet goes: an existing connection (by DCID), a new
 * connection, a refusal (over --max-connections or shutting down), or a
 * Version Negotiation packet. */
#include <gnutls/crypto.h>
#include <string.h>

#include "acceptor/acc.h"
#include "common/config.h"
#include "common/log.h"

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

/* A refused connection gets CONNECTION_REFUSED in an Initial, never silence:
 * the client then knows to back off or try another server. */
static void refuse(struct acc *a, const struct sockaddr *from, socklen_t fromlen, const ngtcp2_pkt_hd *hd)
{
	uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
	ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(buf, sizeof(buf), hd->version, &hd->scid, &hd->dcid,
							      NGTCP2_CONNECTION_REFUSED, NULL, 0);
	if (n > 0)
		acc_udp_send(a, from, fromlen, buf, (size_t)n);
	a->refused++;
	uint64_t now = acc_mono_ns();
	if (now - a->refuse_log_mono >= ACC_REFUSE_LOG_NS || !a->refuse_log_mono) {
		qs_info("refused %u new connection(s): %s (limit %u)", a->refused,
			a->stopping ? "shutting down" : "connection limit reached", a->cfg->max_connections);
		a->refused = 0;
		a->refuse_log_mono = now;
	}
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
		if (acc_mono_ns() - c->close_last_mono > 1000000)
			acc_conn_send_close(c);
		return;
	case ACC_CONN_DRAINING:
		return;
	}
}

void acc_conn_packet(struct acc *a, const struct sockaddr *from, socklen_t fromlen, uint8_t *pkt, size_t len)
{
	ngtcp2_version_cid vc;
	int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, ACC_CID_LEN);
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
	if (!vc.version)
		return; /* short header for an unknown connection */
	ngtcp2_pkt_hd hd;
	if (ngtcp2_accept(&hd, pkt, len) != 0)
		return;
	if (a->stopping || a->nconns >= a->cfg->max_connections) {
		refuse(a, from, fromlen, &hd);
		return;
	}
	c = acc_conn_new(a, from, fromlen, &hd);
	if (!c) {
		qs_warn("could not create a QUIC connection");
		return;
	}
	acc_conn_read(c, from, fromlen, pkt, len);
}

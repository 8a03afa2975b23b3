/* The output's use of TLS (--logstash-tls): the credentials loaded before
 * the shipper confines itself, the session started on a connected socket,
 * its handshake, writes of whole records of plaintext, and the wire bytes
 * that settle.h counts. The GnuTLS session itself is tls_out.c. */
#include "shipper/output_parts.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "shipper/tls_out.h"

struct qs_tls_creds *qs_output_tls_load(const struct qs_config *cfg)
{
	if (!cfg->logstash_tls)
		return NULL;
	char err[8400];
	struct qs_tls_creds *cr = qs_tls_creds_load(cfg, err, sizeof(err));
	if (!cr)
		qs_err("output: %s", err);
	return cr;
}

/* The TCP connection is up: start the TLS session and shake hands. */
void out_tls_start(struct qs_output *o)
{
	char host[256], err[512];
	qs_addr_host(o->cfg->logstash_name[o->addr], host, sizeof(host)); /* well formed: parsed at start */
	o->tls = qs_tls_conn_new(o->tls_creds, o->fd, host, err, sizeof(err));
	if (!o->tls)
		return out_fail(o, err, 0);
	o->state = QS_OUT_HANDSHAKE;
	event_add(o->rev, NULL);
	out_tls_handshake(o);
}

/* One step of the handshake, whenever the socket is ready for it. */
void out_tls_handshake(struct qs_output *o)
{
	char err[512];
	int rc = qs_tls_handshake(o->tls, err, sizeof(err));
	if (rc < 0)
		return out_fail(o, err, 0);
	if (rc == 0)
		return out_up(o);
	if (qs_tls_wants_write(o->tls))
		event_add(o->wev, NULL);
}

/* Up: what TLS reads can only be its close or an error (Logstash sends no data). */
void out_tls_readable(struct qs_output *o)
{
	int rc = qs_tls_drain(o->tls);
	if (rc == 0)
		out_fail(o, "connection closed by peer (TLS close)", 0);
	else if (rc < 0) {
		char why[160];
		snprintf(why, sizeof(why), "connection lost: TLS: %s", qs_tls_last_error(o->tls));
		out_fail(o, why, 0);
	}
}

/* TLS: the records' plaintext is gathered into one buffer, which must be
 * offered again unchanged after EAGAIN (GnuTLS keeps the sealed record). */
ssize_t out_tls_write(struct qs_output *o, const struct iovec *iov, int n)
{
	if (!o->tls_pending) {
		o->tls_len = 0;
		for (int i = 0; i < n && o->tls_len < TLS_CHUNK; i++) {
			size_t k = iov[i].iov_len < TLS_CHUNK - o->tls_len ? iov[i].iov_len : TLS_CHUNK - o->tls_len;
			memcpy(o->tls_buf + o->tls_len, iov[i].iov_base, k);
			o->tls_len += k;
		}
	}
	ssize_t w = qs_tls_send(o->tls, o->tls_buf, o->tls_len);
	o->tls_pending = w < 0 && errno == EAGAIN;
	return w;
}

/* Bytes put on the wire by the last write: what TCP will acknowledge. */
size_t out_tls_on_wire(struct qs_output *o, size_t w)
{
	if (!o->tls)
		return w;
	uint64_t now = qs_tls_wire_bytes(o->tls), d = now - o->wire_mark;
	o->wire_mark = now;
	return (size_t)d;
}

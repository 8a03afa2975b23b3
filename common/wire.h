/* The quicstash wire format (docs/PROTOCOL.md), shared by server and client.
 *
 * Client -> server, on a client-initiated bidirectional stream:
 *   [optional stream header] then frames [u32 BE length][JSON object bytes]
 *   stream header: "QSH1" + 16-byte session id + u64 BE sequence of the first frame.
 *   The magic read as a length (0x51534831) exceeds any allowed frame size, so
 *   a stream without a header is unambiguous.
 * Server -> client, on the same stream, answers in frame order:
 *   'A' u64 next      all frames with seq < next are resolved (acked or rejected)
 *   'R' u64 seq u16 code u16 n reason[n]   frame seq was rejected
 *   'G' u32 ms        going away: finish, then reconnect within ms
 *   'T' u8 n limit[n] held at a tenant limit (only with ALPN quicstash/1.1)
 * Authentication (a tenants server, docs/PROTOCOL.md "Authentication"): the
 * connection's first stream carries "QSA1" u16 n token[n] and FIN; the server
 * answers 'K' u8 n tenant[n] and FIN, or closes the connection with an
 * authentication error (0x100..0x1ff) and its reason.
 */
#ifndef QS_WIRE_H
#define QS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QS_ALPN "quicstash/1"
/* quicstash/1 plus the 'T' answer (a limit notice): a client offering it
 * first may be sent 'T'; one offering only quicstash/1 never is. */
#define QS_ALPN_NOTICES "quicstash/1.1"
#define QS_SESSION_ID_LEN 16
#define QS_STREAM_HEADER_LEN (4 + QS_SESSION_ID_LEN + 8)
#define QS_STREAM_MAGIC 0x51534831u /* "QSH1" */
#define QS_REASON_MAX 200
#define QS_AUTH_MAGIC 0x51534131u /* "QSA1": an authentication stream */
#define QS_AUTH_HDR_LEN 6          /* magic + u16 token length */
#define QS_AUTH_TOKEN_MAX 1024

enum qs_reject_code {
	QS_REJ_INVALID_JSON = 1,
	QS_REJ_NOT_OBJECT = 2,
	QS_REJ_TOO_LARGE = 3,
	QS_REJ_EMPTY = 4,
	QS_REJ_TRUNCATED = 5,
	QS_REJ_SERVER_FIELD = 6,
	QS_REJ_INTERNAL = 7,
	QS_REJ_UNAUTHENTICATED = 8, /* its connection's tenant is no longer configured (reload) */
	QS_REJ_RATE_LIMITED = 9,    /* its tenant is over a rate and has on-limit = reject (docs/TENANTS.md) */
};

const char *qs_reject_name(uint16_t code);

/* Application error codes, for CONNECTION_CLOSE (type 0x1d), RESET_STREAM and
 * STOP_SENDING in both directions (docs/PROTOCOL.md, "Error codes"). A busy or
 * stopping server refuses with the transport error CONNECTION_REFUSED instead,
 * and closes after a go-away with the transport error NO_ERROR. */
enum qs_app_error {
	QS_APP_NO_ERROR = 0x0,
	QS_APP_PROTOCOL_ERROR = 0x1, /* the peer broke quicstash/1 (malformed answers, ...) */
	QS_APP_CANCELLED = 0x2,      /* a stream abandoned: its unanswered frames are not stored by it */
	QS_APP_INTERNAL = 0x3,       /* the sender failed (not the peer's fault) */
	QS_APP_AUTH_FIRST = 0x100,   /* 0x100..0x1ff: authentication refused (the reason says why) */
	QS_APP_UNAUTHENTICATED = 0x100, /* frames before authentication, no credential, tenant revoked */
	QS_APP_UNKNOWN_TOKEN = 0x101,   /* the token matches no tenant */
	QS_APP_BAD_CERT = 0x102,        /* the client certificate does not verify (CA, expiry, ...) */
	QS_APP_NO_TENANT = 0x103,       /* the certificate verifies but matches no tenant */
	QS_APP_AUTH_MALFORMED = 0x104,  /* a malformed authentication stream */
	QS_APP_TENANT_CONNECTIONS = 0x105, /* the tenant holds its max-connections already */
	QS_APP_AUTH_LAST = 0x1ff,
};

/* ---- big-endian helpers ---- */
static inline void qs_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void qs_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void qs_put_u64(uint8_t *p, uint64_t v) { qs_put_u32(p, (uint32_t)(v >> 32)); qs_put_u32(p + 4, (uint32_t)v); }
static inline uint16_t qs_get_u16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t qs_get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t qs_get_u64(const uint8_t *p) { return ((uint64_t)qs_get_u32(p) << 32) | qs_get_u32(p + 4); }

/* ---- client -> server frames ---- */

/* Writes the optional stream header; returns QS_STREAM_HEADER_LEN. */
size_t qs_stream_header_encode(uint8_t *out, const uint8_t session[QS_SESSION_ID_LEN], uint64_t first_seq);

enum qs_dec_event {
	QS_DEC_NEED_MORE = 0, /* all input consumed, nothing complete */
	QS_DEC_HEADER,        /* out.session / out.seq hold the stream header */
	QS_DEC_FRAME,         /* out.data/out.len: one complete frame (out.seq) */
	QS_DEC_EMPTY,         /* zero-length frame (out.seq) */
	QS_DEC_OVERSIZE,      /* frame out.seq declares out.len > max: its bytes are skipped, never buffered */
	QS_DEC_AUTH,          /* at stream offset 0, "QSA1": out.data/out.len hold the token
			       * (out.data NULL: its length is 0 or over QS_AUTH_TOKEN_MAX) */
};

struct qs_dec_out {
	const uint8_t *data; /* valid until the next decode call */
	uint32_t len;
	uint64_t seq; /* the frame's sequence number: header base + index on this stream */
	uint8_t session[QS_SESSION_ID_LEN];
};

struct qs_frame_decoder {
	uint32_t max_size;
	uint64_t next_seq;
	uint64_t stream_offset; /* bytes consumed so far (the header is only allowed at 0) */
	uint8_t pre[QS_STREAM_HEADER_LEN];
	size_t pre_have;
	uint32_t len;        /* current frame's declared length */
	uint8_t *buf;        /* partial frame body, when a frame spans input chunks */
	size_t have;
	size_t cap;
	uint64_t skip_left;  /* bytes of an oversize frame still to discard */
	bool auth;           /* the body being read is an authentication token */
	int state;
};

void qs_frame_decoder_init(struct qs_frame_decoder *d, uint32_t max_size);
void qs_frame_decoder_free(struct qs_frame_decoder *d);
/* Consumes input up to and including the next event; *consumed says how much.
 * Call again with the rest until QS_DEC_NEED_MORE. Returns -1 on allocation failure. */
int qs_frame_decode(struct qs_frame_decoder *d, const uint8_t *in, size_t len, size_t *consumed,
		    struct qs_dec_out *out);
/* At end of stream: true when a frame (or its length prefix) was cut off. */
bool qs_frame_decoder_truncated(const struct qs_frame_decoder *d);
/* Like truncated, but false while skipping an oversize frame: that frame was
 * already reported (QS_DEC_OVERSIZE), so there is nothing more to answer. */
bool qs_frame_decoder_cut_unreported(const struct qs_frame_decoder *d);
/* Stream bytes of the frame being reassembled (prefix and body so far), 0
 * between frames. */
size_t qs_frame_decoder_partial(const struct qs_frame_decoder *d);
/* Bytes the decoder holds (for memory accounting). */
size_t qs_frame_decoder_buffered(const struct qs_frame_decoder *d);
/* Between frames, gives back a buffer larger than keep bytes (one large frame
 * must not pin its size for the rest of the stream). */
void qs_frame_decoder_trim(struct qs_frame_decoder *d, size_t keep);

/* Writes an authentication stream's header ("QSA1" + the token's length);
 * the token follows. Returns QS_AUTH_HDR_LEN. */
size_t qs_auth_header_encode(uint8_t *out, uint16_t token_len);

/* Writes a frame's length prefix. */
static inline void qs_frame_prefix(uint8_t out[4], uint32_t len) { qs_put_u32(out, len); }

/* ---- server -> client answers ---- */
#define QS_ANSWER_ACK 'A'
#define QS_ANSWER_REJECT 'R'
#define QS_ANSWER_GOAWAY 'G'
#define QS_ANSWER_AUTH_OK 'K' /* 'K' u8 n tenant[n]: authenticated as that tenant */
#define QS_ANSWER_NOTICE 'T'  /* 'T' u8 n limit[n]: this stream is held at that limit (quicstash/1.1) */
#define QS_ANSWER_ACK_LEN 9
#define QS_ANSWER_MAX (1 + 8 + 2 + 2 + QS_REASON_MAX)

size_t qs_answer_ack(uint8_t *out, uint64_t next_seq);
size_t qs_answer_reject(uint8_t *out, uint64_t seq, uint16_t code, const char *reason);
size_t qs_answer_goaway(uint8_t *out, uint32_t ms);
/* 'K' with the tenant's name (at most 255 bytes; reason in struct qs_answer). */
size_t qs_answer_auth_ok(uint8_t *out, const char *tenant);
/* 'T' with the limit's name (at most 255 bytes; reason in struct qs_answer). */
size_t qs_answer_notice(uint8_t *out, const char *limit);

struct qs_answer {
	uint8_t type;
	uint64_t seq; /* ACK: next; REJECT: the rejected frame */
	uint16_t code;
	uint32_t ms;
	char reason[QS_REASON_MAX + 1];
};

struct qs_answer_decoder {
	uint8_t buf[QS_ANSWER_MAX];
	size_t have;
};

/* Like qs_frame_decode: returns 1 with an answer, 0 when more input is needed,
 * -1 on a malformed answer stream. */
int qs_answer_decode(struct qs_answer_decoder *d, const uint8_t *in, size_t len, size_t *consumed,
		     struct qs_answer *out);

#endif

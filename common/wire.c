#include "common/wire.h"

#include <stdlib.h>
#include <string.h>

enum { ST_PREFIX = 0, ST_BODY, ST_SKIP };

const char *qs_reject_name(uint16_t code)
{
	switch (code) {
	case QS_REJ_INVALID_JSON: return "invalid_json";
	case QS_REJ_NOT_OBJECT: return "not_object";
	case QS_REJ_TOO_LARGE: return "too_large";
	case QS_REJ_EMPTY: return "empty";
	case QS_REJ_TRUNCATED: return "truncated";
	case QS_REJ_SERVER_FIELD: return "server_field";
	case QS_REJ_INTERNAL: return "internal";
	case QS_REJ_UNAUTHENTICATED: return "unauthenticated";
	case QS_REJ_RATE_LIMITED: return "rate_limited";
	}
	return "unknown";
}

size_t qs_stream_header_encode(uint8_t *out, const uint8_t session[QS_SESSION_ID_LEN], uint64_t first_seq)
{
	qs_put_u32(out, QS_STREAM_MAGIC);
	memcpy(out + 4, session, QS_SESSION_ID_LEN);
	qs_put_u64(out + 4 + QS_SESSION_ID_LEN, first_seq);
	return QS_STREAM_HEADER_LEN;
}

size_t qs_auth_header_encode(uint8_t *out, uint16_t token_len)
{
	qs_put_u32(out, QS_AUTH_MAGIC);
	qs_put_u16(out + 4, token_len);
	return QS_AUTH_HDR_LEN;
}

void qs_frame_decoder_init(struct qs_frame_decoder *d, uint32_t max_size)
{
	memset(d, 0, sizeof(*d));
	d->max_size = max_size;
	d->state = ST_PREFIX;
}

void qs_frame_decoder_free(struct qs_frame_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->cap = d->have = 0;
}

bool qs_frame_decoder_truncated(const struct qs_frame_decoder *d)
{
	return d->state != ST_PREFIX || d->pre_have != 0;
}

bool qs_frame_decoder_cut_unreported(const struct qs_frame_decoder *d)
{
	return d->state == ST_BODY || (d->state == ST_PREFIX && d->pre_have != 0);
}

size_t qs_frame_decoder_partial(const struct qs_frame_decoder *d)
{
	return d->state == ST_BODY ? 4 + d->have : 0;
}

size_t qs_frame_decoder_buffered(const struct qs_frame_decoder *d)
{
	return d->cap;
}

void qs_frame_decoder_trim(struct qs_frame_decoder *d, size_t keep)
{
	if (d->state != ST_BODY && d->cap > keep) {
		free(d->buf);
		d->buf = NULL;
		d->cap = d->have = 0;
	}
}

/* At stream offset 0, what the first 4 bytes start: a stream header, an
 * authentication stream's header, or a frame's length prefix. */
static size_t start_len(const uint8_t *pre)
{
	uint32_t m = qs_get_u32(pre);
	return m == QS_STREAM_MAGIC ? QS_STREAM_HEADER_LEN : m == QS_AUTH_MAGIC ? QS_AUTH_HDR_LEN : 4;
}

/* Accumulates the 4-byte prefix, or at stream offset 0 possibly the whole stream header. */
static enum qs_dec_event take_prefix(struct qs_frame_decoder *d, const uint8_t *in, size_t len,
				     size_t *used, struct qs_dec_out *out)
{
	bool at_start = d->stream_offset == 0; /* pre bytes count only once the prefix is complete */
	size_t want = 4;
	if (!at_start && d->pre_have == 0 && len - *used >= 4) {
		/* The usual case: the whole prefix is in this chunk. Read it in place
		 * (four byte stores and a word load would stall store forwarding). */
		memcpy(d->pre, in + *used, 4);
		*used += 4;
		d->pre_have = 4;
	}
	if (at_start && d->pre_have >= 4)
		want = start_len(d->pre);
	while (*used < len && d->pre_have < want) {
		d->pre[d->pre_have++] = in[(*used)++];
		if (d->pre_have == 4 && at_start)
			want = start_len(d->pre);
	}
	if (d->pre_have < want)
		return QS_DEC_NEED_MORE;
	d->stream_offset += d->pre_have;
	d->pre_have = 0;
	if (want == QS_STREAM_HEADER_LEN) {
		memcpy(out->session, d->pre + 4, QS_SESSION_ID_LEN);
		d->next_seq = qs_get_u64(d->pre + 4 + QS_SESSION_ID_LEN);
		out->seq = d->next_seq;
		return QS_DEC_HEADER;
	}
	if (want == QS_AUTH_HDR_LEN) {
		d->len = qs_get_u16(d->pre + 4);
		if (d->len == 0 || d->len > QS_AUTH_TOKEN_MAX || d->len > d->max_size) {
			out->data = NULL;
			out->len = 0;
			d->skip_left = d->len;
			d->state = d->len ? ST_SKIP : ST_PREFIX;
			return QS_DEC_AUTH;
		}
		d->auth = true;
		d->state = ST_BODY;
		d->have = 0;
		return QS_DEC_NEED_MORE;
	}
	d->len = qs_get_u32(d->pre);
	out->seq = d->next_seq;
	out->len = d->len;
	if (d->len == 0) {
		d->next_seq++;
		return QS_DEC_EMPTY;
	}
	if (d->len > d->max_size) {
		d->next_seq++;
		d->skip_left = d->len;
		d->state = ST_SKIP;
		return QS_DEC_OVERSIZE;
	}
	d->state = ST_BODY;
	d->have = 0;
	return QS_DEC_NEED_MORE;
}

static int take_body(struct qs_frame_decoder *d, const uint8_t *in, size_t len, size_t *used,
		     struct qs_dec_out *out)
{
	size_t avail = len - *used;
	size_t need = d->len - d->have;
	if (d->have == 0 && avail >= need) { /* whole frame in this chunk: no copy */
		out->data = in + *used;
	} else {
		if (d->cap < d->len) {
			uint8_t *nb = realloc(d->buf, d->len);
			if (!nb)
				return -1;
			d->buf = nb;
			d->cap = d->len;
		}
		size_t n = avail < need ? avail : need;
		memcpy(d->buf + d->have, in + *used, n);
		d->have += n;
		*used += n;
		d->stream_offset += n;
		if (d->have < d->len)
			return QS_DEC_NEED_MORE;
		out->data = d->buf;
		need = 0;
	}
	*used += need;
	d->stream_offset += need;
	out->len = d->len;
	d->state = ST_PREFIX;
	d->have = 0;
	if (d->auth) { /* the token is no frame: it takes no sequence number */
		d->auth = false;
		out->seq = d->next_seq;
		return QS_DEC_AUTH;
	}
	out->seq = d->next_seq++;
	/* out->data may be d->buf: the caller lets a large one go once it has
	 * used the frame (qs_frame_decoder_trim), never here. */
	return QS_DEC_FRAME;
}

int qs_frame_decode(struct qs_frame_decoder *d, const uint8_t *in, size_t len, size_t *consumed,
		    struct qs_dec_out *out)
{
	size_t used = 0;
	int ev = QS_DEC_NEED_MORE;
	while (used < len && ev == QS_DEC_NEED_MORE) {
		switch (d->state) {
		case ST_PREFIX:
			ev = take_prefix(d, in, len, &used, out);
			break;
		case ST_BODY:
			ev = take_body(d, in, len, &used, out);
			if (ev < 0)
				return -1;
			break;
		case ST_SKIP: {
			size_t n = len - used;
			if (n > d->skip_left)
				n = (size_t)d->skip_left;
			used += n;
			d->skip_left -= n;
			d->stream_offset += n;
			if (d->skip_left == 0)
				d->state = ST_PREFIX;
			break;
		}
		}
	}
	*consumed = used;
	return ev;
}

size_t qs_answer_ack(uint8_t *out, uint64_t next_seq)
{
	out[0] = QS_ANSWER_ACK;
	qs_put_u64(out + 1, next_seq);
	return QS_ANSWER_ACK_LEN;
}

size_t qs_answer_reject(uint8_t *out, uint64_t seq, uint16_t code, const char *reason)
{
	size_t n = reason ? strnlen(reason, QS_REASON_MAX) : 0;
	out[0] = QS_ANSWER_REJECT;
	qs_put_u64(out + 1, seq);
	qs_put_u16(out + 9, code);
	qs_put_u16(out + 11, (uint16_t)n);
	memcpy(out + 13, reason ? reason : "", n);
	return 13 + n;
}

size_t qs_answer_goaway(uint8_t *out, uint32_t ms)
{
	out[0] = QS_ANSWER_GOAWAY;
	qs_put_u32(out + 1, ms);
	return 5;
}

static size_t answer_name(uint8_t *out, uint8_t type, const char *name)
{
	size_t n = strnlen(name, 255);
	out[0] = type;
	out[1] = (uint8_t)n;
	memcpy(out + 2, name, n);
	return 2 + n;
}

size_t qs_answer_auth_ok(uint8_t *out, const char *tenant)
{
	return answer_name(out, QS_ANSWER_AUTH_OK, tenant);
}

size_t qs_answer_notice(uint8_t *out, const char *limit)
{
	return answer_name(out, QS_ANSWER_NOTICE, limit);
}

/* Length of the answer whose first bytes are buf[0..have), or 0 if not yet known. */
static size_t answer_len(const uint8_t *buf, size_t have)
{
	switch (buf[0]) {
	case QS_ANSWER_ACK: return QS_ANSWER_ACK_LEN;
	case QS_ANSWER_GOAWAY: return 5;
	case QS_ANSWER_AUTH_OK:
	case QS_ANSWER_NOTICE: return have >= 2 ? 2u + buf[1] : 0;
	case QS_ANSWER_REJECT: return have >= 13 ? 13u + qs_get_u16(buf + 11) : 0;
	}
	return (size_t)-1;
}

int qs_answer_decode(struct qs_answer_decoder *d, const uint8_t *in, size_t len, size_t *consumed,
		     struct qs_answer *out)
{
	size_t used = 0;
	for (;;) {
		if (d->have > 0) {
			size_t want = answer_len(d->buf, d->have);
			if (want == (size_t)-1 || want > sizeof(d->buf)) {
				*consumed = used;
				return -1;
			}
			if (want != 0 && d->have == want)
				break;
		}
		if (used == len) {
			*consumed = used;
			return 0;
		}
		d->buf[d->have++] = in[used++];
	}
	memset(out, 0, sizeof(*out));
	out->type = d->buf[0];
	if (out->type == QS_ANSWER_GOAWAY) {
		out->ms = qs_get_u32(d->buf + 1);
	} else if (out->type == QS_ANSWER_AUTH_OK || out->type == QS_ANSWER_NOTICE) {
		size_t n = d->buf[1] < QS_REASON_MAX ? d->buf[1] : QS_REASON_MAX;
		memcpy(out->reason, d->buf + 2, n);
		out->reason[n] = 0;
	} else {
		out->seq = qs_get_u64(d->buf + 1);
		if (out->type == QS_ANSWER_REJECT) {
			out->code = qs_get_u16(d->buf + 9);
			size_t n = qs_get_u16(d->buf + 11);
			memcpy(out->reason, d->buf + 13, n);
			out->reason[n] = 0;
		}
	}
	d->have = 0;
	*consumed = used;
	return 1;
}

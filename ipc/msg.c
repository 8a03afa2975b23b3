#include "ipc/msg.h"

#include <stdlib.h>
#include <string.h>

#include "common/heap.h"

#define PAD8(n) (((n) + 7u) & ~(size_t)7u)

static int reserve(struct qs_batch *b, size_t more)
{
	void *buf = b->buf;
	if (qs_grow(&buf, &b->cap, b->len + more, 4096))
		return -1;
	b->buf = buf;
	return 0;
}

int qs_batch_begin(struct qs_batch *b, enum qs_msg_type type, uint32_t sender)
{
	b->len = 0;
	b->count = 0;
	if (reserve(b, sizeof(struct qs_msg_hdr)))
		return -1;
	struct qs_msg_hdr h = {.magic = QS_MSG_MAGIC, .type = (uint16_t)type, .version = QS_MSG_VERSION,
			       .count = 0, .sender = sender};
	memcpy(b->buf, &h, sizeof(h));
	b->len = sizeof(h);
	return 0;
}

int qs_batch_add(struct qs_batch *b, const void *rec, size_t rec_len, const void *data, size_t data_len)
{
	size_t need = PAD8(rec_len) + PAD8(data_len);
	if (reserve(b, need))
		return -1;
	uint8_t *p = b->buf + b->len, *d = p + PAD8(rec_len);
	/* Only the padding is zeroed: the rest is written once, not twice. */
	memcpy(p, rec, rec_len);
	memset(p + rec_len, 0, PAD8(rec_len) - rec_len);
	if (data_len)
		memcpy(d, data, data_len);
	memset(d + data_len, 0, PAD8(data_len) - data_len);
	b->len += need;
	b->count++;
	memcpy(b->buf + offsetof(struct qs_msg_hdr, count), &b->count, sizeof(b->count));
	return 0;
}

bool qs_batch_empty(const struct qs_batch *b)
{
	return b->count == 0;
}

void qs_batch_free(struct qs_batch *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

int qs_batch_open(struct qs_batch_iter *it, const void *msg, size_t len, const char **why)
{
	struct qs_msg_hdr h;
	if (len < sizeof(h)) {
		*why = "message shorter than its header";
		return -1;
	}
	memcpy(&h, msg, sizeof(h));
	if (h.magic != QS_MSG_MAGIC || h.version != QS_MSG_VERSION) {
		*why = "bad magic or version";
		return -1;
	}
	if (h.type < QS_MSG_FRAMES || h.type > QS_MSG_STATUS) {
		*why = "unknown message type";
		return -1;
	}
	it->p = (const uint8_t *)msg + sizeof(h);
	it->left = len - sizeof(h);
	it->remaining = h.count;
	it->type = h.type;
	it->sender = h.sender;
	return 0;
}

/* What each inbox takes: bits 1 << enum qs_msg_type. */
static const uint32_t inboxes[] = {
	[QS_INBOX_FRAMES] = 1u << QS_MSG_FRAMES,
	[QS_INBOX_EVENTS] = 1u << QS_MSG_EVENTS,
	[QS_INBOX_ANSWERS] = 1u << QS_MSG_ANSWERS | 1u << QS_MSG_STATUS,
};

int qs_batch_receive(struct qs_batch_iter *it, enum qs_msg_inbox inbox, const void *msg, size_t len,
		     const char **why)
{
	if (qs_batch_open(it, msg, len, why) != 0)
		return -1;
	if (!(inboxes[inbox] & 1u << it->type)) {
		*why = "a message type this endpoint does not take";
		return -1;
	}
	return 0;
}

int qs_batch_next(struct qs_batch_iter *it, void *rec, size_t rec_len,
		  size_t (*payload_len)(const void *rec), const uint8_t **payload)
{
	if (it->remaining == 0)
		return it->left == 0 ? 0 : -1;
	if (it->left < PAD8(rec_len))
		return -1;
	memcpy(rec, it->p, rec_len);
	size_t plen = payload_len(rec);
	size_t need = PAD8(rec_len) + PAD8(plen);
	if (plen > it->left || need > it->left)
		return -1;
	*payload = it->p + PAD8(rec_len);
	it->p += need;
	it->left -= need;
	it->remaining--;
	return 1;
}

size_t qs_frame_rec_payload(const void *rec)
{
	return ((const struct qs_frame_rec *)rec)->len;
}

size_t qs_event_rec_payload(const void *rec)
{
	return ((const struct qs_event_rec *)rec)->len;
}

size_t qs_answer_rec_payload(const void *rec)
{
	return ((const struct qs_answer_rec *)rec)->reason_len;
}

size_t qs_no_payload(const void *rec)
{
	(void)rec;
	return 0;
}

size_t qs_status_rec_payload(const void *rec)
{
	const struct qs_status_rec *r = rec;
	/* an impossible count makes the record malformed (qs_batch_next checks the size) */
	return r->over_quota <= QS_STATUS_OVER_MAX ? (size_t)r->over_quota * 8 : SIZE_MAX / 2;
}

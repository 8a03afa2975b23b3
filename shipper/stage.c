#include "shipper/stage.h"

#include <stdlib.h>
#include <string.h>

#include "shipper/record.h"

static int reserve(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *np = realloc(*p, c * elem);
	if (!np)
		return -1;
	*p = np;
	*cap = c;
	return 0;
}

int qs_stage_add(struct qs_stage *st, uint64_t ticket, uint32_t acceptor, const void *data, uint32_t len,
		 uint64_t time_ns)
{
	if (reserve((void **)&st->buf, &st->cap, st->len + QS_REC_HDR + len, 1) ||
	    reserve((void **)&st->t, &st->tcap, st->n + 1, sizeof(*st->t)))
		return -1;
	qs_rec_header_unsealed(st->buf + st->len, len, time_ns); /* sealed by qs_spool_write */
	memcpy(st->buf + st->len + QS_REC_HDR, data, len);
	st->len += QS_REC_HDR + len;
	st->t[st->n++] = (struct qs_staged){.ticket = ticket, .acceptor = acceptor, .end = st->len};
	return 0;
}

size_t qs_stage_fit(const struct qs_stage *st, uint64_t room)
{
	size_t k = 0;
	while (k < st->n && st->t[k].end <= room)
		k++;
	return k;
}

void qs_stage_drop(struct qs_stage *st, size_t k)
{
	if (k == 0)
		return;
	size_t cut = st->t[k - 1].end;
	memmove(st->buf, st->buf + cut, st->len - cut);
	st->len -= cut;
	memmove(st->t, st->t + k, (st->n - k) * sizeof(*st->t));
	st->n -= k;
	for (size_t i = 0; i < st->n; i++)
		st->t[i].end -= cut;
}

void qs_stage_free(struct qs_stage *st)
{
	free(st->buf);
	free(st->t);
	memset(st, 0, sizeof(*st));
}

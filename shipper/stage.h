/* Events received but not yet committed: already encoded as spool records,
 * so a group commit is a single write of one buffer, plus who to ack. */
#ifndef QS_SHIPPER_STAGE_H
#define QS_SHIPPER_STAGE_H

#include <stddef.h>
#include <stdint.h>

struct qs_staged {
	uint64_t ticket;
	uint32_t acceptor;
	size_t end;      /* buffer offset after this record */
	uint64_t tenant; /* its tenant's id (qs_event_rec), 0: none */
};

struct qs_stage {
	uint8_t *buf;
	size_t len, cap;
	struct qs_staged *t;
	size_t n, tcap;
};

/* Encodes one record; 0, or -1 when out of memory. */
int qs_stage_add(struct qs_stage *st, uint64_t ticket, uint32_t acceptor, const void *data, uint32_t len,
		 uint64_t time_ns);
/* Number of leading records whose bytes fit in room. */
size_t qs_stage_fit(const struct qs_stage *st, uint64_t room);
/* Drops the first k records (committed). */
void qs_stage_drop(struct qs_stage *st, size_t k);
void qs_stage_free(struct qs_stage *st);

#endif

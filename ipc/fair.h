/* A fair share of a process's work between tenants (issue 21, item 5;
 * docs/ARCHITECTURE.md, "Fair share between tenants"): a bounded look-ahead
 * of batch messages (ipc/msg.h) whose records are served by deficit round
 * robin over their tenants (common/drr.h). The parser uses it for FRAMES,
 * the shipper for EVENTS: a tenant with many connections cannot take either
 * in proportion to its records. Knows no role: the caller says where a
 * record keeps its tenant.
 *
 * A message goes through the look-ahead only while the tenants' shares of
 * what arrives are unequal (fair.c says how that is judged): otherwise round
 * robin would serve the same shares as arrival order, which costs nothing,
 * so messages are handed back to be handled straight from the receive
 * buffer, with no copy and no wait; one tenant alone always is. In the
 * look-ahead a message is copied once and its records queued per tenant, to
 * be served a budget at a time. */
#ifndef QS_IPC_FAIR_H
#define QS_IPC_FAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qs_batch_iter;
struct qs_fair;

/* Quantum (bytes a tenant is served per turn) and the look-ahead's bound. */
#define QS_FAIR_QUANTUM (64u * 1024)
#define QS_FAIR_LOOKAHEAD (32u * 1024 * 1024)

/* The records of one message type: their size, their payload's, and where
 * their u64 tenant id lies. */
struct qs_fair_kind {
	size_t rec_len;
	size_t (*payload_len)(const void *rec);
	size_t tenant_off;
	/* Whether a tenant id is one this process knows (NULL: all are): the
	 * others share flow 0. The ids come from the sending process, and each
	 * new one cost a flow (a search and a move of them all): a compromised
	 * sender's 74,000 made-up ids held the receiver 2.5 s per message. */
	bool (*known)(const void *arg, uint64_t tenant);
	const void *known_arg;
};

/* rec points at the record inside the look-ahead's copy (8-aligned: copy
 * it into its struct to read it), payload at its payload. */
typedef void (*qs_fair_serve_fn)(void *arg, const void *rec, const uint8_t *payload);

/* off: every message is handed back (no tenants, or the test-only FIFO
 * switch). NULL: out of memory. */
struct qs_fair *qs_fair_new(bool off, const struct qs_fair_kind *kind);
/* Drops whatever is still queued. */
void qs_fair_free(struct qs_fair *f);
/* A message with records (it: as opened on msg, before its first record).
 * 0: the caller handles it now, as it is, and counts each record it handles
 * with qs_fair_count; 1: taken (queued, or dropped as malformed, logged). */
int qs_fair_take(struct qs_fair *f, const struct qs_batch_iter *it, const void *msg, size_t len);
/* A record of tenant, bytes long (its record and payload), handled by the
 * caller in arrival order: counted into what arrives per tenant, from which
 * the look-ahead judges whether to turn on. Counted in the caller's own pass
 * over the message, not in one of ours before it: a second pass over every
 * message cost the parser 8% of its time at full load (PERFORMANCE.md,
 * "Round 20"). true: the record's tenant is a newcomer beside tenants that
 * send, and round robin is on from now: the caller hands the rest of the
 * message (it, after this record) to qs_fair_take, so that the newcomer's
 * next records do not wait behind the others' in this message. */
bool qs_fair_count(struct qs_fair *f, uint64_t tenant, size_t bytes);
/* Serves queued records by deficit round robin until about budget bytes
 * went (whole records); returns whether records are still queued. */
bool qs_fair_serve(struct qs_fair *f, size_t budget, qs_fair_serve_fn fn, void *arg);
/* One pass's share: a quantum, then more quanta while go(arg) holds, for up
 * to QS_FAIR_PASS_NS since the call (a consumer slow per record still gets
 * one quantum a pass, between its sockets' reads; a fast one takes what the
 * pass read, so its batches stay as large as without tenants). Returns
 * whether records are still queued. */
#define QS_FAIR_PASS_NS 2000000ull
bool qs_fair_serve_pass(struct qs_fair *f, bool (*go)(void *arg), qs_fair_serve_fn fn, void *arg);
bool qs_fair_empty(const struct qs_fair *f);
/* Whether to read more messages now: the look-ahead is empty, or below its
 * bound while it serves by round robin. */
bool qs_fair_room(const struct qs_fair *f);

/* Runs ev (a timer) on the loop's next pass, after it polled its
 * descriptors: an event_active from a callback runs before any poll, and a
 * look-ahead served that way would starve every socket until it is empty. */
struct event;
void qs_fair_later(struct event *ev);

#endif

/* Per-hop timestamps of events through the pipeline, for finding where an
 * acknowledgement waits (bench/README.md, "Where an acknowledgement waits";
 * docs/PERFORMANCE.md, round 12). Off unless QS_HOPTRACE_DIR is set in
 * quicstashd's environment (a diagnostic for a developer or an operator; the
 * directory must exist and be writable by root).
 *
 * A traced process appends (CLOCK_MONOTONIC ns, point, acceptor, ticket)
 * records to a buffer and writes it, when full and at exit, to
 * $QS_HOPTRACE_DIR/<role>.<pid>.hop, opened before the sandbox is entered,
 * until the file holds QS_HOPTRACE_MAX_MB (256) MiB: then tracing stops.
 * Batch points (marked below) cover the events the same process saw before
 * them; their ticket field carries a number instead (group size, sync ns).
 * scripts/hoptrace joins the files by (acceptor, ticket) and prints where the
 * time went. */
#ifndef QS_COMMON_HOPTRACE_H
#define QS_COMMON_HOPTRACE_H

#include <stdint.h>

#include "common/clock.h"

enum qs_hop_point {
	QS_HOP_A_RECV = 1,    /* acceptor: a batch of datagrams read (batch) */
	QS_HOP_A_QUEUED = 2,  /* acceptor: frame complete, queued for the parsers */
	QS_HOP_A_PUSHED = 3,  /* acceptor: frame handed to ZeroMQ */
	QS_HOP_P_RECV = 4,    /* parser: frame taken from its batch */
	QS_HOP_P_SENT = 5,    /* parser: EVENTS batch handed on (batch) */
	QS_HOP_S_RECV = 6,    /* shipper: event staged */
	QS_HOP_S_SYNC0 = 8,   /* shipper: group written, fdatasync started (batch; its event count) */
	QS_HOP_S_SYNC1 = 9,   /* shipper: the loop took the finished sync (batch; its ns) */
	QS_HOP_S_ACKED = 10,  /* shipper: ack record added for the event */
	QS_HOP_A_ANSWER = 11, /* acceptor: answer matched to its frame */
	QS_HOP_A_SENT = 12,   /* acceptor: packets handed to the kernel (batch) */
	QS_HOP_A_BLOCKED = 13, /* acceptor: ZeroMQ refused a FRAMES batch (batch; its frames) */
};

extern int qs_hop_fd; /* -1 unless tracing */

/* Opens $QS_HOPTRACE_DIR/<role>.<pid>.hop if that variable is set; call it
 * before entering the sandbox. */
void qs_hop_open(const char *role);
void qs_hop_record(enum qs_hop_point point, uint32_t acceptor, uint64_t ticket);
/* A point whose time was taken earlier (qs_now_ns, common/clock.h): one known only after
 * the hand-over it marks, whose receiver may record its own point first. */
void qs_hop_record_at(enum qs_hop_point point, uint32_t acceptor, uint64_t ticket, uint64_t t_ns);

/* A test of one global when tracing is off, so the points cost nothing
 * measurable (~12 per event). */
static inline void qs_hop(enum qs_hop_point point, uint32_t acceptor, uint64_t ticket)
{
	if (qs_hop_fd >= 0)
		qs_hop_record(point, acceptor, ticket);
}

#endif

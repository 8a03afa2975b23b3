/* Framed messages between two roles over a local stream socket (AF_UNIX),
 * read with read() into its own buffer and written from an evbuffer
 * (evbuffer_write), both driven by events in the owner's own loop (not
 * bufferevents: see ipc/chan.c).
 *
 * Used for the hops that end in a process which only receives from local
 * peers (parser -> shipper, parser|shipper -> acceptor): compared with a
 * ZeroMQ socket there is no I/O thread on either side, so a message costs
 * one wake-up of the receiver instead of three thread hand-overs, and the
 * shipper runs no ZeroMQ at all.
 *
 * On the wire each message is a 4-byte length (host order: both ends run
 * the same binary on one host) followed by that many bytes. What a message
 * contains is ipc/msg.h's business; the receiver still checks every length. */
#ifndef QS_IPC_CHAN_H
#define QS_IPC_CHAN_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct qs_chan_in;
struct qs_chan_out;

/* Builds "<dir>/<name>" with name = printf(fmt, slot); -1 if it does not fit
 * in a sockaddr_un. dir may be "" (chrooted: the endpoints are at the root). */
int qs_chan_path(char *out, size_t outlen, const char *dir, const char *fmt, unsigned slot);

/* Connections one process may hold to a receiving socket (a channel's, the
 * keyholder's): a sender keeps one (two while it reconnects). Every child
 * runs as the same user, so only its pid tells one from another; without a
 * cap one compromised child could take every place or hold gigabytes. */
#define QS_PEER_CONNS_MAX 4
/* The pid at the other end of an accepted AF_UNIX socket, or -1. */
int qs_peer_pid(int fd);

/* ---- receiving side: one listening socket, any number of senders ---- */

typedef void (*qs_chan_msg_fn)(void *arg, const void *msg, size_t len);

/* Binds and listens at path (whatever socket file is there is replaced:
 * the caller owns this name).
 * fn gets every whole message, in order per sender. A sender whose message
 * is longer than max_msg is cut off (logged). NULL on error (logged). */
struct qs_chan_in *qs_chan_listen(struct event_base *base, const char *path, size_t max_msg,
				  qs_chan_msg_fn fn, void *arg);
/* Backpressure: while paused nothing more is delivered, so the socket
 * buffers fill and the senders see "not now". May be called from fn; the
 * rest of the data already read waits. Resuming delivers it on the next
 * loop pass. */
void qs_chan_in_pause(struct qs_chan_in *in, bool paused);
/* Senders connected now. */
unsigned qs_chan_in_peers(const struct qs_chan_in *in);
/* Takes no more senders and no more bytes: the listening socket closes and
 * every connection is shut down, so that a sender's next write fails (it
 * keeps what it had not written wholly: qs_chan_out_keep); what the sockets
 * hold already is still read and delivered, then each connection ends
 * (qs_chan_in_peers falls to 0). */
void qs_chan_in_finish(struct qs_chan_in *in);
void qs_chan_in_free(struct qs_chan_in *in);

/* ---- sending side: one connection, re-established after every loss ---- */

/* Connects to path now and, while there is no connection, again after a
 * delay doubling from 10 ms to 100 ms (qs_chan_out_backoff: another
 * ceiling; a connection that dies within a
 * second does not reset it). on_writable(arg) is called whenever
 * sending may succeed again: when a connection is made by a retry (not the
 * first attempt, which is over when this returns: try a send), and when
 * the bytes waiting for the peer fell to half of limit. */
struct qs_chan_out *qs_chan_connect(struct event_base *base, const char *path, size_t limit,
				    void (*on_writable)(void *arg), void *arg);
/* Retries while there is no connection back off up to max_ms instead of
 * 100 ms: for a peer that comes only when someone says so (an acceptor: the
 * supervisor's QS_CTL_ACCEPTOR), so that waiting for it costs few wake-ups. */
void qs_chan_out_backoff(struct qs_chan_out *out, unsigned max_ms);
/* No connection: try now, and from then on again after 10 ms doubling (the
 * peer was just said to be there). Nothing when connected. */
void qs_chan_out_retry_now(struct qs_chan_out *out);
/* Queues one message for the peer and starts writing it at once.
 * 0 = queued; 1 = not now (no connection, or `limit` bytes already wait);
 * nothing is kept on 1; -1 = cannot ever be sent (over 4 GiB, or out of
 * memory; logged). A connection that breaks loses what was queued on
 * it: every message on these hops is resent by the acceptor if no answer
 * arrives. */
int qs_chan_send(struct qs_chan_out *out, const void *msg, size_t len);
bool qs_chan_connected(const struct qs_chan_out *out);
/* Connections made since qs_chan_connect (a change says: a new one). */
unsigned qs_chan_out_connects(const struct qs_chan_out *out);
/* From now on a message is kept until it is wholly written: one that a lost
 * connection cut short goes again, whole, on the next connection, with
 * everything queued behind it (a receiver drops a message cut short). For a
 * hop whose receiver may be replaced while senders write (the shipper on a
 * reload: it reads what its socket holds before it exits, qs_chan_in_finish),
 * so that the replacement loses nothing. Not for answers: a restarted
 * acceptor must not get the tickets of its predecessor. */
void qs_chan_out_keep(struct qs_chan_out *out);
/* Bytes queued on the connection that the socket has not taken yet. */
size_t qs_chan_unsent(const struct qs_chan_out *out);
void qs_chan_out_free(struct qs_chan_out *out);

#endif

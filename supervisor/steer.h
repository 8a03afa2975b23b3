/* Steering QUIC packets to the acceptor that owns their connection ID.
 *
 * Several acceptor processes share one UDP port through SO_REUSEPORT. Plain
 * SO_REUSEPORT hashes the 4-tuple, so a client that changes address
 * (connection migration, NAT rebinding) or a change in the set of sockets
 * sends a connection's packets to a process that does not know it. Here the
 * supervisor attaches an SK_REUSEPORT BPF program to the group; it reads a
 * "steering key" from the packet's destination connection ID (DCID) and hands
 * the packet to the socket stored at that key in a REUSEPORT_SOCKARRAY map.
 * Packets without one of our CIDs (a client's first Initial, i.e. a new
 * connection) are spread by the kernel's 4-tuple hash over the sockets of the
 * *current generation* only: keys [base, base + count) of a one-entry control
 * map that the supervisor can switch at any time (reload). (The acceptor
 * generation; the other meanings of the word: docs/ARCHITECTURE.md, "Glossary".)
 *
 * The program is built in C as struct bpf_insn (no clang, no libbpf) and
 * loaded with the raw bpf(2) syscall. Creating the maps and loading the
 * program needs CAP_BPF (CAP_SYS_ADMIN before Linux 5.8; CAP_NET_ADMIN is not
 * needed for SK_REUSEPORT programs), Linux >= 4.19 with CONFIG_BPF_SYSCALL,
 * bpf() allowed by seccomp / systemd (SystemCallFilter must list "bpf"), and
 * before 5.11 enough RLIMIT_MEMLOCK. Later map updates through the handle's
 * fds need no capability from Linux 6.5 on; on older kernels with
 * kernel.unprivileged_bpf_disabled set they need CAP_BPF / CAP_SYS_ADMIN too,
 * so either keep CAP_BPF in the supervisor or make all updates before
 * dropping it.
 *
 * When a key picked for a new connection has no socket (its socket closed),
 * or the selected socket is not in this group, the program returns SK_PASS
 * without a selection and the kernel hashes the packet over *all* sockets of
 * the group (old generations included). Keep a socket at every key of the
 * current generation (the supervisor keeps them for the service's life).
 *
 * The CID contract every acceptor follows is in common/steer_cid.h.
 *
 * Where the program reads (offsets from the start of the UDP header, which is
 * where the kernel's SK_REUSEPORT context data begins for UDP):
 *   long header  (byte 8 & 0x80): DCID length at 8+5 must be 18, key at 8+6,
 *                check at 8+7
 *   short header:                 key at 8+1, check at 8+2
 * Payload bytes are read with bpf_skb_load_bytes(), so packets whose payload
 * is not in the skb's linear part (common with real NICs) are read correctly.
 */
#ifndef QS_STEER_H
#define QS_STEER_H

#include <stddef.h>
#include <stdint.h>

#include "common/steer_cid.h"

#define QS_STEER_MAX_KEYS 256 /* keys are one CID byte */

/* Result of qs_udp_open() (supervisor/sockets.c) when n > 1 and steering
 * could not be set up: the reason has been logged, fds[1..n-1] are closed
 * and set to -1, fds[0] is open and usable. Run exactly one acceptor, on
 * fds[0] (slot 0, steering key 0). */
#define QS_STEER_UNAVAILABLE 1

/* One reuseport group's steering state. All fds are owned by the handle
 * (closing the last of them, and every socket of the group, removes the
 * program). The acceptor sockets themselves stay owned by the caller. */
struct qs_steer {
	int sock_map; /* BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, u32 key -> socket */
	int ctl_map;  /* BPF_MAP_TYPE_ARRAY, 1 entry: struct qs_steer_ctl */
	int prog;     /* BPF_PROG_TYPE_SK_REUSEPORT */
};

/* Value of the control map's only entry: the current generation. */
struct qs_steer_ctl {
	uint32_t base;  /* first key of the current generation */
	uint32_t count; /* number of keys; 0 = leave new connections to the kernel hash */
};

/* Sets up steering for a reuseport group: creates the maps, loads the program,
 * stores fds[i] at key key_base + i, makes [key_base, key_base + n) the current
 * generation, and attaches the program to the group (through fds[0]).
 * fds must be bound UDP sockets (IPv4 or IPv6) with SO_REUSEPORT, all in the
 * same group; key_base + n <= QS_STEER_MAX_KEYS; n >= 1.
 * Returns 0, or -1 with a one-line reason in err (nothing is attached then,
 * and *st holds no fds). */
int qs_steer_attach(struct qs_steer *st, const int *fds, unsigned n, unsigned key_base, char *err,
		    size_t errlen);

/* Stores socket `fd` at `key` (adds, or replaces what was there), e.g. the
 * sockets of a new generation before qs_steer_set_current(). A socket can be
 * at one key only (the kernel says EBUSY): to move one, clear its old key
 * first. A socket that is closed leaves the map by itself. The socket must be
 * in the same reuseport group (same address and port, same uid), else the
 * program's selection fails and such packets fall back to the kernel's hash.
 * Returns 0, or -1 with a reason in err. */
int qs_steer_set_socket(struct qs_steer *st, unsigned key, int fd, char *err, size_t errlen);

/* Removes whatever socket is at `key` (no error if there was none). */
int qs_steer_clear_socket(struct qs_steer *st, unsigned key, char *err, size_t errlen);

/* Switches new connections to keys [base, base + count). Packets whose DCID
 * carries any other key present in the map still go to that key's socket, so
 * the previous generation drains its own connections. Returns 0 or -1. */
int qs_steer_set_current(struct qs_steer *st, unsigned base, unsigned count, char *err,
			 size_t errlen);

/* Detaches the program from the group of `any_fd` (kernel >= 5.8; -1 with
 * a reason otherwise) and closes the handle. any_fd may be -1: only close. */
int qs_steer_detach(struct qs_steer *st, int any_fd, char *err, size_t errlen);

/* Closes the handle's fds. The program stays attached to the group (the
 * group holds its own reference) until every socket of the group is closed. */
void qs_steer_close(struct qs_steer *st);

/* ---- For the supervisor ---- */

/* The group set up by qs_udp_open() for the acceptor sockets (keys 0..n-1,
 * current generation [0, n)); NULL when steering is not in use. */
struct qs_steer *qs_steer_main(void);

/* Called by qs_udp_open(): attaches steering to fds[0..n-1] with keys 0..n-1
 * and keeps the handle for qs_steer_main() (with n == 1 too: a reload then
 * runs the next acceptor generation beside the old one; failing is not an
 * error for one socket). Returns 0; or, when n > 1, logs
 * why it cannot, closes fds[1..n-1] (setting them to -1) so the kernel no
 * longer hashes packets to sockets nobody will read, and returns
 * QS_STEER_UNAVAILABLE. */
int qs_steer_udp_group(int *fds, unsigned n);

#endif

/* The connection-ID contract between the acceptors, which issue connection
 * IDs, and the supervisor's SK_REUSEPORT program (supervisor/steer.h), which
 * steers packets by them. Shared code: neither side includes the other's.
 *
 * What an acceptor must put in every CID it issues:
 *
 *   length   exactly QS_STEER_CID_LEN (18) bytes
 *   byte 0   the steering key of the acceptor's socket (0..255)
 *   byte 1   byte 0 ^ QS_STEER_CID_CHECK (0x5a)
 *   bytes 2.. anything (random, or encrypted/authenticated by the acceptor)
 *
 * That applies to the SCID of the first server packet, to every
 * NEW_CONNECTION_ID and to the SCID of Retry packets. Use
 * qs_steer_cid_prefix(). The check byte makes a client's random initial DCID
 * look like one of ours only once in 256 (and only if it is 18 bytes long);
 * such a packet then goes to the socket at that key if one exists, which is
 * still an acceptor of this service.
 */
#ifndef QS_COMMON_STEER_CID_H
#define QS_COMMON_STEER_CID_H

#include <stddef.h>
#include <stdint.h>

#define QS_STEER_CID_LEN 18
#define QS_STEER_CID_CHECK 0x5a

/* Writes the 2-byte steering prefix of a server CID for `key` (0..255). */
static inline void qs_steer_cid_prefix(uint8_t cid[2], unsigned key)
{
	cid[0] = (uint8_t)key;
	cid[1] = (uint8_t)(key ^ QS_STEER_CID_CHECK);
}

/* The steering key a CID carries, or -1 if it is not one of ours
 * (same test as the BPF program). */
static inline int qs_steer_cid_key(const uint8_t *cid, size_t len)
{
	if (len != QS_STEER_CID_LEN || (uint8_t)(cid[0] ^ QS_STEER_CID_CHECK) != cid[1])
		return -1;
	return cid[0];
}

#endif

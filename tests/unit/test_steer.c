/* Unit test of the SK_REUSEPORT steering program (supervisor/steer.c) on real
 * sockets: reuseport UDP groups on 127.0.0.1 and ::1, crafted QUIC-like
 * packets from client sockets, and a count of where each packet arrives.
 * Needs bpf() with CAP_BPF (CAP_SYS_ADMIN before Linux 5.8); exits 77 (skipped) when the kernel
 * or the environment refuses it. Summary line "N passed, N failed". */
#include "tests/unit/check.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/steer.h"




#define MAXSOCK 8
#define ANY 0xff /* tag: no particular socket expected */

/* ---- sockets ---- */

struct group {
	int family;
	struct sockaddr_storage addr; /* the shared address, port filled in */
	socklen_t len;
	int fds[MAXSOCK];
	unsigned n;
};

static void loopback(int family, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		*len = sizeof(*s);
	}
}

/* Binds one more SO_REUSEPORT socket to g's address (port 0 the first time). */
static int group_add(struct group *g)
{
	int fd = socket(g->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1, sz = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (bind(fd, (struct sockaddr *)&g->addr, g->len) != 0) {
		close(fd);
		return -1;
	}
	if (g->n == 0) {
		socklen_t l = sizeof(g->addr);
		getsockname(fd, (struct sockaddr *)&g->addr, &l);
	}
	g->fds[g->n++] = fd;
	return fd;
}

static int group_open(struct group *g, int family, unsigned n)
{
	memset(g, 0, sizeof(*g));
	g->family = family;
	loopback(family, &g->addr, &g->len);
	for (unsigned i = 0; i < n; i++)
		if (group_add(g) < 0)
			return -1;
	return 0;
}

static void group_close(struct group *g)
{
	for (unsigned i = 0; i < g->n; i++)
		if (g->fds[i] >= 0)
			close(g->fds[i]);
	g->n = 0;
}

static int client(int family)
{
	return socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

/* ---- packets ---- */

static void rnd(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(random() >> 7);
}

/* A random DCID that is not one of ours. */
static void foreign_cid(uint8_t *cid, size_t len)
{
	rnd(cid, len);
	if (len >= 2 && (uint8_t)(cid[0] ^ QS_STEER_CID_CHECK) == cid[1])
		cid[1] ^= 1;
}

static void our_cid(uint8_t cid[QS_STEER_CID_LEN], unsigned key)
{
	rnd(cid, QS_STEER_CID_LEN);
	qs_steer_cid_prefix(cid, key);
}

/* Every packet ends with a tag byte: the socket index it must reach, or ANY. */
static size_t short_pkt(uint8_t *p, const uint8_t cid[QS_STEER_CID_LEN], uint8_t tag)
{
	size_t n = 0;
	p[n++] = 0x40 | (uint8_t)(random() & 0x3f);
	memcpy(p + n, cid, QS_STEER_CID_LEN);
	n += QS_STEER_CID_LEN;
	rnd(p + n, 24); /* packet number + protected payload */
	n += 24;
	p[n++] = tag;
	return n;
}

static size_t long_pkt(uint8_t *p, const uint8_t *dcid, size_t dcid_len, uint8_t tag)
{
	size_t n = 0;
	p[n++] = 0xc0 | (uint8_t)(random() & 0x33); /* Initial, random reserved/pn bits */
	p[n++] = 0, p[n++] = 0, p[n++] = 0, p[n++] = 1; /* QUIC v1 */
	p[n++] = (uint8_t)dcid_len;
	memcpy(p + n, dcid, dcid_len);
	n += dcid_len;
	p[n++] = 8; /* SCID */
	rnd(p + n, 8);
	n += 8;
	rnd(p + n, 60);
	n += 60;
	p[n++] = tag;
	return n;
}

static int send_to(int cfd, const struct group *g, const uint8_t *p, size_t n)
{
	return sendto(cfd, p, n, 0, (const struct sockaddr *)&g->addr, g->len) == (ssize_t)n ? 0 : -1;
}

/* Where packets arrived since the last collect(). */
struct tally {
	unsigned on[MAXSOCK]; /* per socket */
	unsigned total;
	unsigned misplaced; /* tag names another socket */
};

static void collect(const struct group *g, struct tally *t)
{
	memset(t, 0, sizeof(*t));
	struct pollfd pf[MAXSOCK];
	for (;;) {
		for (unsigned i = 0; i < g->n; i++) /* fd -1 is ignored by poll */
			pf[i] = (struct pollfd){.fd = g->fds[i], .events = POLLIN};
		if (poll(pf, g->n, 100) <= 0)
			return; /* 100 ms without a packet: everything sent has arrived */
		for (unsigned i = 0; i < g->n; i++) {
			uint8_t buf[2048];
			if (g->fds[i] < 0)
				continue;
			ssize_t r;
			while ((r = recv(g->fds[i], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
				t->on[i]++;
				t->total++;
				uint8_t tag = buf[r - 1];
				if (tag != ANY && tag != i)
					t->misplaced++;
			}
		}
	}
}

/* ---- tests ---- */

static void test_cid_contract(void)
{
	current_test = "cid_contract";
	int ok = 1;
	for (unsigned k = 0; k < QS_STEER_MAX_KEYS; k++) {
		uint8_t cid[QS_STEER_CID_LEN];
		our_cid(cid, k);
		ok &= cid[0] == k && cid[1] == (k ^ 0x5a) && qs_steer_cid_key(cid, sizeof(cid)) == (int)k;
		ok &= qs_steer_cid_key(cid, 8) == -1; /* wrong length */
		cid[1] ^= 0x80;
		ok &= qs_steer_cid_key(cid, sizeof(cid)) == -1;
	}
	CHECK(ok);
}

/* Short-header packets for keys 0..n-1 reach exactly the socket at that key.
 * A decoy (a valid prefix for another key 8 bytes further on) would win if the
 * program's data did not start at the UDP header: this checks the offset. */
static void test_short_header(struct group *g, unsigned first, unsigned n, unsigned per_key)
{
	current_test = "short_header";
	for (unsigned k = first; k < first + n; k++) {
		int c = client(g->family);
		for (unsigned j = 0; j < per_key; j++) {
			uint8_t cid[QS_STEER_CID_LEN], p[128];
			our_cid(cid, k);
			size_t len = short_pkt(p, cid, (uint8_t)k);
			unsigned decoy = (k + 1 - first) % n + first;
			p[8] = 0x40, p[9] = (uint8_t)decoy, p[10] = (uint8_t)(decoy ^ QS_STEER_CID_CHECK);
			CHECK(send_to(c, g, p, len) == 0);
		}
		close(c);
		struct tally t;
		collect(g, &t);
		CHECK_EQ(t.on[k], per_key);
		CHECK_EQ(t.total, per_key);
		CHECK_EQ(t.misplaced, 0);
	}
}

/* Long-header packets with one of our 18-byte DCIDs (Handshake, later Initials)
 * reach the socket at their key, whatever the source port. */
static void test_long_header_ours(struct group *g, unsigned n)
{
	current_test = "long_header_ours";
	for (unsigned j = 0; j < 100; j++) {
		unsigned k = j % n;
		int c = client(g->family);
		uint8_t cid[QS_STEER_CID_LEN], p[160];
		our_cid(cid, k);
		CHECK(send_to(c, g, p, long_pkt(p, cid, sizeof(cid), (uint8_t)k)) == 0);
		close(c);
	}
	struct tally t;
	collect(g, &t);
	CHECK_EQ(t.total, 100);
	CHECK_EQ(t.misplaced, 0);
}

/* A client that changes address (new socket, new source port) keeps its DCID
 * and keeps reaching the same socket. */
static void test_migration(struct group *g, unsigned key)
{
	current_test = "migration";
	uint8_t cid[QS_STEER_CID_LEN];
	our_cid(cid, key);
	for (unsigned port = 0; port < 40; port++) {
		int c = client(g->family);
		for (int j = 0; j < 5; j++) {
			uint8_t p[128];
			CHECK(send_to(c, g, p, short_pkt(p, cid, (uint8_t)key)) == 0);
		}
		close(c);
	}
	struct tally t;
	collect(g, &t);
	CHECK_EQ(t.total, 200);
	CHECK_EQ(t.on[key], 200);
	CHECK_EQ(t.misplaced, 0);
}

/* New connections (Initials with client-chosen DCIDs, each from a new port)
 * spread over the current generation's sockets [first, first+n) and nowhere
 * else: each gets some, none more than half. */
static void test_new_connections(struct group *g, unsigned first, unsigned n)
{
	current_test = "new_connections";
	const unsigned total = 400;
	for (unsigned j = 0; j < total; j++) {
		int c = client(g->family);
		uint8_t dcid[20], p[160];
		size_t dl = (j & 1) ? 8 : QS_STEER_CID_LEN; /* lengths clients use */
		foreign_cid(dcid, dl);
		CHECK(send_to(c, g, p, long_pkt(p, dcid, dl, ANY)) == 0);
		close(c);
	}
	struct tally t;
	collect(g, &t);
	CHECK_EQ(t.total, total);
	unsigned in_gen = 0;
	for (unsigned i = first; i < first + n; i++) {
		CHECK(t.on[i] > 0);
		CHECK(t.on[i] <= total / 2);
		in_gen += t.on[i];
	}
	CHECK_EQ(in_gen, total);
	printf("  %s: new connections per socket:", current_test);
	for (unsigned i = 0; i < g->n; i++)
		printf(" %u", t.on[i]);
	printf("\n");
}

/* A client's retransmitted Initials (same 4-tuple, DCIDs not ours) all go
 * to one socket, and a short-header packet with a foreign DCID is delivered. */
static void test_same_tuple(struct group *g)
{
	current_test = "same_tuple";
	int c = client(g->family);
	for (unsigned j = 0; j < 30; j++) {
		uint8_t dcid[QS_STEER_CID_LEN], p[160];
		foreign_cid(dcid, sizeof(dcid));
		CHECK(send_to(c, g, p, long_pkt(p, dcid, sizeof(dcid), ANY)) == 0);
	}
	close(c);
	struct tally t;
	collect(g, &t);
	CHECK_EQ(t.total, 30);
	unsigned max = 0;
	for (unsigned i = 0; i < g->n; i++)
		max = t.on[i] > max ? t.on[i] : max;
	CHECK_EQ(max, 30);

	/* Tiny and odd packets must still be delivered (SK_PASS, never dropped). */
	c = client(g->family);
	uint8_t tiny[3] = {0x40, 1, ANY}, odd[QS_STEER_CID_LEN + 8];
	CHECK(send_to(c, g, tiny, sizeof(tiny)) == 0);
	foreign_cid(odd, sizeof(odd));
	odd[sizeof(odd) - 1] = ANY;
	CHECK(send_to(c, g, odd, sizeof(odd)) == 0);
	close(c);
	collect(g, &t);
	CHECK_EQ(t.total, 2);
}

/* Reload: sockets at keys [4, 8) become the current generation. New
 * connections go only to them; DCIDs of the old keys still reach the old
 * sockets; an 18-byte DCID with a valid prefix for a key that has no socket
 * is treated as a new connection. */
static void test_generation_switch(struct group *g, struct qs_steer *st)
{
	current_test = "generation_switch";
	char err[512] = "";
	for (unsigned k = 4; k < 8; k++) {
		int fd = group_add(g);
		CHECK(fd >= 0);
		int rc = qs_steer_set_socket(st, k, fd, err, sizeof(err));
		CHECK_EQ(rc, 0);
		if (rc)
			fprintf(stderr, "  %s\n", err);
	}
	CHECK_EQ(qs_steer_set_current(st, 4, 4, err, sizeof(err)), 0);
	test_new_connections(g, 4, 4);
	current_test = "generation_switch";
	test_short_header(g, 0, 4, 50); /* old generation drains */
	test_short_header(g, 4, 4, 50);
	current_test = "generation_switch";

	int c = client(g->family);
	for (unsigned j = 0; j < 50; j++) {
		uint8_t cid[QS_STEER_CID_LEN], p[128];
		our_cid(cid, 200); /* no socket at key 200 */
		CHECK(send_to(c, g, p, short_pkt(p, cid, ANY)) == 0);
	}
	close(c);
	struct tally t;
	collect(g, &t);
	CHECK_EQ(t.total, 50);
	CHECK_EQ(t.on[4] + t.on[5] + t.on[6] + t.on[7], 50);

	/* A socket at a key can be replaced and removed. A socket can be at one
	 * key only (the kernel refuses a second one with EBUSY): move it. */
	CHECK_EQ(qs_steer_set_socket(st, 2, g->fds[3], err, sizeof(err)), -1);
	CHECK(strstr(err, "EBUSY") != NULL);
	CHECK_EQ(qs_steer_clear_socket(st, 3, err, sizeof(err)), 0);
	CHECK_EQ(qs_steer_set_socket(st, 2, g->fds[3], err, sizeof(err)), 0);
	c = client(g->family);
	for (unsigned j = 0; j < 20; j++) {
		uint8_t cid[QS_STEER_CID_LEN], p[128];
		our_cid(cid, 2);
		CHECK(send_to(c, g, p, short_pkt(p, cid, 3)) == 0);
	}
	close(c);
	collect(g, &t);
	CHECK_EQ(t.on[3], 20);
	CHECK_EQ(qs_steer_clear_socket(st, 2, err, sizeof(err)), 0);
	CHECK_EQ(qs_steer_clear_socket(st, 2, err, sizeof(err)), 0); /* already gone: fine */

	/* An old-generation socket that is closed leaves the map by itself: its
	 * DCIDs are then treated as new connections of the current generation. */
	close(g->fds[1]);
	g->fds[1] = -1;
	c = client(g->family);
	for (unsigned j = 0; j < 20; j++) {
		uint8_t cid[QS_STEER_CID_LEN], p[128];
		our_cid(cid, 1);
		CHECK(send_to(c, g, p, short_pkt(p, cid, ANY)) == 0);
	}
	close(c);
	collect(g, &t);
	CHECK_EQ(t.total, 20);
	CHECK_EQ(t.on[4] + t.on[5] + t.on[6] + t.on[7], 20);

	/* Out-of-range arguments are refused. */
	CHECK_EQ(qs_steer_set_socket(st, 256, g->fds[0], err, sizeof(err)), -1);
	CHECK_EQ(qs_steer_set_current(st, 250, 10, err, sizeof(err)), -1);
}

/* The whole scenario on one address family. Returns -1 if the family has no
 * loopback here. */
static int run_family(int family)
{
	struct group g;
	const char *name = family == AF_INET ? "IPv4" : "IPv6";
	if (group_open(&g, family, 4) < 0) {
		printf("  %s: no loopback address (%s), not tested\n", name, strerror(errno));
		group_close(&g);
		return -1;
	}
	printf("%s on port %u\n", name,
	       ntohs(family == AF_INET ? ((struct sockaddr_in *)&g.addr)->sin_port
				       : ((struct sockaddr_in6 *)&g.addr)->sin6_port));
	struct qs_steer st;
	char err[512] = "";
	current_test = "attach";
	int rc = qs_steer_attach(&st, g.fds, 4, 0, err, sizeof(err));
	if (rc != 0 && (errno == EPERM || errno == EACCES)) {
		printf("SKIP: %s\n", err); /* e.g. bpf() allowed for maps only */
		exit(77);
	}
	CHECK_EQ(rc, 0);
	if (rc != 0) {
		fprintf(stderr, "  attach: %s\n", err);
		group_close(&g);
		return 0;
	}
	test_short_header(&g, 0, 4, 200);
	test_long_header_ours(&g, 4);
	test_migration(&g, 2);
	test_new_connections(&g, 0, 4);
	test_same_tuple(&g);
	test_generation_switch(&g, &st);

	current_test = "detach";
	rc = qs_steer_detach(&st, g.fds[0], err, sizeof(err));
	if (rc != 0 && strstr(err, "5.8"))
		printf("  detach: %s (old kernel, not counted)\n", err);
	else
		CHECK_EQ(rc, 0);
	group_close(&g);
	return 0;
}

/* The supervisor's entry point: steering on a real group; and the fallback
 * contract when it cannot be set up (here: sockets without SO_REUSEPORT). */
static void test_udp_group(void)
{
	current_test = "udp_group";
	struct group one, g;
	/* One acceptor gets steering too (a reload can then run two generations). */
	CHECK(group_open(&one, AF_INET, 1) == 0);
	int fd1[1] = {one.fds[0]};
	CHECK_EQ(qs_steer_udp_group(fd1, 1), 0);
	CHECK(qs_steer_main() != NULL);
	CHECK(fd1[0] == one.fds[0]);
	group_close(&one);
	/* A socket can be in one steering map only: a new group for the next case. */
	CHECK(group_open(&g, AF_INET, 3) == 0);
	int fds[3] = {g.fds[0], g.fds[1], g.fds[2]};
	CHECK_EQ(qs_steer_udp_group(fds, 3), 0);
	CHECK(qs_steer_main() != NULL);
	CHECK(fds[1] == g.fds[1] && fds[2] == g.fds[2]);
	group_close(&g);

	current_test = "udp_group_fallback";
	int plain[3];
	for (int i = 0; i < 3; i++)
		plain[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int keep = plain[0];
	CHECK_EQ(qs_steer_udp_group(plain, 3), QS_STEER_UNAVAILABLE);
	CHECK_EQ(plain[0], keep);
	CHECK(fcntl(plain[0], F_GETFD) >= 0);
	CHECK_EQ(plain[1], -1);
	CHECK_EQ(plain[2], -1);
	close(plain[0]);

	/* A plain error message for a socket that cannot go into the map. */
	struct qs_steer st;
	char err[512] = "";
	int lone = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK_EQ(qs_steer_attach(&st, &lone, 1, 0, err, sizeof(err)), -1);
	CHECK(strstr(err, "SO_REUSEPORT") != NULL);
	CHECK(st.prog == -1 && st.sock_map == -1 && st.ctl_map == -1);
	CHECK_EQ(qs_steer_attach(&st, &lone, 1, 256, err, sizeof(err)), -1);
	close(lone);
}

/* Whether this environment lets us create the map at all; if not, why. */
static const char *bpf_unavailable(void)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_REUSEPORT_SOCKARRAY;
	a.key_size = 4;
	a.value_size = 8;
	a.max_entries = 1;
	int fd = (int)syscall(__NR_bpf, BPF_MAP_CREATE, &a, sizeof(a));
	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	static char why[256];
	snprintf(why, sizeof(why), "bpf(BPF_MAP_CREATE, REUSEPORT_SOCKARRAY): %s%s", strerror(errno),
		 errno == EPERM ? " (needs CAP_BPF; seccomp?)"
		 : errno == ENOSYS ? " (no bpf() syscall)"
		 : errno == EINVAL ? " (kernel older than 4.19?)" : "");
	return why;
}

int main(void)
{
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	const char *why = bpf_unavailable();
	if (why) {
		printf("SKIP: %s\n", why);
		return 77;
	}
	test_cid_contract();
	int v4 = run_family(AF_INET);
	run_family(AF_INET6);
	CHECK(v4 == 0);
	test_udp_group();
	return check_report();
}

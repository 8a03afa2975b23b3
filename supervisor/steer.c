/* SK_REUSEPORT steering by connection ID: the program as struct bpf_insn,
 * loaded with the raw bpf(2) syscall. See steer.h for the contract. */
#include "supervisor/steer.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif
#ifndef ENOTSUPP
#define ENOTSUPP 524 /* kernel-internal, but bpf() can return it */
#endif

#define UDP_HDR_LEN 8 /* SK_REUSEPORT ctx data starts at the UDP header */

/* ---- instruction macros (on top of <linux/bpf.h>) ---- */

#define I_MOV64_REG(d, s)                                                                          \
	((struct bpf_insn){.code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = (d), .src_reg = (s)})
#define I_MOV64_IMM(d, i)                                                                          \
	((struct bpf_insn){.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = (d), .imm = (i)})
#define I_ALU64_IMM(op, d, i)                                                                      \
	((struct bpf_insn){.code = BPF_ALU64 | (op) | BPF_K, .dst_reg = (d), .imm = (i)})
#define I_ALU32_IMM(op, d, i)                                                                      \
	((struct bpf_insn){.code = BPF_ALU | (op) | BPF_K, .dst_reg = (d), .imm = (i)})
#define I_ALU32_REG(op, d, s)                                                                      \
	((struct bpf_insn){.code = BPF_ALU | (op) | BPF_X, .dst_reg = (d), .src_reg = (s)})
/* d = *(size *)(s + off) */
#define I_LDX(size, d, s, o)                                                                       \
	((struct bpf_insn){.code = BPF_LDX | (size) | BPF_MEM, .dst_reg = (d), .src_reg = (s), .off = (o)})
/* *(size *)(d + off) = s */
#define I_STX(size, d, o, s)                                                                       \
	((struct bpf_insn){.code = BPF_STX | (size) | BPF_MEM, .dst_reg = (d), .src_reg = (s), .off = (o)})
/* *(size *)(d + off) = imm */
#define I_ST(size, d, o, i)                                                                        \
	((struct bpf_insn){.code = BPF_ST | (size) | BPF_MEM, .dst_reg = (d), .off = (o), .imm = (i)})
/* Two instructions: d = address of the map with file descriptor fd. */
#define I_LD_MAP_FD(d, fd)                                                                         \
	((struct bpf_insn){.code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = (d),                      \
			   .src_reg = BPF_PSEUDO_MAP_FD, .imm = (fd)}),                            \
		((struct bpf_insn){0})
#define I_CALL(fn) ((struct bpf_insn){.code = BPF_JMP | BPF_CALL, .imm = (fn)})
#define I_EXIT() ((struct bpf_insn){.code = BPF_JMP | BPF_EXIT})
/* Conditional jumps to a label; the offset is filled in by resolve(). */
#define I_JMP_IMM(op, d, i, label)                                                                 \
	((struct bpf_insn){.code = BPF_JMP | (op) | BPF_K, .dst_reg = (d), .imm = (i), .off = (label)})
#define I_JMP_REG(op, d, s, label)                                                                 \
	((struct bpf_insn){.code = BPF_JMP | (op) | BPF_X, .dst_reg = (d), .src_reg = (s),         \
			   .off = (label)})
#define I_JA(label) ((struct bpf_insn){.code = BPF_JMP | BPF_JA, .off = (label)})
/* A label is a pseudo-instruction removed by resolve(). */
#define I_LABEL(label) ((struct bpf_insn){.code = 0xff, .off = (label)})

enum { L_LONG = 1, L_CHECK, L_NEW, L_PASS, L_COUNT };

/* Replaces label numbers in jump offsets by relative offsets and drops the
 * label pseudo-instructions. Returns the new length, or 0 on a bad label. */
static size_t resolve(struct bpf_insn *p, size_t n)
{
	int at[L_COUNT];
	size_t out = 0;
	for (int i = 0; i < L_COUNT; i++)
		at[i] = -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i].code == 0xff)
			at[p[i].off] = (int)out;
		else
			p[out++] = p[i];
	}
	for (size_t i = 0; i < out; i++) {
		uint8_t cls = BPF_CLASS(p[i].code), op = BPF_OP(p[i].code);
		if (cls != BPF_JMP || op == BPF_CALL || op == BPF_EXIT)
			continue;
		int l = p[i].off;
		if (l <= 0 || l >= L_COUNT || at[l] < 0)
			return 0;
		p[i].off = (int16_t)(at[l] - (int)i - 1);
	}
	return out;
}

/* The program. r6 = ctx; the stack holds the first 8 bytes of the UDP payload
 * at fp-8 and the u32 map key at fp-16.
 *
 *   if (skb_load_bytes(ctx, 8, buf, 8) == 0) {
 *       if (buf[0] & 0x80) { if (buf[5] != 18) goto new; key = buf[6]; chk = buf[7]; }
 *       else               { key = buf[1]; chk = buf[2]; }
 *       if ((chk ^ 0x5a) == key && sk_select_reuseport(ctx, socks, &key, 0) == 0)
 *           return SK_PASS;
 *   }
 * new:
 *   ctl = map_lookup_elem(ctl_map, &0);
 *   if (ctl && ctl->count) {
 *       key = ctl->base + ctx->hash % ctl->count;
 *       sk_select_reuseport(ctx, socks, &key, 0);  // on failure: kernel's hash
 *   }
 *   return SK_PASS;
 */
static size_t build_prog(struct bpf_insn *p, int socks, int ctl)
{
	const struct bpf_insn code[] = {
		I_MOV64_REG(BPF_REG_6, BPF_REG_1),
		I_MOV64_IMM(BPF_REG_2, UDP_HDR_LEN),
		I_MOV64_REG(BPF_REG_3, BPF_REG_10),
		I_ALU64_IMM(BPF_ADD, BPF_REG_3, -8),
		I_MOV64_IMM(BPF_REG_4, 8),
		I_CALL(BPF_FUNC_skb_load_bytes),
		I_JMP_IMM(BPF_JNE, BPF_REG_0, 0, L_NEW),
		I_LDX(BPF_B, BPF_REG_1, BPF_REG_10, -8),
		I_JMP_IMM(BPF_JSET, BPF_REG_1, 0x80, L_LONG),
		/* short header: DCID at 1 */
		I_LDX(BPF_B, BPF_REG_2, BPF_REG_10, -8 + 1),
		I_LDX(BPF_B, BPF_REG_3, BPF_REG_10, -8 + 2),
		I_JA(L_CHECK),
		I_LABEL(L_LONG),
		/* long header: 1 flags, 4 version, DCID length at 5, DCID at 6 */
		I_LDX(BPF_B, BPF_REG_1, BPF_REG_10, -8 + 5),
		I_JMP_IMM(BPF_JNE, BPF_REG_1, QS_STEER_CID_LEN, L_NEW),
		I_LDX(BPF_B, BPF_REG_2, BPF_REG_10, -8 + 6),
		I_LDX(BPF_B, BPF_REG_3, BPF_REG_10, -8 + 7),
		I_LABEL(L_CHECK),
		I_ALU32_IMM(BPF_XOR, BPF_REG_3, QS_STEER_CID_CHECK),
		I_JMP_REG(BPF_JNE, BPF_REG_2, BPF_REG_3, L_NEW),
		I_STX(BPF_W, BPF_REG_10, -16, BPF_REG_2),
		I_MOV64_REG(BPF_REG_1, BPF_REG_6),
		I_LD_MAP_FD(BPF_REG_2, socks),
		I_MOV64_REG(BPF_REG_3, BPF_REG_10),
		I_ALU64_IMM(BPF_ADD, BPF_REG_3, -16),
		I_MOV64_IMM(BPF_REG_4, 0),
		I_CALL(BPF_FUNC_sk_select_reuseport),
		I_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, L_PASS),
		I_LABEL(L_NEW),
		/* a new connection (or a key with no socket): current generation */
		I_ST(BPF_W, BPF_REG_10, -16, 0),
		I_LD_MAP_FD(BPF_REG_1, ctl),
		I_MOV64_REG(BPF_REG_2, BPF_REG_10),
		I_ALU64_IMM(BPF_ADD, BPF_REG_2, -16),
		I_CALL(BPF_FUNC_map_lookup_elem),
		I_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, L_PASS),
		I_LDX(BPF_W, BPF_REG_1, BPF_REG_0, offsetof(struct qs_steer_ctl, base)),
		I_LDX(BPF_W, BPF_REG_2, BPF_REG_0, offsetof(struct qs_steer_ctl, count)),
		I_JMP_IMM(BPF_JEQ, BPF_REG_2, 0, L_PASS),
		I_LDX(BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct sk_reuseport_md, hash)),
		I_ALU32_REG(BPF_MOD, BPF_REG_3, BPF_REG_2),
		I_ALU32_REG(BPF_ADD, BPF_REG_3, BPF_REG_1),
		I_STX(BPF_W, BPF_REG_10, -16, BPF_REG_3),
		I_MOV64_REG(BPF_REG_1, BPF_REG_6),
		I_LD_MAP_FD(BPF_REG_2, socks),
		I_MOV64_REG(BPF_REG_3, BPF_REG_10),
		I_ALU64_IMM(BPF_ADD, BPF_REG_3, -16),
		I_MOV64_IMM(BPF_REG_4, 0),
		I_CALL(BPF_FUNC_sk_select_reuseport),
		I_LABEL(L_PASS),
		I_MOV64_IMM(BPF_REG_0, SK_PASS),
		I_EXIT(),
	};
	memcpy(p, code, sizeof(code));
	return resolve(p, sizeof(code) / sizeof(code[0]));
}

#define PROG_MAX 64

/* ---- bpf(2) ---- */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *why(int e)
{
	switch (e) {
	case EPERM:
	case EACCES:
		return "not permitted: needs CAP_BPF (CAP_SYS_ADMIN before Linux 5.8), bpf() "
		       "allowed by seccomp/SystemCallFilter, and on kernels before 5.11 enough "
		       "RLIMIT_MEMLOCK";
	case ENOSYS:
		return "the bpf() system call is not available (kernel without CONFIG_BPF_SYSCALL, "
		       "or filtered by seccomp)";
	default:
		return strerror(e);
	}
}

static int map_create(uint32_t type, uint32_t value_size, uint32_t max, const char *name,
		      char *err, size_t errlen)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = type;
	a.key_size = sizeof(uint32_t);
	a.value_size = value_size;
	a.max_entries = max;
	snprintf(a.map_name, sizeof(a.map_name), "%s", name);
	int fd = (int)sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0 && errno == EINVAL) { /* kernels before 4.15 know no map names */
		memset(a.map_name, 0, sizeof(a.map_name));
		fd = (int)sys_bpf(BPF_MAP_CREATE, &a);
	}
	if (fd < 0) {
		int e = errno;
		if (e == EINVAL && type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY)
			fail(err, errlen,
			     "bpf(BPF_MAP_CREATE, REUSEPORT_SOCKARRAY): %s (needs Linux >= 4.19)",
			     strerror(e));
		else
			fail(err, errlen, "bpf(BPF_MAP_CREATE, %s): %s", name, why(e));
		errno = e;
	}
	return fd;
}

static int map_update(int map, uint32_t key, const void *value, uint64_t flags)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)map;
	a.key = (uint64_t)(uintptr_t)&key;
	a.value = (uint64_t)(uintptr_t)value;
	a.flags = flags;
	return (int)sys_bpf(BPF_MAP_UPDATE_ELEM, &a);
}

/* The last non-empty line of the verifier log, which names the problem. */
static const char *last_line(char *log)
{
	size_t n = strlen(log);
	while (n && (log[n - 1] == '\n' || log[n - 1] == ' '))
		log[--n] = 0;
	char *nl = strrchr(log, '\n');
	return nl ? nl + 1 : log;
}

static int prog_load(const struct bpf_insn *insns, size_t n, char *err, size_t errlen)
{
	static char log[65536];
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
	a.expected_attach_type = BPF_SK_REUSEPORT_SELECT;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.insn_cnt = (uint32_t)n;
	a.license = (uint64_t)(uintptr_t) "GPL";
	snprintf(a.prog_name, sizeof(a.prog_name), "qs_steer");
	int fd = (int)sys_bpf(BPF_PROG_LOAD, &a);
	if (fd >= 0)
		return fd;
	int e = errno;
	if (e == EPERM || e == EACCES || e == ENOSYS) {
		fail(err, errlen, "bpf(BPF_PROG_LOAD, SK_REUSEPORT): %s", why(e));
		errno = e;
		return -1;
	}
	/* Ask again with the verifier's log for the reason. */
	log[0] = 0;
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	fd = (int)sys_bpf(BPF_PROG_LOAD, &a);
	if (fd >= 0)
		return fd;
	e = errno;
	fail(err, errlen, "bpf(BPF_PROG_LOAD, SK_REUSEPORT) rejected: %s%s%s", strerror(e),
	     log[0] ? ": " : " (kernel too old for SK_REUSEPORT programs? needs Linux >= 4.19)",
	     log[0] ? last_line(log) : "");
	errno = e;
	return -1;
}

/* ---- API ---- */

void qs_steer_close(struct qs_steer *st)
{
	if (!st)
		return;
	if (st->prog >= 0)
		close(st->prog);
	if (st->ctl_map >= 0)
		close(st->ctl_map);
	if (st->sock_map >= 0)
		close(st->sock_map);
	st->prog = st->ctl_map = st->sock_map = -1;
}

int qs_steer_set_socket(struct qs_steer *st, unsigned key, int fd, char *err, size_t errlen)
{
	if (key >= QS_STEER_MAX_KEYS) {
		fail(err, errlen, "steering key %u out of range (max %u)", key, QS_STEER_MAX_KEYS - 1);
		errno = EINVAL;
		return -1;
	}
	uint64_t v = (uint64_t)fd;
	if (map_update(st->sock_map, key, &v, BPF_ANY) == 0)
		return 0;
	int e = errno;
	if (e == EINVAL || e == ENOTSUPP || e == EOPNOTSUPP)
		fail(err, errlen,
		     "cannot put socket fd %d at steering key %u: %s (must be a bound UDP or TCP "
		     "socket with SO_REUSEPORT)",
		     fd, key, e == EINVAL ? strerror(e) : "unsupported socket");
	else if (e == EBUSY)
		fail(err, errlen,
		     "cannot put socket fd %d at steering key %u: the socket is already at another "
		     "key or in another map (EBUSY); clear that key first",
		     fd, key);
	else
		fail(err, errlen, "cannot put socket fd %d at steering key %u: %s", fd, key, why(e));
	errno = e;
	return -1;
}

int qs_steer_clear_socket(struct qs_steer *st, unsigned key, char *err, size_t errlen)
{
	uint32_t k = key;
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)st->sock_map;
	a.key = (uint64_t)(uintptr_t)&k;
	if (sys_bpf(BPF_MAP_DELETE_ELEM, &a) == 0 || errno == ENOENT)
		return 0;
	int e = errno;
	fail(err, errlen, "cannot remove steering key %u: %s", key, why(e));
	errno = e;
	return -1;
}

int qs_steer_set_current(struct qs_steer *st, unsigned base, unsigned count, char *err,
			 size_t errlen)
{
	if (base > QS_STEER_MAX_KEYS || count > QS_STEER_MAX_KEYS - base) {
		fail(err, errlen, "steering generation [%u, %u+%u) out of range", base, base, count);
		errno = EINVAL;
		return -1;
	}
	struct qs_steer_ctl v = {.base = base, .count = count};
	if (map_update(st->ctl_map, 0, &v, BPF_ANY) == 0)
		return 0;
	int e = errno;
	fail(err, errlen, "cannot switch the steering generation: %s", why(e));
	errno = e;
	return -1;
}

int qs_steer_attach(struct qs_steer *st, const int *fds, unsigned n, unsigned key_base, char *err,
		    size_t errlen)
{
	st->sock_map = st->ctl_map = st->prog = -1;
	if (n == 0 || key_base >= QS_STEER_MAX_KEYS || n > QS_STEER_MAX_KEYS - key_base) {
		fail(err, errlen, "cannot steer %u sockets from key %u (keys are 0..%u)", n, key_base,
		     QS_STEER_MAX_KEYS - 1);
		errno = EINVAL;
		return -1;
	}
	int e;
	st->sock_map = map_create(BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, sizeof(uint64_t),
				  QS_STEER_MAX_KEYS, "qs_steer_socks", err, errlen);
	if (st->sock_map < 0)
		goto out;
	st->ctl_map = map_create(BPF_MAP_TYPE_ARRAY, sizeof(struct qs_steer_ctl), 1, "qs_steer_ctl",
				 err, errlen);
	if (st->ctl_map < 0)
		goto out;
	for (unsigned i = 0; i < n; i++)
		if (qs_steer_set_socket(st, key_base + i, fds[i], err, errlen) < 0)
			goto out;
	if (qs_steer_set_current(st, key_base, n, err, errlen) < 0)
		goto out;

	struct bpf_insn insns[PROG_MAX];
	size_t len = build_prog(insns, st->sock_map, st->ctl_map);
	if (!len) {
		fail(err, errlen, "internal error: bad label in the steering program");
		errno = EINVAL;
		goto out;
	}
	st->prog = prog_load(insns, len, err, errlen);
	if (st->prog < 0)
		goto out;
	/* Last, so that a failure above leaves the group untouched. */
	if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &st->prog, sizeof(st->prog))) {
		e = errno;
		fail(err, errlen, "setsockopt(SO_ATTACH_REUSEPORT_EBPF) on fd %d: %s", fds[0],
		     e == EINVAL ? "Invalid argument (socket without SO_REUSEPORT?)" : why(e));
		errno = e;
		goto out;
	}
	return 0;
out:
	e = errno;
	qs_steer_close(st);
	errno = e;
	return -1;
}

int qs_steer_detach(struct qs_steer *st, int any_fd, char *err, size_t errlen)
{
	int rc = 0, dummy = 0;
	if (any_fd >= 0 &&
	    setsockopt(any_fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &dummy, sizeof(dummy)) != 0) {
		int e = errno;
		fail(err, errlen, "setsockopt(SO_DETACH_REUSEPORT_BPF): %s%s", strerror(e),
		     e == ENOPROTOOPT ? " (needs Linux >= 5.8)" : "");
		rc = -1;
	}
	qs_steer_close(st);
	return rc;
}

/* ---- the supervisor's group ---- */

static struct qs_steer main_group = {-1, -1, -1};
static int main_in_use;

struct qs_steer *qs_steer_main(void)
{
	return main_in_use ? &main_group : NULL;
}

int qs_steer_udp_group(int *fds, unsigned n)
{
	char err[512];
	if (n == 0)
		return 0;
	if (main_in_use) { /* called again: the old group's handle goes */
		qs_steer_close(&main_group);
		main_in_use = 0;
	}
	if (qs_steer_attach(&main_group, fds, n, 0, err, sizeof(err)) == 0) {
		main_in_use = 1;
		qs_info("UDP packets steered to %u acceptors by connection ID (SK_REUSEPORT BPF)", n);
		return 0;
	}
	if (n == 1) {
		/* One acceptor needs no steering; only a reload loses its overlap. */
		qs_info("no connection-ID steering (%s): a reload replaces the acceptor in place", err);
		return 0;
	}
	qs_err("cannot steer UDP packets between %u acceptors: %s", n, err);
	qs_warn("falling back to one acceptor: without steering, connections would break "
		"when several processes share the port");
	for (unsigned i = 1; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
	return QS_STEER_UNAVAILABLE;
}

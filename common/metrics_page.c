#include "common/metrics_page.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tenants.h"

#define QS_M_DEF_ROW(ID, n, t, l, h) [ID] = {.name = n, .label = l, .help = h, .type = QS_MT_##t},
const struct qs_metric_def qs_metric_defs[QS_M_COUNT] = {QS_METRICS(QS_M_DEF_ROW)};
const struct qs_metric_def qs_tmetric_defs[QS_TM_COUNT] = {QS_TMETRICS(QS_M_DEF_ROW)};
#undef QS_M_DEF_ROW

const uint64_t qs_acklat_le_ns[QS_ACKLAT_BUCKETS] = {
	500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
	100000000, 250000000, 500000000, 1000000000, 2500000000, 10000000000, UINT64_MAX,
};

static struct qs_mpage private_page;
struct qs_mpage *qs_mp = &private_page;

int qs_mp_create(void)
{
	int fd = memfd_create("quicstash-metrics", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, QS_MP_SIZE) != 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

struct qs_mpage *qs_mp_map(int fd, bool writable)
{
	/* Only a page that cannot shrink under us: a shorter file would fault the reader. */
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) != 0 || st.st_size != QS_MP_SIZE || seals < 0 || !(seals & F_SEAL_SHRINK))
		return NULL;
	void *p = mmap(NULL, QS_MP_SIZE, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

int qs_mp_attach(int fd)
{
	struct qs_mpage *p = qs_mp_map(fd, true);
	close(fd);
	if (!p)
		return -1;
	qs_mp = p;
	return 0;
}

void qs_mp_clear_gauges(struct qs_mpage *p)
{
	for (unsigned m = 0; m < QS_M_COUNT; m++)
		if (qs_metric_defs[m].type == QS_MT_G)
			atomic_store_explicit(&p->v[m], 0, memory_order_relaxed);
	for (unsigned i = 0; i < QS_MP_TENANTS; i++)
		atomic_store_explicit(&p->tenant[i].v[QS_TM_OPEN], 0, memory_order_relaxed);
	atomic_store_explicit(&p->other.v[QS_TM_OPEN], 0, memory_order_relaxed);
}

struct qs_mp_tenant *qs_mp_tenant_row(uint64_t id, const char *name)
{
	struct qs_mp_tenant *free_row = NULL;
	for (unsigned i = 0; i < QS_MP_TENANTS; i++) {
		struct qs_mp_tenant *t = &qs_mp->tenant[i];
		uint64_t has = atomic_load_explicit(&t->id, memory_order_relaxed);
		if (has == id)
			return t;
		if (!has && !free_row)
			free_row = t;
	}
	if (!free_row || strlen(name) >= sizeof(free_row->name))
		return &qs_mp->other;
	/* The name first, then the id that makes the row the tenant's (a
	 * reader that sees the id sees the name). */
	memset(free_row->name, 0, sizeof(free_row->name));
	memcpy(free_row->name, name, strlen(name));
	atomic_store_explicit(&free_row->id, id, memory_order_release);
	return free_row;
}

/* A row the reader can trust to label a series: its name whole, printable,
 * and the one its id is the hash of. */
static bool row_name(const struct qs_mp_tenant *t, uint64_t id, char *name)
{
	memcpy(name, t->name, sizeof(t->name));
	name[sizeof(t->name) - 1] = 0;
	for (const char *c = name; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			return false;
	return *name && qs_tenant_id(name) == id;
}

static void add_row(uint64_t *to, const struct qs_mp_tenant *t)
{
	for (unsigned m = 0; m < QS_TM_COUNT; m++)
		to[m] += atomic_load_explicit(&((struct qs_mp_tenant *)t)->v[m], memory_order_relaxed);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct qs_tenant_sum *)a)->name, ((const struct qs_tenant_sum *)b)->name);
}

size_t qs_mp_tenant_sums(const struct qs_mpage *const *pages, size_t n, struct qs_tenant_sum *out,
			 struct qs_tenant_sum *other)
{
	size_t k = 0;
	memset(other, 0, sizeof(*other));
	snprintf(other->name, sizeof(other->name), "%s", QS_MP_TENANT_OTHER);
	for (size_t p = 0; p < n; p++) {
		add_row(other->v, &pages[p]->other);
		for (unsigned i = 0; i < QS_MP_TENANTS; i++) {
			const struct qs_mp_tenant *t = &pages[p]->tenant[i];
			uint64_t id = atomic_load_explicit(&((struct qs_mp_tenant *)t)->id, memory_order_acquire);
			if (!id)
				continue;
			size_t j = 0;
			while (j < k && out[j].id != id)
				j++;
			if (j == k && k < QS_TENANT_SUMS_MAX) {
				if (!row_name(t, id, out[k].name))
					continue;
				out[k].id = id;
				memset(out[k].v, 0, sizeof(out[k].v));
				k++;
			}
			add_row(j < k ? out[j].v : other->v, t);
		}
	}
	qsort(out, k, sizeof(*out), by_name);
	return k;
}

void qs_mp_observe_ack_ns(uint64_t ns)
{
	unsigned b = 0;
	while (ns > qs_acklat_le_ns[b])
		b++;
	qs_mp_add((enum qs_metric)(QS_M_ACKLAT_0 + b), 1);
	qs_mp_add(QS_M_ACKLAT_SUM, ns);
}

static void qend_sum(const struct qs_mp_qend *e, int64_t sign, struct qs_queue_depth *d)
{
	d->n += sign * (int64_t)atomic_load_explicit(&((struct qs_mp_qend *)e)->n, memory_order_relaxed);
	d->bytes += sign * (int64_t)atomic_load_explicit(&((struct qs_mp_qend *)e)->bytes, memory_order_relaxed);
}

struct qs_queue_depth qs_mp_queue_depth(const struct qs_mpage *sup, const struct qs_mpage *const *pages, size_t n,
					unsigned line)
{
	struct qs_queue_depth d = {0, 0};
	if (line >= QS_QL_COUNT)
		return d;
	/* (unsigned sums as signed: they wrap alike, and a depth is small) */
	qend_sum(&sup->qrecv[line], -1, &d);
	for (size_t i = 0; i < n; i++)
		qend_sum(&pages[i]->qrecv[line], -1, &d);
	atomic_thread_fence(memory_order_acquire);
	for (size_t i = 0; i < n; i++)
		qend_sum(&pages[i]->qsent[line], 1, &d);
	return d;
}

void qs_mp_queue_settle(struct qs_mpage *sup, const struct qs_mpage *const *pages, size_t n, unsigned line,
			bool all)
{
	struct qs_queue_depth d = qs_mp_queue_depth(sup, pages, n, line);
	if (d.n > 0 && !all)
		d.n = 0;
	if (d.bytes > 0 && !all)
		d.bytes = 0;
	if (d.n || d.bytes)
		qs_mp_qadd(&sup->qrecv[line], (uint64_t)d.n, (uint64_t)d.bytes);
}

const struct qs_metric_def qs_queue_defs[2] = {
	{"quicstash_hop_waiting", "hop, parser",
	 "Records handed to a hop between two processes and not yet taken at its other end: frames towards "
	 "each parser slot (hop=\"acceptor_to_parser\", ZeroMQ, parser=\"S\"), events towards the shipper "
	 "(\"parser_to_shipper\"), acknowledgements (\"shipper_to_acceptor\") and rejections with the parsers' "
	 "HELLO/BYE words (\"parser_to_acceptor\") towards the acceptors; what a process that ended held is "
	 "written off", QS_MT_G},
	{"quicstash_hop_waiting_bytes", "hop, parser", "Bytes of the messages carrying those records", QS_MT_G},
};

const char *qs_mp_queue_hop(unsigned line)
{
	return line < QS_QL_EVENTS ? "acceptor_to_parser" : line == QS_QL_EVENTS ? "parser_to_shipper"
		: line == QS_QL_ANSWERS ? "shipper_to_acceptor" : "parser_to_acceptor";
}

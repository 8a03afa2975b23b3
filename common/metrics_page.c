#include "common/metrics_page.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define QS_M_DEF_ROW(ID, n, t, l, h) [ID] = {.name = n, .label = l, .help = h, .type = QS_MT_##t},
const struct qs_metric_def qs_metric_defs[QS_M_COUNT] = {QS_METRICS(QS_M_DEF_ROW)};
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
}

void qs_mp_observe_ack_ns(uint64_t ns)
{
	unsigned b = 0;
	while (ns > qs_acklat_le_ns[b])
		b++;
	qs_mp_add((enum qs_metric)(QS_M_ACKLAT_0 + b), 1);
	qs_mp_add(QS_M_ACKLAT_SUM, ns);
}

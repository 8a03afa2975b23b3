#include "common/heap.h"

#include <malloc.h>
#include <stdlib.h>

void qs_heap_tune(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024); /* the largest value glibc allows on 64-bit */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

int qs_grow_slow(void **buf, size_t *cap, size_t need, size_t first)
{
	size_t n = *cap ? *cap : first;
	while (n < need)
		n *= 2;
	void *nb = realloc(*buf, n);
	if (!nb)
		return -1;
	*buf = nb;
	*cap = n;
	return 0;
}

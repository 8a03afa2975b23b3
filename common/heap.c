#include "common/heap.h"

#include <malloc.h>

void qs_heap_tune(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024); /* the largest value glibc allows on 64-bit */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

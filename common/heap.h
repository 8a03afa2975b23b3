/* Heap settings for the long-running children, and growing buffers. */
#ifndef QS_COMMON_HEAP_H
#define QS_COMMON_HEAP_H

#include <stddef.h>

/* Keeps freed heap memory (up to 64 MiB above the top) instead of giving it
 * back with brk/munmap after every large free: ZeroMQ allocates each batch
 * message (up to a few hundred KiB) with malloc, and glibc's default trimming
 * turned every batch into brk calls and fresh page faults (~8% of a parser). */
void qs_heap_tune(void);

/* Makes *buf (of *cap bytes, NULL and 0 at first) hold at least `need`
 * bytes: reallocs to `first`, doubled until it is enough. Returns 0, or -1
 * with *buf and *cap untouched when memory runs out. */
int qs_grow_slow(void **buf, size_t *cap, size_t need, size_t first);
static inline int qs_grow(void **buf, size_t *cap, size_t need, size_t first)
{
	return need <= *cap ? 0 : qs_grow_slow(buf, cap, need, first); /* per event: no call */
}

#endif

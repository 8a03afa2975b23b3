/* Heap settings for the long-running children. */
#ifndef QS_COMMON_HEAP_H
#define QS_COMMON_HEAP_H

/* Keeps freed heap memory (up to 64 MiB above the top) instead of giving it
 * back with brk/munmap after every large free: ZeroMQ allocates each batch
 * message (up to a few hundred KiB) with malloc, and glibc's default trimming
 * turned every batch into brk calls and fresh page faults (~8% of a parser). */
void qs_heap_tune(void);

#endif

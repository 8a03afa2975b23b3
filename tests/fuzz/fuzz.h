/* Shared by the fuzz targets (tests/fuzz/README.md). Each target defines
 * LLVMFuzzerTestOneInput; it is linked either with libFuzzer (clang, `make
 * fuzz`) or with driver.c, which replays a corpus and mutates it for a fixed,
 * seeded number of rounds (ctest, any compiler). A broken property aborts. */
#ifndef QS_TESTS_FUZZ_H
#define QS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz: property broken at %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A copy in a block of its own, so that ASan sees any read past its end. */
static inline uint8_t *fuzz_dup(const uint8_t *d, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	FUZZ_CHECK(b);
	if (n)
		memcpy(b, d, n);
	return b;
}

/* Splits a stream as the network might (single bytes, small and large
 * pieces): a small generator seeded from the input, so replays match. */
struct fuzz_chunker {
	uint32_t s;
};

static inline size_t fuzz_next_chunk(struct fuzz_chunker *c, size_t left)
{
	c->s = c->s * 1103515245u + 12345u;
	uint32_t r = c->s >> 16;
	size_t n = r % 4 == 0 ? 1 : r % 4 == 1 ? 1 + r % 8 : r % 4 == 2 ? 1 + r % 100 : left;
	return n > left ? left : n;
}

#endif

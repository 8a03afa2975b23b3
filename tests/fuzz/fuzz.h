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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz: property broken at %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif

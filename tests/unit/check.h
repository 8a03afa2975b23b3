/* The unit tests' tiny check harness: count, report each failure with its
 * place, end with "N passed, N failed" and a non-zero exit on any failure. */
#ifndef QS_TEST_CHECK_H
#define QS_TEST_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;
static const char *current_test = "";

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: %s (in %s)\n", __FILE__, __LINE__, #cond,     \
				current_test);                                                     \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long a_ = (long)(a), b_ = (long)(b);                                               \
		if (a_ == b_) {                                                                    \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: %s == %s: %ld != %ld (in %s)\n", __FILE__,    \
				__LINE__, #a, #b, a_, b_, current_test);                           \
		}                                                                                  \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                                         \
	do {                                                                                       \
		uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                   \
		if (a_ == b_) {                                                                    \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: %s == %s: %" PRIu64 " != %" PRIu64 " (in %s)\n", \
				__FILE__, __LINE__, #a, #b, a_, b_, current_test);                 \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (!strcmp(a_, b_)) {                                                             \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: %s == %s: \"%s\" != \"%s\" (in %s)\n", __FILE__, \
				__LINE__, #a, #b, a_, b_, current_test);                           \
		}                                                                                  \
	} while (0)

/* The closing line ctest's output and CI read; the exit status for main(). */
static inline int check_report(void)
{
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#endif

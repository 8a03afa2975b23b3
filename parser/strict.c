/* Strict JSON checks cJSON does not make (see strict.h). One pass over the
 * bytes, each number against RFC 8259's grammar. */
#include "parser/strict.h"

#include <stdint.h>
#include <string.h>

static bool digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static const char *digits(const char *p, const char *end)
{
	while (digit(p, end))
		p++;
	return p;
}

static bool hex4(const char *p, const char *end)
{
	if (end - p < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

/* Byte classes. Outside strings only a quote, a number's first byte and a
 * control byte need a look; inside, a quote, a backslash and a control byte.
 * Strings in events are mostly short keys and values, where a table beats
 * word-at-a-time tricks and their set-up. */
enum { PLAIN = 0, QUOTE, NUMBER, CONTROL, ESCAPE };
static unsigned char cls_out[256], cls_in[256];

__attribute__((constructor)) static void init_classes(void)
{
	for (int c = 0; c < 0x20; c++)
		cls_out[c] = cls_in[c] = CONTROL;
	cls_out['"'] = cls_in['"'] = QUOTE;
	cls_in['\\'] = ESCAPE;
	cls_out['-'] = NUMBER;
	for (int c = '0'; c <= '9'; c++)
		cls_out[c] = NUMBER;
}

/* p after the opening quote; returns the byte after the closing one, or NULL
 * at a bad \u escape (*at there). */
static const char *string_end(const char *p, const char *end, struct qs_json_strict *r, const char **at)
{
	for (;;) {
		while (p < end && !cls_in[(unsigned char)*p])
			p++;
		if (p >= end)
			return end;
		switch (cls_in[(unsigned char)*p]) {
		case QUOTE: return p + 1;
		case CONTROL:
			r->control = true;
			p++;
			break;
		default:
			if (end - p >= 2 && p[1] == 'u' && !hex4(p + 2, end)) {
				*at = p;
				return NULL;
			}
			p += 2; /* the hex digits of \uXXXX are plain bytes here */
		}
	}
}

#define BAD_NUMBER "number not allowed by JSON (leading zero, or '.', '-', 'e' without digits)"
#define LONG_NUMBER "number longer than " QS_STR(QS_JSON_NUMBER_MAX) " characters"
#define QS_STR(x) QS_STR2(x)
#define QS_STR2(x) #x

static const char *number_grammar(const char *p, const char *end);

/* p at '-' or a digit; returns the end of the number, or NULL (with *why) if
 * it breaks RFC 8259's grammar or is longer than QS_JSON_NUMBER_MAX. */
static const char *number_end(const char *p, const char *end, const char **why)
{
	const char *e = number_grammar(p, end);
	*why = e ? LONG_NUMBER : BAD_NUMBER;
	return e && e - p <= QS_JSON_NUMBER_MAX ? e : NULL;
}

static const char *number_grammar(const char *p, const char *end)
{
	if (*p == '-')
		p++;
	if (!digit(p, end))
		return NULL;
	if (*p == '0') {
		if (digit(++p, end))
			return NULL;
	} else {
		p = digits(p, end);
	}
	if (p < end && *p == '.') {
		if (!digit(++p, end))
			return NULL;
		p = digits(p, end);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!digit(p, end))
			return NULL;
		p = digits(p, end);
	}
	return p;
}

#define BAD_ESCAPE "\\u must be followed by four hex digits"

/* The first byte of [p, end) that does not start a well-formed UTF-8
 * sequence (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF), or NULL. ASCII goes eight bytes at a time. */
static const char *utf8_invalid(const char *p, const char *end)
{
	const unsigned char *s = (const unsigned char *)p, *e = (const unsigned char *)end;
	while (s < e) {
		uint64_t x;
		if (e - s >= 8 && (memcpy(&x, s, 8), !(x & 0x8080808080808080ull))) {
			s += 8;
			continue;
		}
		unsigned c = *s, n, lo = 0x80, hi = 0xBF;
		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
		else
			return (const char *)s;
		if ((size_t)(e - s) <= n || s[1] < lo || s[1] > hi)
			return (const char *)s;
		for (unsigned k = 2; k <= n; k++)
			if (s[k] < 0x80 || s[k] > 0xBF)
				return (const char *)s;
		s += n + 1;
	}
	return NULL;
}

/* After the JSON checks: the text must be UTF-8 (RFC 8259, 8.1). */
static bool strict_utf8(const char *json, size_t len, struct qs_json_strict *r)
{
	const char *bad = utf8_invalid(json, json + len);
	if (!bad)
		return true;
	r->why = "not UTF-8";
	r->bad_at = (size_t)(bad - json);
	return false;
}

/* Byte by byte: any text, escapes included. */
static bool strict_bytes(const char *json, size_t len, struct qs_json_strict *r)
{
	const char *p = json, *end = json + len, *at = NULL;
	while (p < end) {
		while (p < end && !cls_out[(unsigned char)*p])
			p++;
		if (p >= end)
			break;
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			const char *q = string_end(p + 1, end, r, &at);
			if (!q) {
				r->why = BAD_ESCAPE;
				break;
			}
			p = q;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			const char *q = number_end(p, end, &r->why);
			if (!q) {
				at = p;
				break;
			}
			p = q;
		} else {
			r->control |= c < 0x20;
			p++;
		}
	}
	if (!at)
		return strict_utf8(json, len, r);
	r->bad_at = (size_t)(at - json);
	return false;
}

#ifdef __SSE2__
#include <immintrin.h>

/* Bit i of each mask describes byte i of a 64-byte block. */
struct block_masks {
	uint64_t quote, start, control, backslash, high; /* start: a digit or '-'; high: >= 0x80 */
};

static void classify(const char *p, struct block_masks *m)
{
	uint64_t q = 0, st = 0, c = 0, bs = 0, hi = 0;
	for (int k = 0; k < 4; k++) {
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
		__m128i dig = _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8('0' - 1)),
					    _mm_cmplt_epi8(b, _mm_set1_epi8('9' + 1)));
		__m128i start = _mm_or_si128(dig, _mm_cmpeq_epi8(b, _mm_set1_epi8('-')));
		__m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(b, _mm_set1_epi8(0x1f)), b); /* b <= 0x1f */
		q |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8('"'))) << (16 * k);
		st |= (uint64_t)(unsigned)_mm_movemask_epi8(start) << (16 * k);
		c |= (uint64_t)(unsigned)_mm_movemask_epi8(ctl) << (16 * k);
		bs |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8('\\'))) << (16 * k);
		hi |= (uint64_t)(unsigned)_mm_movemask_epi8(b) << (16 * k);
	}
	*m = (struct block_masks){q, st, c, bs, hi};
}

/* The same with AVX2, 32 bytes a step, where the CPU has it (half the work;
 * the SSE2 version is the baseline every x86-64 has). */
__attribute__((target("avx2"))) static uint64_t mask32(__m256i v, int k)
{
	return (uint64_t)(uint32_t)_mm256_movemask_epi8(v) << (32 * k);
}

__attribute__((target("avx2"))) static void classify_avx2(const char *p, struct block_masks *m)
{
	uint64_t q = 0, st = 0, c = 0, bs = 0, hi = 0;
	for (int k = 0; k < 2; k++) {
		__m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32 * k));
		__m256i dig = _mm256_and_si256(_mm256_cmpgt_epi8(b, _mm256_set1_epi8('0' - 1)),
					       _mm256_cmpgt_epi8(_mm256_set1_epi8('9' + 1), b));
		__m256i start = _mm256_or_si256(dig, _mm256_cmpeq_epi8(b, _mm256_set1_epi8('-')));
		__m256i ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(b, _mm256_set1_epi8(0x1f)), b);
		q |= mask32(_mm256_cmpeq_epi8(b, _mm256_set1_epi8('"')), k);
		st |= mask32(start, k);
		c |= mask32(ctl, k);
		bs |= mask32(_mm256_cmpeq_epi8(b, _mm256_set1_epi8('\\')), k);
		hi |= mask32(b, k);
	}
	*m = (struct block_masks){q, st, c, bs, hi};
}

static bool have_avx2;

__attribute__((constructor)) static void check_cpu(void) /* before any thread */
{
	__builtin_cpu_init();
	have_avx2 = __builtin_cpu_supports("avx2");
}

/* Bit i: the parity of the set bits 0..i (inside a string, for quotes). */
static uint64_t prefix_xor(uint64_t x)
{
	for (int s = 1; s < 64; s *= 2)
		x ^= x << s;
	return x;
}

/* The bytes a backslash escapes, as simdjson finds them: in a run of
 * backslashes every second one escapes the byte after it, counted from the
 * run's start. *carry: the block's first byte is escaped by the run that
 * ended the block before. */
static uint64_t escaped_bytes(uint64_t bs, uint64_t *carry)
{
	const uint64_t even = 0x5555555555555555ull;
	bs &= ~*carry;
	uint64_t follows = bs << 1 | *carry;
	uint64_t odd_starts = bs & ~even & ~follows, sum;
	*carry = __builtin_add_overflow(odd_starts, bs, &sum);
	return (even ^ (sum << 1)) & follows;
}

/* starts without the bits of bytes before done (block at off): those belong
 * to a number already checked. */
static uint64_t after_done(uint64_t starts, size_t done, size_t off)
{
	if (done <= off)
		return starts;
	return done - off >= 64 ? 0 : starts & ~0ull << (done - off);
}

/* 64 bytes at a time: the quotes that no backslash escapes say what is
 * inside a string. Outside strings, the first digit or '-' of each number is
 * checked one by one and the rest of that number skipped; inside, each \u. */
static bool strict_blocks(void (*classify_fn)(const char *, struct block_masks *), const char *json, size_t len,
			  struct qs_json_strict *r)
{
	uint64_t inside_carry = 0, esc_carry = 0, high = 0;
	size_t done = 0; /* bytes before this belong to a number already checked */
	for (size_t off = 0; off < len; off += 64) {
		char pad[64];
		const char *p = json + off;
		if (len - off < 64) {
			memset(pad, ' ', sizeof(pad));
			memcpy(pad, p, len - off);
			p = pad;
		}
		struct block_masks m;
		classify_fn(p, &m);
		r->control |= m.control != 0;
		high |= m.high;
		uint64_t esc = m.backslash || esc_carry ? escaped_bytes(m.backslash, &esc_carry) : 0;
		uint64_t inside = prefix_xor(m.quote & ~esc) ^ inside_carry;
		inside_carry = (uint64_t)((int64_t)inside >> 63);
		uint64_t starts = after_done(m.start & ~inside, done, off), ues = 0;
		for (uint64_t e = esc; e; e &= e - 1) /* escapes are few: find the \u ones here */
			if (p[__builtin_ctzll(e)] == 'u')
				ues |= e & (0 - e);
		while (starts | ues) {
			uint64_t all = starts | ues, bit = all & (0 - all);
			const char *at = json + off + (size_t)__builtin_ctzll(bit);
			if (ues & bit) {
				ues &= ~bit;
				if (!hex4(at + 1, json + len)) {
					r->why = BAD_ESCAPE;
					r->bad_at = (size_t)(at - 1 - json); /* the backslash */
					return false;
				}
				continue;
			}
			const char *e = number_end(at, json + len, &r->why);
			if (!e) {
				r->bad_at = (size_t)(at - json);
				return false;
			}
			done = (size_t)(e - json);
			starts = after_done(starts, done, off);
		}
	}
	return !high || strict_utf8(json, len, r); /* ASCII is UTF-8 */
}
#endif

bool qs_json_strict(const char *json, size_t len, struct qs_json_strict *r)
{
	r->control = false;
#ifdef __SSE2__
	return strict_blocks(have_avx2 ? classify_avx2 : classify, json, len, r);
#else
	return strict_bytes(json, len, r);
#endif
}

int qs_json_strict_impl(enum qs_strict_impl impl, const char *json, size_t len, struct qs_json_strict *r)
{
	r->control = false;
	switch (impl) {
	case QS_STRICT_BYTES: return strict_bytes(json, len, r);
#ifdef __SSE2__
	case QS_STRICT_SSE2: return strict_blocks(classify, json, len, r);
	case QS_STRICT_AVX2: return have_avx2 ? strict_blocks(classify_avx2, json, len, r) : -1;
#endif
	default: return -1;
	}
}

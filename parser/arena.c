#include "parser/arena.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define ARENA_MIN (256u * 1024)       /* the block kept between frames */
#define ARENA_KEEP_MAX (8u * 1024 * 1024) /* never keep more than this between frames */
#define ALIGN 16u

struct block {
	struct block *next;
	size_t cap, used;
	_Alignas(16) unsigned char data[];
};

static struct block *cur;    /* the block being filled; older ones follow ->next */
static size_t peak;          /* bytes needed by the largest frame since the last reset */

static struct block *block_new(size_t cap, struct block *next)
{
	struct block *b = malloc(sizeof(*b) + cap);
	if (!b)
		return NULL;
	b->next = next;
	b->cap = cap;
	b->used = 0;
	return b;
}

static void *arena_malloc(size_t n)
{
	n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	if (!cur || cur->cap - cur->used < n) {
		size_t cap = cur ? cur->cap * 2 : ARENA_MIN;
		while (cap < n)
			cap *= 2;
		struct block *b = block_new(cap, cur);
		if (!b)
			return NULL;
		cur = b;
	}
	void *p = cur->data + cur->used;
	cur->used += n;
	return p;
}

static void arena_free(void *p)
{
	(void)p; /* everything goes at the next reset */
}

void qs_json_arena_install(void)
{
	cJSON_Hooks h = {.malloc_fn = arena_malloc, .free_fn = arena_free};
	cJSON_InitHooks(&h);
}

void qs_json_arena_reset(void)
{
	if (!cur)
		return;
	if (!cur->next) {
		cur->used = 0;
		return;
	}
	/* The frame needed more than one block: keep one block big enough for
	 * all of it next time (bounded), free the rest. */
	size_t total = 0;
	for (struct block *b = cur; b; b = b->next)
		total += b->used;
	if (total > peak)
		peak = total;
	qs_json_arena_free();
	size_t cap = ARENA_MIN;
	while (cap < peak && cap < ARENA_KEEP_MAX)
		cap *= 2;
	cur = block_new(cap, NULL);
}

void qs_json_arena_free(void)
{
	while (cur) {
		struct block *n = cur->next;
		free(cur);
		cur = n;
	}
}

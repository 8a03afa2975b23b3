/* A bump allocator behind cJSON in the parser process (cJSON_InitHooks).
 *
 * Every node and string cJSON makes for one frame comes from one block and
 * the whole block is recycled after the frame: parsing costs no malloc/free
 * per node, and freeing a tree is a no-op. Only the parser process installs
 * it; parser/enrich.c itself stays pure (its unit test runs on plain malloc). */
#ifndef QS_PARSER_ARENA_H
#define QS_PARSER_ARENA_H

/* Installs the hooks. Call once, before any cJSON use. */
void qs_json_arena_install(void);
/* Forgets everything allocated since the last reset: every cJSON pointer
 * obtained before is invalid afterwards. */
void qs_json_arena_reset(void);
/* Frees the memory (at exit). */
void qs_json_arena_free(void);

#endif

/* quicstash-top's terminal: plain ANSI/VT100 sequences, no curses. The screen
 * is drawn on the alternate screen with the cursor hidden; keys are read one
 * at a time without echo; all of it is undone at exit, on q, Ctrl-C, SIGTERM,
 * SIGHUP, and while suspended (Ctrl-Z). */
#ifndef QS_TOP_TERM_H
#define QS_TOP_TERM_H

#include <stdbool.h>
#include <stddef.h>

/* Takes the terminal (fd 0 for keys, 1 for the screen) when both are one; false if not a terminal. */
bool term_enter(void);
/* Gives it back as it was; safe to call twice and from atexit. */
void term_leave(void);
/* The terminal's size (80x24 when unknown). */
void term_size(int *cols, int *rows);
/* Draws the text (lines separated by '\n') over the previous screen. */
void term_draw(const char *text, size_t len);

#endif

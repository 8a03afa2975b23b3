#include "top/term.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved;
static bool entered;

static void out(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(1, s, len);
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

bool term_enter(void)
{
	if (entered)
		return true;
	if (!isatty(0) || !isatty(1) || tcgetattr(0, &saved) != 0)
		return false;
	struct termios raw = saved;
	/* keys at once and unechoed; ISIG stays on: Ctrl-C and Ctrl-Z are signals */
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(0, TCSAFLUSH, &raw) != 0)
		return false;
	entered = true;
	static const char on[] = "\033[?1049h\033[?25l\033[H\033[2J";
	out(on, sizeof(on) - 1);
	return true;
}

void term_leave(void)
{
	if (!entered)
		return;
	static const char off[] = "\033[0m\033[?25h\033[?1049l";
	out(off, sizeof(off) - 1);
	tcsetattr(0, TCSAFLUSH, &saved);
	entered = false;
}

void term_size(int *cols, int *rows)
{
	struct winsize ws;
	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
	} else {
		*cols = 80;
		*rows = 24;
	}
}

/* Home, each line then "erase to its end", then erase below: no flicker from a full clear. */
void term_draw(const char *text, size_t len)
{
	static char buf[64 * 1024];
	size_t k = 0;
	memcpy(buf, "\033[H", 3);
	k = 3;
	for (size_t i = 0; i < len && k + 8 < sizeof(buf); i++) {
		if (text[i] == '\n') {
			memcpy(buf + k, "\033[K\r\n", 5);
			k += 5;
		} else {
			buf[k++] = text[i];
		}
	}
	/* the last line has no "\r\n": a full screen does not scroll */
	if (k >= 5 && !memcmp(buf + k - 5, "\033[K\r\n", 5))
		k -= 2;
	memcpy(buf + k, "\033[J", 3);
	out(buf, k + 3);
}

/* Runs a fuzz target without libFuzzer (any compiler; ctest uses it):
 *
 *   fuzz_X [--mutate N] [--seed S] [--max-len L] [--dict FILE] PATH...
 *
 * Every file named (for a directory: every file in it) goes through the
 * target once, then N rounds of seeded mutations of them: bit flips,
 * dictionary tokens (libFuzzer's .dict format), erased, copied and spliced
 * ranges. The same seed gives the same inputs. An input that breaks a property
 * is written to ./fuzz-crash-TARGET before the process dies, for replaying
 * and for the corpus. */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef QS_SANITIZE_BUILD
#include <sanitizer/common_interface_defs.h>
#endif

struct blob {
	uint8_t *d;
	size_t n;
};

struct blobs {
	struct blob *v;
	size_t n, cap;
};

static const uint8_t *cur_data; /* the input being run, for the crash file */
static size_t cur_len;
static bool running;
static char crash_path[300];

static void dump_current(void)
{
	if (!running)
		return;
	int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	for (size_t off = 0; off < cur_len;) {
		ssize_t w = write(fd, cur_data + off, cur_len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
	static const char msg[] = "fuzz: the input is in ./fuzz-crash-*\n";
	(void)!write(2, msg, sizeof(msg) - 1);
}

static void on_abort(int sig)
{
	dump_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void push(struct blobs *b, uint8_t *d, size_t n)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->v = realloc(b->v, b->cap * sizeof(*b->v));
		if (!b->v) {
			perror("fuzz: realloc");
			exit(2);
		}
	}
	b->v[b->n++] = (struct blob){d, n};
}

static void free_all(struct blobs *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].d);
	free(b->v);
}

static int load_file(struct blobs *b, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	uint8_t *d = NULL;
	size_t n = 0, cap = 0, r;
	do {
		if (n == cap && !(d = realloc(d, cap = cap ? 2 * cap : 4096)))
			exit(2);
		r = fread(d + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	fclose(f);
	push(b, d, n);
	return 0;
}

static int load_path(struct blobs *b, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode))
		return load_file(b, path);
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	struct dirent *e;
	while ((e = readdir(dir))) {
		char p[4096];
		if (e->d_name[0] == '.' || snprintf(p, sizeof(p), "%s/%s", path, e->d_name) >= (int)sizeof(p))
			continue;
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && load_file(b, p) != 0) {
			closedir(dir);
			return -1;
		}
	}
	closedir(dir);
	return 0;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* libFuzzer's dictionary lines: [name=]"value" with \\, \" and \xNN. */
static int load_dict(struct blobs *b, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		char *q = strchr(line, '"'), *e = strrchr(line, '"');
		if (line[0] == '#' || !q || e == q)
			continue;
		uint8_t *d = malloc((size_t)(e - q)), *o = d;
		for (char *p = q + 1; p < e; p++) {
			if (*p == '\\' && p + 1 < e && p[1] == 'x' && p + 3 < e && hexval(p[2]) >= 0 && hexval(p[3]) >= 0) {
				*o++ = (uint8_t)(hexval(p[2]) * 16 + hexval(p[3]));
				p += 3;
			} else if (*p == '\\' && p + 1 < e) {
				*o++ = (uint8_t)*++p;
			} else {
				*o++ = (uint8_t)*p;
			}
		}
		push(b, d, (size_t)(o - d));
	}
	fclose(f);
	return 0;
}

static uint64_t rng;

static uint64_t rnd(uint64_t n) /* uniform enough in [0, n), n > 0 */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

/* buf holds *n bytes, room for max. */
static void insert(uint8_t *buf, size_t *n, size_t max, size_t at, const uint8_t *src, size_t len)
{
	if (len > max - *n)
		len = max - *n;
	memmove(buf + at + len, buf + at, *n - at);
	memcpy(buf + at, src, len);
	*n += len;
}

static void mutate_once(uint8_t *buf, size_t *n, size_t max, const struct blobs *in, const struct blobs *dict)
{
	static const uint8_t bytes[] = "{}[]\",:\\0123456789-+.eEtfnu \t\n\r\x7f\xff\xc3\xef";
	size_t at = rnd(*n + 1);
	switch (rnd(dict->n ? 7 : 6)) {
	case 0:
		if (*n)
			buf[rnd(*n)] ^= (uint8_t)(1u << rnd(8));
		break;
	case 1:
		if (*n)
			buf[rnd(*n)] = bytes[rnd(sizeof(bytes))]; /* the terminating 0 included */
		break;
	case 2: { /* erase a range */
		size_t len = rnd(*n - at + 1);
		memmove(buf + at, buf + at + len, *n - at - len);
		*n -= len;
		break;
	}
	case 3: { /* copy a range of itself elsewhere */
		if (!*n)
			break;
		size_t from = rnd(*n), len = 1 + rnd(*n - from);
		uint8_t tmp[4096];
		len = len > sizeof(tmp) ? sizeof(tmp) : len;
		memcpy(tmp, buf + from, len);
		insert(buf, n, max, at, tmp, len);
		break;
	}
	case 4: { /* splice: the tail of another input */
		const struct blob *o = &in->v[rnd(in->n)];
		size_t from = rnd(o->n + 1);
		*n = at;
		insert(buf, n, max, at, o->d + from, o->n - from);
		break;
	}
	case 5:
		*n = at; /* truncate */
		break;
	default: {
		const struct blob *t = &dict->v[rnd(dict->n)];
		insert(buf, n, max, at, t->d, t->n);
		break;
	}
	}
}

static void run(const uint8_t *d, size_t n)
{
	cur_data = d;
	cur_len = n;
	running = true;
	LLVMFuzzerTestOneInput(d, n);
	running = false;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--mutate N] [--seed S] [--max-len L] [--dict FILE] PATH...\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"mutate", required_argument, NULL, 'm'},
					     {"seed", required_argument, NULL, 's'},
					     {"max-len", required_argument, NULL, 'l'},
					     {"dict", required_argument, NULL, 'd'},
					     {NULL, 0, NULL, 0}};
	unsigned long rounds = 0, seed = 1, max = 4096;
	struct blobs in = {0}, dict = {0};
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		errno = 0;
		unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
		bool bad = c != 'd' && (!optarg || !*optarg || *end || errno);
		if (c == '?' || bad)
			usage(name);
		if (c == 'm')
			rounds = v;
		else if (c == 's')
			seed = v;
		else if (c == 'l')
			max = v ? v : 1;
		else if (load_dict(&dict, optarg) != 0)
			fprintf(stderr, "%s: cannot read dictionary %s: %s\n", name, optarg, strerror(errno)), exit(2);
	}
	if (optind == argc)
		usage(name);
	for (int i = optind; i < argc; i++)
		if (load_path(&in, argv[i]) != 0)
			fprintf(stderr, "%s: cannot read %s: %s\n", name, argv[i], strerror(errno)), exit(2);
	if (!in.n)
		push(&in, malloc(1), 0);
	snprintf(crash_path, sizeof(crash_path), "fuzz-crash-%s", name);
	signal(SIGABRT, on_abort);
#ifdef QS_SANITIZE_BUILD
	__sanitizer_set_death_callback(dump_current);
#endif
	for (size_t i = 0; i < in.n; i++)
		run(in.v[i].d, in.v[i].n);
	rng = seed * 0x9E3779B97F4A7C15ull + 1;
	uint8_t *buf = malloc(max);
	for (unsigned long r = 0; r < rounds; r++) {
		const struct blob *b = &in.v[rnd(in.n)];
		size_t n = b->n < max ? b->n : max;
		memcpy(buf, b->d, n);
		for (uint64_t k = 1 + rnd(5); k > 0; k--)
			mutate_once(buf, &n, max, &in, &dict);
		run(buf, n);
	}
	printf("%s: %zu inputs, %lu mutated rounds (seed %lu): every property held\n", name, in.n, rounds, seed);
	free(buf);
	free_all(&in);
	free_all(&dict);
	return 0;
}

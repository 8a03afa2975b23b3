/* Called once a second by the shipper's status timer while the output is
 * behind: a header read is cheap there and needs no bookkeeping on the data
 * path. The output's own window is not used: while Logstash is down it
 * holds nothing. */
#include "shipper/spool_age.h"

#include <fcntl.h>
#include <unistd.h>

#include "shipper/record.h"
#include "shipper/spool.h"
#include "shipper/spool_file.h"

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static uint64_t header_time(int dirfd, uint64_t seg, uint64_t off)
{
	char name[64];
	uint8_t h[QS_REC_HDR];
	qs_seg_name(name, sizeof(name), seg);
	int fd = qs_spool_file_open(dirfd, name, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = pread(fd, h, sizeof(h), (off_t)off);
	close(fd);
	return n == (ssize_t)sizeof(h) && be(h, 4) == QS_REC_MAGIC ? be(h + 8, 8) : 0;
}

uint64_t qs_spool_oldest_ns(const struct qs_spool *s)
{
	for (size_t i = 0; i < s->nsegs; i++) {
		const struct qs_spool_seg *g = &s->segs[i];
		if (g->id < s->cursor.seg)
			continue;
		uint64_t off = g->id == s->cursor.seg ? s->cursor.off : 0;
		if (off + QS_REC_HDR <= g->size) /* else that segment is shipped to its end: the next one */
			return header_time(s->dirfd, g->id, off);
	}
	return 0;
}

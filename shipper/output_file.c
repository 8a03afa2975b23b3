/* The file output (-l file:PATH): the file is opened once, before the
 * shipper confines itself, appended to like a socket that always takes
 * what is written, and made durable before the cursor moves past it with
 * --durability fsync. */
#include "shipper/output_parts.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "shipper/spool.h"

int qs_output_open_file(const struct qs_config *cfg)
{
	if (!cfg->output_is_file)
		return -2;
	int fd = open(cfg->output_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		qs_err("output file %s: %s", cfg->output_path, strerror(errno));
	return fd;
}

/* "Connecting" to the file: a descriptor of its own on the file opened at
 * start (closed on a failure like a socket), and events without one (they
 * never fire: a file always takes what is written). */
void out_file_start(struct qs_output *o)
{
	o->fd = fcntl(o->file_fd, F_DUPFD_CLOEXEC, 0);
	struct stat st;
	if (o->fd < 0 || fstat(o->fd, &st) != 0)
		return out_fail(o, "cannot use", errno);
	o->file_end = o->file_whole = o->file_synced = (uint64_t)st.st_size;
	o->file_synced_pos = o->spool->cursor; /* where the reader starts */
	o->wev = event_new(o->base, -1, 0, out_on_writable, o);
	o->rev = event_new(o->base, -1, 0, out_on_readable, o);
	out_up(o);
}

/* What was written after the last sync may be gone (a failed fdatasync
 * drops the dirty pages, and a later one of the same file reports success:
 * "fsyncgate") or end in half a line (a short write on a full disk, before
 * the whole record is written again). So a failed write or sync cuts the
 * file back to what the last sync covered, the cursor goes back to its
 * position, and everything after it is written again. Called by out_fail
 * for every failure of the file output, before the reader rewinds. */
void out_file_cut_back(struct qs_output *o)
{
	if (o->fd >= 0 && ftruncate(o->fd, (off_t)o->file_synced) != 0)
		qs_err("output %s: cannot cut the file back to its last synced size %llu: %s", o->name,
		       (unsigned long long)o->file_synced, strerror(errno));
	o->file_end = o->file_whole = o->file_synced;
	qs_spool_rewind(o->spool, o->file_synced_pos);
}

/* n more bytes went into the file; the record being written has
 * o->rd.partial of them so far. */
void out_file_wrote(struct qs_output *o, size_t n)
{
	o->file_end += n;
	o->file_whole = o->file_end - o->rd.partial;
}

int qs_output_sync(struct qs_output *o)
{
	if (!o->cfg->output_is_file || o->fd < 0)
		return 0;
	if (o->dirty && o->cfg->durability == QS_DURABILITY_FSYNC && fdatasync(o->fd) != 0) {
		int e = errno;
		qs_err_kv(QS_KV({QS_LOG_PEER, out_log_peer(o)}, {QS_LOG_CODE, qs_log_errno_name(e)}),
			  "output %s: fdatasync: %s", o->name, strerror(e));
		out_fail(o, "fdatasync failed", e);
		return -1;
	}
	o->dirty = false;
	o->file_synced = o->file_whole;
	o->file_synced_pos = o->spool->cursor;
	return 0;
}

const struct out_kind out_kind_file = {
	.name = "file",
	.start = out_file_start,
	.run = out_run,
	.caught_up = out_stream_caught_up,
};

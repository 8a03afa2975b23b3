/* The file output (-l file:PATH): the file is opened once, before the
 * shipper confines itself, appended to like a socket that always takes
 * what is written, and made durable before the cursor moves past it with
 * --durability fsync. */
#include "shipper/output_parts.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

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
	if (o->fd < 0)
		return out_fail(o, "cannot use", errno);
	o->wev = event_new(o->base, -1, 0, out_on_writable, o);
	o->rev = event_new(o->base, -1, 0, out_on_readable, o);
	out_up(o);
}

int qs_output_sync(struct qs_output *o)
{
	if (o->cfg->output_is_file && o->dirty && o->fd >= 0 && o->cfg->durability == QS_DURABILITY_FSYNC &&
	    fdatasync(o->fd) != 0) {
		qs_err_kv(QS_KV({QS_LOG_PEER, out_log_peer(o)}, {QS_LOG_CODE, qs_log_errno_name(errno)}),
			  "output %s: fdatasync: %s", o->name, strerror(errno));
		return -1;
	}
	o->dirty = false;
	return 0;
}

const struct out_kind out_kind_file = {
	.name = "file",
	.start = out_file_start,
	.run = out_run,
	.caught_up = out_stream_caught_up,
};

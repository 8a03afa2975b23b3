#include "ipc/chan.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics_page.h"

#define READ_MAX (1024 * 1024) /* bytes read per wake-up and sender */
#define RECONNECT_MIN_MS 10
#define RECONNECT_MAX_MS 100 /* ZeroMQ's reconnect interval: a reload's new peers are found as fast */
#define STABLE_NS 1000000000ull /* a connection that lived this long resets the backoff */

typedef uint32_t chan_len_t;

int qs_chan_path(char *out, size_t outlen, const char *dir, const char *fmt, unsigned slot)
{
	char name[128];
	snprintf(name, sizeof(name), fmt, slot);
	int n = snprintf(out, outlen, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= outlen || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -1;
	return 0;
}

int qs_peer_pid(int fd)
{
	struct ucred cred = {0};
	socklen_t len = sizeof(cred);
	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? (int)cred.pid : -1;
}

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -1;
	strcpy(sa->sun_path, path);
	return 0;
}

/* ---- receiving side ----
 * Not a bufferevent: libevent 2.1 reads at most 4 KiB per wake-up there.
 * Each sender has its own buffer; whole messages are handed over in place. */

struct peer {
	struct peer *next, *prev;
	struct qs_chan_in *in;
	pid_t pid;
	int fd;
	struct event *ev;
	uint8_t *buf;
	size_t len, cap;
};

struct qs_chan_in {
	struct event_base *base;
	int lfd;
	struct event *accept_ev;
	struct event *resume_ev; /* delivers what was read before a pause */
	struct peer *peers;
	unsigned npeers;
	size_t max_msg;
	qs_chan_msg_fn fn;
	void *arg;
	bool paused;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void peer_free(struct peer *p)
{
	struct qs_chan_in *in = p->in;
	if (p->prev)
		p->prev->next = p->next;
	else
		in->peers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	in->npeers--;
	event_free(p->ev);
	close(p->fd);
	free(p->buf);
	free(p);
}

/* Hands over every whole message in p's buffer, until paused; false if p
 * was cut off. */
static bool deliver(struct peer *p)
{
	struct qs_chan_in *in = p->in;
	size_t off = 0;
	chan_len_t len;
	bool ok = true;
	while (!in->paused && p->len - off >= sizeof(len)) {
		memcpy(&len, p->buf + off, sizeof(len));
		if (len > in->max_msg) {
			qs_warn("%s: a sender announced a %u-byte message (limit %zu): cut off", in->path,
				(unsigned)len, in->max_msg);
			ok = false;
			break;
		}
		if (p->len - off < sizeof(len) + len)
			break;
		in->fn(in->arg, p->buf + off + sizeof(len), len);
		off += sizeof(len) + len;
	}
	if (!ok) {
		peer_free(p);
		return false;
	}
	if (off) { /* (buf may still be NULL: nothing read yet) */
		memmove(p->buf, p->buf + off, p->len - off);
		p->len -= off;
	}
	return true;
}

/* Room for the rest of the message at the head of the buffer, and at least
 * 64 KiB more to read into. */
static bool peer_room(struct peer *p)
{
	size_t want = p->len + 65536;
	chan_len_t len;
	if (p->len >= sizeof(len)) {
		memcpy(&len, p->buf, sizeof(len));
		if (len <= p->in->max_msg && sizeof(len) + (size_t)len > want)
			want = sizeof(len) + (size_t)len;
	}
	if (want <= p->cap)
		return true;
	size_t cap = p->cap ? p->cap : 65536;
	while (cap < want)
		cap *= 2;
	uint8_t *b = realloc(p->buf, cap);
	if (!b)
		return false;
	p->buf = b;
	p->cap = cap;
	return true;
}

static void on_peer_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct peer *p = arg;
	size_t got = 0;
	while (got < READ_MAX) {
		if (!peer_room(p)) {
			qs_err("%s: out of memory reading a message: sender cut off", p->in->path);
			return peer_free(p);
		}
		size_t room = p->cap - p->len;
		ssize_t n = read(fd, p->buf + p->len, room);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return peer_free(p); /* the sender went away (it reconnects if it lives) */
		if (n < 0)
			break;
		p->len += (size_t)n;
		got += (size_t)n;
		if (!deliver(p) || p->in->paused)
			return;
		/* A short read emptied the socket: no read just to hear EAGAIN (one
		 * system call per message at everyday rates). Level-triggered, so
		 * bytes that come later wake us again. */
		if ((size_t)n < room)
			break;
	}
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	struct qs_chan_in *in = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* Each peer may hold a message up to max_msg unread. */
	pid_t pid = qs_peer_pid(fd);
	unsigned same = 0;
	for (struct peer *q = in->peers; pid >= 0 && q; q = q->next)
		same += q->pid == pid;
	if (pid < 0 || same >= QS_PEER_CONNS_MAX) {
		qs_warn("%s: refused a sender (pid %d): it holds %u connections already", in->path, (int)pid, same);
		close(fd);
		return;
	}
	struct peer *p = calloc(1, sizeof(*p));
	if (p)
		p->ev = event_new(in->base, fd, EV_READ | EV_PERSIST, on_peer_readable, p);
	if (!p || !p->ev) {
		qs_err("%s: out of memory accepting a sender", in->path);
		free(p);
		close(fd);
		return;
	}
	p->fd = fd;
	p->pid = pid;
	p->in = in;
	p->next = in->peers;
	if (in->peers)
		in->peers->prev = p;
	in->peers = p;
	in->npeers++;
	if (!in->paused)
		event_add(p->ev, NULL);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_chan_in *in = arg;
	struct peer *next;
	for (struct peer *p = in->peers; p && !in->paused; p = next) {
		next = p->next;
		deliver(p);
	}
}

struct qs_chan_in *qs_chan_listen(struct event_base *base, const char *path, size_t max_msg,
				  qs_chan_msg_fn fn, void *arg)
{
	struct sockaddr_un sa;
	struct qs_chan_in *in = calloc(1, sizeof(*in));
	if (!in || fill_addr(&sa, path)) {
		qs_err("%s: cannot listen here (path too long or out of memory)", path);
		free(in);
		return NULL;
	}
	snprintf(in->path, sizeof(in->path), "%s", path);
	in->base = base;
	in->max_msg = max_msg;
	in->fn = fn;
	in->arg = arg;
	in->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unlink(path); /* a socket file left by a predecessor that died */
	if (in->lfd < 0 || bind(in->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(in->lfd, 64) != 0) {
		qs_err("%s: %s", path, strerror(errno));
		qs_chan_in_free(in);
		return NULL;
	}
	in->accept_ev = event_new(base, in->lfd, EV_READ | EV_PERSIST, on_accept, in);
	in->resume_ev = event_new(base, -1, 0, on_resume, in);
	if (!in->accept_ev || !in->resume_ev) {
		qs_err("%s: out of memory", path);
		qs_chan_in_free(in);
		return NULL;
	}
	event_add(in->accept_ev, NULL);
	return in;
}

void qs_chan_in_pause(struct qs_chan_in *in, bool paused)
{
	if (in->paused == paused)
		return;
	in->paused = paused;
	for (struct peer *p = in->peers; p; p = p->next) {
		if (paused)
			event_del(p->ev);
		else
			event_add(p->ev, NULL);
	}
	if (!paused)
		event_active(in->resume_ev, 0, 0);
}

unsigned qs_chan_in_peers(const struct qs_chan_in *in)
{
	return in->npeers;
}

void qs_chan_in_finish(struct qs_chan_in *in)
{
	if (in->accept_ev)
		event_free(in->accept_ev);
	in->accept_ev = NULL;
	if (in->lfd >= 0)
		close(in->lfd); /* a sender's connect is refused now: it retries, and finds our successor */
	in->lfd = -1;
	/* Data already queued stays readable after the shutdown (AF_UNIX);
	 * the sender's next write fails with EPIPE and its read sees the end. */
	for (struct peer *p = in->peers; p; p = p->next)
		shutdown(p->fd, SHUT_RDWR);
}

void qs_chan_in_free(struct qs_chan_in *in)
{
	if (!in)
		return;
	while (in->peers)
		peer_free(in->peers);
	if (in->accept_ev)
		event_free(in->accept_ev);
	if (in->resume_ev)
		event_free(in->resume_ev);
	if (in->lfd >= 0)
		close(in->lfd);
	free(in);
}

/* ---- sending side ----
 * Not a bufferevent: it freezes its output for its own writer, and we want
 * to write at once from qs_chan_send. An evbuffer holds what the socket did
 * not take; one event writes it when the socket drains, another notices the
 * peer going away. */

struct qs_chan_out {
	struct event_base *base;
	int fd; /* -1 while not connected */
	struct evbuffer *buf;
	struct event *wr_ev, *rd_ev, *retry_ev;
	unsigned retry_ms, retry_max_ms;
	unsigned connects; /* connections made so far */
	size_t limit;
	void (*on_writable)(void *arg);
	void *arg;
	bool told_down; /* the loss was logged; log the next connection once */
	bool flapping;  /* the last connection died young: keep backing off, keep quiet */
	uint64_t up_since_ns;
	/* qs_chan_out_keep: the written start of the first message in buf
	 * (whole messages leave it as soon as they are written), and the sizes
	 * of the messages in sent + buf, in order (sizes[first..n)). */
	bool keep;
	struct evbuffer *sent;
	size_t *sizes, first, n, cap;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void out_retry_later(struct qs_chan_out *o)
{
	struct timeval tv = {o->retry_ms / 1000, (o->retry_ms % 1000) * 1000};
	evtimer_add(o->retry_ev, &tv);
	o->retry_ms = o->retry_ms * 2 > o->retry_max_ms ? o->retry_max_ms : o->retry_ms * 2;
}

static void out_close(struct qs_chan_out *o)
{
	if (o->wr_ev)
		event_free(o->wr_ev);
	if (o->rd_ev)
		event_free(o->rd_ev);
	o->wr_ev = o->rd_ev = NULL;
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	if (o->keep) /* every message not wholly written goes again, whole */
		evbuffer_prepend_buffer(o->buf, o->sent);
	else
		evbuffer_drain(o->buf, evbuffer_get_length(o->buf));
}

/* keep: the messages of sent that are wholly written leave it. */
static void kept_written(struct qs_chan_out *o)
{
	while (o->first < o->n && evbuffer_get_length(o->sent) >= o->sizes[o->first])
		evbuffer_drain(o->sent, o->sizes[o->first++]);
	if (o->first == o->n)
		o->first = o->n = 0;
}

/* keep: one write of what buf holds; the bytes written move to sent. */
static int kept_write(struct qs_chan_out *o)
{
	struct evbuffer_iovec v[16];
	int k = evbuffer_peek(o->buf, -1, NULL, v, 16);
	struct iovec iov[16];
	for (int i = 0; i < k && i < 16; i++)
		iov[i] = (struct iovec){.iov_base = v[i].iov_base, .iov_len = v[i].iov_len};
	ssize_t w = writev(o->fd, iov, k < 16 ? k : 16);
	if (w > 0) {
		evbuffer_remove_buffer(o->buf, o->sent, (size_t)w);
		kept_written(o);
	}
	return (int)w;
}

/* A peer that accepts and at once closes (it cut us off) must not get a
 * reconnect every 10 ms, nor two log lines each time. */
static void out_drop(struct qs_chan_out *o, const char *why)
{
	size_t lost = o->keep ? 0 : evbuffer_get_length(o->buf);
	out_close(o);
	qs_mp_add(QS_M_CHAN_LOST, 1); /* the supervisor writes off what was on its way (metrics_page.h) */
	o->flapping = qs_now_ns() - o->up_since_ns < STABLE_NS;
	if (!o->told_down && !o->flapping)
		qs_info("%s: connection lost (%s, %zu bytes unsent); reconnecting", o->path, why, lost);
	o->told_down = true;
	if (!o->flapping)
		o->retry_ms = RECONNECT_MIN_MS;
	out_retry_later(o);
}

/* Writes what is buffered; false if the connection broke. */
static bool out_write(struct qs_chan_out *o)
{
	while (evbuffer_get_length(o->buf)) {
		int n = o->keep ? kept_write(o) : evbuffer_write(o->buf, o->fd);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			out_drop(o, strerror(errno));
			return false;
		}
		if (n <= 0)
			break;
	}
	if (evbuffer_get_length(o->buf))
		event_add(o->wr_ev, NULL);
	else
		event_del(o->wr_ev);
	return true;
}

/* One sendmsg of the length and the message; the bytes written, 0 if the
 * socket is full, -1 if the connection broke (dropped here). */
static ssize_t write_direct(struct qs_chan_out *o, const chan_len_t *n, const void *msg, size_t len)
{
	struct iovec iov[2] = {{.iov_base = (void *)n, .iov_len = sizeof(*n)},
			       {.iov_base = (void *)msg, .iov_len = len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	for (;;) {
		ssize_t w = sendmsg(o->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		out_drop(o, strerror(errno));
		return -1;
	}
}

static void on_out_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_chan_out *o = arg;
	if (out_write(o) && evbuffer_get_length(o->buf) <= o->limit / 2)
		o->on_writable(o->arg);
}

/* The peer never writes: readable means it closed (or broke) the connection. */
static void on_out_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct qs_chan_out *o = arg;
	char b[256];
	ssize_t n = read(fd, b, sizeof(b));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		out_drop(o, n == 0 ? "closed by the peer" : strerror(errno));
}

static bool out_connect(struct qs_chan_out *o)
{
	struct sockaddr_un sa;
	fill_addr(&sa, o->path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	/* A local stream connect completes at once or fails (no listener yet,
	 * or its backlog is full): both are retried by the timer. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return false;
	}
	o->fd = fd;
	o->wr_ev = event_new(o->base, fd, EV_WRITE, on_out_writable, o);
	o->rd_ev = event_new(o->base, fd, EV_READ | EV_PERSIST, on_out_readable, o);
	if (!o->wr_ev || !o->rd_ev) {
		out_close(o);
		return false;
	}
	event_add(o->rd_ev, NULL);
	if (o->told_down && !o->flapping)
		qs_info("%s: connected again", o->path);
	o->told_down = false;
	o->up_since_ns = qs_now_ns();
	o->connects++;
	return true;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct qs_chan_out *o = arg;
	if (out_connect(o)) {
		if (evbuffer_get_length(o->buf)) /* kept from the lost connection */
			out_write(o);
		if (o->fd >= 0)
			o->on_writable(o->arg);
	} else {
		out_retry_later(o);
	}
}

struct qs_chan_out *qs_chan_connect(struct event_base *base, const char *path, size_t limit,
				    void (*on_writable)(void *arg), void *arg)
{
	struct qs_chan_out *o = calloc(1, sizeof(*o));
	struct sockaddr_un sa;
	if (!o || fill_addr(&sa, path)) {
		qs_err("%s: cannot connect here (path too long or out of memory)", path);
		free(o);
		return NULL;
	}
	snprintf(o->path, sizeof(o->path), "%s", path);
	o->base = base;
	o->fd = -1;
	o->limit = limit;
	o->on_writable = on_writable;
	o->arg = arg;
	o->retry_ms = RECONNECT_MIN_MS;
	o->retry_max_ms = RECONNECT_MAX_MS;
	o->buf = evbuffer_new();
	o->retry_ev = evtimer_new(base, on_retry, o);
	if (!o->buf || !o->retry_ev) {
		qs_chan_out_free(o);
		return NULL;
	}
	if (!out_connect(o))
		out_retry_later(o);
	return o;
}

void qs_chan_out_backoff(struct qs_chan_out *o, unsigned max_ms)
{
	o->retry_max_ms = max_ms > RECONNECT_MIN_MS ? max_ms : RECONNECT_MIN_MS;
}

void qs_chan_out_retry_now(struct qs_chan_out *o)
{
	if (o->fd >= 0)
		return;
	evtimer_del(o->retry_ev);
	o->retry_ms = RECONNECT_MIN_MS;
	on_retry(-1, 0, o);
}

/* keep: notes the size of a message about to be queued. */
static int remember(struct qs_chan_out *o, size_t size)
{
	if (o->first && o->n == o->cap) { /* compact before growing */
		memmove(o->sizes, o->sizes + o->first, (o->n - o->first) * sizeof(*o->sizes));
		o->n -= o->first;
		o->first = 0;
	}
	if (o->n == o->cap) {
		size_t cap = o->cap ? 2 * o->cap : 64;
		size_t *z = realloc(o->sizes, cap * sizeof(*z));
		if (!z) {
			qs_err("%s: out of memory", o->path);
			return -1;
		}
		o->sizes = z;
		o->cap = cap;
	}
	o->sizes[o->n++] = size;
	return 0;
}

void qs_chan_out_keep(struct qs_chan_out *o)
{
	if (!o->sent)
		o->sent = evbuffer_new();
	o->keep = o->sent != NULL;
}

int qs_chan_send(struct qs_chan_out *o, const void *msg, size_t len)
{
	if (o->fd < 0 || evbuffer_get_length(o->buf) >= o->limit)
		return 1;
	chan_len_t n = (chan_len_t)len;
	if (len > UINT32_MAX) {
		qs_err("%s: cannot queue a %zu-byte message", o->path, len);
		return -1;
	}
	if (o->keep && remember(o, sizeof(n) + len))
		return -1;
	size_t done = 0;
	if (!evbuffer_get_length(o->buf)) {
		/* Nothing waits: write now, straight from msg, so that the usual
		 * message is never copied into the buffer (and the receiver wakes
		 * sooner than on the next loop pass). */
		ssize_t w = write_direct(o, &n, msg, len);
		if (w < 0 && !o->keep)
			return 0; /* the connection broke: lost with it (see above) */
		if (w < 0)
			w = 0; /* kept: it goes whole on the next connection */
		done = (size_t)w;
		if (done == sizeof(n) + len) {
			if (o->keep)
				o->n--; /* wholly written: nothing to keep */
			return 0;
		}
		if (o->keep) { /* its written start, to be sent again whole after a loss */
			evbuffer_add(o->sent, &n, done < sizeof(n) ? done : sizeof(n));
			if (done > sizeof(n))
				evbuffer_add(o->sent, msg, done - sizeof(n));
		}
	}
	/* Room first, so that a length is never queued without its message. */
	if (evbuffer_expand(o->buf, sizeof(n) + len - done)) {
		qs_err("%s: cannot queue a %zu-byte message", o->path, len);
		if (o->keep) { /* forget it: it was never counted as queued */
			o->n--;
			evbuffer_drain(o->sent, done);
		}
		if (!done)
			return -1;
		out_drop(o, "out of memory"); /* half a message went: the stream is cut */
		return 0;
	}
	if (done < sizeof(n))
		evbuffer_add(o->buf, (const char *)&n + done, sizeof(n) - done);
	size_t body = done > sizeof(n) ? done - sizeof(n) : 0;
	evbuffer_add(o->buf, (const char *)msg + body, len - body);
	out_write(o);
	return 0;
}

size_t qs_chan_unsent(const struct qs_chan_out *o)
{
	return evbuffer_get_length(o->buf);
}

bool qs_chan_connected(const struct qs_chan_out *o)
{
	return o->fd >= 0;
}

unsigned qs_chan_out_connects(const struct qs_chan_out *o)
{
	return o->connects;
}

void qs_chan_out_free(struct qs_chan_out *o)
{
	if (!o)
		return;
	if (o->buf)
		out_close(o);
	if (o->buf)
		evbuffer_free(o->buf);
	if (o->sent)
		evbuffer_free(o->sent);
	free(o->sizes);
	if (o->retry_ev)
		event_free(o->retry_ev);
	free(o);
}

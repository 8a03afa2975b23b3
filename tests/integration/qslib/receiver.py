"""Receiver: the TCP (or TLS) stand-in for Logstash that collects the shipped lines."""

import collections
import fcntl
import json
import socket
import struct
import termios
import threading
import time

from .base import tmo
from .cleanup import at_cleanup
from .net import free_port


class Receiver:
    """A TCP server on 127.0.0.1:port collecting newline-delimited lines from any number of
    connections (a stand-in for Logstash's tcp input with the json_lines codec).
    tls: an ssl.SSLContext (server side, see server_tls_context()) makes it speak TLS, as Logstash's
    tcp input with ssl_enable => true: each connection's handshake runs in its own thread, and a
    failed one only ends that connection (counted in tls_failures, reason in tls_last_error)."""

    def __init__(self, port=None, slow=False, host="127.0.0.1", netns=None, rcvbuf=None, tls=None):
        self.host = host
        self.netns = netns       # a NetNs: listen inside it (at its peer address)
        self.port = port or (5000 if netns else free_port("tcp", host))
        self.slow = slow
        self.rcvbuf = rcvbuf     # SO_RCVBUF of the listener: a small window fills at once
        self._go = threading.Event()  # cleared by pause(): the connections stop reading
        self._go.set()
        self.lock = threading.Lock()
        self.lines = []          # raw bytes lines, without '\n'
        self.partials = []       # bytes left without a newline when a connection closed
        self.bad_json = []       # lines that are not JSON objects
        self.counts = collections.Counter()  # event "n" -> times seen
        self.events = []         # parsed events (dicts), in arrival order
        self.connections_total = 0
        self.tls = tls
        self.tls_failures = 0    # connections whose TLS handshake failed (not those cut by stop())
        self.tls_last_error = None
        self._listener = None
        self._conns = set()
        self._threads = []
        self._running = False
        at_cleanup(self.stop)

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        if self._running:
            return self
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if self.netns:
            s = self.netns.run(lambda: socket.socket(fam, socket.SOCK_STREAM))
        else:
            s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        deadline = time.monotonic() + 10
        while True:
            try:
                s.bind((self.host, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    s.close()
                    raise
                time.sleep(0.1)
        s.listen(64)
        s.settimeout(0.2)
        self._listener = s
        self._running = True
        t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        """Closes the listener and every connection (Logstash going down)."""
        self._running = False
        s, self._listener = self._listener, None
        if s:
            try:
                s.close()
            except OSError:
                pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        self._go.set()
        for t in self._threads:
            t.join(timeout=2)
        self._threads = [t for t in self._threads if t.is_alive()]

    def pause(self):
        """Stops reading (Logstash's pipeline pushing back): its TCP window closes."""
        self._go.clear()

    def resume(self):
        self._go.set()

    def abort(self):
        """Drops every connection with a reset and stops listening (a host that crashed: its
        kernel forgets the connections)."""
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        self.stop()

    def unread(self):
        """Bytes waiting unread in each connection's kernel receive queue (SIOCINQ): what its TCP
        acknowledged and it never read."""
        with self.lock:
            conns = list(self._conns)
        out = []
        for c in conns:
            try:
                out.append(struct.unpack("i", fcntl.ioctl(c.fileno(), termios.FIONREAD, b"\0" * 4))[0])
            except (OSError, ValueError):
                pass
        return out

    def kill(self):
        """Ends as a killed Logstash does: the listener and every connection closed at once, unread
        data and all (the kernel resets a connection whose data was never read, RFC 1122 4.2.2.13).
        Returns unread() as it was just before."""
        self._running = False
        s, self._listener = self._listener, None
        if s:
            s.close()
        with self.lock:
            conns = list(self._conns)
        left = self.unread()
        for c in conns:
            try:
                c.close()  # no shutdown(): no FIN first, as for a process that dies
            except OSError:
                pass
        self._go.set()  # the paused threads find their sockets closed and end
        for t in self._threads:
            t.join(timeout=2)
        self._threads = [t for t in self._threads if t.is_alive()]
        return left

    def _accept_loop(self, s):
        while self._running:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.slow:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with self.lock:
                self._conns.add(c)
                self.connections_total += 1
            t = threading.Thread(target=self._conn_loop, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _conn_loop(self, c):
        if self.tls is not None:
            c = self._tls_accept(c)
            if c is None:
                return
        buf = b""
        try:
            while True:
                self._go.wait()
                if not self._running:
                    break
                try:
                    data = c.recv(1024 if self.slow else 262144)
                except OSError:
                    break
                if not data:
                    break
                buf += data
                if b"\n" in buf:
                    parts = buf.split(b"\n")
                    buf = parts.pop()
                    self._add(parts)
                if self.slow:
                    time.sleep(0.01)
        finally:
            with self.lock:
                self._conns.discard(c)
                if buf:
                    self.partials.append(buf)
            try:
                c.close()
            except OSError:
                pass

    def _tls_accept(self, c):
        """The server side of the TLS handshake on the accepted connection c. Returns the TLS
        socket, or None when the handshake failed (counted, the connection closed)."""
        s = None
        try:
            with self.lock:
                # No handshake inside wrap_socket: the TLS socket must take c's place in _conns
                # (wrapping detaches c) before the handshake blocks, so that stop() can cut it.
                # Under the lock, stop() either finds s in _conns or has already cleared _running.
                s = self.tls.wrap_socket(c, server_side=True, do_handshake_on_connect=False)
                self._conns.discard(c)
                self._conns.add(s)
                if not self._running:
                    raise OSError("receiver stopped")
            # a peer that never completes its handshake must not hold the thread for ever
            s.settimeout(tmo(10))
            s.do_handshake()
            s.settimeout(None)
            return s
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            with self.lock:
                self._conns.discard(c)
                self._conns.discard(s)
                if self._running:  # a handshake cut short by stop() is no TLS failure
                    self.tls_failures += 1
                    self.tls_last_error = str(e) or type(e).__name__
            for x in (s, c):
                try:
                    if x is not None:
                        x.close()
                except OSError:
                    pass
            return None

    def _add(self, lines):
        parsed = []
        for l in lines:
            try:
                ev = json.loads(l.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                ev = None
            parsed.append((l, ev))
        with self.lock:
            for l, ev in parsed:
                self.lines.append(l)
                if isinstance(ev, dict):
                    self.events.append(ev)
                    n = ev.get("n")
                    if isinstance(n, int):
                        self.counts[n] += 1
                else:
                    self.bad_json.append(l)

    def count(self):
        with self.lock:
            return len(self.lines)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def seen(self):
        with self.lock:
            return collections.Counter(self.counts)

    def wait_count(self, n, timeout):
        """Waits until at least n lines arrived; returns the count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                break
            time.sleep(0.05)
        return self.count()

    def wait_numbers(self, numbers, timeout, quiet=1.0):
        """Waits until every number in `numbers` was seen (bounded). Returns the missing set.
        After everything arrived, waits `quiet` more seconds to catch late duplicates."""
        numbers = set(numbers)
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                missing = {x for x in numbers if self.counts[x] == 0}
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not missing and quiet:
            time.sleep(quiet)
        return missing

"""The client side: quicstash-send (blocking, in the background, fed by a pipe), acks, delivery checks."""

import json
import os
import random
import re
import select
import subprocess
import threading
import time

from .base import QS_BIN, SEND, TestFailure, check, log, tmo
from .cleanup import _pdeathsig, at_cleanup, mkdtemp, need_binaries
from .events import write_lines


def _send_argv(server, extra_args, ack_log=None, cert=None):
    # server: a Server, anything with .addr and .cert (duck typing), or an "host:port" string
    addr = server if isinstance(server, str) else server.addr
    cert = cert or (None if isinstance(server, str) else getattr(server, "cert", None))
    argv = [SEND, "-s", addr] + (["--cert", cert] if cert else [])
    if ack_log:
        argv += ["--ack-log", ack_log]
    return argv + list(extra_args)


def send(server, lines=None, extra_args=(), timeout=None, ack_log=None, cert=None, input_path=None,
         client_timeout=None):
    """Runs quicstash-send on `lines` (list of str/bytes lines, or raw bytes with --raw) and returns
    (exit code, stdout, stderr). The process is killed after `timeout` seconds (exit code None)."""
    need_binaries("quicstash-send")
    timeout = timeout or tmo(120)
    d = getattr(server, "dir", None) or mkdtemp("send")
    if input_path is None:
        input_path = os.path.join(d, "input-%d-%d.txt" % (os.getpid(), random.randrange(1 << 30)))
        if isinstance(lines, (bytes, bytearray)):
            with open(input_path, "wb") as f:
                f.write(lines)
        else:
            write_lines(input_path, lines or [])
    argv = _send_argv(server, extra_args, ack_log, cert)
    if client_timeout is not None:
        argv += ["--timeout", str(client_timeout)]
    argv.append(input_path)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=_pdeathsig)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


SUMMARY_RE = re.compile(r"sent\s+(\d+)\s+acked\s+(\d+)\s+rejected\s+(\d+)")


def send_acked(server, lines, what):
    """q.send, which must be acknowledged in full: acks come once events are durable in the
    spool, whether or not Logstash takes them."""
    rc, out, err = send(server, lines, timeout=tmo(120), client_timeout=int(tmo(60)))
    check(rc == 0 and summary(err) == (len(lines), len(lines), 0),
          "%s: quicstash-send exit %r, summary %r (expected every event acknowledged);\n%s\nserver log:\n%s"
          % (what, rc, summary(err), err[-800:], server.log_tail()))


def arrived(receivers, numbers, timeout):
    """Waits until every number arrived at one of the receivers; returns the missing ones."""
    numbers = set(numbers)
    deadline = time.monotonic() + timeout
    while True:
        seen = set()
        for r in receivers:
            seen |= {n for n, c in r.seen().items() if c}
        missing = numbers - seen
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.1)


def summary(stderr):
    """(sent, acked, rejected) from quicstash-send's last summary line, or None."""
    m = SUMMARY_RE.findall(stderr)
    return tuple(int(x) for x in m[-1]) if m else None


class AsyncSend:
    """quicstash-send running in the background on an input file, with --ack-log."""

    def __init__(self, server, input_path, ack_log, extra_args=(), client_timeout=None, cert=None):
        """input_path None: the client reads a pipe (stdin) that the test writes with feed() and
        ends with end_input(); until then it stays mid-stream, however fast or slow the host."""
        need_binaries("quicstash-send")
        self.ack_log = ack_log
        self.input_path = input_path
        argv = _send_argv(server, extra_args, ack_log, cert)
        if client_timeout is not None:
            argv += ["--timeout", str(client_timeout)]
        if input_path is not None:
            argv.append(input_path)
        self.argv = argv
        d = os.path.dirname(ack_log)
        self.out_path = ack_log + ".stdout"
        self.err_path = ack_log + ".stderr"
        self._out = open(self.out_path, "ab")
        self._err = open(self.err_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if input_path else subprocess.PIPE,
                                     stdout=self._out, stderr=self._err, cwd=d, preexec_fn=_pdeathsig)
        if self.proc.stdin:
            os.set_blocking(self.proc.stdin.fileno(), False)
        at_cleanup(self.kill)

    def feed(self, data, timeout, stop=None):
        """Writes bytes to the client's stdin; returns how many were written before `timeout`,
        the client's exit (broken pipe) or `stop` (a threading.Event) was set."""
        fd, done = self.proc.stdin.fileno(), 0
        deadline = time.monotonic() + timeout
        while done < len(data) and time.monotonic() < deadline and not (stop and stop.is_set()):
            if not select.select([], [fd], [], 0.05)[1]:
                continue
            try:
                done += os.write(fd, data[done:done + 65536])
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError):
                break
        return done

    def end_input(self):
        """Closes the client's stdin: it finishes what it holds and exits."""
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass  # the client is gone: nothing more to say to it

    def acked(self):
        return read_ack_log(self.ack_log)

    def acked_count(self):
        return len(self.acked())

    def wait_acked(self, n, timeout):
        """Waits until at least n lines are acknowledged or the client exits; returns the count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.acked_count()
            if c >= n or self.proc.poll() is not None:
                return c
            time.sleep(0.02)
        return self.acked_count()

    def wait_stall(self, quiet, timeout):
        """Waits until no acknowledgement arrived for `quiet` seconds (bounded by timeout)."""
        deadline = time.monotonic() + timeout
        last, last_t = self.acked_count(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            c = self.acked_count()
            if c != last:
                last, last_t = c, time.monotonic()
            elif time.monotonic() - last_t >= quiet:
                return c, True
            if self.proc.poll() is not None:
                return c, False
        return last, False

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        self.end_input()
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass

    @staticmethod
    def _text(path):
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr(self):
        return self._text(self.err_path)

    def stdout(self):
        return self._text(self.out_path)


class Feeder:
    """Feeds lines make_line(0), make_line(1), ... to a stdin-fed AsyncSend at about `rate` a second
    until stop(). A paced input file ends n/rate seconds after it starts (sooner when --max-rate
    catches up after a stall), so a fault injected late on a slow host found the client done; a
    fed client is mid-stream until the test says otherwise. No catch-up burst: a full pipe holds
    the feeder back. Bounded: at most `limit` lines (default 600 s worth).
    On stop(), lines up to `minimum` are written unpaced (a load of at least that many), then stdin
    is closed. With copy_path, lines from `prewritten` on are appended to that file before the
    client sees them: a rerun on the file sends everything the fed client may have seen."""

    TICK = 0.02

    def __init__(self, client, make_line, rate, minimum=0, limit=None, copy_path=None, prewritten=0):
        self.client, self.make_line, self.rate = client, make_line, rate
        self.minimum = minimum
        self.limit = limit or max(minimum, int(rate * 600))
        self.copy_path, self.prewritten = copy_path, prewritten
        self.count = 0  # lines generated (written to the pipe, or pending in it)
        self._pending = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        at_cleanup(self._abort)

    def _take(self, k):
        """Generates the next k lines into the pending bytes (and the copy file)."""
        k0, k1 = self.count, self.count + k
        lines = [self.make_line(i) + "\n" for i in range(k0, k1)]
        if self.copy_path and k1 > self.prewritten:
            with open(self.copy_path, "a", encoding="utf-8") as f:
                f.write("".join(lines[max(0, self.prewritten - k0):]))
        self._pending += "".join(lines).encode("utf-8")
        self.count = k1

    def _push(self, stop, timeout):
        """Writes the pending bytes; False when the client is gone or the time is up."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline and not (stop and stop.is_set()):
            n = self.client.feed(self._pending, max(0.0, deadline - time.monotonic()), stop)
            self._pending = self._pending[n:]
            if n == 0 and not self.client.running():
                return False
        return not self._pending

    def _loop(self):
        last, credit = time.monotonic(), 0.0
        while not self._stop.is_set() and self.count < self.limit and self.client.running():
            time.sleep(self.TICK)
            now = time.monotonic()
            credit = min(credit + (now - last) * self.rate, max(1.0, self.rate * 0.1))
            last = now
            k = min(int(credit), self.limit - self.count)
            if k > 0:
                credit -= k
                self._take(k)
                self._push(self._stop, 3600)

    def stop(self, timeout=None):
        """Stops pacing, writes what is pending and the lines up to `minimum`, closes stdin."""
        self._stop.set()
        self._thread.join()
        if self.count < self.minimum:
            self._take(self.minimum - self.count)
        self._push(None, timeout or tmo(60))
        self.client.end_input()
        return self.count

    def _abort(self):
        self._stop.set()
        self.client.end_input()


def read_ack_log(path):
    """Line numbers (1-based) from an --ack-log file; a trailing partial line is ignored."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    for l in data.split(b"\n")[:-1]:
        l = l.strip()
        if l:
            try:
                out.append(int(l))
            except ValueError:
                raise TestFailure("--ack-log %s holds a line that is not a number: %r" % (path, l[:80]))
    return out


def verify_delivery(receiver, acked_numbers, timeout, what="acknowledged"):
    """Zero-loss check: every number in acked_numbers reached the receiver (waits, bounded).
    Returns the duplicate count among them (printed). Raises TestFailure listing missing numbers."""
    acked = set(acked_numbers)
    missing = receiver.wait_numbers(acked, timeout)
    seen = receiver.seen()
    dups = sum(seen[n] - 1 for n in acked if seen[n] > 1)
    log("delivery: %d %s, %d missing, %d duplicates, receiver lines %d (invalid %d, partial %d)"
        % (len(acked), what, len(missing), dups, receiver.count(), len(receiver.bad_json), len(receiver.partials)))
    if missing:
        m = sorted(missing)
        raise TestFailure("%d %s events never reached the receiver (LOSS): first %s"
                          % (len(m), what, m[:20]))
    return dups


def bench_run(server, corpus, n, extra=(), timeout=None):
    """Runs quicstash-bench against server: n events of corpus, with extra arguments (pace,
    connections...). Every event must be acknowledged without error; returns its JSON summary."""
    bench = os.path.join(QS_BIN, "quicstash-bench")
    p = subprocess.run([bench, "-s", server.addr, "--cert", server.cert, "--corpus", corpus, "-n", str(n),
                        "--json"] + list(extra), capture_output=True, text=True, timeout=timeout or tmo(120))
    check(p.returncode == 0, "quicstash-bench failed (exit %r): %s" % (p.returncode, p.stderr[-500:]))
    r = json.loads(p.stdout.strip().splitlines()[-1])
    check(r["acked"] == n and r["errors"] == 0, "not every event acknowledged: %r" % r)
    return r

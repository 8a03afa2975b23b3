"""Fault-suite helpers: a numbered load with an ack log, mid-stream faults, kill -9 of a child."""

import os

from .base import check, log, scale, tmo
from .cleanup import need_binaries
from .events import gen_events, write_lines
from .receiver import Receiver
from .server import Server
from .client import AsyncSend, Feeder, read_ack_log, verify_delivery


class Load:
    """Numbered events start..start+n-1 in an input file, sent by quicstash-send with --ack-log.
    start_client() may be called again (a rerun appends to the same ack log)."""

    def __init__(self, server, n, start=0, client_timeout=None, extra_args=(), name="load", feed_rate=None):
        """feed_rate: the first client reads a Feeder at that many events a second, and runs until
        stop_feed() (finish_client and finish_after_kills call it): at least n events, more if the
        test took longer than n / feed_rate seconds to get there."""
        self.server = server
        self.n = n
        self.start = start
        self.client_timeout = client_timeout if client_timeout is not None else int(tmo(60))
        self.extra_args = list(extra_args)
        self.lines = gen_events(n, start)
        self.input = write_lines(os.path.join(server.dir, "%s-input.jsonl" % name), self.lines)
        self.ack_path = os.path.join(server.dir, "%s-acks.txt" % name)
        self.clients = []
        self.feed_rate = feed_rate
        self.feeder = None

    def _line(self, k):
        return self.lines[k] if k < self.n else gen_events(1, self.start + k)[0]

    def start_client(self):
        fed = self.feed_rate and not self.clients  # a rerun reads the whole input file
        c = AsyncSend(self.server, None if fed else self.input, self.ack_path, extra_args=self.extra_args,
                      client_timeout=self.client_timeout)
        self.clients.append(c)
        if fed:
            self.feeder = Feeder(c, self._line, self.feed_rate, minimum=self.n, copy_path=self.input,
                                 prewritten=self.n)
        return c

    def stop_feed(self):
        """Ends a fed load (no-op otherwise): the client gets the rest of its n events and EOF."""
        if self.feeder and not self.feeder._stop.is_set():
            self.n = max(self.n, self.feeder.stop())
            log("%s: fed %d events, input closed" % (os.path.basename(self.input), self.n))

    @property
    def client(self):
        return self.clients[-1]

    def acked_numbers(self):
        ks = read_ack_log(self.ack_path)
        n = max(self.n, self.feeder.count if self.feeder else 0)
        bad = [k for k in ks if not 1 <= k <= n]
        check(not bad, "--ack-log holds line numbers outside 1..%d: %s" % (n, bad[:10]))
        return {self.start + k - 1 for k in ks}

    def all_numbers(self):
        return set(range(self.start, self.start + self.n))


def paced(n, seconds):
    """quicstash-send arguments that spread n events over about `seconds` (--max-rate catches up
    after a stall). For a client that must still be sending when a fault comes, however slow the
    host, use a Feeder (Load(feed_rate=...)) instead: a paced file ends on its own."""
    return ["--max-rate", str(max(1, int(n / seconds)))]


def mid_stream(load, fraction=0.1, timeout=None):
    """Waits until `fraction` of the load is acknowledged while the client still runs."""
    want = max(1, int(load.n * fraction))
    got = load.client.wait_acked(want, timeout or tmo(60))
    check(load.client.running(),
          "the client finished (exit %r) before the fault could be injected mid-stream; stderr: %s"
          % (load.client.proc.returncode, load.client.stderr()[-500:]))
    check(got >= want, "only %d of %d events acknowledged before the fault (waited); client stderr: %s\nserver log:\n%s"
          % (got, want, load.client.stderr()[-500:], load.server.log_tail()))
    log("mid-stream: %d of %d acknowledged" % (got, load.n))
    return got


def finish_client(load, timeout=None, expect=(0,)):
    load.stop_feed()
    rc = load.client.wait(timeout or tmo(150))
    if rc is None:
        load.client.kill()
    log("client exit %r; stderr tail: %s" % (rc, load.client.stderr().strip()[-300:]))
    check(rc in expect, "quicstash-send exit %r, expected %s; stderr tail:\n%s\nserver log tail:\n%s"
          % (rc, " or ".join(map(str, expect)), load.client.stderr()[-1500:], load.server.log_tail()))
    return rc


def finish_after_kills(load, recv, server, wait):
    """After kill -9s of the server: lets the client finish (waiting up to `wait`; it may have exited 2
    when the server disappeared, then it is rerun on the same input), checks that every event is
    acknowledged and reached the receiver whole, stops the server and checks its spool.
    Returns the duplicate count."""
    load.stop_feed()
    rc = load.client.wait(wait)
    if rc is None:
        load.client.kill()
    log("client exit %r" % rc)
    check(rc in (0, 2, None), "client: exit %r (expected 0, or 2 when the server disappeared)" % rc)
    if rc != 0:
        load.client_timeout = int(tmo(60))
        load.start_client()
        finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "after the last run --ack-log has %d of %d" % (len(acked), load.n))
    dups = verify_delivery(recv, acked, tmo(60))
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    server.stop()
    rc, out = server.check_spool()
    check(rc == 0, "--check-spool after the crash and a clean stop: exit %r\n%s" % (rc, out[-1500:]))
    return dups


def fault_kill_child_case(role, n=None, extra=()):
    """Issue 3: kill -9 of one child (role) mid-stream. The client finishes (exit 0) and every
    acknowledged event reaches the receiver. Returns the verdict detail."""
    need_binaries()
    recv = Receiver().start()
    server = Server(recv, extra=list(extra), name="kill-" + role)
    server.start()
    n = n or scale(100000)
    load = Load(server, n, client_timeout=int(tmo(90)), feed_rate=n / 4)
    load.start_client()
    mid_stream(load, 0.1)
    before = server.pids(role)
    old = server.kill_child(role)
    acked_at_kill = len(load.acked_numbers())
    new = server.wait_respawn(role, old, len(before))
    log("kill -9 %s %d at %d acked; new %s pids %r" % (role, old, acked_at_kill, role, new))
    rc = finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "client exit 0 but only %d of %d line numbers in --ack-log"
          % (len(acked), n))
    dups = verify_delivery(recv, acked, tmo(60))
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    server.stop()
    return "kill -9 of the %s at %d/%d acked: zero loss, %d duplicates" % (role, acked_at_kill, n, dups)

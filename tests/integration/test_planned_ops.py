#!/usr/bin/env python3
"""Planned operations create no duplicates (issue 25; docs/ARCHITECTURE.md, "Planned operations").
Three fed clients send numbered events all along; every acknowledged event must reach the receiver
exactly once, counted by event.id: 0 lost, 0 duplicates, 0 client errors. Frames are re-sent only
for a process that died (test_fault_kill_* count those duplicates).
  reloads-restart  5 reloads (SIGHUP), each while every client is mid-send (checked by its
                   acknowledgement count), then a stop and start on the same spool and port. Along
                   the reloads a prober connects to RUNDIR/keyholder.sock as fast as it can and short
                   clients with --handshake-retries 0 connect one after the other: the key socket must
                   always answer (the new keyholder serves before the old one stops) and no handshake
                   may fail.
  kept-socket      2 restarts with the UDP socket kept (as systemd's socket unit; test_systemd), each
                   while every client is mid-send.
  slow-logstash    a reload while Logstash reads nothing (64 KiB unread in its socket) until 3 s
                   after: the old shipper stops writing after 2 s and has what Logstash holds
                   proven read (up to 10 s), so 0 duplicates; then, Logstash down, a clean stop
                   ends in under 7 s (no proof to wait for)."""
import collections
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

CLIENTS = 3
RELOADS = 5


def wait_log(server, pattern, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(pattern, server.log())) >= n:
            return
        time.sleep(0.05)
    raise q.TestFailure("%r not seen %d times; log tail:\n%s" % (pattern, n, server.log_tail()))


def mid_send(loads, step, timeout):
    """Waits until every client got `step` more acknowledgements than it had and still runs: the
    operation then comes while each is sending."""
    for l in loads:
        at = l.client.acked_count()
        got = l.client.wait_acked(at + step, timeout)
        check(got >= at + step and l.client.running(), "%s made no progress (%d -> %d, running %r): %s"
              % (os.path.basename(l.input), at, got, l.client.running(), l.client.stderr()[-500:]))


class KeyProbe:
    """Connects to the keyholder's socket in a loop; counts the tries that found no keyholder."""

    def __init__(self, path):
        self.path, self.tries, self.fails, self.why = path, 0, 0, []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        deadline = time.monotonic() + q.tmo(600)
        while not self.stop.is_set() and time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(self.path)
            except OSError as e:
                self.fails += 1
                self.why.append(str(e))
            finally:
                s.close()
            self.tries += 1
            time.sleep(0.0005)

    def end(self):
        self.stop.set()
        self.t.join(q.tmo(10))


class ShortClients:
    """One-event clients, one after the other, that give up on the first failed handshake."""

    def __init__(self, server, start):
        self.server, self.n, self.failed, self.next = server, 0, [], start
        self.numbers = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        deadline = time.monotonic() + q.tmo(600)
        while not self.stop.is_set() and time.monotonic() < deadline and self.n < 5000:
            k = self.next
            self.next += 1
            rc, _, err = q.send(self.server, q.gen_events(1, k), extra_args=["--handshake-retries", "0"],
                                timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
            self.n += 1
            if rc == 0:
                self.numbers.append(k)
            else:
                self.failed.append("exit %r: %s" % (rc, err.strip()[-300:]))

    def end(self):
        self.stop.set()
        self.t.join(q.tmo(90))


def count_by_event_id(recv):
    ids = collections.Counter()
    evs = recv.snapshot()
    for ev in evs:
        eid = ev.get("event", {}).get("id") if isinstance(ev.get("event"), dict) else None
        check(isinstance(eid, str), "an event without event.id at the receiver: %r" % (ev,))
        ids[eid] += 1
    twice = [ev for ev in evs if ids[ev["event"]["id"]] > 1]
    twice.sort(key=lambda ev: ev["event"]["id"])
    for ev in twice[:4]:  # which copies: when stored, from which connection
        log("stored twice: %s ingested %s from port %s" % (ev["event"]["id"], ev["event"].get("ingested"),
                                                          ev.get("source", {}).get("port")))
    when = collections.Counter(ev["event"].get("ingested", "")[11:19] for ev in twice)
    if when:
        log("copies of events stored twice, by second ingested: %s" % sorted(when.items()))
    return sum(c - 1 for c in ids.values() if c > 1), len(ids)


def fed_loads(server, per):
    loads = [q.Load(server, per, start=i * per, client_timeout=int(q.tmo(120)), name="c%d" % i,
                    feed_rate=per / 15)
             for i in range(CLIENTS)]
    for l in loads:
        l.start_client()
    return loads


def finish(loads, recv, extra_numbers=()):
    """Ends the clients' input, checks 0 client errors and 0 lost; returns (duplicates, event ids,
    the acceptors' resends) counted by event.id at the receiver."""
    for l in loads:
        l.stop_feed()
    rcs = [l.client.wait(q.tmo(180)) for l in loads]
    for l, rc in zip(loads, rcs):
        check(rc == 0, "a client surfaced an error (exit %r): %s" % (rc, l.client.stderr()[-800:]))
        acked = l.acked_numbers()
        check(acked == l.all_numbers(), "client acknowledged %d of %d" % (len(acked), l.n))
        q.verify_delivery(recv, acked, q.tmo(60))
    if extra_numbers:
        q.verify_delivery(recv, extra_numbers, q.tmo(60), what="short clients' events")
    return count_by_event_id(recv)


def log_duplicates(server, dups, ids):
    resends = re.findall(r"re-sending (\d+) unresolved frames", server.log())
    log("%d distinct event.id at the receiver, %d duplicates; acceptor resends: %s" % (ids, dups, resends))
    return resends


def check_no_duplicates(server, dups, ids):
    resends = log_duplicates(server, dups, ids)
    check(dups == 0, "%d events stored twice by planned operations (acceptor resends: %s)" % (dups, resends))


def reloads_and_restart():
    """5 reloads, each while every client is mid-send, then quicstashd stop/start on the same spool
    and port; the keyholder's socket and short clients probed all along the reloads."""
    recv = q.Receiver().start()
    rundir = q.mkdtemp("planned-run")
    server = q.Server(recv, extra=["--parsers", "2", "--runtime-dir", rundir], name="planned")
    server.start()
    per = q.scale(30000)
    loads = fed_loads(server, per)
    step = max(50, per // 100)
    probe = KeyProbe(os.path.join(rundir, "keyholder.sock"))
    shorts = ShortClients(server, CLIENTS * per + 1000000)
    for i in range(1, RELOADS + 1):
        mid_send(loads, step, q.tmo(60))
        os.kill(server.pid, signal.SIGHUP)
        wait_log(server, r"reload \d+ complete", i, q.tmo(90))
        log("reload %d complete at %s" % (i, time.strftime("%H:%M:%S", time.gmtime())))
    probe.end()
    shorts.end()
    mid_send(loads, step, q.tmo(60))
    server.stop()
    server.start()
    log("stopped cleanly and started again on the same spool and port at %s" % time.strftime("%H:%M:%S", time.gmtime()))
    mid_send(loads, step, q.tmo(60))
    dups, ids = finish(loads, recv, shorts.numbers)
    server.stop()
    log_duplicates(server, dups, ids)
    log("keyholder socket: %d connects during the reloads, %d found no keyholder %s"
        % (probe.tries, probe.fails, probe.why[:3]))
    log("short clients: %d ran during the reloads, %d failed %s" % (shorts.n, len(shorts.failed), shorts.failed[:3]))
    check(probe.tries >= 100, "the keyholder prober ran only %d times" % probe.tries)
    check(probe.fails == 0, "the keyholder socket refused %d of %d connects during reloads: %s"
          % (probe.fails, probe.tries, probe.why[:3]))
    check(shorts.n >= RELOADS, "only %d short clients ran during the reloads" % shorts.n)
    check(not shorts.failed, "%d of %d short clients failed: %s" % (len(shorts.failed), shorts.n, shorts.failed[:3]))
    check_no_duplicates(server, dups, ids)
    return "%d reloads and a clean restart under load: 0 lost, 0 duplicates (%d event ids), 0 client errors; " \
        "%d keyholder connects and %d short clients, none failed" % (RELOADS, ids, probe.tries, shorts.n)


def kept_socket_restart():
    """systemctl restart with the socket kept (test_systemd's way: the UDP socket passed as
    LISTEN_FDS), twice, each while every client is mid-send."""
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--parsers", "2"], name="planned-kept")
    kept = q.KeptSocket(server)
    kept.start()
    per = q.scale(20000)
    loads = fed_loads(server, per)
    step = max(50, per // 100)
    for i in range(2):
        mid_send(loads, step, q.tmo(60))
        server.proc.send_signal(signal.SIGTERM)
        rc = server.proc.wait(timeout=q.tmo(60))
        check(rc == 0, "quicstashd exit %r on SIGTERM" % rc)
        kept.start()
        log("restart %d with the kept socket" % (i + 1))
    mid_send(loads, step, q.tmo(60))
    dups, ids = finish(loads, recv)
    server.stop()
    kept.close()
    check_no_duplicates(server, dups, ids)
    return "2 restarts with the socket kept under load: 0 lost, 0 duplicates (%d event ids), 0 client errors" % ids


def wait_unread(recv, least, timeout):
    deadline = time.monotonic() + timeout
    while sum(recv.unread()) < least and time.monotonic() < deadline:
        time.sleep(0.05)
    return sum(recv.unread())


def slow_logstash():
    """A reload while Logstash is behind: the receiver stops reading until 64 KiB wait unread in
    its socket, and reads again only 3 s after the reload began, later than the old shipper ships
    for (2 s): it must then prove what Logstash holds rather than leave it to the next shipper to
    send again. Then, Logstash down, a clean stop must not wait for a proof that cannot come."""
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--parsers", "2"], name="planned-slow")
    server.start()
    per = q.scale(20000)
    loads = fed_loads(server, per)
    mid_send(loads, max(50, per // 100), q.tmo(60))
    recv.pause()
    held = wait_unread(recv, 64 * 1024, q.tmo(30))
    check(held >= 64 * 1024, "only %d bytes unread at the paused receiver" % held)
    os.kill(server.pid, signal.SIGHUP)
    time.sleep(3.0)
    unread = sum(recv.unread())
    recv.resume()
    wait_log(server, r"reload \d+ complete", 1, q.tmo(90))
    log("reload with %d bytes unread at the receiver (%d still 3 s later, when it read again)" % (held, unread))
    mid_send(loads, max(50, per // 100), q.tmo(60))
    dups, ids = finish(loads, recv)
    check("not proven read" not in server.log(), "the old shipper gave up proving:\n%s" % server.log_tail())
    check_no_duplicates(server, dups, ids)
    recv.stop()
    q.send_acked(server, q.gen_events(100, 10 ** 7), "100 events with Logstash down")
    t0 = time.monotonic()
    server.stop()
    took = time.monotonic() - t0
    check(took < 7.0, "a clean stop with Logstash down took %.1f s (waited for a proof that cannot come)" % took)
    return "a reload with %d bytes unread at Logstash for 3 s: 0 lost, 0 duplicates (%d event ids); " \
        "stop with Logstash down in %.1f s" % (held, ids, took)


CASES = [("reloads-restart", reloads_and_restart), ("kept-socket", kept_socket_restart),
         ("slow-logstash", slow_logstash)]


def run():
    return "; ".join("%s: %s" % (name, fn()) for name, fn in CASES)

if __name__ == "__main__":
    q.main(run, cases=CASES)

#!/usr/bin/env python3
"""Reloads and rolling restarts under continuous load (issue 4).
Several clients send numbered events all along while the service is reloaded 5 times (SIGHUP:
every child replaced one at a time), a child is killed with kill -9, and the whole tree is
stopped and started again on the same spool and port. Reports acknowledged events lost (must be
0), duplicates, the longest pause any client saw between two acknowledgements, and errors
surfaced to the client application (exit codes; must be 0).
Then: a malformed configuration or certificate on reload keeps the old generation running (same
pids, still serving, the log says why); on start, the same faults exit non-zero with one line."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

CLIENTS = 3


def watch_pauses(loads, stop):
    """Longest time any client went without a new acknowledgement while it was running."""
    longest = [0.0]
    last = [(l.client.acked_count() if l.clients else 0, time.monotonic()) for l in loads]

    def loop():
        while not stop.is_set():
            now = time.monotonic()
            for i, l in enumerate(loads):
                if not l.client.running():
                    continue
                c = l.client.acked_count()
                if c != last[i][0]:
                    last[i] = (c, now)
                else:
                    longest[0] = max(longest[0], now - last[i][1])
            time.sleep(0.05)
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return longest


def wait_reload_done(server, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(r"reload \d+ complete", server.log())) >= n:
            return
        time.sleep(0.1)
    raise q.TestFailure("reload %d did not complete; log tail:\n%s" % (n, server.log_tail()))


def check_generation_overlap(server):
    """With connection-ID steering, each reload's new acceptor serves before the old one is asked
    to stop (the old one then drains its own connections)."""
    text = server.log()
    if "no connection-ID steering" in text:
        log("no steering here: acceptors were replaced in place")
        return
    serving = [(m.start(), int(m.group(1))) for m in re.finditer(r"acceptor\[(\d+)\]: serving QUIC", text)]
    stopping = [(m.start(), int(m.group(1))) for m in re.finditer(r"acceptor\[(\d+)\]: stopping", text)]
    check(len(serving) >= 6 and len(stopping) >= 5, "expected 6 acceptor generations in the log, saw %d serving, "
          "%d stopping" % (len(serving), len(stopping)))
    for k in range(5):
        old_pid, new_pid = serving[k][1], serving[k + 1][1]
        stop_at = [pos for pos, pid in stopping if pid == old_pid]
        check(stop_at and serving[k + 1][0] < stop_at[0],
              "reload %d: the new acceptor %d did not serve before the old one %d stopped" % (k + 1, new_pid, old_pid))
    log("every reload: the new acceptor generation served before the old one stopped taking work")


def under_load():
    recv = q.Receiver().start()
    conf = None
    server = q.Server(recv, extra=["--parsers", "2"], name="reload")
    server.start()
    per = q.scale(40000)
    # fed: the clients are still sending through all five reloads, the kill and the restart, however
    # long they take (stop_feed below ends them)
    loads = [q.Load(server, per, start=i * per, client_timeout=int(q.tmo(90)), name="c%d" % i,
                    feed_rate=per / 15)
             for i in range(CLIENTS)]
    for l in loads:
        l.start_client()
    for l in loads:
        q.mid_stream(l, 0.05)
    stop = threading.Event()
    longest = watch_pauses(loads, stop)
    per_reload = []
    for i in range(1, 6):
        before = server.all_pids()
        at_start = longest[0]
        longest[0] = 0.0
        os.kill(server.pid, signal.SIGHUP)
        wait_reload_done(server, i, q.tmo(90))
        time.sleep(0.3)  # a pause that ends just after "complete" still counts for this reload
        per_reload.append(longest[0])
        longest[0] = max(at_start, longest[0])
        after = server.all_pids()
        for role in ("acceptor", "parser", "shipper"):
            check(not set(before[role]) & set(after[role]),
                  "reload %d did not replace the %s children: %r -> %r" % (i, role, before[role], after[role]))
        log("reload %d done: %r" % (i, after))
    check_generation_overlap(server)
    log("longest pause between two acknowledgements of a client, reload by reload: %s"
        % " ".join("%.2fs" % x for x in per_reload))
    # A reload holds no acknowledgement for long: the old shipper goes on taking events while its
    # output settles (it held every answer for 1-2 s at each reload before), and the next one starts
    # in well under a second. Generous for sanitizer builds and a busy machine; one slow reload of
    # five is tolerated (a rare ~1 s pause remains, see docs/PERFORMANCE.md round 7), the old
    # behaviour paused >= 1 s at every one.
    slow = [x for x in per_reload if x >= q.tmo(0.8)]
    check(len(slow) <= 1, "clients waited %s for an acknowledgement in %d of 5 reloads"
          % (" ".join("%.2fs" % x for x in per_reload), len(slow)))
    old = server.kill_child("parser")
    server.wait_respawn("parser", old, 2)
    log("kill -9 parser %d: replaced" % old)
    server.stop()
    server.start()
    log("whole tree restarted")
    for l in loads:  # each client sends again through the restarted tree; then its input ends
        at = l.client.acked_count()
        check(l.client.wait_acked(at + 1, q.tmo(30)) > at, "a client made no progress after the restart: %s"
              % l.client.stderr()[-800:])
        l.stop_feed()
    rcs = [l.client.wait(q.tmo(180)) for l in loads]
    stop.set()
    errors = sum(1 for rc in rcs if rc != 0)
    dups = 0
    for l, rc in zip(loads, rcs):
        check(rc == 0, "a client surfaced an error (exit %r): %s" % (rc, l.client.stderr()[-800:]))
        acked = l.acked_numbers()
        check(acked == l.all_numbers(), "client acknowledged %d of %d" % (len(acked), l.n))
        dups += q.verify_delivery(recv, acked, q.tmo(60))
    server.stop()
    log("lost 0, duplicates %d, longest pause %.2fs, client errors %d" % (dups, longest[0], errors))
    return dups, longest[0], errors


def bad_reloads():
    recv = q.Receiver().start()
    d = q.mkdtemp("badreload")
    conf = os.path.join(d, "quicstash.conf")
    with open(conf, "w") as f:
        f.write("parsers = 1\n")
    server = q.Server(recv, extra=["--config", conf], workdir=d, name="badreload")
    server.start()
    pids = server.all_pids()
    # 1. malformed configuration
    with open(conf, "w") as f:
        f.write("parsers = many\n")
    os.kill(server.pid, signal.SIGHUP)
    deadline = time.monotonic() + q.tmo(10)
    while time.monotonic() < deadline and "configuration is invalid" not in server.log():
        time.sleep(0.1)
    check("configuration is invalid" in server.log(), "no log line about the bad configuration:\n%s"
          % server.log_tail())
    check("quicstash.conf:1" in server.log(), "the log does not point at the bad line:\n%s" % server.log_tail())
    time.sleep(1)
    check(server.all_pids() == pids, "a bad configuration replaced children: %r -> %r" % (pids, server.all_pids()))
    rc, _, err = q.send(server, q.gen_events(100), timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "not serving after a refused reload: %r %s" % (rc, err[-300:]))
    # 2. malformed certificate
    with open(conf, "w") as f:
        f.write("parsers = 1\n")
    good = open(server.cert, "rb").read()
    with open(server.cert, "wb") as f:
        f.write(b"not a certificate\n")
    os.kill(server.pid, signal.SIGHUP)
    deadline = time.monotonic() + q.tmo(10)
    while time.monotonic() < deadline and "certificate or key is unusable" not in server.log():
        time.sleep(0.1)
    check("certificate or key is unusable" in server.log(), "no log line about the bad certificate:\n%s"
          % server.log_tail())
    time.sleep(1)
    check(server.all_pids() == pids, "a bad certificate replaced children")
    with open(server.cert, "wb") as f:
        f.write(good)
    rc, _, err = q.send(server, q.gen_events(100, 100), timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "not serving after a refused certificate: %r %s" % (rc, err[-300:]))
    server.stop()
    # 3. the same faults at start: non-zero exit, one line
    with open(server.cert, "wb") as f:
        f.write(b"garbage")
    p = subprocess.run(server.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=q.tmo(30), cwd=d)
    lines = [l for l in p.stderr.decode(errors="replace").splitlines() if l.strip()]
    check(p.returncode != 0 and len(lines) == 1, "bad certificate at start: exit %r, stderr %r" % (p.returncode, lines))
    with open(conf, "w") as f:
        f.write("acceptors = 0\n")
    p = subprocess.run(server.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=q.tmo(30), cwd=d)
    lines = [l for l in p.stderr.decode(errors="replace").splitlines() if l.strip()]
    check(p.returncode == 2 and len(lines) == 1, "bad configuration at start: exit %r, stderr %r" % (p.returncode, lines))
    log("bad configuration/certificate: refused on reload (old generation serves), exit non-zero at start")


def run():
    q.need_binaries()
    bad_reloads()
    dups, pause, errors = under_load()
    return "5 reloads + kill -9 + whole restart under %d clients: lost 0, duplicates %d, longest pause %.2fs, " \
           "client errors %d; bad config/cert refused on reload, fatal at start" % (CLIENTS, dups, pause, errors)


CASES = [("bad-reloads", bad_reloads), ("under-load", under_load)]

if __name__ == "__main__":
    q.main(run, cases=CASES)

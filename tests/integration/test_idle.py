#!/usr/bin/env python3
"""An idle server wakes each process at most a few times a second (issue 27, "Idle").

A default quicstashd with no client and a listening Logstash stand-in: every process (supervisor
and children) and every thread of theirs is sampled from /proc (voluntary context switches: the
times it went to sleep, i.e. its wake-ups) over WINDOW seconds, and each must stay under LIMIT per
second, the threads of a process together too. Before, the acceptor ticked every 100 ms, the
parser and the shipper retried the answers channels of the reload bank that has no acceptor every
100 ms, the parser's ZeroMQ retried that bank's frames endpoints every 100-200 ms, and the shipper
ticked its output every 100 ms and its cursor every 200 ms: 12, 12 + 6.6, 21.6 wake-ups per second.
Cases:
  default       the default server, Logstash listening;
  logstash-down nothing listens at the Logstash address (the shipper's reconnections count);
  metrics       with --metrics-addr (the metrics process too);
  after-reload  after a reload, once the old acceptor generation is gone (its channel is
                announced gone: nothing retries it) -- and events still flow through the new one.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

LIMIT = 5.0     # wake-ups per second, per process (all its threads) and so per thread
WINDOW = 5.0    # seconds sampled
SETTLE = 2.0    # seconds after start (or a reload) before sampling: start-up retries back off


def role_of(pid, supervisor):
    if pid == supervisor:
        return "supervisor"
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    return argv[argv.index(b"--role") + 1].decode() if b"--role" in argv else None


def snapshot(server):
    """{(role, pid, tid, thread name): voluntary context switches} of every thread of the tree."""
    out = {}
    for pid in [server.pid] + server._descendants():
        role = role_of(pid, server.pid)
        if role is None:
            continue
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
            except OSError:
                continue
            out[(role, pid, tid, st["Name"].strip())] = int(st["voluntary_ctxt_switches"])
    return out


def measure(server, what):
    """Samples WINDOW seconds; checks every thread and every process under LIMIT per second."""
    a = snapshot(server)
    time.sleep(WINDOW)
    b = snapshot(server)
    per_proc, lines, bad = {}, [], []
    for k in sorted(b):
        if k not in a:
            continue
        rate = (b[k] - a[k]) / WINDOW
        per_proc[(k[0], k[1])] = per_proc.get((k[0], k[1]), 0.0) + rate
        lines.append("%-10s %-7d %-14s %5.1f/s" % (k[0], k[1], k[3], rate))
    for (role, pid), rate in sorted(per_proc.items()):
        lines.append("%-10s %-7d %-14s %5.1f/s (process)" % (role, pid, "all threads", rate))
        if rate >= LIMIT:
            bad.append("%s %d: %.1f wake-ups/s" % (role, pid, rate))
    log("%s: voluntary context switches per second over %.0f s:\n  %s" % (what, WINDOW, "\n  ".join(lines)))
    roles = {r for r, _ in per_proc}
    check({"supervisor", "keyholder", "acceptor", "parser", "shipper"} <= roles,
          "%s: not every role was sampled: %s" % (what, sorted(roles)))
    check(not bad, "%s: an idle server wakes these processes %.0f or more times a second: %s"
          % (what, LIMIT, "; ".join(bad)))
    return per_proc


def idle_server(logstash=True, extra=()):
    rx = q.Receiver().start() if logstash else None
    port = rx.port if rx else q.free_port("tcp")  # nothing listens there
    server = q.Server(logstash="127.0.0.1:%d" % port, extra=list(extra)).start()
    time.sleep(SETTLE)
    return rx, server


def default(_=None):
    rx, server = idle_server()
    measure(server, "default, Logstash listening")
    server.stop()


def logstash_down(_=None):
    rx, server = idle_server(logstash=False)
    measure(server, "Logstash down")
    server.stop()


def metrics(_=None):
    _, extra = q.metrics_server_args()
    rx, server = idle_server(extra=extra)
    per_proc = measure(server, "with --metrics-addr")
    check(any(r == "metrics" for r, _ in per_proc), "no metrics process sampled")
    server.stop()


def after_reload(_=None):
    rx, server = idle_server()
    os.kill(server.pid, signal.SIGHUP)
    deadline = time.monotonic() + q.tmo(60)
    while "reload 1 complete" not in server.log():
        check(time.monotonic() < deadline, "reload 1 did not complete; log tail:\n%s" % server.log_tail())
        time.sleep(0.1)
    time.sleep(SETTLE)
    measure(server, "after a reload")
    # The new generation is reached at once: events sent now are acknowledged and arrive.
    q.send_acked(server, q.gen_events(200), "send after the reload")
    q.verify_delivery(rx, range(200), q.tmo(30))
    server.stop()


CASES = [("default", default), ("logstash-down", logstash_down), ("metrics", metrics),
         ("after-reload", after_reload)]


def run():
    for _, fn in CASES:
        fn()


if __name__ == "__main__":
    q.main(run, cases=CASES)

#!/usr/bin/env python3
"""Receive moderation (issue 27, --receive-coalesce): when packets come in bursts the acceptor stops
watching its socket for the gather wait and then reads what came meanwhile together, so every hop
after it handles a batch per wake-up; once the traffic stops it sleeps again.

Cases:
  batches   quicstash-bench paces 2,000 events/s over 4 connections (a packet every few hundred
            microseconds) against --receive-coalesce 5000: every event is acknowledged and
            delivered, the spool's group commits carry at least 4 events each on average (about 10
            expected: the events of 5 ms; reading on every arrival gives 1-2), and the parser wakes
            at most 0.5 times per event (about 0.2 expected: its two threads once per batch).
            Groups that far apart are synced on the shipper's loop: its helper threads (the sync
            thread among them) wake at most once per two groups (once per group when handed over).
            QS_TEST_COALESCE_US overrides the cadence (0 shows the case failing).
  sleeps    right after that traffic, the acceptor's threads wake at most 30 times a second over
            two quiet seconds: the gather waits stopped with the packets (waits that kept running
            would wake it 200 times a second: shown failing with them)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib.metrics import metrics_server_args, scrape
from qslib import check, log

BENCH = os.path.join(q.QS_BIN, "quicstash-bench")
RATE = 2000
CADENCE_US = int(os.environ.get("QS_TEST_COALESCE_US", "5000"))


def voluntary_switches(pid, helpers_only=False):
    """Voluntary context switches of every thread of pid, summed (sleeps: one per wake-up); with
    helpers_only, of its threads but the main one."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        if helpers_only and int(t) == pid:
            continue
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return total


_state = {}


def setup():
    """One server for both cases (the second looks at what follows the first's traffic)."""
    if _state:
        return _state
    d = q.mkdtemp("coalesce")
    n = q.scale(RATE * 3, RATE * 2)  # 3 s of traffic (2 s under sanitizers)
    corpus = os.path.join(d, "corpus.jsonl")
    q.write_lines(corpus, q.gen_events(n))
    recv = q.Receiver()
    recv.start()
    mport, margs = metrics_server_args()
    server = q.Server(recv, name="coalesce", extra=margs + ["--receive-coalesce", str(CADENCE_US)])
    server.start()
    _state.update(d=d, n=n, corpus=corpus, recv=recv, mport=mport, server=server)
    return _state


def case_batches():
    s = setup()
    server, n = s["server"], s["n"]
    parser, shipper = server.pids("parser")[0], server.pids("shipper")[0]
    sw0, th0 = voluntary_switches(parser), voluntary_switches(shipper, helpers_only=True)
    p = subprocess.run([BENCH, "-s", server.addr, "--cert", server.cert, "--corpus", s["corpus"], "-n", str(n),
                        "-r", str(RATE), "-c", "4", "-S", "1", "--json"], capture_output=True, text=True,
                       timeout=q.tmo(120))
    check(p.returncode == 0, "quicstash-bench failed (exit %r): %s" % (p.returncode, p.stderr[-500:]))
    r = json.loads(p.stdout.strip().splitlines()[-1])
    check(r["acked"] == n and r["errors"] == 0, "not every event acknowledged: %r" % r)
    sw = voluntary_switches(parser) - sw0
    th = voluntary_switches(shipper, helpers_only=True) - th0
    check(s["recv"].wait_count(n, q.tmo(30)) >= n, "the receiver got %d of %d events" % (s["recv"].count(), n))
    m = scrape(s["mport"])
    events, groups = m["quicstash_spool_events_written_total"], m["quicstash_spool_group_commits_total"]
    check(groups > 0, "no group commit counted")
    per_group, wakes = events / groups, sw / n
    log("%d events at %d/s, cadence %d us: %.1f events per group commit (%d groups), parser %.2f wake-ups per "
        "event, shipper's helper threads %d wake-ups, ack p50 %.2f ms p99 %.2f ms" % (n, RATE, CADENCE_US, per_group,
                                                                                      groups, wakes, th,
                                                r["latency_us"]["p50"] / 1e3, r["latency_us"]["p99"] / 1e3))
    check(per_group >= 4, "%.2f events per group commit: the acceptor hands on events one by one" % per_group)
    check(wakes <= 0.5, "the parser woke %.2f times per event: no batches" % wakes)
    # groups this far apart find the shipper's loop idle: synced there, not handed to its thread
    check(th <= 0.5 * groups, "the shipper's helper threads woke %d times for %d groups: the groups went to the "
          "sync thread" % (th, groups))
    s["end"] = time.monotonic()
    return "%.1f events per group, parser %.2f wake-ups per event" % (per_group, wakes)


def case_sleeps():
    s = setup()
    if "end" not in s:
        case_batches()
    server = s["server"]
    acceptor = server.pids("acceptor")[0]
    time.sleep(max(0.0, s["end"] + 0.5 - time.monotonic()))  # the cadence's idle waits run out meanwhile
    sw0, t0 = voluntary_switches(acceptor), time.monotonic()
    time.sleep(2.0)
    rate = (voluntary_switches(acceptor) - sw0) / (time.monotonic() - t0)
    log("acceptor after the traffic: %.1f wake-ups per second" % rate)
    check(rate <= 30, "the acceptor wakes %.0f times a second with no traffic: its cadence kept running" % rate)
    server.stop()
    return "acceptor %.1f wake-ups/s when quiet" % rate


CASES = [("batches", case_batches), ("sleeps", case_sleeps)]


def run():
    return "; ".join("%s: %s" % (n, f()) for n, f in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

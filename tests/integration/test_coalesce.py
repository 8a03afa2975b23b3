#!/usr/bin/env python3
"""Receive moderation (issue 27, --receive-coalesce): when packets come in bursts the acceptor stops
watching its socket for the gather wait and then reads what came meanwhile together, so every hop
after it handles a batch per wake-up; once the traffic stops it sleeps again.

Cases:
  batches   quicstash-bench paces 2,000 events/s over 4 connections (two packets on each tick of
            its 1 ms pacing; at 1,000 events/s a lone packet a tick is read on arrival and no
            gathering starts) against --receive-coalesce CADENCE: every event is acknowledged and
            delivered, the spool's group commits carry at least 4 events each on average (the
            events of one cadence, 10-20, expected; reading on every arrival gives 1-2), and the
            parser wakes at most 0.5 times per event (about 0.2 expected: its two threads once per
            batch). Groups that far apart find the shipper's loop idle and are synced there: at
            most half of them are handed to the sync thread (all of them when that is broken; a
            few in a hundred on a quiet host, up to a third beside two CPU hogs and a direct-I/O
            writer, where a group rightly goes to the thread when the last sync, or the loop,
            ran into its arrival). They are counted exactly by that thread's writes (one 8-byte
            eventfd signal per group, /proc/TID/io; the other helper writes 40-byte cursor slots),
            not by wake-ups, which the fdatasyncs' own I/O waits and the cursor writes made swing
            with the disk. Syncs ending within the cadence is the condition: the case times
            fdatasyncs of 4 KB (a group here) in the spool's file system first and makes the
            cadence 5 ms or three times their 90th percentile (the option allows 10 ms at most);
            it times them every 100 ms during the run, and if more groups went to the thread while
            the syncs' 90th percentile outgrew half the cadence, the run did not make its
            condition: it is repeated with the cadence for what was measured (3 runs at most, then
            the case fails naming the disk's times). QS_TEST_COALESCE_US sets the cadence instead
            and allows no repeat (0 shows the case failing).
  sleeps    right after that traffic, the acceptor's threads wake at most 30 times a second over
            two quiet seconds: the gather waits stopped with the packets (waits that kept running
            would wake it 100-200 times a second: shown failing with them)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib.metrics import metrics_server_args, scrape
from qslib import check, log

RATE = 2000  # two events per tick of quicstash-bench's 1 ms pacing: each read after a wait finds a burst
CADENCE_US = os.environ.get("QS_TEST_COALESCE_US")
HANDED_MAX = 0.5  # of the groups, handed to the sync thread (all of them when broken)
ATTEMPTS = 3


def voluntary_switches(pid):
    """Voluntary context switches of every thread of pid, summed (sleeps: one per wake-up)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def helper_writes(pid):
    """{tid: (write calls, bytes written)} of pid's threads but the main one (/proc/TID/io)."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        if int(t) != pid:
            with open("/proc/%d/task/%s/io" % (pid, t)) as f:
                io = dict(line.split(": ") for line in f.read().splitlines())
            out[t] = (int(io["syscw"]), int(io["wchar"]))
    return out


def handed_over(before, after):
    """Groups handed to the shipper's sync thread between two helper_writes: its only writes are the
    8-byte eventfd signals of the syncs it finished (the other helper writes 40-byte cursor slots)."""
    n = 0
    for t, (calls, nbytes) in after.items():
        calls0, bytes0 = before.get(t, (0, 0))
        if nbytes - bytes0 == 8 * (calls - calls0):
            n += calls - calls0
    return n


def sync_ms(directory, k, pause, stop=None):
    """Milliseconds each of k fdatasyncs of 4 KB (a group's size here) appended to a file in directory
    took, pause seconds apart (fewer if stop is set meanwhile), sorted."""
    path = os.path.join(directory, "sync-probe.%d" % threading.get_ident())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    times, stop = [], stop or threading.Event()
    try:
        for _ in range(k):
            os.write(fd, b"x" * 4096)
            t0 = time.monotonic()
            os.fdatasync(fd)
            times.append((time.monotonic() - t0) * 1e3)
            if stop.wait(pause):
                break
    finally:
        os.close(fd)
        os.unlink(path)
    return sorted(times)


def p90(times):
    return times[min(len(times) - 1, int(len(times) * 0.9))]


def cadence_for(times):
    """A gather wait (us) that nearly every group's sync on this disk ends well within (at most the
    option's 10 ms)."""
    return int(min(10000, max(5000, 3000 * p90(times))))


class SyncProbe(threading.Thread):
    """Times the disk's syncs (sync_ms) every 100 ms while the traffic runs."""

    def __init__(self, directory):
        super().__init__(daemon=True)
        self.directory, self.stop, self.times = directory, threading.Event(), []

    def run(self):
        self.times = sync_ms(self.directory, 1000, 0.1, self.stop)

    def result(self):
        self.stop.set()
        self.join()
        return self.times


_state = {}


def setup(cadence_us):
    """A server for both cases (the second looks at what follows the first's traffic), gathering
    cadence_us."""
    if "server" in _state:  # an earlier run's
        _state["server"].stop()
        _state["recv"].stop()
    d, recv = _state["d"], q.Receiver()
    recv.start()
    n = q.scale(RATE * 3, RATE * 2)  # 3 s of traffic (2 s under sanitizers)
    corpus = os.path.join(d, "corpus.jsonl")
    q.write_lines(corpus, q.gen_events(n))
    mport, margs = metrics_server_args()
    server = q.Server(recv, name="coalesce", extra=margs + ["--receive-coalesce", str(cadence_us)])
    server.start()
    _state.update(n=n, cadence=cadence_us, corpus=corpus, recv=recv, mport=mport, server=server)
    return _state


def run_batches(s):
    """One run of traffic against s's server; returns what was measured."""
    server, n = s["server"], s["n"]
    parser, shipper = server.pids("parser")[0], server.pids("shipper")[0]
    sw0, w0 = voluntary_switches(parser), helper_writes(shipper)
    probe = SyncProbe(s["d"])
    probe.start()
    try:
        r = q.bench_run(server, s["corpus"], n, ["-r", str(RATE), "-c", "4", "-S", "1"])
    finally:
        during = probe.result()
    sw, handed = voluntary_switches(parser) - sw0, handed_over(w0, helper_writes(shipper))
    check(s["recv"].wait_count(n, q.tmo(30)) >= n, "the receiver got %d of %d events" % (s["recv"].count(), n))
    m = scrape(s["mport"])
    events, groups = m["quicstash_spool_events_written_total"], m["quicstash_spool_group_commits_total"]
    check(groups > 0, "no group commit counted")
    log("%d events at %d/s, cadence %d us: %.1f events per group commit (%d groups), parser %.2f wake-ups per "
        "event, %d groups handed to the sync thread, the disk's syncs meanwhile p50 %.1f p90 %.1f max %.1f ms, "
        "ack p50 %.2f ms p99 %.2f ms" % (n, RATE, s["cadence"], events / groups, groups, sw / n, handed,
                                         during[len(during) // 2], p90(during), during[-1],
                                         r["latency_us"]["p50"] / 1e3, r["latency_us"]["p99"] / 1e3))
    return events / groups, sw / n, handed, groups, during


def case_batches():
    _state["d"] = q.mkdtemp("coalesce")  # the servers' spools are made in the same file system
    if CADENCE_US is not None:
        cadence, why = int(CADENCE_US), "QS_TEST_COALESCE_US"
    else:
        before = sync_ms(_state["d"], 20, 0.01)
        cadence, why = cadence_for(before), "the disk's syncs p90 %.1f ms" % p90(before)
    for attempt in range(1, ATTEMPTS + 1):
        log("cadence %d us (%s)" % (cadence, why))
        s = setup(cadence)
        per_group, wakes, handed, groups, during = run_batches(s)
        check(per_group >= 4, "%.2f events per group commit: the acceptor hands on events one by one" % per_group)
        check(wakes <= 0.5, "the parser woke %.2f times per event: no batches" % wakes)
        # groups this far apart find the shipper's loop idle: synced there, not handed to its thread
        if handed <= HANDED_MAX * groups:
            break
        # more went to the thread: rightly so if the disk's syncs outlasted the gap between groups
        # meanwhile (their next group was ready when they ended): run again with the cadence it needs
        slow = p90(during) > cadence / 2000
        check(CADENCE_US is None and slow and attempt < ATTEMPTS,
              "%d of %d groups were handed to the sync thread (the disk's syncs meanwhile: p90 %.1f ms, cadence "
              "%d us): groups that follow an idle loop are not synced there" % (handed, groups, p90(during),
                                                                                 cadence))
        cadence, why = cadence_for(during), "the disk was slower during the run: syncs p90 %.1f ms" % p90(during)
    s["end"] = time.monotonic()
    return "%.1f events per group, parser %.2f wake-ups per event, %d of %d groups handed over" % (
        per_group, wakes, handed, groups)


def case_sleeps():
    s = _state
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

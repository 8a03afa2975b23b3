#!/usr/bin/env python3
"""The service's status line (sd_notify STATUS=, what `systemctl status` shows): open connections,
events per second acknowledged and rejected, whether Logstash is up, the spool's backlog, and when
the spool is full. Read from the NOTIFY_SOCKET the test listens on, against real load:
  1. Logstash down, quicstash-bench at a fixed rate over 4 connections: the line shows the
     connections, a rate near the target, Logstash DOWN and a backlog that grows;
  2. malformed events: a rejection rate appears;
  3. more events than the spool holds: NOT ACCEPTING;
  4. Logstash comes up: everything arrives, the line says up, backlog 0 B, accepting again;
  5. the stats lines in the log (--stats-interval 2) add up to exactly the events acknowledged and
     rejected.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

BENCH = os.path.join(q.QS_BIN, "quicstash-bench")
RATE = 1000
SIZES = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def statuses(server, since=0):
    """Every STATUS= line received from index `since` of the notify messages."""
    out = []
    for msg in server.notify_msgs[since:]:
        out += [l[len("STATUS="):] for l in msg.splitlines() if l.startswith("STATUS=")]
    return out


def parse(line):
    """The figures of one status line (None where a part is missing)."""
    def num(pattern, conv=float):
        m = re.search(pattern, line)
        return conv(m.group(1)) if m else None
    backlog = re.search(r"backlog ([0-9.]+) (B|KiB|MiB|GiB|TiB)", line)
    return {
        "connections": num(r"; (\d+) connections", int),
        "acked": num(r"; (\d+) events/s acknowledged"),
        "rejected": num(r", (\d+)/s rejected"),
        "logstash": num(r"Logstash (up|DOWN)", str),
        "backlog": float(backlog.group(1)) * SIZES[backlog.group(2)] if backlog else None,
        "full": "NOT ACCEPTING" in line,
    }


def wait_status(server, pred, timeout, since=0, what=""):
    """The first status line from `since` on that satisfies pred (parsed), or fails."""
    deadline = time.monotonic() + timeout
    while True:
        for line in statuses(server, since):
            if pred(parse(line)):
                return line
        if time.monotonic() > deadline:
            check(False, "no status line %s in %.0f s; the last ones:\n%s"
                  % (what, timeout, "\n".join(statuses(server, since)[-5:])))
        time.sleep(0.1)


def phase_load(server, corpus):
    since = len(server.notify_msgs)
    n = RATE * 4
    p = subprocess.run([BENCH, "-s", server.addr, "--cert", server.cert, "--corpus", corpus, "-c", "4",
                        "-r", str(RATE), "-n", str(n)], capture_output=True, text=True, timeout=q.tmo(60))
    check(p.returncode == 0, "quicstash-bench failed (exit %r): %s" % (p.returncode, p.stderr[-500:]))
    seen = [parse(l) for l in statuses(server, since)]
    during = [s for s in seen if s["connections"] == 4 and s["acked"]]
    check(during, "no status line with the bench's 4 connections and a rate; got:\n%s"
          % "\n".join(statuses(server, since)))
    best = max(s["acked"] for s in during)
    check(RATE * 0.5 <= best <= RATE * 1.5, "rate shown %.0f events/s, the bench sent %d/s" % (best, RATE))
    check(all(s["logstash"] == "DOWN" for s in seen if s["logstash"]), "Logstash shown up while it was down")
    backlogs = [s["backlog"] for s in seen if s["backlog"] is not None]
    check(len(backlogs) >= 2 and backlogs[-1] > backlogs[0] and backlogs[-1] > n * 100,
          "backlog did not grow with Logstash down: %r" % backlogs)
    log("under load: 4 connections, up to %.0f events/s shown (bench %d/s), backlog %.0f -> %.0f bytes"
        % (best, RATE, backlogs[0], backlogs[-1]))
    return n


def phase_rejects(server):
    since = len(server.notify_msgs)
    bad = ["{not json %d" % i for i in range(50)]
    rc, out, err = q.send(server, bad, timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(q.summary(err) is not None and q.summary(err)[2] == 50, "expected 50 rejections: %r" % (q.summary(err),))
    line = wait_status(server, lambda s: (s["rejected"] or 0) > 0, q.tmo(5), since, "with a rejection rate")
    log("rejections shown: %s" % line)


def run():
    q.need_binaries("quicstashd", "quicstash-bench", "quicstash-send")
    recv = q.Receiver()  # not started: Logstash is down
    server = q.Server(recv, extra=["--spool-max-bytes", "2M", "--stats-interval", "2"], name="status")
    server.start()
    corpus = os.path.join(server.dir, "corpus.jsonl")
    q.write_lines(corpus, q.gen_events(RATE * 4))

    n = phase_load(server, corpus)
    phase_rejects(server)

    since = len(server.notify_msgs)
    d = q.mkdtemp("status-send")
    more = q.gen_events(q.scale(12000, 6000), start=1000000)  # ~3 MB: beyond the 2 MiB spool
    inp = os.path.join(d, "more.jsonl")
    q.write_lines(inp, more)
    sender = q.AsyncSend(server, inp, os.path.join(d, "acks.log"), client_timeout=int(q.tmo(120)))
    line = wait_status(server, lambda s: s["full"], q.tmo(20), since, "saying the spool is full")
    log("spool full shown: %s" % line)

    since = len(server.notify_msgs)
    recv.start()
    check(sender.wait(q.tmo(120)) == 0, "the sender did not finish once Logstash was up")
    missing = recv.wait_numbers(range(1000000, 1000000 + len(more)), q.tmo(60), quiet=0)
    check(not missing, "%d events missing after Logstash came up" % len(missing))
    check(recv.count() >= n + len(more), "the receiver has %d lines, expected at least %d"
          % (recv.count(), n + len(more)))
    line = wait_status(server, lambda s: s["logstash"] == "up" and s["backlog"] == 0 and not s["full"],
                       q.tmo(10), since, "with Logstash up, backlog 0 B and accepting")
    log("drained: %s" % line)

    # two more stats lines (--stats-interval 2) after the drain: every report counted
    stats_re = re.compile(r"stats, last \d+ s: (\d+) events acknowledged \([0-9]+/s\), (\d+) rejected; now ")
    at_drain = len(stats_re.findall(server.log()))
    deadline = time.monotonic() + q.tmo(20)
    while time.monotonic() < deadline and len(stats_re.findall(server.log())) < at_drain + 2:
        time.sleep(0.2)
    counted = stats_re.findall(server.log())
    acked, rejected = sum(int(a) for a, r in counted), sum(int(r) for a, r in counted)
    check((acked, rejected) == (n + len(more), 50), "the stats lines count %d acknowledged and %d rejected, "
          "expected %d and 50 (%d lines)" % (acked, rejected, n + len(more), len(counted)))
    log("%d stats lines add up to %d acknowledged, %d rejected" % (len(counted), acked, rejected))
    server.stop()
    return "connections, rate, rejections, Logstash down/up, backlog and a full spool all shown in STATUS="


if __name__ == "__main__":
    q.main(run)

#!/usr/bin/env python3
"""The per-hop trace (common/hoptrace.h, scripts/hoptrace) that finds where acknowledgements wait
(issue 5): with QS_HOPTRACE_DIR set, the acceptor, parser and shipper each write a trace, and the
script follows every acknowledged event from its datagram through ZeroMQ, the parser, the spool's
fdatasync and back to its answer packet, with hops that add up. A trace stops at
QS_HOPTRACE_MAX_MB, with a log line, and the service goes on. Without the variable nothing is
written; the script fails clearly on a directory without traces."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

SCRIPT = os.path.join(q.REPO, "scripts", "hoptrace")


def hoptrace(d, *extra):
    return subprocess.run([sys.executable, SCRIPT, d] + list(extra), capture_output=True, text=True,
                          timeout=q.tmo(120))


def traced():
    d = q.mkdtemp("hoptrace")
    trace = os.path.join(d, "trace")
    os.makedirs(trace)
    n = q.scale(3000, 1000)
    recv = q.Receiver()
    recv.start()
    server = q.Server(recv, name="hoptrace")
    server.env["QS_HOPTRACE_DIR"] = trace
    server.start()
    q.send_acked(server, [l for l in q.gen_events(n)], "traced server")
    check(recv.wait_count(n, q.tmo(30)) >= n, "the receiver got %d of %d events" % (recv.count(), n))
    server.stop()  # the children write what they hold at exit
    roles = sorted(f.split(".")[0] for f in os.listdir(trace))
    check(roles == ["acceptor", "parser", "shipper"], "trace files of %r, expected one per pipeline role" % roles)
    p = hoptrace(trace, "--json", "--skip-s", "0")
    check(p.returncode == 0, "hoptrace failed (exit %r): %s" % (p.returncode, p.stderr[-800:]))
    r = json.loads(p.stdout)
    log("hoptrace: %d of %d events followed end to end, total p50 %.3f ms p99 %.3f ms" % (
        r["events"], r["queued"], r["hops_ms"]["total"]["p50"], r["hops_ms"]["total"]["p99"]))
    check(r["queued"] == n, "the acceptor traced %d frames for %d events" % (r["queued"], n))
    check(r["events"] == n, "only %d of %d events followed from datagram to answer" % (r["events"], n))
    hops = r["hops_ms"]
    for name, st in hops.items():
        check(st is not None and st["count"] > 0 and st["min"] >= 0, "hop %r: %r" % (name, st))
    # every event passes each hop once: the medians of the parts cannot exceed the whole's maximum,
    # and the whole is at least its slowest part for every event
    parts = [k for k in hops if k not in ("total", "fdatasync itself")]
    check(len(parts) == 10 and all(hops[k]["count"] == n for k in parts), "hop counts: %r" %
          {k: hops[k]["count"] for k in parts})
    check(sum(hops[k]["min"] for k in parts) <= hops["total"]["min"] + 1e-6,
          "the hops' minima add up to more than the fastest event")
    check(max(hops[k]["max"] for k in parts) <= hops["total"]["max"] + 1e-6, "a hop took longer than any event")
    check(hops["fdatasync itself"]["max"] <= hops["fdatasync+wake"]["max"] + 1e-6,
          "an fdatasync outlasted the wait for it")


def capped():
    d = q.mkdtemp("hoptrace-cap")
    trace = os.path.join(d, "trace")
    os.makedirs(trace)
    n = 20000  # ~72 bytes of acceptor records each: past 1 MiB even under sanitizers
    recv = q.Receiver()
    recv.start()
    server = q.Server(recv, name="hoptrace-cap", workdir=d)
    server.env.update({"QS_HOPTRACE_DIR": trace, "QS_HOPTRACE_MAX_MB": "1"})
    server.start()
    q.send_acked(server, q.gen_events(n), "server whose trace stops")
    check(recv.wait_count(n, q.tmo(60)) >= n, "the receiver got %d of %d events" % (recv.count(), n))
    server.stop()
    cap = (1 << 20) // 24 * 24
    sizes = {f.split(".")[0]: os.path.getsize(os.path.join(trace, f)) for f in os.listdir(trace)}
    log("trace sizes with a 1 MiB cap: %r" % sizes)
    check(all(v <= cap for v in sizes.values()), "a trace grew past its cap of %d bytes: %r" % (cap, sizes))
    check(sizes.get("acceptor") == cap, "the acceptor's trace did not stop at the cap: %r" % sizes)
    check("tracing stopped" in server.log(), "no log line when the trace stopped")
    p = hoptrace(trace, "--json", "--skip-s", "0")
    check(p.returncode == 0, "hoptrace failed on a stopped trace (exit %r): %s" % (p.returncode, p.stderr[-800:]))
    r = json.loads(p.stdout)
    check(0 < r["events"] < n, "a trace cut at 1 MiB followed %d of %d events" % (r["events"], n))


def untraced():
    d = q.mkdtemp("hoptrace-off")
    recv = q.Receiver()
    recv.start()
    server = q.Server(recv, name="hoptrace-off", workdir=d)
    server.start()
    q.send_acked(server, q.gen_events(50), "untraced server")
    server.stop()
    hops = [f for _, _, fs in os.walk(d) for f in fs if f.endswith(".hop")]
    check(not hops, "trace files written without QS_HOPTRACE_DIR: %r" % hops)
    p = hoptrace(d)
    check(p.returncode == 1 and "no *.hop files" in p.stderr, "no clear failure on an empty directory: exit %r, %r"
          % (p.returncode, p.stderr))


def run():
    q.need_binaries("quicstashd", "quicstash-send")
    traced()
    capped()
    untraced()
    return "acceptor, parser and shipper traces; every event followed from datagram to answer, hops consistent; " \
           "a trace stops at its cap and the service goes on; no files when off; a clear error without traces"


CASES = [("traced", traced), ("capped", capped), ("untraced", untraced)]

if __name__ == "__main__":
    q.main(run, cases=CASES)

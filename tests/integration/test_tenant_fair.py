#!/usr/bin/env python3
"""No noisy neighbours (issue 21, item 5; docs/TENANTS.md, "Fair share").

parser-share: two tenants without limits, one parser made the bottleneck (QS_TEST_PARSER_DELAY_US:
  each frame takes 100 us longer, a test-only hook). Tenant a floods with 16 connections, tenant b
  sends 3,000 events on one (the same window per connection: 256 events). While both are backlogged
  (from b's first event to its last in the spool's order, with a's events before and after), b gets
  at least 35% of what the parser handled: its frames are served by deficit round robin beside a's.
  In arrival order (QS_TEST_FAIR_OFF=1 runs the same test with the test-only QS_TEST_PARSER_FIFO=1)
  b gets about 1/17 and the check fails.
quota-restart: Logstash down, tenant full over its spool-quota is held; kill -9 of the shipper: the
  new shipper counts full's unshipped records from the spool (its backlog scan), so full stays held
  while tenant other is acknowledged; when Logstash returns both drain."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

BENCH = os.path.join(q.QS_BIN, "quicstash-bench")
FAIR_OFF = os.environ.get("QS_TEST_FAIR_OFF") == "1"


def hash_token(token):
    p = subprocess.run([q.QUICSTASHD, "--hash-token"], input=(token + "\n").encode(), stdout=subprocess.PIPE,
                       timeout=q.tmo(30), check=True)
    return p.stdout.decode().strip()


def tenants_server(d, recv, sections, extra=(), env=None):
    """sections: {name: extra lines}; tenant NAME's token is in d/NAME.token."""
    text = ""
    for name, lines in sections.items():
        with open(os.path.join(d, name + ".token"), "w") as f:
            f.write(name + "-token\n")
        text += "[tenant %s]\n%s\n%s\n" % (name, hash_token(name + "-token"), lines)
    path = os.path.join(d, "tenants.conf")
    with open(path, "w") as f:
        f.write(text)
    s = q.Server(recv, extra=["--tenants", path, "--auth", "token"] + list(extra), workdir=d, name="fair")
    s.env.update(env or {})
    return s.start()


def token(d, name):
    return os.path.join(d, name + ".token")


def bench(server, d, corpus, tenant, args):
    argv = [BENCH, "-s", server.addr, "--cert", server.cert, "--corpus", corpus, "--json",
            "--token-file", token(d, tenant), "-w", "256", "--stall-timeout", "0"] + args
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tenant_of(ev):
    try:
        return q.field(ev, "organization.id")
    except KeyError:
        return None


def case_parser_share():
    q.need_test_hooks("QS_TEST_PARSER_DELAY_US")
    d = q.mkdtemp("fair-share")
    recv = q.Receiver().start()
    env = {"QS_TEST_PARSER_DELAY_US": "100"}
    if FAIR_OFF:
        env["QS_TEST_PARSER_FIFO"] = "1"
    server = tenants_server(d, recv, {"a": "", "b": ""}, ["--parsers", "1", "--stats-interval", "1"], env)
    corpus = q.write_lines(os.path.join(d, "corpus.jsonl"), q.gen_events(1000))
    n_b = 3000
    log("server up")
    a = bench(server, d, corpus, "a", ["-c", "16", "-d", str(int(q.tmo(40)))])
    try:
        # a backlogged first: the parser is behind (its 16 windows full) before b starts
        deadline = time.monotonic() + q.tmo(30)
        while recv.count() < 2000 and time.monotonic() < deadline:
            if a.poll() is not None:
                check(False, "a's quicstash-bench ended: %s" % a.stderr.read()[-500:])
            time.sleep(0.05)
        check(recv.count() >= 2000, "a: only %d events delivered in 30 s" % recv.count())
        log("a: %d events delivered" % recv.count())
        t0 = time.monotonic()
        b = bench(server, d, corpus, "b", ["-c", "1", "-n", str(n_b)])
        out, err = b.communicate(timeout=q.tmo(300))
        log("b: %d events in %.1f s" % (n_b, time.monotonic() - t0))
        check(b.returncode == 0, "b's quicstash-bench exit %r: %s" % (b.returncode, err[-500:]))
        if a.poll() is not None:
            check(False, "a's flood ended before b was done: a was not backlogged all along: %s"
                  % a.stderr.read()[-500:])
        # the rest of b's events reach the spool's output, with some of a's after them
        seen_b = lambda: sum(1 for ev in list(recv.events) if tenant_of(ev) == "b")
        deadline = time.monotonic() + q.tmo(30)
        while seen_b() < n_b and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        a.send_signal(signal.SIGINT)
        try:
            a.communicate(timeout=q.tmo(30))
        except subprocess.TimeoutExpired:
            a.kill()
    order = [tenant_of(ev) for ev in list(recv.events)]
    check(order.count("b") == n_b, "b: %d of %d events delivered" % (order.count("b"), n_b))
    first, last = order.index("b"), len(order) - 1 - order[::-1].index("b")
    window = order[first:last + 1]
    check("a" in order[:first] and "a" in order[last + 1:], "a was not backlogged before and after b")
    share = window.count("b") / len(window)
    log("while both were backlogged: %d events, b %d (%.1f%%), a %d%s" % (
        len(window), window.count("b"), 100 * share, window.count("a"), " (fair share off)" if FAIR_OFF else ""))
    check(share >= 0.35, "b (1 connection) got %.1f%% of the parser beside a (16 connections), expected "
          ">= 35%%" % (100 * share))
    server.stop()
    return "b's share while both were backlogged: %.1f%% (1 connection against 16)" % (100 * share)


CASES = [("parser-share", case_parser_share)]


def run():
    q.need_binaries("quicstashd", "quicstash-bench")
    for _, fn in CASES:
        log(fn())


if __name__ == "__main__":
    q.main(run, cases=CASES)

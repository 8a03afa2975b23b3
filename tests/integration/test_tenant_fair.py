#!/usr/bin/env python3
"""No noisy neighbours (issue 21, item 5; docs/TENANTS.md, "Fair share").

parser-share: two tenants without limits, one parser made the bottleneck (QS_TEST_PARSER_DELAY_US:
  each frame takes 100 us longer, a test-only hook). Tenant a floods with 16 connections, tenant b
  sends 3,000 events on one (the same window per connection: 256 events). While both are backlogged
  (from b's first event to its last in the spool's order, with a's events before and after), b gets
  at least 35% of what the parser handled: its frames are served by deficit round robin beside a's.
  In arrival order (QS_TEST_FAIR_OFF=1 runs the same test with the test-only QS_TEST_FAIR_FIFO=1)
  b gets about 1/17 and the check fails (parser 6.2%, shipper 7.5%).
shipper-share: the same with the shipper made the bottleneck instead (QS_TEST_SHIPPER_DELAY_US: each
  event it stages takes 100 us longer): its events are staged by deficit round robin too.
parser-reload: both tenants send while a reload replaces the one parser (its look-ahead holding both
  tenants' frames): everything sent is acknowledged within the clients' drain, each event stored
  once, no resend (dropping the look-ahead at the clean stop instead: 818 duplicates).
quota-restart: Logstash down, tenant full over its spool-quota is held; kill -9 of the shipper: the
  new shipper counts full's unshipped records from the spool (its backlog scan), so full stays held
  while tenant other is acknowledged; when Logstash returns both drain."""
import json
import re
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


def case_parser_share(slow="QS_TEST_PARSER_DELAY_US"):
    q.need_test_hooks(slow)
    d = q.mkdtemp("fair-share")
    recv = q.Receiver().start()
    env = {slow: "100"}
    if FAIR_OFF:
        env["QS_TEST_FAIR_FIFO"] = "1"
    server = tenants_server(d, recv, {"a": "", "b": ""}, ["--parsers", "1", "--stats-interval", "1"], env)
    corpus = q.write_lines(os.path.join(d, "corpus.jsonl"), q.gen_events(1000))
    n_b = 3000
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
    role = "parser" if "PARSER" in slow else "shipper"
    check(share >= 0.35, "b (1 connection) got %.1f%% of the %s beside a (16 connections), expected "
          ">= 35%%" % (100 * share, role))
    server.stop()
    return "b's share of the %s while both were backlogged: %.1f%% (1 connection against 16)" % (role, 100 * share)


def flood(server, d, start, n, tenant):
    path = q.write_lines(os.path.join(d, "%s-%d.jsonl" % (tenant, start)), q.gen_events(n, start))
    return q.AsyncSend(server, path, os.path.join(d, "%s-%d.acks" % (tenant, start)),
                       extra_args=["--token-file", token(d, tenant)], client_timeout=int(q.tmo(120)))


def with_org(lines):
    """ECS-style events with their own organization object: the parser merges its id into it."""
    return [l[:-1] + ',"organization":{"name":"Acme %d"}}' % i for i, l in enumerate(lines)]


def case_quota_restart():
    d = q.mkdtemp("fair-quota")
    recv = q.Receiver()  # not started: Logstash is down
    server = tenants_server(d, recv, {"full": "spool-quota = 256K", "other": ""})
    n_full = 100000
    size = sum(len(l) + 1 for l in with_org(q.gen_events(1000))) / 1000
    path = q.write_lines(os.path.join(d, "full-org.jsonl"), with_org(q.gen_events(n_full)))
    a = q.AsyncSend(server, path, os.path.join(d, "full-org.acks"), extra_args=["--token-file", token(d, "full")],
                    client_timeout=int(q.tmo(120)))
    acked, stalled = a.wait_stall(2.0, q.tmo(60))
    check(stalled and acked < n_full, "full was not held: %d of %d acknowledged with Logstash down" % (acked, n_full))
    before, since = server.pids("shipper"), len(server.log())
    old = server.kill_child("shipper")
    server.wait_respawn("shipper", old, len(before))
    server.wait_log("spool quotas:", since, q.tmo(20))
    # Every line's tail names its tenant, also where the parser merged the client's organization:
    # none is parsed whole (each was, at 4-130 ns a byte, before READY).
    line = [l for l in server.log()[since:].splitlines() if "spool quotas:" in l][-1]
    m = re.search(r"(\d+) unshipped records .* \((\d+) parsed whole\)", line)
    check(m and int(m.group(1)) > 0 and int(m.group(2)) == 0, "the restarted shipper's count: %s" % line)
    # other flows through the new shipper while full stays where it was held
    rc, _, err = q.send(server, q.gen_events(3000, n_full), extra_args=["--token-file", token(d, "other")],
                        timeout=q.tmo(120), client_timeout=int(q.tmo(60)))
    check(rc == 0 and q.summary(err) == (3000, 3000, 0),
          "other was not acknowledged after the restart: exit %r summary %r" % (rc, q.summary(err)))
    after, stalled = a.wait_stall(2.0, q.tmo(30))
    # Without the count from the spool the new shipper would start full at 0 and let a whole quota
    # (256 KiB) and more in before holding it again.
    moved = after - acked
    check(stalled and moved * size < 64 * 1024, "full moved by %d events (%.0f KiB) after the shipper's kill -9: "
          "the new shipper did not count its spool backlog" % (moved, moved * size / 1024))
    recv.start()
    rc = a.wait(q.tmo(120))
    check(rc == 0 and q.summary(open(a.err_path).read()) == (n_full, n_full, 0),
          "full after Logstash returned: exit %r" % rc)
    missing = recv.wait_numbers(range(n_full + 3000), q.tmo(60), quiet=0)
    check(not missing, "not drained: %d events missing, first %s" % (len(missing), sorted(missing)[:10]))
    server.stop()
    return "full held at %d events, %d more after kill -9 of the shipper; other acknowledged; both drained" % (
        acked, moved)


def bench_report(p):
    try:
        out, err = p.communicate(timeout=q.tmo(120))
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    lines = [l for l in out.splitlines() if l.startswith("{")]
    check(lines, "quicstash-bench printed no report: %s" % err[-500:])
    return json.loads(lines[-1])


def case_parser_reload():
    """A parser replaced by a reload while its look-ahead holds two tenants' frames serves them all
    before it exits: nothing acknowledged lost, nothing stored twice, no resend."""
    q.need_test_hooks("QS_TEST_PARSER_DELAY_US")
    d = q.mkdtemp("fair-reload")
    recv = q.Receiver().start()
    conf = os.path.join(d, "quicstash.conf")
    with open(conf, "w") as f:
        f.write("stats-interval = 1\n")
    server = tenants_server(d, recv, {"a": "", "b": ""}, ["--parsers", "1", "--config", conf],
                            {"QS_TEST_PARSER_DELAY_US": "100"})
    corpus = q.write_lines(os.path.join(d, "corpus.jsonl"), q.gen_events(1000))
    # both send for 15 s and then wait up to 10 s for their last answers: a frame the replaced
    # parser dropped would be answered only by the acceptors' 30 s resend, and stay unresolved
    args = ["-d", "15", "--drain-timeout", "10"]
    a = bench(server, d, corpus, "a", ["-c", "16"] + args)
    b = bench(server, d, corpus, "b", ["-c", "1"] + args)
    try:
        deadline = time.monotonic() + q.tmo(30)
        while time.monotonic() < deadline and not (recv.count() > 3000 and any(
                tenant_of(ev) == "b" for ev in list(recv.events))):
            time.sleep(0.1)
        with open(conf, "w") as f:
            f.write("stats-interval = 2\n")  # not only tenants: every child is replaced
        since = len(server.log())
        os.kill(server.pid, signal.SIGHUP)
        check(server.wait_log("reload 1 complete", since, q.tmo(60)), "reload 1 did not complete:\n%s"
              % server.log_tail())
        check("replacing every child" in server.log()[since:], "the reload was applied in place")
        check(a.poll() is None and b.poll() is None, "the clients ended before the reload did")
    finally:
        ra, rb = bench_report(a), bench_report(b)
    for name, r in (("a", ra), ("b", rb)):
        check(r["unresolved"] == 0 and r["errors"] == 0 and r["acked"] == r["sent"],
              "%s: sent %d acked %d unresolved %d errors %d" % (name, r["sent"], r["acked"], r["unresolved"],
                                                                r["errors"]))
    acked = {"a": ra["acked"], "b": rb["acked"]}
    deadline = time.monotonic() + q.tmo(60)
    while recv.count() < acked["a"] + acked["b"] and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    evs = list(recv.events)
    ids = [q.field(ev, "event.id") for ev in evs]
    dups = len(ids) - len(set(ids))
    got = {t: sum(1 for ev in evs if tenant_of(ev) == t) for t in acked}
    log("acknowledged %r, delivered %r, %d duplicates" % (acked, got, dups))
    check(all(got[t] >= acked[t] for t in acked), "acknowledged events lost: acked %r delivered %r" % (acked, got))
    check(dups == 0, "%d events stored twice" % dups)
    bad = [l for l in server.log().splitlines() if "re-sending" in l or "before the deadline" in l]
    check(not bad, "the replaced parser did not hand everything over:\n%s" % "\n".join(bad[:5]))
    server.stop()
    return "parser replaced under two tenants: %d + %d acknowledged, all stored once, no resend" % (
        acked["a"], acked["b"])


def case_shipper_share():
    return case_parser_share("QS_TEST_SHIPPER_DELAY_US")


CASES = [("parser-share", case_parser_share), ("shipper-share", case_shipper_share), ("quota-restart", case_quota_restart),
         ("parser-reload", case_parser_reload)]


def run():
    q.need_binaries("quicstashd", "quicstash-bench")
    for _, fn in CASES:
        log(fn())


if __name__ == "__main__":
    q.main(run, cases=CASES)

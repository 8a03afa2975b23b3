#!/usr/bin/env python3
"""Tenant limits (issue 21, item 4; docs/TENANTS.md, "Limits").

fair: tenant slow (events-per-second = 2000) floods with quicstash-send while tenant fast (no limit)
  sends 50,000 events with quicstash-bench; fast's time and p99 acknowledgement latency stay within
  20% of fast alone (measured in the same test, in pairs, up to 3 rounds: one pair must meet it;
  each side of a pair the best of 3 runs, since one run takes about 0.15 s);
  slow is acknowledged at no more than 2,200 events/s, every event of both is delivered, and
  slow's quicstash-send says it was throttled.
reject: a tenant with on-limit = reject over its rate gets its excess rejected rate_limited, the
  rest acknowledged and delivered.
max-connections: a tenant at its max-connections = 1: a second connection is refused with the
  reason, the first keeps going and everything it sends is delivered.
spool-quota: Logstash down: tenant full (spool-quota = 256K) is held once that much of its events
  wait in the spool, while tenant other keeps being acknowledged; when Logstash returns both drain
  completely and full's client is told it was held at its spool-quota.
acceptors: with 2 acceptors a tenant's 8 connections together stay within its rate (the acceptors
  share its buckets; test_tenant_shared checks where the connections land).
message-size: a tenant's max-message-size rejects a larger frame too_large; the server's limit
  still lets other tenants send it."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

BENCH = os.path.join(q.QS_BIN, "quicstash-bench")
LIMIT = 2000


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def hash_token(token):
    p = subprocess.run([q.QUICSTASHD, "--hash-token"], input=(token + "\n").encode(), stdout=subprocess.PIPE,
                       timeout=q.tmo(30), check=True)
    return p.stdout.decode().strip()


def tenants_server(d, recv, sections, extra=()):
    """sections: {name: extra lines}; tenant NAME's token is NAME-token, in d/NAME.token."""
    text = ""
    for name, lines in sections.items():
        write(os.path.join(d, name + ".token"), name + "-token\n")
        text += "[tenant %s]\n%s\n%s\n" % (name, hash_token(name + "-token"), lines)
    path = write(os.path.join(d, "tenants.conf"), text)
    return q.Server(recv, extra=["--tenants", path, "--auth", "token", "--stats-interval", "1"] + list(extra),
                    workdir=d, name="limits").start()


def token(d, name):
    return os.path.join(d, name + ".token")


def bench(server, d, corpus, n, tenant="fast", extra=()):
    argv = [BENCH, "-s", server.addr, "--cert", server.cert, "--corpus", corpus, "--json", "-n", str(n),
            "--token-file", token(d, tenant)] + list(extra)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=q.tmo(180))
    check(p.returncode == 0, "quicstash-bench exit %r: %s" % (p.returncode, p.stderr[-500:]))
    r = json.loads(p.stdout.strip().splitlines()[-1])
    check(r["acked"] == n and r["errors"] == 0, "fast: not every event acknowledged: %r" % r)
    return r["elapsed_s"], r["latency_us"]["p99"], r["events_per_s"]


def flood(server, d, start, n, tenant="slow"):
    """That tenant's quicstash-send on n events numbered from start, in the background."""
    path = q.write_lines(os.path.join(d, "%s-%d.jsonl" % (tenant, start)), q.gen_events(n, start))
    ack = os.path.join(d, "%s-%d.acks" % (tenant, start))
    return q.AsyncSend(server, path, ack, extra_args=["--token-file", token(d, tenant)],
                       client_timeout=int(q.tmo(120)))


def best(results):
    """Of several runs of bench(): the shortest time and the lowest p99 (and the first's rate)."""
    return min(r[0] for r in results), min(r[1] for r in results), results[0][2]


def case_fair():
    d = q.mkdtemp("limits-fair")
    recv = q.Receiver().start()
    server = tenants_server(d, recv, {"slow": "events-per-second = %d" % LIMIT, "fast": ""})
    n_fast = 50000
    corpus = q.write_lines(os.path.join(d, "corpus.jsonl"), q.gen_events(1000, 10 ** 7))
    n_slow = 6 * LIMIT  # about 6 s at the limit: longer than fast takes
    rounds, ok, start, runs = [], False, 0, 0
    # fast's 50,000 events take about 0.15 s here: one hiccup of the host (another VM) is more than
    # 20% of that, so each side is the best of `per` runs (alone before the flood, beside it during)
    per = 1 if q.SANITIZE else 3
    for rnd in range(3):
        alone = best([bench(server, d, corpus, n_fast) for _ in range(per)])
        a = flood(server, d, start, n_slow)
        t0 = time.monotonic()
        got = a.wait_acked(LIMIT // 4, q.tmo(30))
        check(got >= LIMIT // 4, "slow: only %d acknowledged before fast's run" % got)
        shared = best([bench(server, d, corpus, n_fast) for _ in range(per)])
        runs += 2 * per
        # slow must still be sending for fast's runs to have been beside it: on a host slow enough
        # (beside CPU hogs) fast's runs outlasted slow's 6 s once. Such a round does not count,
        # and the next one's flood is twice as long (its rate is still checked below).
        beside = a.running()
        if not beside:
            log("round %d: slow (%d events) finished before fast's runs did (at %.0f/s): not counted"
                % (rnd, n_slow, a.acked_count() / (time.monotonic() - t0)))
        rc = a.wait(q.tmo(120))
        took = time.monotonic() - t0
        err = open(a.err_path).read()
        check(rc == 0 and q.summary(err) == (n_slow, n_slow, 0), "slow: exit %r summary %r\n%s"
              % (rc, q.summary(err), err[-500:]))
        rate = n_slow / took
        check(rate <= LIMIT * 1.1, "slow acknowledged at %.0f events/s, over its %d (+10%%)" % (rate, LIMIT))
        check("throttled by the server at the tenant's events-per-second limit" in err,
              "slow's quicstash-send did not say it was throttled:\n%s" % err[-500:])
        missing = recv.wait_numbers(range(start, start + n_slow), q.tmo(60), quiet=0)
        check(not missing, "slow: acknowledged events %s never arrived" % sorted(missing)[:10])
        start += n_slow
        if not beside:
            n_slow *= 2
            continue
        rounds.append((alone, shared, rate))
        log("round %d: fast alone %.2f s p99 %.0f us; beside slow %.2f s p99 %.0f us; slow %.0f events/s"
            % (rnd, alone[0], alone[1], shared[0], shared[1], rate))
        if shared[0] <= alone[0] * 1.2 and shared[1] <= alone[1] * 1.2:
            ok = True
            break
        if q.SANITIZE:
            # ASan makes fast alone CPU-bound on this 2-core machine (1.4-2.7 s from round to round):
            # anything else running costs it directly. The timing is judged in the plain build only.
            log("sanitizers: fast's timing logged, not judged")
            ok = True
            break
    check(ok, "fast beside slow was more than 20%% slower than alone in every round it was beside it (%d of "
          "3; slow outlasted fast's runs in the others): %r" % (len(rounds), rounds))
    # every fast event delivered: 50,000 a run, numbered within the corpus
    want = n_fast * runs + start
    deadline = time.monotonic() + q.tmo(60)
    while recv.count() < want and time.monotonic() < deadline:
        time.sleep(0.2)
    check(recv.count() >= want, "delivered %d lines, expected %d" % (recv.count(), want))
    check("tenant slow:" in server.log() and "throttled 0.0 s" not in [l.split(", ")[-1] for l in server.log()
          .splitlines() if "tenant slow:" in l][-1], "the throttled time of slow was not counted:\n%s"
          % server.log_tail())
    server.stop()
    return "fast within 20%% beside slow (%d round(s)); slow at %.0f/s <= %d +10%%, told it was throttled" % (
        len(rounds), rounds[-1][2], LIMIT)


def case_reject():
    d = q.mkdtemp("limits-reject")
    recv = q.Receiver().start()
    server = tenants_server(d, recv, {"r": "events-per-second = 200\non-limit = reject"})
    n = 3000
    rc, out, err = q.send(server, q.gen_events(n), extra_args=["--token-file", token(d, "r")],
                          timeout=q.tmo(120), client_timeout=int(q.tmo(60)))
    s = q.summary(err)
    check(s and s[0] == n and s[1] + s[2] == n and s[2] > 0 and s[1] < n / 2,
          "on-limit = reject: summary %r (expected most of %d rejected)\n%s" % (s, n, err[-500:]))
    check("rate_limited" in out + err or "rate limited" in out + err, "no rate-limited reason shown:\n%s%s"
          % (out[-300:], err[-300:]))
    deadline = time.monotonic() + q.tmo(30)
    while recv.count() < s[1] and time.monotonic() < deadline:
        time.sleep(0.1)
    check(recv.count() == s[1], "acknowledged %d, delivered %d" % (s[1], recv.count()))
    server.stop()
    return "%d of %d rejected rate_limited, %d acknowledged and delivered" % (s[2], n, s[1])


def case_max_connections():
    d = q.mkdtemp("limits-conns")
    recv = q.Receiver().start()
    server = tenants_server(d, recv, {"m": "max-connections = 1"})
    first = q.AsyncSend(server, None, os.path.join(d, "first.acks"), extra_args=["--token-file", token(d, "m")],
                        client_timeout=int(q.tmo(60)))
    lines = q.gen_events(100)
    first.feed(("\n".join(lines[:50]) + "\n").encode(), q.tmo(10))
    check(first.wait_acked(50, q.tmo(30)) == 50, "first connection: not acknowledged")
    rc, _, err = q.send(server, q.gen_events(10, 1000), extra_args=["--token-file", token(d, "m")],
                        timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 2 and "tenant over its max-connections" in err,
          "second connection: exit %r, expected the refusal:\n%s" % (rc, err[-500:]))
    first.feed(("\n".join(lines[50:]) + "\n").encode(), q.tmo(10))
    first.end_input()
    check(first.wait(q.tmo(60)) == 0 and first.acked_count() == 100, "first connection did not go on")
    missing = recv.wait_numbers(range(100), q.tmo(30), quiet=0.5)
    check(not missing and not any(recv.seen()[i] for i in range(1000, 1010)),
          "missing %s, or the refused connection's events delivered" % sorted(missing)[:5])
    server.stop()
    return "second connection refused 'tenant over its max-connections', the first delivered all 100"


def case_message_size():
    d = q.mkdtemp("limits-size")
    recv = q.Receiver().start()
    server = tenants_server(d, recv, {"small": "max-message-size = 1K", "big": ""})
    ev = json.dumps({"n": 0, "pad": "x" * 2000})
    rc, out, err = q.send(server, [ev], extra_args=["--token-file", token(d, "small")], timeout=q.tmo(60))
    check(q.summary(err) == (1, 0, 1) and "exceeds the limit of 1024 bytes" in out + err,
          "small: summary %r\n%s%s" % (q.summary(err), out[-300:], err[-300:]))
    rc, out, err = q.send(server, [ev], extra_args=["--token-file", token(d, "big")], timeout=q.tmo(60))
    check(q.summary(err) == (1, 1, 0), "big: summary %r" % (q.summary(err),))
    server.stop()
    return "a 2 KB event rejected too_large for max-message-size = 1K, taken for another tenant"


def case_spool_quota():
    d = q.mkdtemp("limits-quota")
    recv = q.Receiver()  # not started: Logstash is down
    quota = 256 * 1024
    server = tenants_server(d, recv, {"full": "spool-quota = 256K", "other": ""})
    n_full = 100000  # several times what can slip in before the hold (below): "held" is then a real stop
    lines = q.gen_events(n_full)
    size = sum(len(l) + 1 for l in lines) / n_full
    a = flood(server, d, 0, n_full, "full")
    acked, stalled = a.wait_stall(2.0, q.tmo(60))
    check(stalled and acked < n_full, "full was not held: %d of %d acknowledged with Logstash down:\n%s\n%s"
          % (acked, n_full, open(a.err_path).read()[-500:], server.log_tail()))
    # The hold comes late by what the acceptors take in before the shipper's STATUS reaches them
    # (0.6-0.7 MiB on a quiet host, 1.9 MiB beside a CPU hog): bounded here by a quarter of what
    # the flood would put in without any hold, so a quota that never holds still fails above.
    check(acked * size <= n_full * size / 4, "full held only after %d events (%.0f KiB, quota 256 KiB)"
          % (acked, acked * size / 1024))
    rc, _, err = q.send(server, q.gen_events(3000, 100000), extra_args=["--token-file", token(d, "other")],
                        timeout=q.tmo(120), client_timeout=int(q.tmo(60)))
    check(rc == 0 and q.summary(err) == (3000, 3000, 0),
          "other was not acknowledged while full was held: exit %r summary %r" % (rc, q.summary(err)))
    check(a.running() and a.acked_count() == acked, "full moved while held: %d -> %d" % (acked, a.acked_count()))
    recv.start()
    rc = a.wait(q.tmo(120))
    err = open(a.err_path).read()
    check(rc == 0 and q.summary(err) == (n_full, n_full, 0), "full after Logstash returned: exit %r summary %r"
          % (rc, q.summary(err)))
    check("at the tenant's spool-quota limit" in err, "full was not told its spool-quota held it:\n%s" % err[-400:])
    missing = recv.wait_numbers(list(range(n_full)) + list(range(100000, 103000)), q.tmo(60), quiet=0)
    check(not missing, "not drained: %d events missing, first %s" % (len(missing), sorted(missing)[:10]))
    server.stop()
    return "full held at %d events (%.0f KiB) with Logstash down, other acknowledged; both drained" % (
        acked, acked * size / 1024)


def case_acceptors():
    d = q.mkdtemp("limits-acceptors")
    recv = q.Receiver().start()
    server = tenants_server(d, recv, {"slow": "events-per-second = %d" % LIMIT}, extra=["--acceptors", "2"])
    corpus = q.write_lines(os.path.join(d, "corpus.jsonl"), q.gen_events(1000))
    n = 4 * LIMIT
    took, _, rate = bench(server, d, corpus, n, "slow", ["-c", "8"])
    # one pair of buckets for both acceptors: 8 connections spread over both never pass the whole
    check(n / took <= LIMIT * 1.1 + LIMIT / 5 / took, "2 acceptors, 8 connections: %.0f events/s over %d"
          % (n / took, LIMIT))
    server.stop()
    return "2 acceptors, 8 connections of one tenant: %.0f events/s for a limit of %d" % (n / took, LIMIT)


CASES = [("fair", case_fair), ("reject", case_reject), ("max-connections", case_max_connections),
         ("spool-quota", case_spool_quota),
         ("message-size", case_message_size),
         ("acceptors", case_acceptors)]


def run():
    q.need_binaries("quicstashd", "quicstash-send", "quicstash-bench")
    for _, fn in CASES:
        log(fn())


if __name__ == "__main__":
    q.main(run, cases=CASES)

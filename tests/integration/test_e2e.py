#!/usr/bin/env python3
"""End to end (issue 2): quicstashd + a real TCP receiver + quicstash-send of 100,000 generated events.
Every event arrives exactly once, client fields unchanged, plus the server's fields. Also: spoofed
server fields are replaced, IPv6, -l file:PATH, bad option values (one-line error, exit 2)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def check_server_fields(ev, t_lo, t_hi, ip="127.0.0.1"):
    """Returns an error string or None."""
    try:
        ing = q.field(ev, "event.ingested")
        eid = q.field(ev, "event.id")
        sip = q.field(ev, "source.ip")
        sport = q.field(ev, "source.port")
    except KeyError as e:
        return "missing server field %s in %s" % (e, json.dumps(ev, ensure_ascii=False)[:300])
    if not isinstance(ing, str) or not q.RFC3339_RE.match(ing):
        return "event.ingested %r is not RFC3339" % (ing,)
    t = q.parse_rfc3339(ing)
    if t is None or not (t_lo - 5 <= t <= t_hi + 5):
        return "event.ingested %r not within the test's time window" % (ing,)
    if not isinstance(eid, str) or not q.EVENT_ID_RE.match(eid):
        return "event.id %r is not <32 hex>-<seq>" % (eid,)
    if sip != ip:
        return "source.ip %r != %r" % (sip, ip)
    if not isinstance(sport, int) or isinstance(sport, bool) or not (1 <= sport <= 65535):
        return "source.port %r is not an int port" % (sport,)
    return None


def bulk(recv, server, t_start):
    n = q.scale(100000)
    lines = q.gen_events(n)
    originals = {i: json.loads(l) for i, l in enumerate(lines)}
    t0 = time.monotonic()
    rc, out, err = q.send(server, lines, timeout=q.tmo(150), client_timeout=int(q.tmo(60)))
    dt = time.monotonic() - t0
    log("send of %d events: rc=%s in %.1fs; stderr tail: %s" % (n, rc, dt, err.strip()[-300:]))
    check(rc == 0, "quicstash-send exit %r (expected 0); stderr:\n%s" % (rc, err[-2000:]))
    s = q.summary(err)
    check(s == (n, n, 0), "summary line: expected 'sent %d acked %d rejected 0', got %r" % (n, n, s))
    got = recv.wait_count(n, q.tmo(60))
    time.sleep(1.0)  # late duplicates
    check(not recv.bad_json, "%d invalid JSON lines at the receiver, first %r" % (len(recv.bad_json), recv.bad_json[:1]))
    check(not recv.partials, "partial lines at the receiver: %r" % (recv.partials[:1],))
    seen = recv.seen()
    missing = [i for i in range(n) if seen[i] == 0]
    dups = {i: c for i, c in seen.items() if c > 1}
    extra = [i for i in seen if i not in originals]
    check(not missing, "%d events missing at the receiver (got %d lines): first %s" % (len(missing), got, missing[:20]))
    check(not dups, "%d events arrived more than once after a clean run: first %s" % (len(dups), sorted(dups)[:20]))
    check(not extra, "unexpected event numbers %s" % extra[:10])
    check(recv.count() == n, "receiver got %d lines for %d events" % (recv.count(), n))
    t_end = time.time()
    ids = set()
    extra_keys = set()
    for ev in recv.snapshot():
        o = originals[ev["n"]]
        err_s = check_server_fields(ev, t_start, t_end)
        check(err_s is None, "event n=%d: %s" % (ev["n"], err_s))
        cv = q.client_view(ev, o)
        for k, v in o.items():
            check(k in cv and cv[k] == v and type(cv[k]) == type(v) or (isinstance(v, float) and cv.get(k) == v),
                  "event n=%d: client field %r changed: sent %r, got %r" % (ev["n"], k, v, cv.get(k, "<absent>")))
        extra_keys |= set(cv) - set(o)
        ids.add(q.field(ev, "event.id"))
    check(len(ids) == n, "event.id not unique: %d distinct ids for %d events" % (len(ids), n))
    if extra_keys:
        log("note: extra top-level keys besides the server fields: %s" % sorted(extra_keys))
    return n, dt


def fidelity(recv, server):
    """Edge values a user may send: they must come out unchanged."""
    base = 1_000_000
    cases = [
        {"n": base + 0, "big": 9007199254740993, "neg": -9223372036854775807},
        {"n": base + 1, "f": 0.1, "e": 1e300, "small": 5e-324, "negf": -2.5},
        {"n": base + 2, "s": "\u0000nul \u001f ctl \u2028 sep \U0001F680 astral", "empty": "", "sl": "a/b"},
        {"n": base + 3, "deep": {"a": {"b": {"c": {"d": {"e": [[[[1]]]]}}}}}, "arr": [], "obj": {}},
        {"n": base + 4, "dup_looking": {"n": 5}, "k with space": 1, "ключ": "значение", "t": True, "f": False},
    ]
    lines = [json.dumps(c) for c in cases]  # ASCII with \u escapes: the server must decode them right
    rc, out, err = q.send(server, lines, timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "fidelity send: exit %r; stderr %s" % (rc, err[-500:]))
    missing = recv.wait_numbers([c["n"] for c in cases], q.tmo(20), quiet=0)
    check(not missing, "fidelity events missing: %s" % sorted(missing))
    by_n = {e["n"]: e for e in recv.snapshot() if isinstance(e.get("n"), int)}
    problems = []
    for c in cases:
        ev = q.client_view(by_n[c["n"]], c)
        for k, v in c.items():
            if ev.get(k, "<absent>") != v or type(ev.get(k)) != type(v):
                problems.append("n=%d %r: sent %r got %r" % (c["n"], k, v, ev.get(k, "<absent>")))
    check(not problems, "client values changed in transit: " + "; ".join(problems))


def large(recv, server):
    """Events larger than one packet and than 64 KiB, up to the 1 MiB limit, arrive intact
    (each is reassembled from many packets in the acceptor's frame decoder)."""
    base = 5_000_000
    sizes = [1500, 65 * 1024, 100 * 1024, 300 * 1024, 1024 * 1024 - 64]
    cases = []
    for i, size in enumerate(sizes):
        head = '{"n":%d,"pad":"' % (base + i)
        pad = "".join(chr(ord("a") + (j * 7 + i) % 26) for j in range(size - len(head) - 2))
        cases.append((base + i, head + pad + '"}', pad))
    rc, out, err = q.send(server, [c[1] for c in cases], timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0 and q.summary(err) == (len(cases), len(cases), 0),
          "large events: exit %r, %r; stderr %s" % (rc, q.summary(err), err[-500:]))
    missing = recv.wait_numbers([c[0] for c in cases], q.tmo(20), quiet=0)
    check(not missing, "large events missing: %s" % sorted(missing))
    by_n = {e["n"]: e for e in recv.snapshot() if isinstance(e.get("n"), int)}
    bad = [(n, len(pad)) for n, _, pad in cases if by_n[n].get("pad") != pad]
    check(not bad, "large events changed in transit (n, size): %r" % bad)


def large_many_streams(recv, server):
    """Large events on many streams at once: each stream holds half a frame while the connection's
    window is shared by all of them. Before partial frames got their connection credit back at
    once, 16 or more streams of 1 MiB events filled the window with halves and stalled for good."""
    base = 5_100_000
    n = 96
    pad = "z" * (1024 * 1024 - 64 - 40)
    lines = ['{"n":%d,"pad":"%s"}' % (base + i, pad) for i in range(n)]
    rc, out, err = q.send(server, lines, extra_args=["--streams", "64"], timeout=q.tmo(90),
                          client_timeout=int(q.tmo(30)))
    check(rc == 0 and q.summary(err) == (n, n, 0),
          "1 MiB events on 64 streams: exit %r, %r; stderr %s" % (rc, q.summary(err), err[-300:]))
    missing = recv.wait_numbers(range(base, base + n), q.tmo(30), quiet=0)
    check(not missing, "large events on many streams missing: %d" % len(missing))


def spoof(recv, server, t_start):
    base = 2_000_000
    cases = [
        {"n": base, "event": {"id": "spoofed-1", "ingested": "1999-01-01T00:00:00Z", "kind": "mine"},
         "source": {"ip": "6.6.6.6", "port": 1, "geo": "client-owned"}},
        {"n": base + 1, "event.id": "spoofed-2", "source.ip": "6.6.6.6", "source.port": 7,
         "event.ingested": "1999-01-01T00:00:00Z"},
    ]
    rc, out, err = q.send(server, [json.dumps(c) for c in cases], timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    s = q.summary(err)
    if rc == 1 and s and s[2] > 0:
        # Rejecting a spoof attempt outright also keeps the server's fields authoritative, but the
        # accepted behaviour is to override: say which one we saw.
        check("server_field" in err, "spoof events rejected but not with server_field: %s" % err[-500:])
        log("note: spoofed events were rejected (server_field) instead of overridden")
        return
    check(rc == 0, "spoof send: exit %r; stderr %s" % (rc, err[-500:]))
    missing = recv.wait_numbers([c["n"] for c in cases], q.tmo(20), quiet=0.3)
    check(not missing, "spoof events missing: %s" % sorted(missing))
    evs = [e for e in recv.snapshot() if e.get("n") in (base, base + 1)]
    check(len(evs) == 2, "spoof events: expected 2, got %d" % len(evs))
    for ev in evs:
        raw = json.dumps(ev)
        check("spoofed" not in raw and "6.6.6.6" not in raw and "1999-01-01" not in raw,
              "client spoofed a server field, delivered: %s" % raw[:400])
        e = check_server_fields(ev, t_start, time.time())
        check(e is None, "spoof event n=%d: %s" % (ev["n"], e))
        for k in ("event.id", "source.ip", "source.port", "event.ingested"):
            if k in ev and isinstance(ev.get(k.split(".")[0]), dict):
                check(ev[k] == q.field({k.split(".")[0]: ev[k.split(".")[0]]}, k),
                      "two different values for %s: %s" % (k, raw[:400]))
    nested = [e for e in evs if e["n"] == base][0]
    check(q.has_field(nested, "event.kind") and q.field(nested, "event.kind") == "mine",
          "client-owned event.kind lost next to the server's event fields: %s" % json.dumps(nested)[:400])
    check(q.has_field(nested, "source.geo") and q.field(nested, "source.geo") == "client-owned",
          "client-owned source.geo lost next to the server's source fields: %s" % json.dumps(nested)[:400])


def ipv6(t_start):
    recv = q.Receiver().start()
    server = q.Server(recv, host="::1", name="e2e6")
    try:
        server.start()
    except q.TestFailure as e:
        raise q.TestFailure("IPv6 server (-s [::1]:port): %s" % e)
    lines = q.gen_events(500, start=3_000_000)
    rc, out, err = q.send(server, lines, timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "IPv6 send to %s: exit %r; stderr %s" % (server.addr, rc, err[-500:]))
    missing = recv.wait_numbers(range(3_000_000, 3_000_500), q.tmo(20), quiet=0.2)
    check(not missing, "IPv6: %d events missing" % len(missing))
    for ev in recv.snapshot():
        e = check_server_fields(ev, t_start, time.time(), ip="::1")
        check(e is None, "IPv6 event: %s" % e)
    server.stop()
    recv.stop()


def file_output(t_start):
    d = q.mkdtemp("e2efile")
    path = os.path.join(d, "out.jsonl")
    server = q.Server(logstash="file:" + path, name="e2efile")
    server.start()
    lines = q.gen_events(1000, start=4_000_000)
    rc, out, err = q.send(server, lines, timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "send with -l file: exit %r; stderr %s" % (rc, err[-500:]))
    deadline = time.monotonic() + q.tmo(20)
    got = []
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        got = [l for l in data.split(b"\n") if l]
        if len(got) >= 1000:
            break
        time.sleep(0.1)
    server.stop()
    with open(path, "rb") as f:
        data = f.read()
    check(data.endswith(b"\n"), "-l file: output does not end in a newline")
    evs = [json.loads(l) for l in data.split(b"\n") if l]
    ns = sorted(e["n"] for e in evs)
    check(ns == list(range(4_000_000, 4_001_000)), "-l file: expected events 4000000..4000999 once each, got %d lines"
          % len(ns))
    for e in evs:
        err_s = check_server_fields(e, t_start, time.time())
        check(err_s is None, "-l file event: %s" % err_s)


def max_rate(recv, server):
    """quicstash-send --max-rate spreads the events out (the fault tests rely on it)."""
    n, rate = 600, 300
    t0 = time.monotonic()
    rc, out, err = q.send(server, q.gen_events(n, start=7000000), extra_args=["--max-rate", str(rate)],
                          timeout=q.tmo(60))
    took = time.monotonic() - t0
    check(rc == 0, "quicstash-send --max-rate: exit %r: %s" % (rc, err[-300:]))
    check(took >= (n - 1) / rate * 0.95, "%d events at --max-rate %d took only %.2fs" % (n, rate, took))
    q.verify_delivery(recv, range(7000000, 7000000 + n), q.tmo(30))
    log("max-rate: %d events at %d/s took %.2fs" % (n, rate, took))


def bad_options():
    d = q.mkdtemp("badopt")
    common = ["--spool-dir", os.path.join(d, "spool"), "-c", os.path.join(d, "c.der"), "--key-path",
              os.path.join(d, "k.pem")]
    bad_d = [
        ["--acceptors", "0"], ["--parsers", "abc"], ["--max-message-size", "12Q"], ["--durability", "maybe"],
        ["--spool-max-bytes", "10"], ["-m", "-5"], ["-s", "not-an-address"], ["-s", "127.0.0.1:99999"],
        ["-l", "127.0.0.1:"], ["--retry", "sometimes"], ["--idle-timeout", "0"], ["--bogus-option"],
        ["--acceptors"],
    ]
    for args in bad_d:
        p = subprocess.run([q.QUICSTASHD] + common + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20, preexec_fn=q._pdeathsig)
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode == 2, "quicstashd %s: exit %r, expected 2 (stderr %r)" % (" ".join(args), p.returncode, err))
        check(len(err.strip().splitlines()) == 1, "quicstashd %s: expected a one-line error, got %r"
              % (" ".join(args), err))
    # unusable --secret-path files: a clear reason and exit 1 before any child starts
    cases = {"short.secret": (os.urandom(31), 0o600, "not a regular file of 32 bytes"),
             "open.secret": (os.urandom(32), 0o644, "chmod 600"),
             "dir.secret": (None, None, "not a regular file of 32 bytes"),
             "nodir/x.secret": (None, None, "No such file or directory")}
    for name, (data, mode, why) in cases.items():
        path = os.path.join(d, name)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, mode)
        elif name == "dir.secret":
            os.mkdir(path, 0o700)
        p = subprocess.run([q.QUICSTASHD] + common + ["-s", "127.0.0.1:%d" % q.free_port("udp"), "--secret-path",
                                                      path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20, preexec_fn=q._pdeathsig)
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode == 1 and path in err and why in err and "starting" not in err,
              "quicstashd --secret-path %s: exit %r, expected 1 with %r before starting (stderr %r)"
              % (name, p.returncode, why, err[-600:]))
    # quicstash-send
    bad_s = [["--timeout", "abc"], ["--timeout", "-3"], ["-s", "nowhere"], ["-s", "127.0.0.1:70000"],
             ["--no-such-option"], ["--timeout"], ["--max-rate", "0"], ["--max-rate", "fast"]]
    for args in bad_s:
        p = subprocess.run([q.SEND] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20, preexec_fn=q._pdeathsig)
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode == 2, "quicstash-send %s: exit %r, expected 2 (stderr %r)"
              % (" ".join(args), p.returncode, err))
        check(len(err.strip().splitlines()) == 1, "quicstash-send %s: expected a one-line error, got %r"
              % (" ".join(args), err))
    # and the good ones answer
    for b in (q.QUICSTASHD, q.SEND):
        p = subprocess.run([b, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        check(p.returncode == 0 and p.stdout, "%s --help: exit %r" % (b, p.returncode))


def usable_cpus():
    """This process's CPU affinity, capped by a cgroup v2 CPU quota (rounded up)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        with open("/proc/self/cgroup") as f:
            path = [l.strip()[3:] for l in f if l.startswith("0::")][0]
        with open("/sys/fs/cgroup%s/cpu.max" % path) as f:
            quota, period = f.read().split()
        if quota != "max":
            cpus = min(cpus, -(-int(quota) // int(period)))
    except (OSError, IndexError, ValueError):
        pass
    return cpus


def default_parsers(server):
    """Without --parsers: one parser per two usable CPUs, at least one."""
    cpus = usable_cpus()
    want = max(1, cpus // 2)
    got = len(server.pids("parser"))
    check(got == want, "expected %d parser(s) by default on %d CPUs, found %d" % (want, cpus, got))
    log("default parsers: %d on %d CPUs" % (got, cpus))


def run():
    q.need_binaries()
    t_start = time.time()
    failures = []

    def part(name, fn, *a):
        """Runs one part; a failure is recorded and the other parts still run."""
        try:
            r = fn(*a)
            log("%s: ok" % name)
            return r
        except q.TestFailure as e:
            log("%s: FAILED: %s" % (name, e))
            failures.append("%s: %s" % (name, str(e).splitlines()[0][:400]))
        return None

    part("bad options", bad_options)
    recv = q.Receiver().start()
    server = q.Server(recv, name="e2e")
    server.start()
    log("server ready via %s on %s" % (server.ready_via, server.addr))
    part("default parsers", default_parsers, server)
    r = part("bulk", bulk, recv, server, t_start)
    n = r[0] if r else 0
    part("fidelity", fidelity, recv, server)
    part("spoof", spoof, recv, server, t_start)
    part("large events", large, recv, server)
    part("large events on many streams", large_many_streams, recv, server)
    part("max-rate", max_rate, recv, server)
    part("clean stop after the bulk send", server.stop)
    part("ipv6", ipv6, t_start)
    part("file output", file_output, t_start)
    check(not failures, "%d part(s) failed:\n  " % len(failures) + "\n  ".join(failures))
    return "%d events exactly once, server fields, spoofing, --max-rate, IPv6, file output, bad options, default parsers" % n


def alone(fn, *args):
    """fn as a case of its own (--case NAME): a fresh receiver and server when it needs them (args name
    what it takes: recv, server, t_start), stopped after it."""
    def case():
        q.need_binaries()
        have = {"t_start": time.time()}
        if "recv" in args or "server" in args:
            have["recv"] = q.Receiver().start()
            have["server"] = q.Server(have["recv"], name="e2e")
            have["server"].start()
        r = fn(*(have[a] for a in args))
        if "server" in have:
            have["server"].stop()
        return r
    return case


CASES = [("bad-options", alone(bad_options)), ("default-parsers", alone(default_parsers, "server")),
         ("bulk", alone(bulk, "recv", "server", "t_start")), ("fidelity", alone(fidelity, "recv", "server")),
         ("spoof", alone(spoof, "recv", "server", "t_start")), ("large", alone(large, "recv", "server")),
         ("large-many-streams", alone(large_many_streams, "recv", "server")),
         ("max-rate", alone(max_rate, "recv", "server")), ("ipv6", alone(ipv6, "t_start")),
         ("file-output", alone(file_output, "t_start"))]

if __name__ == "__main__":
    q.main(run, cases=CASES)

#!/usr/bin/env python3
"""The metrics endpoint, /healthz and /readyz (issue 22 items 1-3), against the real server and a
real Prometheus (Debian's package, started here on its own port, configuration and data directory).

Cases:
  prometheus   Prometheus scrapes quicstashd every second during an end-to-end run; its HTTP API
               must give quicstash_frames_acknowledged_total = exactly the number of events sent
               (and the two rejected frames by their code). Prometheus 2.42 asks for OpenMetrics
               first (Accept: application/openmetrics-text;version=1.0.0,...), so this reads that
               exposition through its strict parser; promtool below checks the text format.
  promtool     `promtool check metrics` passes on a scrape taken under load; OpenMetrics when asked.
  kill_parser  kill -9 of a parser under load: the acknowledged counter equals the events the client
               got acknowledged, exactly; the parser's own counter never went backwards across its
               restart; restarts{role="parser"} is 1.
  kill_shipper the same for the shipper.
  reload       SIGHUP under load: acknowledged exact, reloads_total 1, no restart counted, no counter
               went backwards, and /readyz never said an acceptor or a parser was missing.
  sandbox      (root) the metrics process is confined like the other children: not root, no
               capabilities, seccomp, chrooted, a network namespace of its own, and none of its
               descriptors is the spool, the key or a segment; its pages are mapped read-only.
  flood        idle connections to the endpoint, opened one by one until the process runs out of
               descriptors (it may hold 256): it pauses
               accepting instead of spinning on accept() (its CPU stays low), events still flow,
               and once they are gone a scrape works again.
  readyz_spool Logstash down, --spool-max-bytes 2M: /readyz turns 503 saying "spool full" (while
               /healthz stays 200: the tree is up); once Logstash is back and the spool drains,
               200 again and every event is acknowledged and counted; the oldest unshipped event's
               age grows while Logstash is down and is 0 once drained.
  tenants      two tenants (--auth token) over two acceptors, events and rejected frames sent as each:
               every quicstash_tenant_* series exact (acknowledged, rejected by code, bytes,
               connections, open 0, throttled 0); unchanged by kill -9 of each acceptor and by two
               reloads that add a tenant in front and reorder them (the second one's acceptors
               write the pages the first acceptors did: a series keyed by position would move);
               exact again after more events; promtool passes; the supervisor logs
               each tenant's totals over both acceptors.
  pipelined    nice 10; a client pipelines GET /metrics and reads no reply: the process stops reading (its
               memory stays small, the client's sends block); HEAD /healthz has no body."""
import hashlib
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

ACKED = "quicstash_frames_acknowledged_total"


def metrics_server(recv, name, extra=()):
    port, args = q.metrics_server_args()
    server = q.Server(recv, extra=args + list(extra), name=name)
    server.start()
    st, body = q.wait_http(port, "/healthz", 200, q.tmo(10))
    check(st == 200, "/healthz not 200 after READY: %r %r" % (st, body))
    return server, port


def exact_acked(port, load, what):
    """The acknowledged counter equals the client's acknowledged events (bounded wait for the
    acceptor's last answers to be counted; it counts when it answers, before the client reads)."""
    n = len(load.acked_numbers())
    got = q.wait_metric(port, ACKED, n, q.tmo(10))
    check(got == n, "%s: %s = %r, the client got %d acknowledged" % (what, ACKED, got, n))
    return n


def case_prometheus():
    q.need_binaries()
    recv = q.Receiver().start()
    server, port = metrics_server(recv, "metrics-prom")
    prom = q.Prometheus(["127.0.0.1:%d" % port]).start()
    n = q.scale(20000)
    lines = q.gen_events(n) + ["not json", "[1]"]
    rc, out, err = q.send(server, lines, timeout=q.tmo(120), client_timeout=int(q.tmo(60)))
    check(rc == 1 or rc == 0, "quicstash-send exit %r: %s" % (rc, err[-500:]))
    check(q.summary(err) == (n + 2, n, 2), "client summary %r, expected (%d, %d, 2)" % (q.summary(err), n + 2, n))
    got = prom.wait_value(ACKED, n, q.tmo(30))
    check(len(got) == 1 and got[0][1] == n,
          "Prometheus says %s = %r, %d events were acknowledged; its log:\n%s" % (ACKED, got, n, prom.log()[-1500:]))
    labels = got[0][0]
    check(labels.get("job") == "quicstash" and labels.get("instance") == "127.0.0.1:%d" % port,
          "unexpected labels %r" % labels)
    rej = prom.wait_value('sum(quicstash_frames_rejected_total)', 2, q.tmo(10))
    check(rej and rej[0][1] == 2, "Prometheus: rejected frames %r, expected 2" % rej)
    bad = prom.query('quicstash_frames_rejected_total{code="not_object"}')
    check(bad and bad[0][1] == 1, "rejected not_object %r, expected 1" % bad)
    up = prom.query('up{job="quicstash"}')
    check(up and up[0][1] == 1, "the target is not up in Prometheus: %r" % up)
    server.stop()
    return "Prometheus read %s = %d, exactly the events acknowledged" % (ACKED, n)


def case_promtool():
    q.need_binaries()
    recv = q.Receiver().start()
    server, port = metrics_server(recv, "metrics-promtool")
    n = q.scale(20000)
    load = q.Load(server, n, client_timeout=int(q.tmo(90)), feed_rate=n / 4)
    load.start_client()
    q.mid_stream(load, 0.2)
    st, body, ctype = q.http_get(port, "/metrics")
    check(st == 200 and ctype.startswith("text/plain; version=0.0.4"), "GET /metrics: %d %r" % (st, ctype))
    rc, out = q.promtool_check(body)
    check(rc == 0, "promtool check metrics: exit %d\n%s\n--- scrape:\n%s" % (rc, out, body[:3000]))
    # a gauge the acceptor sets once a second
    check(q.wait_metric(port, "quicstash_connections_open", 1, q.tmo(5)) == 1, "connections_open is not 1 under load")
    st, om, ctype = q.http_get(port, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    check(st == 200 and ctype.startswith("application/openmetrics-text") and om.endswith("# EOF\n"),
          "OpenMetrics: %d %r, ends %r" % (st, ctype, om[-20:]))
    check("# TYPE quicstash_frames_acknowledged counter\n" in om, "OpenMetrics counter family named with _total")
    st, _, _ = q.http_get(port, "/nothing")
    check(st == 404, "GET /nothing: %d" % st)
    q.finish_client(load)
    exact_acked(port, load, "after the load")
    server.stop()
    return "promtool check metrics passes on a scrape under load (%d lines)%s" % (
        len(body.splitlines()), (": " + out.strip()) if out.strip() else "")


def kill_case(role, counter):
    q.need_binaries()
    recv = q.Receiver().start()
    server, port = metrics_server(recv, "metrics-kill-" + role)
    n = q.scale(40000)
    load = q.Load(server, n, client_timeout=int(q.tmo(90)), feed_rate=n / 4)
    load.start_client()
    q.mid_stream(load, 0.2)
    before = q.scrape(port)
    running = len(server.pids(role))
    old = server.kill_child(role)
    server.wait_respawn(role, old, running)
    q.wait_http(port, "/healthz", 200, q.tmo(20))
    after = q.scrape(port)
    for series in (counter, ACKED):
        check(after.get(series, -1) >= before.get(series, 0),
              "%s went backwards across the %s's kill -9: %r -> %r" % (series, role, before.get(series), after.get(series)))
    q.finish_client(load)
    acked = exact_acked(port, load, "after kill -9 of the " + role)
    check(acked == n, "the client got %d of %d acknowledged" % (acked, n))
    s = q.scrape(port)
    restarts = 'quicstash_child_restarts_total{role="%s"}' % role
    check(s.get(restarts) == 1, "%s = %r after one kill -9" % (restarts, s.get(restarts)))
    stored = s.get("quicstash_spool_events_written_total", 0)
    check(stored >= n, "spool_events_written %r < %d acknowledged" % (stored, n))
    dups = q.verify_delivery(recv, load.acked_numbers(), q.tmo(60))
    server.stop()
    return "kill -9 of the %s: %s = %d exactly, %s never went backwards (%d -> %d), %d stored (%d duplicates at the receiver)" % (
        role, ACKED, acked, counter, before.get(counter, 0), after.get(counter, 0), stored, dups)


def case_kill_parser():
    return kill_case("parser", "quicstash_parser_frames_total")


def case_kill_shipper():
    return kill_case("shipper", "quicstash_spool_events_written_total")


def poll_readyz(port, stop, seen):
    while not stop.is_set():
        try:
            st, body, _ = q.http_get(port, "/readyz", timeout=2.0)
            seen.append((st, body))
        except OSError as e:
            seen.append((None, str(e)))
        time.sleep(0.01)


def case_reload():
    q.need_binaries()
    recv = q.Receiver().start()
    server, port = metrics_server(recv, "metrics-reload")
    n = q.scale(40000)
    load = q.Load(server, n, client_timeout=int(q.tmo(90)), feed_rate=n / 4)
    load.start_client()
    q.mid_stream(load, 0.2)
    before = q.scrape(port)
    # /readyz through the reload: the acceptors' and parsers' previous processes serve until their
    # replacements do, so neither role may be missing (the shipper's restart is a real gap)
    stop, seen = threading.Event(), []
    poller = threading.Thread(target=poll_readyz, args=(port, stop, seen), daemon=True)
    poller.start()
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + q.tmo(30)
    while "reload 1 complete" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    check("reload 1 complete" in server.log(), "the reload did not complete:\n%s" % server.log_tail())
    stop.set()
    poller.join()
    gaps = [b for st, b in seen if st != 200 and ("acceptor" in b or "parser" in b)]
    check(not gaps, "/readyz during the reload: %r" % gaps[:3])
    log("/readyz polled %d times during the reload: %s" % (len(seen), sorted({b.strip() for _, b in seen})))
    q.wait_http(port, "/healthz", 200, q.tmo(20))
    after = q.scrape(port)
    for series, v in before.items():
        if series.endswith("_total") or "_bucket" in series:
            check(after.get(series, -1) >= v, "%s went backwards across the reload: %r -> %r"
                  % (series, v, after.get(series)))
    q.finish_client(load)
    acked = exact_acked(port, load, "after a reload")
    check(acked == n, "the client got %d of %d acknowledged" % (acked, n))
    s = q.scrape(port)
    check(s.get("quicstash_reloads_total") == 1, "reloads_total = %r" % s.get("quicstash_reloads_total"))
    restarted = {k: v for k, v in s.items() if k.startswith("quicstash_child_restarts_total") and v}
    check(not restarted, "a reload counted as restarts: %r" % restarted)
    check(s.get('quicstash_children_ready{role="acceptor"}') == 1, "acceptors ready after the reload: %r"
          % s.get('quicstash_children_ready{role="acceptor"}'))
    server.stop()
    return "SIGHUP under load: %s = %d exactly, reloads_total 1, no counter went backwards" % (ACKED, acked)


def case_readyz_spool():
    q.need_binaries()
    recv = q.Receiver()  # down
    server, port = metrics_server(recv, "metrics-readyz", ["--spool-max-bytes", "2M"])
    st, body = q.wait_http(port, "/readyz", 200, q.tmo(10))
    check(st == 200, "/readyz before the load: %r %r" % (st, body))
    n = 40000  # ~8 MB: 4x the limit (not scaled: the limit is the point)
    load = q.Load(server, n, client_timeout=int(q.tmo(120)))
    load.start_client()
    acked, stalled = load.client.wait_stall(quiet=3.0, timeout=q.tmo(90))
    check(stalled and acked < n, "acknowledgements did not stall with Logstash down (%d of %d)" % (acked, n))
    st, body = q.wait_http(port, "/readyz", 503, q.tmo(5))
    check(st == 503 and "spool full" in body, "/readyz with a full spool: %r %r" % (st, body))
    log("/readyz: %d %s" % (st, body.strip()))
    st2, body2, _ = q.http_get(port, "/healthz")
    check(st2 == 200, "/healthz with a full spool (the tree is up): %d %r" % (st2, body2))
    s = q.scrape(port)
    check(s.get('quicstash_spool_refusing{reason="full"}') == 1 and s.get("quicstash_spool_accepting") == 0,
          "spool gauges while full: refusing %r accepting %r" % (s.get('quicstash_spool_refusing{reason="full"}'),
                                                                s.get("quicstash_spool_accepting")))
    check(s.get("quicstash_output_up") == 0, "output_up %r with Logstash down" % s.get("quicstash_output_up"))
    # the first event waits since before the 3 s without acknowledgements
    age = s.get("quicstash_spool_oldest_unshipped_age_seconds", 0)
    check(age >= 2, "oldest unshipped event %r s old with Logstash down for over 3 s" % age)
    recv.start()
    st, body = q.wait_http(port, "/readyz", 200, q.tmo(60))
    check(st == 200 and body.strip() == "ok", "/readyz after the spool drained: %r %r" % (st, body))
    age = q.wait_metric(port, "quicstash_spool_oldest_unshipped_age_seconds", 0, q.tmo(30))
    check(age == 0, "oldest unshipped event %r s old after draining" % age)
    q.finish_client(load)
    got = exact_acked(port, load, "after draining")
    check(got == n, "the client got %d of %d acknowledged" % (got, n))
    server.stop()
    return "/readyz 503 %r with a full spool, 200 once drained; %s = %d" % (body.strip() and "spool full", ACKED, got)


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def case_sandbox():
    if os.geteuid() != 0:
        raise q.Skip("the sandbox applies when started as root")
    q.need_binaries()
    recv = q.Receiver().start()
    port, args = q.metrics_server_args()
    server = q.Server(recv, extra=args, name="metrics-sandbox", confined=True)
    server.start()
    q.send_acked(server, q.gen_events(100), "100 events")
    pid = server.pids("metrics")
    check(len(pid) == 1, "metrics processes: %r" % pid)
    pid = pid[0]
    st = proc_status(pid)
    check(all(int(u) != 0 for u in st["Uid"].split()), "metrics runs as uid %s" % st["Uid"])
    check(int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0, "metrics has capabilities %s" % st["CapEff"])
    check(st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", "metrics: Seccomp %s NoNewPrivs %s"
          % (st["Seccomp"], st["NoNewPrivs"]))
    check(os.readlink("/proc/%d/root" % pid) != "/", "metrics is not chrooted")
    check(os.readlink("/proc/%d/ns/net" % pid) != os.readlink("/proc/%d/ns/net" % server.pid),
          "metrics shares the supervisor's network namespace")
    fds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    spool, key = os.path.realpath(server.spool), os.path.realpath(server.key)
    bad = {fd: t for fd, t in fds.items() if t.startswith(spool) or t == key or t.endswith(".seg")}
    check(not bad, "metrics holds %r" % bad)
    with open("/proc/%d/maps" % pid) as f:
        pages = [line for line in f if "quicstash-metrics" in line]
    check(pages and all(line.split()[1].startswith("r--") for line in pages),
          "metrics pages mapped %r (expected read-only, shared)" % [line.split()[1] for line in pages])
    s = q.scrape(port)
    check(s.get(ACKED) == 100, "%s = %r after 100 events" % (ACKED, s.get(ACKED)))
    server.stop()
    return "metrics: uid %s, no capabilities, seccomp, chrooted, own netns, %d pages read-only, %d descriptors, none of spool or key" % (
        st["Uid"].split()[0], len(pages), len(fds))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def case_flood():
    q.need_binaries()
    recv = q.Receiver().start()
    server, port = metrics_server(recv, "metrics-flood")
    pid = server.pids("metrics")[0]
    # The process holds at most 256 descriptors. Connections are opened one at
    # a time until it says it ran out: 400 opened at once outran its backlog of
    # 64, the dropped SYNs came back only after 1, 3 and 7 s, and on a loaded
    # host the first ones reached their 10 s idle timeout before the 256th was
    # accepted (CI: no pause logged). A connect that times out waits in a full
    # backlog; its socket stays open and the next is tried.
    conns = []
    deadline = time.monotonic() + q.tmo(20)
    while "pausing" not in server.log() and len(conns) < 600 and time.monotonic() < deadline:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(0.2)
        try:
            c.connect(("127.0.0.1", port))
        except OSError:
            pass
        conns.append(c)
    check("pausing" in server.log(), "no pause of accept() logged after %d connections:\n%s"
          % (len(conns), server.log_tail()))
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    q.send_acked(server, q.gen_events(2000), "2000 events during the flood")
    time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
    busy = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    check(busy < 0.2, "the metrics process used %.0f%% of a CPU while flooded with idle connections" % (busy * 100))
    for c in conns:
        c.close()
    st, body = q.wait_http(port, "/healthz", 200, q.tmo(15))
    check(st == 200, "/healthz after the flood: %r %r" % (st, body))
    check(q.scrape(port).get(ACKED) == 2000, "acknowledged after the flood: %r" % q.scrape(port).get(ACKED))
    server.stop()
    return "%d idle connections: accept paused, %.1f%% CPU, 2000 events acknowledged meanwhile, scrapes again after" % (
        len(conns), busy * 100)


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS:")][0].split()[1]) // 1024


def case_pipelined():
    """The process runs at nice 10 (a client asking back to back competes below the data path). A
    client that pipelines requests and reads no replies: the process stops reading once one
    request waits (libevent read on while it wrote a reply, and held all that came: ~900 MB in 9 s),
    so the client's sends block and the process stays small; HEAD gets headers without a body."""
    q.need_binaries()
    recv = q.Receiver().start()
    server, port = metrics_server(recv, "metrics-pipelined")
    pid = server.pids("metrics")[0]
    with open("/proc/%d/stat" % pid) as f:
        nice = int(f.read().rsplit(")", 1)[1].split()[16])
    check(nice == 10, "the metrics process runs at nice %d, not 10 (below the data path)" % nice)
    before = rss_mb(pid)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(("127.0.0.1", port))
    c.setblocking(False)
    req = b"GET /metrics HTTP/1.1\r\nHost: q\r\n\r\n" * 1024
    # 4 s, under the server's 10 s idle timeout (a stalled connection is closed then)
    sent, limit, deadline = 0, 512 << 20, time.monotonic() + 4
    while sent < limit and time.monotonic() < deadline:
        try:
            sent += c.send(req)
        except BlockingIOError:
            time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            break
    grown = rss_mb(pid) - before
    log("pipelined without reading: %.1f MB taken by the server, its process +%d MB" % (sent / 1e6, grown))
    check(grown < 32, "the metrics process grew by %d MB holding %.1f MB of requests" % (grown, sent / 1e6))
    check(sent < 64 << 20, "the server took %.1f MB of requests it could not answer" % (sent / 1e6))
    c.close()
    h = socket.create_connection(("127.0.0.1", port), timeout=q.tmo(5))
    h.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: q\r\nConnection: close\r\n\r\n")
    got = b""
    while True:
        chunk = h.recv(4096)
        if not chunk:
            break
        got += chunk
    h.close()
    head, _, body = got.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200") and body == b"", "HEAD /healthz: %r" % got[:300])
    st, body = q.wait_http(port, "/healthz", 200, q.tmo(10))
    check(st == 200 and body == "ok\n", "GET /healthz after: %r %r" % (st, body))
    check(server.pids("metrics") == [pid], "the metrics process was restarted")
    server.stop()
    return "pipelined without reading: %.1f MB taken, +%d MB; HEAD without a body" % (sent / 1e6, grown)


def tenants_text(names):
    """A tenants file naming these tenants in this order, each with the token "<name>-token"."""
    return "".join("[tenant %s]\ntoken-sha256 = %s\n\n" % (t, hashlib.sha256((t + "-token").encode()).hexdigest())
                   for t in names)


class TenantSends:
    """Sends as tenants and keeps what each one's series must say."""

    def __init__(self, server, port, d):
        self.server, self.port, self.d = server, port, d
        self.want = {}
        self.n = 0

    def send(self, tenant, good, bad=()):
        token = os.path.join(self.d, tenant + ".token")
        with open(token, "w") as f:
            f.write(tenant + "-token\n")
        lines = q.gen_events(good, start=self.n) + list(bad)
        self.n += good
        rc, _, err = q.send(self.server, lines, extra_args=["--token-file", token], timeout=q.tmo(60),
                            client_timeout=int(q.tmo(30)))
        check(rc in (0, 1) and q.summary(err) == (len(lines), good, len(bad)),
              "%s: exit %r, summary %r;\n%s" % (tenant, rc, q.summary(err), err[-500:]))
        w = self.want.setdefault(tenant, {"connections_total": 0, "frames_acknowledged_total": 0,
                                          "received_bytes_total": 0})
        w["connections_total"] += 1
        w["frames_acknowledged_total"] += good
        w["received_bytes_total"] += sum(len(l.encode()) for l in lines)
        for b in bad:
            code = "invalid_json" if not b.startswith("[") else "not_object"
            key = 'frames_rejected_total{code="%s"}' % code
            w[key] = w.get(key, 0) + 1

    def series(self):
        """{series: value} the scrape must show, the open connections and throttled time included."""
        out = {}
        for t, w in self.want.items():
            for k, v in list(w.items()) + [("connections_open", 0), ("throttled_seconds_total", 0)]:
                name, _, label = k.partition("{")
                out['quicstash_tenant_%s{tenant="%s"%s' % (name, t, ("," + label) if label else "}")] = v
        return out

    def check_exact(self, what):
        """Every tenant's series exactly as sent (a bounded wait: an acceptor counts as it answers)."""
        want = self.series()
        deadline = time.monotonic() + q.tmo(10)
        while True:
            s = q.scrape(self.port)
            got = {k: s.get(k) for k in want}
            tenant_series = {k for k in s if k.startswith("quicstash_tenant_")}
            extra = {k: s[k] for k in tenant_series - set(want) if s[k]}
            if (got == want and not extra) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        bad = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
        check(not bad and not extra, "%s: per-tenant series differ (got, want): %r; unexpected: %r"
              % (what, bad, extra))
        return s


def case_tenants():
    """Two tenants over two acceptors: exact per-tenant series; unchanged by kill -9 of an acceptor and
    by reloads that add a tenant in front of them and reorder the file; promtool passes; the
    supervisor logs each tenant's totals."""
    q.need_binaries()
    recv = q.Receiver().start()
    d = q.mkdtemp("metrics-tenants")
    path = os.path.join(d, "tenants.conf")
    with open(path, "w") as f:
        f.write(tenants_text(["acme", "globex"]))
    server, port = metrics_server(recv, "metrics-tenants", ["--tenants", path, "--auth", "token", "--acceptors", "2",
                                                             "--stats-interval", "1"])
    t = TenantSends(server, port, d)
    for _ in range(3):  # several connections: they spread over the two acceptors
        t.send("acme", 100)
        t.send("globex", 70)
    t.send("acme", 10, ["not json", "[1]"])
    t.check_exact("after the first sends")
    st, body, _ = q.http_get(port, "/metrics")
    rc, out = q.promtool_check(body)
    check(rc == 0, "promtool check metrics with tenants: exit %d\n%s" % (rc, out))
    st, om, _ = q.http_get(port, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    check("# TYPE quicstash_tenant_frames_acknowledged counter\n" in om, "OpenMetrics tenant family")
    for i in range(2):  # kill -9 of each acceptor in turn: nothing counted is lost
        old = server.kill_child("acceptor", index=i)
        server.wait_respawn("acceptor", old, 2)
        q.wait_http(port, "/healthz", 200, q.tmo(20))
        t.check_exact("after kill -9 of acceptor %d" % i)
    t.send("acme", 40)
    t.check_exact("after kill -9 and more events")
    # reloads: initech added in front, then the order changed again. A reload's acceptors write the
    # slot's other page, so the second one meets the rows of the first acceptors: a series kept by
    # position would move to another tenant there
    for i, order in enumerate((["initech", "globex", "acme"], ["globex", "initech", "acme"])):
        with open(path, "w") as f:
            f.write(tenants_text(order))
        mark = len(server.log())
        server.proc.send_signal(signal.SIGHUP)
        check(server.wait_log("reload %d complete" % (i + 1), mark, q.tmo(60)), "reload %d did not complete:\n%s"
              % (i + 1, server.log_tail()))
        t.check_exact("after reload %d" % (i + 1))
        t.send("initech", 30)
        t.send("acme", 20, ["not json"])
        s = t.check_exact("after reload %d and more events" % (i + 1))
    acme = t.want["acme"]
    line = "tenant acme: connections %d (open 0), events acknowledged %d, rejected 4 (invalid_json 3, not_object 1)" % (
        acme["connections_total"], acme["frames_acknowledged_total"])
    check(server.wait_log(line, mark, q.tmo(10)), "the supervisor did not log %r:\n%s" % (line, server.log_tail()))
    check("acceptor" not in [l for l in server.log().splitlines() if line in l][-1].split(":")[0],
          "the tenant line is not the supervisor's")
    server.stop()
    return "acme %d, globex %d, initech %d acknowledged, exact through kill -9 of both acceptors and two " \
        "reloads that added and reordered tenants; promtool passes" % (
            s['quicstash_tenant_frames_acknowledged_total{tenant="acme"}'],
            s['quicstash_tenant_frames_acknowledged_total{tenant="globex"}'],
            s['quicstash_tenant_frames_acknowledged_total{tenant="initech"}'])


CASES = [("prometheus", case_prometheus), ("promtool", case_promtool), ("kill_parser", case_kill_parser),
         ("kill_shipper", case_kill_shipper), ("reload", case_reload), ("sandbox", case_sandbox), ("flood", case_flood),
         ("readyz_spool", case_readyz_spool), ("tenants", case_tenants), ("pipelined", case_pipelined)]


def run():
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

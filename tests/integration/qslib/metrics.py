"""The metrics endpoint (--metrics-addr): scrapes, parsed values, and Prometheus itself (Debian's
`prometheus` package) started on its own configuration, data directory and loopback port."""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from .base import Skip, TestFailure, check, log, tmo
from .cleanup import _pdeathsig, at_cleanup, mkdtemp
from .client import bench_run
from .events import gen_events, write_lines
from .net import free_port
from .receiver import Receiver
from .server import Server

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


def metrics_server_args():
    """(port, extra options) for a Server with the endpoint on a free loopback port."""
    port = free_port("tcp")
    return port, ["--metrics-addr", "127.0.0.1:%d" % port]


def http_get(port, path, headers=None, timeout=5.0):
    """(status, body text, content type) of GET http://127.0.0.1:port/path."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type", "")


def scrape(port):
    """{series: value} of one text-format scrape, e.g. s['quicstash_reloads_total'],
    s['quicstash_child_restarts_total{role="parser"}']."""
    status, body, _ = http_get(port, "/metrics")
    check(status == 200, "GET /metrics: %d %s" % (status, body[:200]))
    out = {}
    for line in body.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def wait_metric(port, series, want, timeout):
    """Waits until the series has the value (bounded); returns the last value seen."""
    deadline = time.monotonic() + timeout
    v = None
    while time.monotonic() < deadline:
        v = scrape(port).get(series)
        if v == want:
            return v
        time.sleep(0.2)
    return v


def wait_http(port, path, status, timeout):
    """Waits until GET path answers with that status; returns (status, body) last seen."""
    deadline = time.monotonic() + timeout
    last = (None, "")
    while time.monotonic() < deadline:
        try:
            st, body, _ = http_get(port, path)
            last = (st, body)
            if st == status:
                return last
        except OSError as e:
            last = (None, str(e))
        time.sleep(0.2)
    return last


def promtool_check(text):
    """(exit status, output) of `promtool check metrics` reading text."""
    if not os.path.exists(PROMTOOL):
        raise Skip("promtool not installed (scripts/install-deps installs prometheus)")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=tmo(30))
    return p.returncode, p.stdout.decode()


class Prometheus:
    """prometheus scraping the targets every second, with its own configuration and data directory,
    on a free loopback port; killed at exit. Never the system service."""

    def __init__(self, targets, interval="1s"):
        if not os.path.exists(PROMETHEUS):
            raise Skip("prometheus not installed (scripts/install-deps installs it)")
        self.dir = mkdtemp("prometheus")
        self.port = free_port("tcp")
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("global:\n  scrape_interval: %s\n  scrape_timeout: %s\n"
                    "scrape_configs:\n  - job_name: quicstash\n    static_configs:\n      - targets: [%s]\n"
                    % (interval, interval, ", ".join("'%s'" % t for t in targets)))
        self.logfile = os.path.join(self.dir, "prometheus.log")
        self.proc = None
        at_cleanup(self.stop)

    def start(self, timeout=None):
        timeout = timeout or tmo(60)  # its first start on a machine may be slow
        with open(self.logfile, "ab") as lf:
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.config, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, cwd=self.dir, start_new_session=True,
                preexec_fn=_pdeathsig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, "prometheus exited %r:\n%s" % (self.proc.returncode, self.log()[-2000:]))
            try:
                if http_get(self.port, "/-/ready", timeout=2.0)[0] == 200:
                    log("prometheus ready on 127.0.0.1:%d" % self.port)
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TestFailure("prometheus not ready in %.0f s:\n%s" % (timeout, self.log()[-2000:]))

    def log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def query(self, expr):
        """The instant vector's values of expr, as [(labels, value)]."""
        st, body, _ = http_get(self.port, "/api/v1/query?query=" + urllib.parse.quote(expr))
        check(st == 200, "prometheus query %s: %d %s" % (expr, st, body[:300]))
        res = json.loads(body)["data"]["result"]
        return [(r["metric"], float(r["value"][1])) for r in res]

    def wait_value(self, expr, want, timeout):
        """Waits until expr's one value equals want (bounded); returns the last values seen."""
        deadline = time.monotonic() + timeout
        got = []
        while time.monotonic() < deadline:
            got = self.query(expr)
            if len(got) == 1 and got[0][1] == want:
                return got
            time.sleep(0.5)
        return got

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def counted_run(name, n, bench_args, server_extra=()):
    """A fresh server with --metrics-addr (and server_extra) and its receiver; quicstash-bench sends
    n numbered events with bench_args, every one acknowledged and received. Returns (the bench's JSON
    summary, {metric: its increase over the run}, the lines the receiver got)."""
    corpus = os.path.join(mkdtemp(name), "corpus.jsonl")
    write_lines(corpus, gen_events(n))
    recv = Receiver()
    recv.start()
    mport, margs = metrics_server_args()
    server = Server(recv, name=name, extra=margs + list(server_extra))
    server.start()
    try:
        m0 = scrape(mport)
        r = bench_run(server, corpus, n, bench_args)
        check(recv.wait_count(n, tmo(30)) >= n, "the receiver got %d of %d events" % (recv.count(), n))
        m1 = scrape(mport)
    finally:
        server.stop()
        recv.stop()
    return r, {k: m1[k] - m0.get(k, 0) for k in m1}, recv.count()

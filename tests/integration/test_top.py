#!/usr/bin/env python3
"""quicstash-top, the live view of the metrics endpoint (issue 22 item 5).

Cases:
  once     under a fed load, `quicstash-top --once` shows non-zero events/s in, acknowledged and out,
           an acknowledgement latency, one connection, Logstash up; once the load is done, its
           acknowledged total is exactly the number of events the client got acknowledged.
  tmux     the live view in a real terminal (Debian's tmux, a server of its own): the captured pane
           (`tmux capture-pane -p`) shows non-zero rates under load and redraws; `q` quits with the
           terminal as it was (stty settings, the screen before it); so does Ctrl-C.
  hostile  an HTTP server that is not quicstashd answers with escape sequences in tenant names,
           garbage lines, 20,000 series, 100 KiB lines, then with 5 MiB: quicstash-top prints no
           escape character, says what it skipped, bounds the tenants, refuses the oversized
           answer (exit 1), and no answer at all is exit 1 with a reason.
  tenants  per-tenant series (as docs/METRICS.md plans them; the server has none yet, so an HTTP
           server whose counters grow on each scrape stands in): the tenants are listed loudest
           first with their rates, connections and throttled share.
  no_tenants without tenants the tenant section is not shown; series not sent show as '-'."""
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

TOP = os.path.join(q.QS_BIN, "quicstash-top")
TMUX = shutil.which("tmux") or "/usr/bin/tmux"


def top_once(port, *extra, timeout=30):
    p = subprocess.run([TOP, "--once", "--metrics-addr", "127.0.0.1:%d" % port] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def field(screen, label, key):
    """The number after `key` on the line starting with `label` (1.2k -> 1200); None if absent."""
    for line in screen.splitlines():
        if line.startswith(label):
            m = re.search(r"\b%s\s+([0-9.]+)([kMGT]?)\b" % re.escape(key), line)
            if m:
                return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]
    return None


def loaded_server(name, n):
    q.need_binaries("quicstashd", "quicstash-send", "quicstash-top")
    recv = q.Receiver().start()
    port, args = q.metrics_server_args()
    server = q.Server(recv, extra=args, name=name)
    server.start()
    # a fed load runs until stopped, however slow the host: the rates are taken while it sends
    load = q.Load(server, n, client_timeout=int(q.tmo(90)), feed_rate=max(200, n // 20))
    load.start_client()
    q.mid_stream(load, 0.05)
    return server, port, load


def case_once():
    server, port, load = loaded_server("top-once", q.scale(40000))
    rc, out, err = top_once(port)
    log("--once under load:\n" + out)
    check(rc == 0, "quicstash-top --once: exit %d: %s" % (rc, err))
    for key in ("in", "acked", "out"):
        v = field(out, "Events/s", key)
        check(v and v > 0, "events/s %s is %r under load:\n%s" % (key, v, out))
    check(re.search(r"^Ack latency p50 [0-9.]+ m?s\s+p99 [0-9.]+ m?s", out, re.M), "no latency under load:\n" + out)
    check(field(out, "Connections", "open") == 1, "connections open is not 1:\n" + out)
    check(re.search(r"^Logstash\s+up\b", out, re.M), "Logstash not up:\n" + out)
    check("\033" not in out, "--once printed escape sequences")
    q.finish_client(load)
    n = len(load.acked_numbers())
    deadline = time.monotonic() + q.tmo(10)
    while True:  # the acceptor counts an answer when it sends it: bounded wait for the last ones
        rc, out, err = top_once(port, "--interval", "0.2")
        total = field(out, "  total", "acked")
        if total == n or time.monotonic() > deadline:
            break
    check(total == n, "total acked %r, the client got %d acknowledged:\n%s" % (total, n, out))
    rc, out, err = top_once(port, "--interval", "0.2")  # an interval wholly after the last frame
    check(field(out, "Events/s", "in") == 0, "events/s in is not 0 once the load is done:\n" + out)
    server.stop()
    return "non-zero rates under load, total acked %d exactly" % n


class Tmux:
    """A tmux server of its own (socket in a private directory) with one window of cols x rows."""

    def __init__(self, command, cols=110, rows=40):
        self.dir = q.mkdtemp("tmux")
        self.sock = os.path.join(self.dir, "sock")
        self.tmux("new-session", "-d", "-x", str(cols), "-y", str(rows), command)
        q.at_cleanup(lambda: subprocess.run([TMUX, "-S", self.sock, "kill-server"], stderr=subprocess.DEVNULL))

    def tmux(self, *args):
        p = subprocess.run([TMUX, "-S", self.sock] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10, env=dict(os.environ, TERM="xterm-256color"))
        check(p.returncode == 0, "tmux %s: %s" % (" ".join(args), p.stderr.decode()))
        return p.stdout.decode(errors="replace")

    def capture(self):
        return self.tmux("capture-pane", "-p")

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if pred(screen):
                return screen
            if time.monotonic() > deadline:
                raise q.TestFailure("%s; the pane:\n%s" % (what, screen))
            time.sleep(0.2)


def live_round(port, key, d):
    """quicstash-top in a tmux pane: non-zero rates, a redraw, then `key` ends it cleanly."""
    before, after = os.path.join(d, "stty-before"), os.path.join(d, "stty-after")
    # the shell traps SIGINT (Ctrl-C reaches the whole foreground group) so the pane outlives it
    shell = ("trap : INT; echo THE-SHELL-BEFORE; stty -g > %s; %s --metrics-addr 127.0.0.1:%d; echo TOP-EXIT=$?; "
             "stty -g > %s; sleep 600" % (before, TOP, port, after))
    t = Tmux("sh -c '%s'" % shell)

    def rates(s):
        v = field(s, "Events/s", "in")
        return bool(v and v > 0 and field(s, "Events/s", "acked"))

    first = t.wait(rates, q.tmo(15), "no non-zero events/s in the live view")
    log("captured pane (%s round):\n%s" % (key, first))
    check("THE-SHELL-BEFORE" not in first, "the view is not on the alternate screen")
    clock = re.search(r"\d\d:\d\d:\d\d", first).group(0)
    t.wait(lambda s: re.search(r"\d\d:\d\d:\d\d", s).group(0) != clock if "quicstash-top" in s else False,
           q.tmo(5), "the screen was not redrawn")
    t.tmux("send-keys", "-t", "0", key)
    end = t.wait(lambda s: "TOP-EXIT=" in s, q.tmo(5), "quicstash-top did not end on %s" % key)
    check("TOP-EXIT=0" in end, "exit status after %s: %s" % (key, end))
    check("THE-SHELL-BEFORE" in end and "Events/s" not in end, "the screen before it is not back:\n" + end)
    # the shell's redirection makes the file before stty writes its line: wait for the line
    deadline = time.monotonic() + q.tmo(5)
    while time.monotonic() < deadline and not (os.path.exists(after) and open(after).read().endswith("\n")):
        time.sleep(0.1)
    with open(before) as f1, open(after) as f2:
        b, a = f1.read(), f2.read()
    check(b == a, "terminal settings not restored after %s: %r -> %r" % (key, b, a))
    return rates(first)


def case_tmux():
    if not os.access(TMUX, os.X_OK):
        raise q.Skip("tmux is not installed (scripts/install-deps)")
    server, port, load = loaded_server("top-tmux", q.scale(60000))
    d = q.mkdtemp("top-tmux")
    live_round(port, "q", d)
    live_round(port, "C-c", d)
    q.finish_client(load)
    server.stop()
    return "non-zero rates in the captured pane, redrawn; q and Ctrl-C restore the terminal"


class Hostile(http.server.BaseHTTPRequestHandler):
    body = b""
    make = None  # a function of the request count giving the body, instead of body
    count = 0

    def do_GET(self):
        if Hostile.make:
            Hostile.count += 1
            self.body = Hostile.make(Hostile.count)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            self.wfile.write(self.body)
        except OSError:  # quicstash-top hung up on an oversized answer: that is the point
            pass

    def log_message(self, *a):
        pass


def hostile_server(body, make=None):
    Hostile.body, Hostile.make, Hostile.count = body, make, 0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    q.at_cleanup(srv.shutdown)
    return srv, srv.server_address[1]


def case_hostile():
    q.need_binaries("quicstash-top")
    lines = ['quicstash_frames_received_total 5',
             'quicstash_tenant_frames_acknowledged_total{tenant="\033[2J\033]0;owned\007evil"} 9',
             'quicstash_tenant_frames_acknowledged_total{tenant="a\\"b\\\\c\\nd"} 3',
             'quicstash_frames_acknowledged_total{x="' + "y" * 100000 + '"} 1',
             'garbage line with no value', '{}', 'quicstash_x{a="unterminated} 1', 'quicstash_nan NaN',
             'quicstash_ack_latency_seconds_bucket{le="zzz"} 4', 'quicstash_y{' + 'a="b",' * 200 + '} 1']
    lines += ['quicstash_tenant_connections_open{tenant="t%05d"} 1' % i for i in range(20000)]
    srv, port = hostile_server(("\n".join(lines) + "\n").encode())
    t0 = time.monotonic()
    rc, out, err = top_once(port, "--interval", "0.2")
    took = time.monotonic() - t0
    log("--once on hostile text (%.1f s):\n%s" % (took, out[-1500:]))
    check(rc == 0, "exit %d: %s" % (rc, err))
    check("\033" not in out and "\007" not in out, "an escape sequence from the scrape reached the output")
    check(re.search(r"\(scrape: \d+ lines not understood, \d+ samples over the limit\)", out),
          "skipped lines not reported:\n" + out[-800:])
    check(re.search(r"^\?\[2J\?\]0;owned\?evil", out, re.M), "the escaped tenant name is not shown cleaned:\n" + out)
    rows = out.split("\nTenant ", 1)[1].split("\n... and ", 1)[0].splitlines()[1:]
    check(len(rows) == 20 and re.search(r"^\.\.\. and \d+ more$", out, re.M),
          "%d tenant rows for 20,000 tenants (20 and '... and N more' expected)" % len(rows))
    srv.shutdown()
    srv, port = hostile_server(b"quicstash_a 1\n" * ((5 << 20) // 14 + 1))
    rc, out, err = top_once(port)
    check(rc == 1 and "no answer" in err, "a 5 MiB answer: exit %d, %r" % (rc, err))
    srv.shutdown()
    rc, out, err = top_once(port)
    check(rc == 1 and "no answer" in err, "nothing listening: exit %d, %r" % (rc, err))
    return "hostile text shown without escapes in %.1f s; oversized and missing answers are exit 1" % took


def case_tenants():
    q.need_binaries("quicstash-top")

    def body(k):  # per scrape: "quiet" +10 events, "loud" +1000, "mid" +100 and 50 rejected
        lines = []
        for name, acked, rejected, conns in (("quiet", 10, 0, 1), ("loud", 1000, 0, 7), ("mid", 100, 50, 2)):
            lines += ['quicstash_tenant_frames_acknowledged_total{tenant="%s"} %d' % (name, acked * k),
                      'quicstash_tenant_frames_rejected_total{tenant="%s",code="invalid_json"} %d' % (name, rejected * k),
                      'quicstash_tenant_received_bytes_total{tenant="%s"} %d' % (name, acked * k * 100),
                      'quicstash_tenant_throttled_seconds_total{tenant="%s"} %g' % (name, 0.5 * k if name == "loud" else 0),
                      'quicstash_tenant_connections_open{tenant="%s"} %d' % (name, conns)]
        return ("\n".join(lines) + "\n").encode()

    srv, port = hostile_server(b"", make=body)
    rc, out, err = top_once(port, "--interval", "0.5")
    srv.shutdown()
    log("--once with tenants:\n" + out)
    check(rc == 0, "exit %d: %s" % (rc, err))
    rows = out.split("\nTenant ", 1)[1].splitlines()[1:]
    names = [r.split()[0] for r in rows]
    check(names == ["loud", "mid", "quiet"], "tenants not loudest first: %r\n%s" % (names, out))
    loud = rows[0].split()
    acked = float(loud[1].rstrip("k")) * (1000 if loud[1].endswith("k") else 1)
    # 1000 events between two scrapes 0.5 s apart (the interval is a lower bound on a busy host)
    check(200 < acked <= 2100 and loud[5] == "7" and loud[-1] != "0%", "loud tenant row %r" % rows[0])
    return "tenants loudest first (%s)" % ", ".join(names)


def case_no_tenants():
    q.need_binaries("quicstash-top")
    srv, port = hostile_server(b"quicstash_frames_received_total 5\n")
    rc, out, err = top_once(port, "--interval", "0.2")
    check(rc == 0 and "Events/s" in out and "Tenant" not in out, "exit %d:\n%s" % (rc, out))
    check("nan" not in out.lower() and re.search(r"^  total\s+in 5\s+acked -", out, re.M),
          "series the server does not send are not shown as '-':\n" + out)
    return "no tenant section without tenant series"


CASES = [("once", case_once), ("tmux", case_tmux), ("hostile", case_hostile), ("tenants", case_tenants),
         ("no_tenants", case_no_tenants)]


def run():
    return "; ".join("%s: %s" % (n, f()) for n, f in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

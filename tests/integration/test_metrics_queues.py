#!/usr/bin/env python3
"""Where events wait between processes (issue 22 item 2, "queue depths between processes"):
quicstash_hop_waiting{hop=...} against real processes. A queue is made to form at one hop at a time
by stopping the process at its far end with SIGSTOP while a real client (quicstash-send) sends; the
gauge must read what waits there (exactly: the frames the acceptor decoded, minus what it still
holds itself, quicstash_acceptor_frames_queued), then 0 once the process runs again and everything
is acknowledged. After kill -9 of the stopped process, what it held is lost and resent by the
acceptors: the gauge must come back to 0, never stay at what died with it.

Cases:
  parser      --parsers 1, the parser stopped: frames wait towards it (acceptor_to_parser,
              parser="0"), then drain; rejected frames wait towards a stopped acceptor
              (parser_to_acceptor).
  shipper     the shipper stopped: events wait towards it (parser_to_shipper); then the acceptor
              stopped and the shipper let go: acknowledgements wait (shipper_to_acceptor); drain.
  kill_parser kill -9 of the stopped parser with frames queued towards it: back to 0 once the
              resent frames are acknowledged, and every event acknowledged.
  kill_shipper the same for the shipper with events queued towards it (its successor gets again
              what the parser's channel had not written wholly: written off, then raised back).
              After each kill, the next queue in front of the stopped process reads in full.
  kill_acceptor kill -9 of the acceptor whose frames wait towards the stopped parser: written off
              at once (the gauge reads 0 though the parser still gets them), and when the parser
              takes them after all the hop does not stay below or above 0; the client's resent
              events are all acknowledged.
  refused     the parser stopped while 64,000 small frames come: the acceptor's refused tries
              (quicstash_acceptor_batches_refused_total) are per loop pass, not per frame."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

HOP = 'quicstash_hop_waiting{hop="%s"}'
FRAMES = 'quicstash_hop_waiting{hop="acceptor_to_parser",parser="0"}'
HOPS = [FRAMES, HOP % "parser_to_shipper", HOP % "shipper_to_acceptor", HOP % "parser_to_acceptor"]


def start(name, extra=()):
    q.need_binaries()
    recv = q.Receiver().start()
    port, args = q.metrics_server_args()
    server = q.Server(recv, extra=args + ["--parsers", "1"] + list(extra), name=name)
    server.start()
    q.wait_http(port, "/healthz", 200, q.tmo(10))
    d = q.mkdtemp(name + "-client")
    client = q.AsyncSend(server, None, os.path.join(d, "acks"), client_timeout=int(q.tmo(120)))
    # one event through the whole pipeline first: every hop is connected (a parser stopped before
    # its frames socket's handshake with the acceptor leaves the frames in the acceptor)
    feed(port, client, ['{"warm":"up"}'], 0)
    check(client.wait_acked(1, q.tmo(30)) == 1, "the first event was not acknowledged")
    return recv, server, port, client


def wait_for(port, what, ok, timeout):
    """Scrapes until ok(scrape) (bounded); returns the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        s = q.scrape(port)
        if ok(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.2)


def feed(port, client, lines, received_before):
    """Sends the lines and waits until the acceptor decoded all of them."""
    data = ("\n".join(lines) + "\n").encode()
    check(client.feed(data, q.tmo(30)) == len(data), "the client did not take the input")
    want = received_before + len(lines)
    s = wait_for(port, "received", lambda s: s.get("quicstash_frames_received_total") == want, q.tmo(30))
    check(s.get("quicstash_frames_received_total") == want, "the acceptor decoded %r frames, %d sent"
          % (s.get("quicstash_frames_received_total"), want))
    return s


def waits(port, series, n, what, also_queued=False, slack=0):
    """The gauge reads n (plus, for the frames, what the acceptor still holds), within a bound."""
    def value(s):
        return s.get(series, -1) + (s.get("quicstash_acceptor_frames_queued", 0) if also_queued else 0)
    s = wait_for(port, what, lambda s: n <= value(s) <= n + slack, q.tmo(15))
    check(s.get(series, 0) > 0, "%s: %s = %r" % (what, series, s.get(series)))
    check(n <= value(s) <= n + slack, "%s: %s = %r%s, %d wait there" % (
        what, series, s.get(series), " (+ %r queued in the acceptor)" % s.get("quicstash_acceptor_frames_queued")
        if also_queued else "", n))
    bytes_series = series.replace("quicstash_hop_waiting{", "quicstash_hop_waiting_bytes{")
    check(s.get(bytes_series, 0) > 0 or (also_queued and s.get(series) == 0), "%s: %s = %r" % (
        what, bytes_series, s.get(bytes_series)))
    log("%s: %s = %d%s" % (what, series, s[series], " (+ %d held by the acceptor)" % s.get(
        "quicstash_acceptor_frames_queued", 0) if also_queued else ""))
    return s


def all_zero(port, client, acked, what):
    """Every event acknowledged, then every hop's gauge back to 0 (bounded)."""
    got = client.wait_acked(acked, q.tmo(60))
    check(got == acked, "%s: %d of %d acknowledged" % (what, got, acked))
    series = HOPS + ["quicstash_acceptor_frames_queued"]  # (the acceptor sets this one once a second)
    s = wait_for(port, what, lambda s: all(s.get(h) == 0 for h in series), q.tmo(10))
    check(all(s.get(h) == 0 for h in series), "%s: not back to 0: %r" % (what, {h: s.get(h) for h in series}))
    return s


def top_waiting(port):
    """quicstash-top --once's "Waiting" line, as {key: number} (3.00k -> 3000)."""
    q.need_binaries("quicstash-top")
    p = subprocess.run([os.path.join(q.QS_BIN, "quicstash-top"), "--once", "--metrics-addr", "127.0.0.1:%d" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=q.tmo(30))
    line = ([l for l in p.stdout.decode().splitlines() if l.startswith("Waiting")] or [""])[0]
    mult = {"": 1, "k": 1e3, "M": 1e6}
    return line, {k: float(v) * mult[u] for k, v, u in re.findall(r"(\w+) ([0-9.]+)([kM]?)\b", line)}


def next_queue_in_full(server, port, client, role, series, also_queued, first):
    """After a write-off, what arrived after all was raised back (within the supervisor's second):
    a new queue in front of the stopped role reads in full, not less what arrived late."""
    time.sleep(1.5)
    m = q.scale(1000)
    pid = stop(server, role)
    before = int(q.scrape(port).get("quicstash_frames_received_total"))
    feed(port, client, q.gen_events(m, first), before)
    waits(port, series, m, role + " stopped again", also_queued=also_queued)
    os.kill(pid, signal.SIGCONT)
    return m


def stop(server, role):
    pid = server.pids(role)[0]
    os.kill(pid, signal.SIGSTOP)
    return pid


def case_parser():
    recv, server, port, client = start("queues-parser")
    n = q.scale(3000)
    pid = stop(server, "parser")
    feed(port, client, q.gen_events(n), 1)
    s = waits(port, FRAMES, n, "parser stopped", also_queued=True)
    line, top = top_waiting(port)
    log("quicstash-top: " + line)
    near = lambda a, b: a is not None and abs(a - b) <= b / 100 + 1  # noqa: E731 (3.00k: three digits)
    check(near(top.get("parsers"), s[FRAMES]) and near(top.get("acceptors"), s["quicstash_acceptor_frames_queued"]),
          "quicstash-top does not show where the frames wait: %r" % line)
    os.kill(pid, signal.SIGCONT)
    all_zero(port, client, n + 1, "parser running again")
    # rejections towards a stopped acceptor: the parser takes the bad frames only once it is
    # stopped itself, so that all of them are answered while the acceptor cannot read
    k = 200
    pid = stop(server, "parser")
    feed(port, client, ["not json %d" % i for i in range(k)], n + 1)
    acc = stop(server, "acceptor")
    os.kill(pid, signal.SIGCONT)
    # (its HELLO to the acceptor, once a second, waits there too)
    waits(port, HOP % "parser_to_acceptor", k, "acceptor stopped", slack=int(q.tmo(20)))
    os.kill(acc, signal.SIGCONT)
    all_zero(port, client, n + 1, "acceptor running again")
    client.end_input()
    check(client.wait(q.tmo(60)) is not None, "the client did not finish")
    check(q.summary(client.stderr()) == (n + k + 1, n + 1, k), "client summary %r" % (q.summary(client.stderr()),))
    server.stop()
    return "%d frames waited towards the stopped parser, %d rejections towards the stopped acceptor; 0 " \
        "once drained" % (n, k)


def case_shipper():
    recv, server, port, client = start("queues-shipper")
    n = q.scale(3000)
    pid = stop(server, "shipper")
    feed(port, client, q.gen_events(n), 1)
    waits(port, HOP % "parser_to_shipper", n, "shipper stopped")
    acc = stop(server, "acceptor")
    os.kill(pid, signal.SIGCONT)
    waits(port, HOP % "shipper_to_acceptor", n, "acceptor stopped")
    os.kill(acc, signal.SIGCONT)
    all_zero(port, client, n + 1, "acceptor running again")
    server.stop()
    return "%d events waited towards the stopped shipper, then %d acknowledgements towards the stopped " \
        "acceptor; 0 once drained" % (n, n)


def kill_case(role, series, also_queued):
    recv, server, port, client = start("queues-kill-" + role)
    n = q.scale(3000)
    pid = stop(server, role)
    feed(port, client, q.gen_events(n), 1)
    waits(port, series, n, role + " stopped", also_queued=also_queued)
    os.kill(pid, signal.SIGKILL)
    server.wait_respawn(role, pid, 1)
    all_zero(port, client, n + 1, "after kill -9 of the stopped " + role)
    m = next_queue_in_full(server, port, client, role, series, also_queued, n + 1)
    all_zero(port, client, n + m + 1, "the next queue drained")
    s = q.scrape(port)
    check(s.get('quicstash_child_restarts_total{role="%s"}' % role) == 1, "restarts %r" % s.get(
        'quicstash_child_restarts_total{role="%s"}' % role))
    client.end_input()
    check(client.wait(q.tmo(60)) is not None, "the client did not finish")
    check(q.summary(client.stderr()) == (n + m + 1, n + m + 1, 0), "client summary %r" % (q.summary(client.stderr()),))
    server.stop()
    return "%d waited towards the %s, killed -9: back to 0 once resent and acknowledged" % (n, role)


def case_kill_parser():
    return kill_case("parser", FRAMES, True)


def case_kill_shipper():
    return kill_case("shipper", HOP % "parser_to_shipper", False)


def case_kill_acceptor():
    recv, server, port, client = start("queues-kill-acceptor")
    n = q.scale(3000)
    pid = stop(server, "parser")
    feed(port, client, q.gen_events(n), 1)
    waits(port, FRAMES, n, "parser stopped", also_queued=True)
    acc = server.kill_child("acceptor")
    server.wait_respawn("acceptor", acc, 1)
    s = wait_for(port, "written off", lambda s: s.get(FRAMES) == 0, q.tmo(10))
    check(s.get(FRAMES) == 0, "the dead acceptor's frames not written off: %r" % s.get(FRAMES))
    os.kill(pid, signal.SIGCONT)  # it takes them now: below 0 for a moment, raised within a second
    all_zero(port, client, n + 1, "after kill -9 of the acceptor")
    next_queue_in_full(server, port, client, "parser", FRAMES, True, n + 1)
    server.stop()
    return "%d frames towards the stopped parser when their acceptor was killed -9: written off, 0 once " \
        "the client's resent events were acknowledged, the next queue read in full" % n


def case_refused():
    """The parser stopped while small frames keep coming: once its socket is full the acceptor tries
    its batch again once a loop pass (or when a socket takes more), not once a frame: each try built
    a 256 KiB batch again (~33 us for 5-byte frames), so a flood of small frames towards a stalled
    parser cost the acceptor a rebuild per frame (quicstash_acceptor_batches_refused_total: ~one
    per frame past the first 256 KiB queued before; now at most one a pass)."""
    recv, server, port, client = start("queues-refused")
    pid = stop(server, "parser")
    # A trickle fills the parser's socket with small batches (64 messages and the kernel's buffer)
    # until a batch is refused: however fast the host, it ends when the socket is full.
    trickle, refused0, deadline = 0, 0, time.monotonic() + q.tmo(60)
    while refused0 == 0 and trickle < 20000 and time.monotonic() < deadline:
        line = ('{"trickle":%d}\n' % trickle).encode()
        check(client.feed(line, q.tmo(10)) == len(line), "the client did not take the input")
        trickle += 1
        time.sleep(0.002)
        if trickle % 50 == 0:
            refused0 = q.scrape(port).get("quicstash_acceptor_batches_refused_total", 0)
    log("parser stopped: first batch refused after %d events one by one" % trickle)
    check(refused0 >= 1, "no batch refused after %d events towards a stopped parser" % trickle)
    k, n = 4, 16000  # 4 clients (a client holds 16,384 unanswered)
    d = q.mkdtemp("refused-clients")
    clients = []
    for c in range(k):
        path = os.path.join(d, "in%d" % c)
        q.write_lines(path, ['{"n":%d,"pad":"%s"}' % (c * n + i, "p" * 40) for i in range(n)])
        clients.append(q.AsyncSend(server, path, os.path.join(d, "acks%d" % c), client_timeout=int(q.tmo(120))))
    want = 1 + trickle + k * n
    s = wait_for(port, "received", lambda s: s.get("quicstash_frames_received_total") == want, q.tmo(60))
    check(s.get("quicstash_frames_received_total") == want, "the acceptor decoded %r frames, %d sent"
          % (s.get("quicstash_frames_received_total"), want))
    refused = s.get("quicstash_acceptor_batches_refused_total", 0) - refused0
    log("then %d small frames at once: %d more tries refused" % (k * n, refused))
    check(refused < k * n / 5, "%d refused tries for %d frames: one per frame, not per pass" % (refused, k * n))
    os.kill(pid, signal.SIGCONT)
    for c in clients:
        check(c.wait(q.tmo(120)) == 0, "a client did not finish: %s" % c.stderr()[-300:])
        check(q.summary(c.stderr()) == (n, n, 0), "client summary %r" % (q.summary(c.stderr()),))
    all_zero(port, client, 1 + trickle, "parser running again")
    server.stop()
    return "%d tries refused for %d frames towards a stopped parser (one a pass, not one a frame)" % (refused, k * n)


CASES = [("parser", case_parser), ("shipper", case_shipper), ("kill_parser", case_kill_parser),
         ("kill_shipper", case_kill_shipper), ("kill_acceptor", case_kill_acceptor), ("refused", case_refused)]


def run():
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

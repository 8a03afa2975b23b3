#!/usr/bin/env python3
"""The protocol's conformance suite (docs/PROTOCOL.md, "Conformance suite"): every file in
tests/conformance/ is one case, as data: the bytes a client sends on one stream, how the stream
ends, the answers it must get, and what must arrive at Logstash. This driver plays each against a
real quicstashd over real QUIC with `quicstash-send --raw` (and its hidden --test-hold-streams /
--test-raw-reset for streams left open or reset). `--case NAME` runs one file (its stem)."""
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

CASE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conformance")


def load_cases():
    cases = {}
    for fn in sorted(os.listdir(CASE_DIR)):
        if fn.endswith(".json"):
            with open(os.path.join(CASE_DIR, fn), encoding="utf-8") as f:
                cases[fn[:-5]] = json.load(f)
    return cases


CASES = load_cases()


def part_bytes(p):
    """One element of a case's "send" list, as bytes (see tests/conformance/README.md)."""
    (kind, v), = p.items()
    if kind == "hex":
        return bytes.fromhex(v.replace(" ", ""))
    if kind == "text":
        return v.encode("utf-8", "surrogatepass")
    if kind == "header":
        return b"QSH1" + bytes.fromhex(v["session"]) + struct.pack(">Q", v["seq"])
    if kind == "prefix":
        return struct.pack(">I", v)
    if kind == "frame":
        b = v.encode("utf-8", "surrogatepass")
        return struct.pack(">I", len(b)) + b
    if kind == "frame_hex":
        b = bytes.fromhex(v.replace(" ", ""))
        return struct.pack(">I", len(b)) + b
    if kind == "frame_of":  # a valid JSON object of exactly v bytes
        b = b'{"p":"' + b"x" * (v - 8) + b'"}'
        return struct.pack(">I", len(b)) + b
    raise ValueError("unknown part %r" % kind)


def parse_answers(out):
    res = []
    for line in out.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^ack (\d+)$", line)
        if m:
            res.append(["ack", int(m.group(1))])
            continue
        m = re.match(r"^reject (\d+) (\S+) ?(.*)$", line)
        if m:
            res.append(["reject", int(m.group(1)), m.group(2), m.group(3)])
            continue
        m = re.match(r"^goaway (\d+)$", line)
        if m:
            res.append(["goaway", int(m.group(1))])
            continue
        m = re.match(r"^closed:? ?(.*)$", line)
        res.append(["closed", m.group(1)] if m else ["?", line])
    return res


def reduce_answers(got):
    """The server may split or coalesce acks: checks the order rules (acks never go back, an R
    comes before any A covering its seq) and returns the answers with the acks reduced to the
    highest one before each G and the last one."""
    top, emitted, out = 0, None, []
    for g in got:
        if g[0] == "ack":
            check(g[1] >= top, "an ack went backwards: %r" % (got,))
            top = g[1]
            continue
        if g[0] == "reject":
            check(g[1] >= top, "reject %d after an ack covering it: %r" % (g[1], got))
        elif top != (emitted or 0):  # a goaway: the acks so far come first
            out.append(["ack", top])
            emitted = top
        out.append(g)
    if any(g[0] == "ack" for g in got) and top != emitted:
        out.append(["ack", top])
    return out


def answers_match(want, got):
    """want: the case's "answers"; a reject may carry a 4th element, a regex its reason must match."""
    got = reduce_answers(got)
    if len(want) != len(got):
        return False
    for w, g in zip(want, got):
        if w[0] != g[0] or list(w[1:3]) != list(g[1:3]):
            return False
        if w[0] == "reject" and len(w) > 3 and not re.search(w[3], g[3]):
            return False
    return True


# The server's own values in a stored line, replaced before comparing with "stored".
SERVER_VALUES = [
    (re.compile(rb'"ingested":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"'), b'"ingested":"<TIME>"'),
    (re.compile(rb'"id":"[0-9a-f]{32}-(\d+)"'), rb'"id":"<ID>-\1"'),
    (re.compile(rb'"ip":"127\.0\.0\.1","port":\d+'), b'"ip":"<IP>","port":<PORT>'),
]


def normalise(line):
    for rx, rep in SERVER_VALUES:
        line = rx.sub(rep, line)
    return line.decode("utf-8", "replace")


class Ctx:
    def __init__(self):
        self.recv = q.Receiver().start()
        self.server = q.Server(self.recv, name="conformance").start()
        self.markers = 0

    def lines_of_case(self, before, name):
        """The lines stored for the case that began at line `before`: everything up to a marker
        event sent after it (acknowledged, so behind the case's events in the spool)."""
        self.markers += 1
        marker = '{"conformance_marker":%d}' % self.markers
        rc, out, err = q.send(self.server, [marker], timeout=q.tmo(60), client_timeout=int(q.tmo(20)))
        check(rc == 0, "%s: the marker event was not acknowledged: %s" % (name, err[-300:]))
        deadline = time.monotonic() + q.tmo(30)
        while time.monotonic() < deadline:
            lines = [bytes(l) for l in self.recv.lines[before:]]
            for i, l in enumerate(lines):
                if l.startswith(marker[:-1].encode() + b","):
                    return lines[:i]
            time.sleep(0.05)
        raise q.TestFailure("%s: the marker event never arrived at Logstash" % name)


CTX = []


def ctx():
    if not CTX:
        q.need_binaries()
        CTX.append(Ctx())
    return CTX[0]


def send_then_stop(c, data, extra, after, name):
    """Runs the client; once `after` answers arrived (or a second passed, for none), stops the
    server (SIGTERM: a planned stop), collects what the client printed, and starts the server
    again (same port, spool, secret)."""
    path = os.path.join(c.server.dir, "stop-%s.bin" % name)
    with open(path, "wb") as f:
        f.write(data)
    argv = [q.SEND, "-s", c.server.addr, "--cert", c.server.cert, "--timeout", "30"] + extra + [path]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, b"")), daemon=True)
    reader.start()
    deadline = time.monotonic() + (q.tmo(20) if after else 1.0)
    while len(lines) < after and time.monotonic() < deadline:
        time.sleep(0.02)
    while not after and time.monotonic() < deadline:
        time.sleep(0.02)
    c.server.stop()
    try:
        rc = p.wait(timeout=q.tmo(30))
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    reader.join(q.tmo(5))
    err = p.stderr.read().decode("utf-8", "replace")
    c.server.start()
    return rc, b"".join(lines).decode("utf-8", "replace"), err


def play(name):
    case = CASES[name]
    c = ctx()
    data = b"".join(part_bytes(p) for p in case["send"])
    end = case.get("end", "fin")
    extra = {"fin": ["--raw"], "reset": ["--test-raw-reset"], "open": ["--test-hold-streams", "1"]}[end]
    if end != "fin":
        q.need_test_hooks("quicstash-send " + extra[0])
    # an open stream never ends: the client gives up after a quiet while (exit 2), the answers printed
    client_timeout = 3 if end == "open" else int(q.tmo(20))
    before = c.recv.count()
    stop = case.get("server_stops_after")
    if stop is not None:
        rc, out, err = send_then_stop(c, data, extra, stop, name)
    else:
        rc, out, err = q.send(c.server, data, extra_args=extra, timeout=q.tmo(60), client_timeout=client_timeout)
    got = parse_answers(out)
    log("%s: rc=%s answers=%s%s" % (name, rc, got[:10], " stderr=%r" % err.strip()[-300:] if err.strip() else ""))
    check(rc is not None, "%s: quicstash-send hung" % name)
    closed = [g for g in got if g[0] == "closed"]
    got = [g for g in got if g[0] != "closed"]
    check(answers_match(case["answers"], got), "%s: answers %r, expected %r (acks reduced to the last)"
          % (name, got, case["answers"]))
    want_closed = case.get("closed")
    if end == "open" and want_closed is None:
        check(rc == 2 and closed and "timed out" in closed[0][1],
              "%s: the open stream should be left waiting (client timeout), got rc=%r %r" % (name, rc, closed))
    elif want_closed is None:
        check(rc == 0 and not closed, "%s: the server should finish the stream cleanly (FIN), got rc=%r %r"
              % (name, rc, closed))
    else:
        check(closed and re.search(want_closed, closed[0][1]),
              "%s: expected the stream/connection to end with %r, got %r" % (name, want_closed, closed))
    stored = case.get("stored")
    count = len(stored) if stored is not None else case.get("stored_count", 0)
    lines = c.lines_of_case(before, name)
    check(len(lines) == count, "%s: %d events arrived at Logstash, expected %d: %r"
          % (name, len(lines), count, [l[:300] for l in lines]))
    if stored is not None:
        norm = [normalise(l) for l in lines]
        check(norm == stored, "%s: stored events differ:\n got  %r\n want %r" % (name, norm, stored))
    check(c.server.running(), "%s: quicstashd died" % name)


def run_all():
    failed = []
    for name in CASES:  # all of them, then the verdict: one run shows every difference
        try:
            play(name)
        except q.TestFailure as e:
            log("FAILED %s" % e)
            failed.append(name)
    check(not failed, "%d of %d cases failed: %s" % (len(failed), len(CASES), ", ".join(failed)))
    return "%d cases" % len(CASES)


if __name__ == "__main__":
    q.main(run_all, cases=[(n, (lambda n=n: play(n))) for n in CASES])

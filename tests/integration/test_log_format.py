#!/usr/bin/env python3
"""What quicstashd's stderr looks like (common/log_format.c).

  json:     --log-format json --debug, with frames a client made hostile (quotes, control bytes,
            bytes that are not UTF-8, not JSON): every line of the run, from every role, is one
            JSON object in valid UTF-8 with time, level, role, pid and message, and the rejected
            frames' lines carry their peer, peer_port and code fields;
  terminal: with stderr a terminal (a pty) each line starts with its time (UTC, ms); into a file
            it does not (systemd's stream reads the <PRIORITY> prefix first);
  reload:   --log-format is applied by a reload (SIGHUP) of the --config file: lines after it are
            JSON, the lines before were text.
"""
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

FIELDS = ("time", "level", "role", "pid", "message")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def frame(b):
    return struct.pack(">I", len(b)) + b


HOSTILE = b"".join(frame(b) for b in (b'{"a":"q\\" \x01\x1b\xff\xc0\xaf"}', b'{"k\\"\x07\xed\xa0\x80":1}', b"[1,2]",
                                      b'{"a":"\\ud800"}', b'{"ok":1}'))


def server_lines(server):
    """The run's lines as bytes (the harness's own '---- ' lines left out)."""
    with open(server.logfile, "rb") as f:
        f.seek(server._log_start)
        return [l for l in f.read().split(b"\n") if l and not l.startswith(b"---- ")]


def parse_json_lines(lines, what):
    out = []
    for raw in lines:
        try:
            obj = json.loads(raw.decode("utf-8", "strict"))
        except (UnicodeDecodeError, ValueError) as e:
            check(False, "%s: a line that is not JSON in UTF-8 (%s): %r" % (what, e, raw[:300]))
        check(isinstance(obj, dict) and all(k in obj for k in FIELDS), "%s: fields missing: %r" % (what, obj))
        check(TIME_RE.match(obj["time"]) and isinstance(obj["pid"], int), "%s: bad time or pid: %r" % (what, obj))
        out.append(obj)
    return out


def case_json():
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--log-format", "json", "--debug"], name="logjson").start()
    rc, out, err = q.send(server, HOSTILE, extra_args=["--raw"], timeout=q.tmo(60), client_timeout=int(q.tmo(15)))
    check(rc is not None and "reject 0 invalid_json" in out, "the hostile frames: exit %r\n%s%s" % (rc, out, err))
    q.send_acked(server, q.gen_events(20), "good events")
    server.stop()
    objs = parse_json_lines(server_lines(server), "--log-format json")
    roles = {o["role"] for o in objs}
    check({"supervisor", "acceptor", "parser", "shipper"} <= roles, "roles seen: %r" % roles)
    check(any(o["role"] == "supervisor" and o["pid"] == server.pid for o in objs), "no supervisor line with its pid")
    rejected = [o for o in objs if o.get("code") == "invalid_json"]
    check(rejected and all(o.get("peer") == "127.0.0.1" and o.get("peer_port", "").isdigit() for o in rejected),
          "no rejection line with peer, peer_port and code: %r" % rejected[:3])
    log("%d JSON lines, e.g. %s" % (len(objs), json.dumps(rejected[0])))
    return "%d lines, all JSON" % len(objs)


def read_pty(fd, until, timeout):
    data, deadline = b"", time.monotonic() + timeout
    while until not in data and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                data += os.read(fd, 65536)
            except OSError:
                break
    return data


def case_terminal():
    server = q.Server(None, name="logtty")
    master, slave = pty.openpty()
    p = subprocess.Popen(server.argv(), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=server.dir,
                         start_new_session=True, preexec_fn=q._pdeathsig)
    os.close(slave)
    try:
        data = read_pty(master, b"ready:", q.tmo(30))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=q.tmo(30))
        os.close(master)
    lines = [l for l in data.decode("utf-8", "replace").replace("\r", "").split("\n") if l]
    check(any("ready:" in l for l in lines), "no ready line on the terminal:\n%s" % "\n".join(lines[-10:]))
    stamped = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z <\d>\w+\[\d+\]: ")
    bad = [l for l in lines if not stamped.match(l)]
    check(not bad, "lines on a terminal without their time:\n%s" % "\n".join(bad[:5]))
    server.start()  # into a file: no time, the priority first
    server.stop()
    plain = server_lines(server)
    check(plain and all(re.match(rb"^<\d>\w+\[\d+\]: ", l) for l in plain), "lines into a file: %r" % plain[:3])
    return "%d lines stamped on a terminal, none in a file" % len(lines)


def case_reload():
    conf = os.path.join(q.mkdtemp("logreload"), "quicstash.conf")
    with open(conf, "w") as f:
        f.write("log-format = text\n")
    server = q.Server(None, extra=["--config", conf], name="logreload").start()
    with open(conf, "w") as f:
        f.write("log-format = json\n")
    mark = len(server_lines(server))
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + q.tmo(30)
    while b"reload 1 complete" not in b"".join(server_lines(server)) and time.monotonic() < deadline:
        time.sleep(0.1)
    server.stop()
    lines = server_lines(server)
    before = lines[:mark]
    check(before and all(l.startswith(b"<") for l in before), "lines before the reload: %r" % before[:3])
    after = [l for l in lines[mark:] if l.startswith(b"{")]
    objs = parse_json_lines(after, "after the reload")
    check(any("reload 1 complete" in o["message"] for o in objs), "no JSON 'reload 1 complete' line:\n%r"
          % lines[mark:][:10])
    return "text, then JSON after the reload"


CASES = [("json", case_json), ("terminal", case_terminal), ("reload", case_reload)]


def run():
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

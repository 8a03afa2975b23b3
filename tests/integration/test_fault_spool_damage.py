#!/usr/bin/env python3
"""Fault suite (issue 3): a spool segment truncated, or with flipped bytes, at its tail.
The server is stopped with the receiver down so the records stay in the spool; the test damages
the last segment file and then:
  - --check-spool reports the damage (exit 1) where it said 0 before;
  - quicstashd starts on the damaged spool, ships the good records (nothing garbled, at most the
    damaged tail record(s) missing) and reports the bad ones in its log;
  - --check-spool --repair on a copy of the damaged spool cuts the tail: exit 0, then a check says 0."""
import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

REPORT = r"corrupt|torn|truncat|damag|checksum|crc|bad record|invalid record|cut"
MAX_LOST = 3


def last_segment(spool):
    files = q.spool_files(spool)
    # segments are the data files; small bookkeeping files (read position etc.) are not
    cands = [(p, s) for p, s in files if s > 4096 or re.search(r"seg|\.log$|\.spool$|\.dat$|^\d+$", os.path.basename(p))]
    cands = [(p, s) for p, s in cands if not re.search(r"pos|cursor|offset|ledger|lock|meta|state", os.path.basename(p), re.I)]
    check(cands, "no segment file found in the spool: %r" % files)
    return cands[-1][0]


def data_end(data):
    """End of the written data: segment files may be preallocated with zeros."""
    return len(data.rstrip(b"\0"))


def make_spool(n):
    recv = q.Receiver()  # down: everything stays in the spool
    server = q.Server(recv, name="damage")
    server.start()
    rc, out, err = q.send(server, q.gen_events(n), timeout=q.tmo(120), client_timeout=int(q.tmo(60)))
    check(rc == 0, "filling the spool: exit %r; %s" % (rc, err[-500:]))
    server.stop()
    rc, out = server.check_spool()
    log("intact spool: --check-spool exit %s: %s" % (rc, out.strip()[-300:]))
    check(rc == 0, "--check-spool on an intact spool after a clean stop: exit %r\n%s" % (rc, out[-1000:]))
    return recv, server


def damage_case(kind, n):
    recv, server = make_spool(n)
    seg = last_segment(server.spool)
    with open(seg, "rb") as f:
        data = f.read()
    end = data_end(data)
    check(end > 100, "last segment %s holds only %d bytes of data" % (seg, end))
    if kind == "truncated":
        with open(seg, "r+b") as f:
            f.truncate(end - 37)  # cut inside the last record
        what = "truncated by 37 bytes at %d" % (end - 37)
    else:
        b = bytearray(data)
        for i in range(end - 20, end - 12):
            b[i] ^= 0x5A
        with open(seg, "wb") as f:
            f.write(bytes(b))
        what = "bytes %d..%d flipped" % (end - 20, end - 12)
    log("%s: segment %s (%d data bytes) %s" % (kind, os.path.basename(seg), end, what))
    rc, out = server.check_spool()
    log("%s: --check-spool exit %s: %s" % (kind, rc, out.strip()[-300:]))
    check(rc == 1, "%s: --check-spool did not report the damage (exit %r, expected 1):\n%s" % (kind, rc, out[-1000:]))
    # a copy for --repair
    copy = os.path.join(server.dir, "spool-copy")
    shutil.copytree(server.spool, copy)
    # start-up recovery
    recv.start()
    server.start()
    deadline = time.monotonic() + q.tmo(60)
    while time.monotonic() < deadline and len(recv.seen()) < n - MAX_LOST:
        time.sleep(0.1)
    time.sleep(1.5)
    seen = recv.seen()
    lost = [i for i in range(n) if seen[i] == 0]
    log("%s: %d of %d records shipped after recovery, lost %s" % (kind, len(seen), n, lost[:10]))
    check(not recv.bad_json and not recv.partials, "%s: garbage shipped: %r %r" % (kind, recv.bad_json[:2], recv.partials[:2]))
    for ev in recv.snapshot():
        want = q.gen_event(ev["n"])
        cv = q.client_view(ev, want)
        check(all(cv.get(k) == v for k, v in want.items()), "%s: a shipped record was altered: %s" % (kind, json.dumps(ev)[:300]))
    check(len(lost) <= MAX_LOST, "%s: %d good records were not shipped (at most %d may sit in the damaged tail): %s"
          % (kind, len(lost), MAX_LOST, lost[:20]))
    check(len(lost) >= 1, "%s: the damaged record was shipped anyway" % kind)
    check(re.search(REPORT, server.log(since_start=True), re.I),
          "%s: the start-up log does not report the damaged record(s):\n%s" % (kind, server.log_tail()))
    # the service works on after the recovery
    rc, out, err = q.send(server, q.gen_events(100, start=n), timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "%s: send after the recovery: exit %r" % (kind, rc))
    check(not recv.wait_numbers(range(n, n + 100), q.tmo(30), quiet=0.2), "%s: events after the recovery missing" % kind)
    server.stop()
    rc, out = server.check_spool()
    check(rc == 0, "%s: --check-spool after recovery and a clean stop: exit %r\n%s" % (kind, rc, out[-1000:]))
    # --repair on the damaged copy
    rc, out = server.check_spool(repair=True, spool=copy)
    log("%s: --check-spool --repair exit %s: %s" % (kind, rc, out.strip()[-300:]))
    check(rc == 0, "%s: --check-spool --repair: exit %r\n%s" % (kind, rc, out[-1000:]))
    rc, out = server.check_spool(spool=copy)
    check(rc == 0, "%s: --check-spool after --repair: exit %r\n%s" % (kind, rc, out[-1000:]))
    return len(lost)


def run():
    q.need_binaries()
    n = q.scale(5000)
    lt = damage_case("truncated", n)
    lf = damage_case("flipped", n)
    return "truncated tail: %d record(s) cut; flipped bytes: %d record(s) cut; good records shipped, reported, repaired" % (lt, lf)


CASES = [("truncated", lambda: damage_case("truncated", q.scale(5000))),
         ("flipped", lambda: damage_case("flipped", q.scale(5000)))]

if __name__ == "__main__":
    q.main(run, cases=CASES)

#!/usr/bin/env python3
"""Fault suite: the file output (-l file:PATH) on a disk that fills up, then gets room again.

The spool is on another file system, so events go on being acknowledged while the output file's
disk is full. A write into a full disk comes back short (what fitted, usually half a line), the
next one fails; the output retried from after the last whole record, so the record was written
again behind its own first half: a corrupt line for an acknowledged event (and, after a failed
fdatasync, records written since the last sync were trusted though the kernel may have dropped
them). Now a failed write or sync cuts the file back to what the last sync covered and writes
everything after it again. Checked: once the disk has room, the file holds every acknowledged
event, each on a line of its own that parses, and nothing else."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def read_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return b"", []
    return data, [l for l in data.split(b"\n") if l]


def run():
    q.need_binaries()
    d = q.mkdtemp("outfull")
    mnt = os.path.join(d, "out")
    q.mount_tmpfs(mnt, "1m")
    path = os.path.join(mnt, "out.jsonl")
    server = q.Server(logstash="file:" + path, name="outfull").start()
    n = 20000  # ~4 MB of output: four times the disk
    rc, _, err = q.send(server, q.gen_events(n), timeout=q.tmo(120), client_timeout=int(q.tmo(60)))
    check(rc == 0 and q.summary(err) == (n, n, 0), "acknowledged with the output's disk full: exit %r summary %r"
          % (rc, q.summary(err)))
    deadline = time.monotonic() + q.tmo(20)
    while time.monotonic() < deadline and "output file" not in server.log() and "write failed" not in server.log():
        time.sleep(0.1)
    check("write failed" in server.log(), "the output never failed on its full disk:\n%s" % server.log_tail())
    time.sleep(1)  # a few more tries against the full disk
    q.remount_tmpfs(mnt, "64m")
    deadline = time.monotonic() + q.tmo(60)
    lines = []
    while time.monotonic() < deadline:
        _, lines = read_lines(path)
        if len(lines) >= n:
            break
        time.sleep(0.2)
    server.stop()
    data, lines = read_lines(path)
    bad = []
    seen = {}
    for l in lines:
        try:
            seen[json.loads(l)["n"]] = seen.get(json.loads(l)["n"], 0) + 1
        except (ValueError, KeyError, TypeError):
            bad.append(l[:120])
    check(not bad, "%d lines of the output file do not parse (a record written behind its own first half): %r"
          % (len(bad), bad[:2]))
    missing = [k for k in range(n) if k not in seen]
    check(not missing, "%d acknowledged events missing from the output file: first %s" % (len(missing), missing[:10]))
    check(data.endswith(b"\n"), "the output file does not end with a whole line")
    dups = sum(c - 1 for c in seen.values())
    log("output file: %d lines, %d events, %d duplicates" % (len(lines), len(seen), dups))
    return "output disk full then grown: every one of %d acknowledged events on a whole line, %d duplicates" % (n, dups)


if __name__ == "__main__":
    q.main(run)

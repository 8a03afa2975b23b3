#!/usr/bin/env python3
"""Floods of tiny frames and clients that never read their answers cannot balloon the acceptor.

QUIC flow control counts bytes, not frames: one connection's 16 MiB window holds millions of
5-byte frames, and every frame in flight costs the acceptor far more than its 5 bytes. Each
rejection also costs an answer, which a client that never reads would leave the acceptor holding.
  1. one client sends ~26 MB: 100,000 valid events (scaled down under sanitizers), each followed by
     40 one-byte frames (invalid JSON), then a frame cut short by the end of the stream. Every tiny
     frame is rejected, the cut frame is rejected as such, every valid event reaches Logstash, the
     stream ends cleanly, and the acceptor's peak memory stays small (it was ~600 MB for 20 MB of
     tiny frames when every decoded frame was held at once);
  2. a client sends 60 MB of tiny frames and never gives credit back for the answers
     (--test-unread-answers): the acceptor stops giving it room (the client stalls) instead of
     buffering rejections (it was ~920 MB), and meanwhile serves another client normally.
"""
import os
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

TINY_PER_EVENT = 40
# Peak acceptor memory allowed (VmHWM). Under ASan its allocator keeps freed memory in a
# quarantine, 256 MB unless told otherwise (16 MB here), and shadow memory on top.
LIMIT_MB = 200 if q.SANITIZE else 160
if q.SANITIZE:
    os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16").lstrip(":")


def frame(body):
    return struct.pack(">I", len(body)) + body


def peak_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


def raw_argv(server, path, timeout, *extra):
    return [q.SEND, "-s", server.addr, "--cert", server.cert, "--raw", "--timeout", str(int(timeout)), *extra, path]


def mixed_flood(server, recv):
    n = q.scale(100000, minimum=10000)
    events = q.gen_events(n)
    path = os.path.join(server.dir, "mixed.bin")
    tiny = frame(b"x") * TINY_PER_EVENT
    with open(path, "wb") as f:
        for e in events:
            f.write(frame(e.encode()) + tiny)
        f.write(struct.pack(">I", 100) + b"0123456789")  # cut short by the end of the stream
    frames = n * (1 + TINY_PER_EVENT) + 1
    log("mixed flood: %d events, %d tiny frames, %.1f MB" % (n, n * TINY_PER_EVENT, os.path.getsize(path) / 1e6))
    p = subprocess.Popen(raw_argv(server, path, q.tmo(30)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=q._pdeathsig)
    rejects, reasons, last_ack, last_reject = 0, set(), None, None
    err = []
    t = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
    t.start()
    for line in p.stdout:
        if line.startswith("reject "):
            rejects += 1
            parts = line.split(" ", 3)
            reasons.add(parts[2])
            last_reject = line.strip()
        elif line.startswith("ack "):
            last_ack = int(line.split()[1])
    rc = p.wait(timeout=q.tmo(120))
    t.join(10)
    log("client exit %r: %d rejections (%s), last ack %r, last rejection %r"
        % (rc, rejects, ",".join(sorted(reasons)), last_ack, last_reject))
    check(rc == 0, "the flooding client did not end cleanly: exit %r %r" % (rc, "".join(err)[-400:]))
    check(rejects == n * TINY_PER_EVENT + 1, "%d rejections, expected %d" % (rejects, n * TINY_PER_EVENT + 1))
    check(last_reject and "stream ended inside a frame" in last_reject,
          "the frame cut short was not rejected as such: %r" % last_reject)
    check(last_ack == frames, "the answers stop at %r of %d frames" % (last_ack, frames))
    missing = q.arrived([recv], range(n), q.tmo(60))
    check(not missing, "%d valid events between the tiny frames missing at Logstash" % len(missing))


def unread_flood(server, recv):
    path = os.path.join(server.dir, "tiny.bin")
    with open(path, "wb") as f:
        f.write(frame(b"x") * (60 * 1024 * 1024 // 5))
    p = subprocess.Popen(raw_argv(server, path, q.tmo(8), "--test-unread-answers"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, preexec_fn=q._pdeathsig)
    # while that client is held, another one is served as usual
    lines = q.gen_events(2000, start=200000)
    rc, out, err = q.send(server, lines, timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0 and q.summary(err) == (2000, 2000, 0),
          "a client next to the one that does not read: exit %r, %r %s" % (rc, q.summary(err), err[-400:]))
    _, err = p.communicate(timeout=q.tmo(120))
    log("client that does not read: exit %r (%s)" % (p.returncode, err.strip()[-120:]))
    check(p.returncode != 0 and "timed out" in err,
          "the client that never reads was not held back: exit %r %r" % (p.returncode, err[-300:]))
    missing = q.arrived([recv], range(200000, 202000), q.tmo(60))
    check(not missing, "%d events of the other client missing at Logstash" % len(missing))


def run():
    q.need_binaries("quicstashd", "quicstash-send")
    recv = q.Receiver().start()
    server = q.Server(logstash=recv).start()
    acc = server.pids("acceptor")[0]
    mixed_flood(server, recv)
    mb = peak_mb(acc)
    log("acceptor peak memory after the mixed flood: %d MB (limit %d)" % (mb, LIMIT_MB))
    check(0 < mb <= LIMIT_MB, "the acceptor peaked at %d MB for a flood of tiny frames" % mb)
    unread_flood(server, recv)
    mb = peak_mb(acc)
    log("acceptor peak memory after the unread answers: %d MB (limit %d)" % (mb, LIMIT_MB))
    check(0 < mb <= LIMIT_MB, "the acceptor peaked at %d MB holding unread answers" % mb)
    check(server.pids("acceptor") == [acc], "the acceptor was restarted: %s" % server.log_tail())
    server.stop()
    return "tiny-frame floods rejected frame by frame with the acceptor under %d MB; a client that " \
           "never reads is held back, its neighbour served" % LIMIT_MB


if __name__ == "__main__":
    q.main(run)

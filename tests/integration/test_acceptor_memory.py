#!/usr/bin/env python3
"""The acceptor's memory stays bounded: tiny-frame floods, clients that never read, a stalled spool.

QUIC flow control counts bytes, not frames: one connection's window holds millions of 5-byte
frames, and every frame in flight costs the acceptor far more than its 5 bytes. Each rejection also
costs an answer, which a client that never reads would leave the acceptor holding. And while the
spool cannot take more, every connected client fills its window in the acceptor.
  1. one client sends ~37 MB: 100,000 valid events (scaled down under sanitizers), each followed by
     40 one-byte frames (invalid JSON), then a frame cut short by the end of the stream. Every tiny
     frame is rejected, the cut frame is rejected as such, every valid event reaches Logstash, the
     stream ends cleanly, and the acceptor's peak memory stays small (394 MB before frames in
     flight were capped per connection);
  2. a client sends 60 MB of tiny frames and never gives credit back for the answers
     (--test-unread-answers): the acceptor stops giving it room (the client stalls) instead of
     buffering rejections (~900 MB before), and meanwhile serves another client normally;
  3. clients send empty frames (rejected at once, 24 bytes of answer for 4 bytes) and never read
     their answers: each may leave its window and the answers cap in the acceptor, not six times
     its window in answers (up to ~100 MB a client whose window had grown, before);
  4. with the spool full (--spool-max-bytes 16M, Logstash down) 16 more clients connect, each
     with 8.4 MB to send: each may leave only its starting window (2 MiB) in the acceptor, not the
     16 MiB a busy connection's window can grow to (each left all its 8.4 MB before). Meanwhile
     a client resets three streams of 1.5 MB each once the server has them, then sends the same
     frames on a fourth: the dropped frames' bytes go back to its connection's window (before,
     they were lost to it, and the fourth stream hung). Once Logstash is back, every client
     finishes and every event arrives.
"""
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

TINY_PER_EVENT = 40
# Peak acceptor memory allowed (VmHWM). Under ASan its allocator keeps freed memory in a
# quarantine, 256 MB unless told otherwise (16 MB here), and shadow memory on top.
LIMIT_MB = 200 if q.SANITIZE else 160
# Clients connecting while the spool is full, and what each may add to the acceptor's memory.
STALLED_CLIENTS = 16
STALLED_EVENTS = 9000  # ~8.4 MB each: well past a starting window
STALLED_MB_PER_CLIENT = 7 if q.SANITIZE else 5
RESET_FRAMES = 1500  # ~1.5 MB a stream
if q.SANITIZE:
    os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16").lstrip(":")


def frame(body):
    return struct.pack(">I", len(body)) + body


def status_mb(pid, key):
    """A memory figure of /proc/PID/status in MB: VmHWM (peak) or VmRSS (now)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
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


EMPTY_CLIENTS = 4
# Each client's window here stays at its start (2 MiB): that undecoded, 1 MiB of answers (3.5 MB a
# client measured); before, six times the window in answers (12.5 MB a client measured).
EMPTY_MB_PER_CLIENT = 14 if q.SANITIZE else 7  # ASan: 37-38 MB for 4 now, 107 before


def empty_unread():
    """Clients that send empty frames and read no answers: what each leaves in the acceptor."""
    recv = q.Receiver().start()
    server = q.Server(logstash=recv, name="empty").start()
    acc = server.pids("acceptor")[0]
    path = os.path.join(server.dir, "empty.bin")
    with open(path, "wb") as f:
        f.write(frame(b"") * (48 * 1024 * 1024 // 4))
    time.sleep(q.tmo(1))
    before = status_mb(acc, "VmRSS")
    procs = [subprocess.Popen(raw_argv(server, path, q.tmo(60), "--test-unread-answers"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, preexec_fn=q._pdeathsig) for _ in range(EMPTY_CLIENTS)]
    settled = wait_all_in(server, acc, EMPTY_CLIENTS, q.tmo(60))
    grown = status_mb(acc, "VmRSS") - before
    log("%d clients of empty frames that read no answers: acceptor %d MB before, +%d MB (limit +%d)"
        % (EMPTY_CLIENTS, before, grown, EMPTY_CLIENTS * EMPTY_MB_PER_CLIENT))
    check(settled, "the acceptor's memory did not settle: +%d MB" % grown)
    check(all(p.poll() is None for p in procs), "a client of empty frames ended: %r" % [p.poll() for p in procs])
    check(grown <= EMPTY_CLIENTS * EMPTY_MB_PER_CLIENT,
          "%d clients of empty frames grew the acceptor by %d MB" % (EMPTY_CLIENTS, grown))
    rc, out, err = q.send(server, q.gen_events(500), timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0 and q.summary(err) == (500, 500, 0),
          "a client next to those: exit %r, %r %s" % (rc, q.summary(err), err[-400:]))
    for p in procs:
        p.kill()
        p.wait()
    server.stop()


def status_lines(server):
    return [l for m in server.notify_msgs for l in m.splitlines() if l.startswith("STATUS=")]


def wait_all_in(server, acc, conns, timeout):
    """Waits until the status line counts `conns` connections and then the acceptor's memory has
    not grown for 2 s (each client's window is in, however long the clients took to start and send
    it): what the memory bound is about. True if so within timeout."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now, rss = time.monotonic(), status_mb(acc, "VmRSS")
        if rss > last:
            last, since = rss, now
        lines = status_lines(server)
        m = re.search(r"; (\d+) connections", lines[-1]) if lines else None
        if m and int(m.group(1)) >= conns and now - since >= 2.0:
            return True
        time.sleep(0.2)
    return False


def stalled_spool():
    recv = q.Receiver()  # down
    # A full spool frees room only as fast as Logstash's copies settle (1 s): 16M drains in seconds.
    server = q.Server(recv, extra=["--spool-max-bytes", "16M"], name="stalled").start()
    acc = server.pids("acceptor")[0]
    procs = []

    def client(k, n):
        path = os.path.join(server.dir, "c%d.jsonl" % k)
        q.write_lines(path, ['{"n":%d,"pad":"%s"}' % (k * 100000 + i, "p" * 900) for i in range(n)])
        argv = [q.SEND, "-s", server.addr, "--cert", server.cert, "--timeout", str(int(q.tmo(120))), path]
        procs.append((subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                       preexec_fn=q._pdeathsig), n))

    client(0, 20000)  # ~19 MB: fills the spool, then stalls
    deadline = time.monotonic() + q.tmo(30)
    while time.monotonic() < deadline and "spool full" not in server.log():
        time.sleep(0.2)
    check("spool full" in server.log(), "the spool did not fill: %s" % server.log_tail())
    time.sleep(q.tmo(2))
    before = status_mb(acc, "VmRSS")
    for k in range(1, STALLED_CLIENTS + 1):
        client(k, STALLED_EVENTS)
    settled = wait_all_in(server, acc, STALLED_CLIENTS + 1, q.tmo(60))
    check(settled, "the %d clients did not all connect and settle in the acceptor (status %r)"
          % (STALLED_CLIENTS, (status_lines(server) or ["-"])[-1]))
    grown = status_mb(acc, "VmRSS") - before
    log("spool full: acceptor %d MB before %d more clients, +%d MB with them stalled (limit +%d)"
        % (before, STALLED_CLIENTS, grown, STALLED_CLIENTS * STALLED_MB_PER_CLIENT))
    check(all(p.poll() is None for p, _ in procs), "a client gave up while the spool was full")
    check(grown <= STALLED_CLIENTS * STALLED_MB_PER_CLIENT,
          "%d stalled clients grew the acceptor by %d MB" % (STALLED_CLIENTS, grown))
    # A client that gives up on streams (RESET_STREAM) while their frames wait: the acceptor drops
    # those frames, and the connection's window must get their bytes back, or after two such
    # streams of 1.5 MB nothing more fits in its 2 MiB and the client hangs.
    path = os.path.join(server.dir, "reset.bin")
    with open(path, "wb") as f:
        for i in range(RESET_FRAMES):
            f.write(frame(('{"n":%d,"pad":"%s"}' % (900000 + i, "r" * 960)).encode()))
    resetter = subprocess.Popen(raw_argv(server, path, q.tmo(120), "--test-reset-streams", "3"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=q._pdeathsig)
    time.sleep(q.tmo(2))
    recv.start()
    out, err = resetter.communicate(timeout=q.tmo(180))
    acks = [int(l.split()[1]) for l in out.splitlines() if l.startswith("ack ")]
    log("client that reset 3 streams of %d frames: exit %r, last ack %r" % (RESET_FRAMES, resetter.returncode,
                                                                           acks[-1] if acks else None))
    check(resetter.returncode == 0 and acks and acks[-1] == RESET_FRAMES,
          "after 3 reset streams the fourth was not answered in full: exit %r, acks up to %r %s"
          % (resetter.returncode, acks[-1] if acks else None, err[-300:]))
    sent = list(range(900000, 900000 + RESET_FRAMES))
    for k, (p, n) in enumerate(procs):
        _, err = p.communicate(timeout=q.tmo(180))
        check(p.returncode == 0 and q.summary(err) == (n, n, 0),
              "client %d after the spool drained: exit %r, %r %s" % (k, p.returncode, q.summary(err), err[-300:]))
        sent += [k * 100000 + i for i in range(n)]
    missing = q.arrived([recv], sent, q.tmo(60))
    check(not missing, "%d acknowledged events missing at Logstash" % len(missing))
    server.stop()


def run():
    q.need_binaries("quicstashd", "quicstash-send")
    q.need_test_hooks("quicstash-send --test-unread-answers/--test-reset-streams")
    recv = q.Receiver().start()
    server = q.Server(logstash=recv).start()
    acc = server.pids("acceptor")[0]
    mixed_flood(server, recv)
    mb = status_mb(acc, "VmHWM")
    log("acceptor peak memory after the mixed flood: %d MB (limit %d)" % (mb, LIMIT_MB))
    check(0 < mb <= LIMIT_MB, "the acceptor peaked at %d MB for a flood of tiny frames" % mb)
    unread_flood(server, recv)
    mb = status_mb(acc, "VmHWM")
    log("acceptor peak memory after the unread answers: %d MB (limit %d)" % (mb, LIMIT_MB))
    check(0 < mb <= LIMIT_MB, "the acceptor peaked at %d MB holding unread answers" % mb)
    check(server.pids("acceptor") == [acc], "the acceptor was restarted: %s" % server.log_tail())
    server.stop()
    empty_unread()
    stalled_spool()
    return "tiny-frame floods rejected frame by frame with the acceptor under %d MB; a client that " \
           "never reads is held back, its neighbour served; clients of unread empty frames hold their window, not six; %d clients at a full spool hold their " \
           "starting windows only; reset streams give their window back" % (LIMIT_MB, STALLED_CLIENTS)


if __name__ == "__main__":
    q.main(run)

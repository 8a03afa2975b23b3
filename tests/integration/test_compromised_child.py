#!/usr/bin/env python3
"""What a compromised child can do through the sockets every child can reach (they all run as the
same user, so a file mode tells none apart); this test stands in for it from outside.

Cases:
  keyholder  only the acceptors are served. Every child runs as the same user and could reach the
             keyholder's socket: a parser or the shipper, compromised, had the server's signature
             on any TLS 1.3 handshake it held (an INFO request, standing in for a signature, was
             answered: 12 bytes), and one process could take its places (it opened 300: 128 served,
             the rest in the backlog, the keyholder spinning at a full CPU, a restarted acceptor
             crash-looping; then 4 kept a process). Now the keyholder serves the pids the
             supervisor names as acceptors (QS_CTL_SIGNERS): this process gets no answer, all 300
             connections are closed and logged, the keyholder stays idle, and a restarted
             acceptor and a restarted keyholder (a new pid on each side) sign.
  forged_bye a BYE for every parser slot, of generation 0xffffffff, sent on the acceptor's answers
             socket: it paused every slot for good (a HELLO had to be of a later generation), and
             no event was answered, even after the parsers restarted. Now it is ignored once the
             slot's parser said HELLO (no parser of that generation did), and before that the next
             HELLO ends the pause: events flow.
  tenant_ids EVENTS on the shipper's socket, as a parser would send them with tenants on, each
             record with a tenant id of its own that no tenant has: each new id cost a fair-share
             flow (a search and a move of them all) and a queue, 74,000 of them held the shipper
             2.5 s and 86 MiB per message (6 messages of 50,000: +136 MB); unknown ids now share
             one flow, and the shipper stays small and keeps acknowledging a real client's events."""
import glob
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

HOGS = 300


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def open_many(path, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(q.tmo(2))
        try:
            s.connect(path)
        except OSError:
            s.close()
            break
        socks.append(s)
    return socks


def closed(s):
    s.setblocking(False)
    try:
        return s.recv(16) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


KEYSIGN_MAGIC, KEYSIGN_INFO, INFO_PK_ALGO = 0x51534B31, 1, 1


def ask_info(path):
    """An INFO request (ipc/keysign.h: the key's algorithm) as an acceptor sends it: the
    reply's length, or 0 when the keyholder closed the connection without one."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(q.tmo(5))
    try:
        s.connect(path)
        s.send(struct.pack("=IIIII", KEYSIGN_MAGIC, KEYSIGN_INFO, INFO_PK_ALGO, 0, 0))
        return len(s.recv(4096))
    except OSError:
        return 0
    finally:
        s.close()


def case_keyholder():
    q.need_binaries()
    recv = q.Receiver().start()
    rundir = q.mkdtemp("keyholder-run")
    server = q.Server(recv, extra=["--runtime-dir", rundir], name="keyholder-peers").start()
    path = os.path.join(rundir, "keyholder.sock")
    kh = server.pids("keyholder")[0]
    answered = ask_info(path)
    check(answered == 0, "the keyholder answered a process that is no acceptor (%d bytes)" % answered)
    socks = open_many(path, HOGS)
    log("one process opened %d connections to the keyholder" % len(socks))
    deadline = time.monotonic() + q.tmo(10)
    while time.monotonic() < deadline and sum(closed(s) for s in socks) < len(socks):
        time.sleep(0.1)
    kept = len(socks) - sum(closed(s) for s in socks)
    check(kept == 0, "%d of %d connections kept for a process that is no acceptor" % (kept, len(socks)))
    check("refused a connection from pid %d: not an acceptor" % os.getpid() in server.log(),
          "the refusals were not logged")
    cpu0, t0 = cpu_seconds(kh), time.monotonic()
    time.sleep(2)
    busy = (cpu_seconds(kh) - cpu0) / (time.monotonic() - t0)
    check(busy < 0.2, "the keyholder used %.0f%% of a CPU beside the refused connections" % (busy * 100))
    old = server.kill_child("acceptor")
    server.wait_respawn("acceptor", old, 1)
    q.send_acked(server, q.gen_events(500), "500 events through a restarted acceptor (a new handshake, signed)")
    old = server.kill_child("keyholder")
    server.wait_respawn("keyholder", old, 1)
    q.send_acked(server, q.gen_events(500), "500 events after the keyholder's restart (signed by the new one)")
    check(ask_info(path) == 0, "the restarted keyholder answered a process that is no acceptor")
    for s in socks:
        s.close()
    server.stop()
    return "no answer to this process, %d of %d connections closed, the keyholder at %.0f%% CPU; a restarted " \
        "acceptor and keyholder sign" % (len(socks), len(socks), busy * 100)


MAGIC, ANSWERS, VERSION, BYE = 0x51534D31, 3, 1, 0xFFFF


def forged_bye(sender):
    """One ANSWERS message (ipc/msg.h) as parser slot `sender`: a BYE of generation 0xffffffff,
    framed for a channel (ipc/chan.h: a 4-byte length in host order)."""
    body = struct.pack("=IHHII", MAGIC, ANSWERS, VERSION, 1, sender) + struct.pack("=QHHI", 0xFFFFFFFF, BYE, 0, 0)
    return struct.pack("=I", len(body)) + body


def case_forged_bye():
    q.need_binaries()
    recv = q.Receiver().start()
    rundir = q.mkdtemp("forged-run")
    server = q.Server(recv, extra=["--runtime-dir", rundir, "--parsers", "2"], name="forged-bye").start()
    q.send_acked(server, q.gen_events(100), "100 events first (every parser said HELLO)")
    paths, socks = glob.glob(os.path.join(rundir, "acceptor-*.answers")), []
    check(paths, "no answers socket in %s: %r" % (rundir, os.listdir(rundir)))
    for path in paths:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(b"".join(forged_bye(slot) for slot in range(2)))
        socks.append(s)
    # A parser's HELLO may not have reached this acceptor yet (it says it every second): then the
    # forged BYE pauses the slot until that HELLO, which now ends the pause; later, it is ignored.
    rc, _, err = q.send(server, q.gen_events(500, 100), timeout=q.tmo(60), client_timeout=int(q.tmo(15)))
    check(rc == 0 and q.summary(err) == (500, 500, 0),
          "events after a forged BYE for every parser: exit %r, %r %s" % (rc, q.summary(err), err[-300:]))
    missing = recv.wait_numbers(range(600), q.tmo(30), quiet=0.2)
    check(not missing, "%d events missing" % len(missing))
    for s in socks:
        s.close()
    server.stop()
    ignored = server.log().count("never said HELLO: ignored")
    return "a forged BYE for every parser slot on %d answers socket(s) (%d ignored at once): 500 events answered" % (
        len(paths), ignored)


EVENTS = 2
# The shipper's growth for the made-up tenant ids: +14-15 MB now, +68-69 MB before (plain build).
LIMIT_MB = 60 if q.SANITIZE else 40


def events_msg(first_tenant, n, heavy_tenant):
    """EVENTS (ipc/msg.h) as parser slot 0: 75 records of 4 KiB for a real tenant first (its share
    turns the round robin on), then n tiny records, each of a made-up tenant id."""
    recs = []
    for i in range(75 + n):
        line = (b'{"pad":"%s"}\n' % (b"x" * 4000)) if i < 75 else b"{}\n"
        tenant = heavy_tenant if i < 75 else first_tenant + i
        rec = struct.pack("=QIIQ", 0, 0, len(line), tenant) + line
        recs.append(rec + b"\0" * (-len(rec) % 8))
    body = struct.pack("=IHHII", MAGIC, EVENTS, VERSION, len(recs), 0) + b"".join(recs)
    return struct.pack("=I", len(body)) + body


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS:")][0].split()[1]) // 1024


def case_tenant_ids():
    import hashlib
    q.need_binaries()
    recv = q.Receiver().start()
    rundir = q.mkdtemp("tenant-ids-run")
    d = q.mkdtemp("tenant-ids")
    with open(os.path.join(d, "acme.token"), "w") as f:
        f.write("acme-token\n")
    with open(os.path.join(d, "tenants.conf"), "w") as f:
        f.write("[tenant acme]\ntoken-sha256 = %s\n" % hashlib.sha256(b"acme-token").hexdigest())
    server = q.Server(recv, extra=["--runtime-dir", rundir, "--tenants", os.path.join(d, "tenants.conf"),
                                   "--auth", "token"], name="tenant-ids").start()
    sh = server.pids("shipper")[0]
    acme = int.from_bytes(hashlib.sha256(b"quicstash tenantacme").digest()[:8], "big")  # qs_tenant_id
    before = rss_mb(sh)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(rundir, "shipper.events"))
    for k in range(6):
        s.sendall(events_msg(1 << 40 | k << 20, 50000, acme))  # 1.9 MB: within a message's 2 MiB
    rc, _, err = q.send(server, q.gen_events(300), extra_args=["--token-file", os.path.join(d, "acme.token")],
                        timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0 and q.summary(err) == (300, 300, 0), "a real client beside them: exit %r %r %s"
          % (rc, q.summary(err), err[-300:]))
    grown = rss_mb(sh) - before
    log("6 messages of 50,000 made-up tenant ids: the shipper +%d MB" % grown)
    check(grown < LIMIT_MB, "the shipper grew by %d MB for made-up tenant ids" % grown)
    s.close()
    server.stop()
    return "6 x 50,000 made-up tenant ids: shipper +%d MB, a real client acknowledged" % grown


def case_channel():
    """One process may hold 4 connections to a channel's socket (the shipper's events here): each
    may hold a message of up to 2 MiB unread, and their number had no bound."""
    q.need_binaries()
    recv = q.Receiver().start()
    rundir = q.mkdtemp("channel-run")
    server = q.Server(recv, extra=["--runtime-dir", rundir], name="channel-peers").start()
    path = os.path.join(rundir, "shipper.events")
    socks = []
    for _ in range(50):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        socks.append(c)
    deadline = time.monotonic() + q.tmo(10)
    while time.monotonic() < deadline and sum(closed(c) for c in socks) < len(socks) - 4:
        time.sleep(0.1)
    kept = len(socks) - sum(closed(c) for c in socks)
    check(kept == 4, "%d of %d connections to the shipper's events socket kept for one process" % (kept, len(socks)))
    check("refused a sender (pid %d)" % os.getpid() in server.log(), "the refusals were not logged")
    q.send_acked(server, q.gen_events(300), "300 events beside them")
    for c in socks:
        c.close()
    server.stop()
    return "4 of 50 connections to the shipper's events socket kept for one process"


CASES = [("keyholder", case_keyholder), ("forged_bye", case_forged_bye), ("tenant_ids", case_tenant_ids),
         ("channel", case_channel)]


def run():
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

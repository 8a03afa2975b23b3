#!/usr/bin/env python3
"""One process cannot take the keyholder's places (a compromised child reaches its socket: every
child runs as the same user). The keyholder serves at most 128 connections; one process held them
all (it opened 300: 128 served, the rest in the backlog), after which the listening socket stayed
readable and the keyholder spun at a full CPU, and an acceptor restarted meanwhile could not sign
and crash-looped. Now a process may hold 4 connections (SO_PEERCRED), the others are closed at once
and logged, the keyholder stays idle, and a restarted acceptor serves."""
import os
import socket
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


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    rundir = q.mkdtemp("keyholder-run")
    server = q.Server(recv, extra=["--runtime-dir", rundir], name="keyholder-peers").start()
    kh = server.pids("keyholder")[0]
    socks = open_many(os.path.join(rundir, "keyholder.sock"), HOGS)
    log("one process opened %d connections to the keyholder" % len(socks))
    deadline = time.monotonic() + q.tmo(10)
    while time.monotonic() < deadline and sum(closed(s) for s in socks) < len(socks) - 4:
        time.sleep(0.1)
    shut = sum(closed(s) for s in socks)
    check(len(socks) - shut == 4, "%d of %d connections kept for one process (4 allowed)" % (len(socks) - shut, len(socks)))
    check("refused a connection from pid %d" % os.getpid() in server.log(), "the refusals were not logged")
    cpu0, t0 = cpu_seconds(kh), time.monotonic()
    time.sleep(2)
    busy = (cpu_seconds(kh) - cpu0) / (time.monotonic() - t0)
    check(busy < 0.2, "the keyholder used %.0f%% of a CPU with its places taken" % (busy * 100))
    old = server.kill_child("acceptor")
    server.wait_respawn("acceptor", old, 1)
    q.send_acked(server, q.gen_events(500), "500 events through a restarted acceptor (a new handshake, signed)")
    for s in socks:
        s.close()
    server.stop()
    return "one process: 4 of %d connections kept, the keyholder at %.0f%% CPU, a restarted acceptor signs" % (
        len(socks), busy * 100)


if __name__ == "__main__":
    q.main(run)

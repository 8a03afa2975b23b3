#!/usr/bin/env python3
"""Logstash on another host that goes silent (--logstash-timeout): a host that crashes or is cut
off sends no reset, so without timeouts of its own the output would keep a busy connection for the
kernel's ~15 min of retransmissions, an idle one for ever, and each connect attempt for ~2 min of
SYN retries. Logstash runs in a network namespace behind a veth link; taking the link down drops
every packet silently. A Logstash that only stops reading (its pipeline pushing back) must keep its
connection: that is backpressure, not a dead peer.

Phases, with --logstash-timeout 2:
  1. the receiver stops reading for 3x the timeout with its window closed: no reconnect, every
     event delivered exactly once;
  2. the link goes down and the receiver forgets its connection (a crashed host), events keep
     coming: the output gives the connection up within the timeout and says so;
  3. while the link is down, connect attempts time out and are made again (not one SYN_SENT
     socket for minutes);
  4. the link comes back with a fresh receiver: everything acknowledged arrives;
  5. the link goes down while the connection is idle: keepalives find out.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

TIMEOUT = 2  # --logstash-timeout


def wait_log(server, patterns, since, timeout):
    """Seconds until one of `patterns` appears in the server log after offset `since`, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with open(server.logfile, "rb") as f:
            f.seek(since)
            text = f.read()
        if any(p.encode() in text for p in patterns):
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def log_size(server):
    return os.path.getsize(server.logfile)


def syn_sent_ports(ns):
    """Local ports of our sockets still connecting to the receiver's host."""
    out = subprocess.run(["ss", "-Htn", "state", "syn-sent", "dst", ns.peer_ip], capture_output=True,
                         text=True, timeout=10).stdout
    return {line.split()[-2].rsplit(":", 1)[-1] for line in out.splitlines() if line.strip()}


def phase_backpressure(server, recv):
    n = q.scale(4000)
    recv.pause()
    since = log_size(server)
    q.send_acked(server, q.gen_events(n), "receiver not reading")
    time.sleep(3 * TIMEOUT)
    got_before = recv.count()
    conns_stalled = recv.connections_total
    recv.resume()
    missing = recv.wait_numbers(range(n), q.tmo(60), quiet=1.0)
    check(not missing, "%d events missing after the receiver read again" % len(missing))
    check(got_before < n, "the receiver took all %d events while not reading: its window never closed, "
          "the phase tests nothing" % n)
    with open(server.logfile, "rb") as f:
        f.seek(since)
        tail = f.read().decode("utf-8", "replace")
    check("nothing acknowledged" not in tail and "connection lost" not in tail,
          "a Logstash that only stopped reading was treated as dead:\n%s" % tail[-1500:])
    check(conns_stalled == 1, "%d connections: the output reconnected to a live receiver that only "
          "stopped reading" % conns_stalled)
    wait_proven(recv, 1)
    dups = sum(c - 1 for c in recv.seen().values() if c > 1)
    check(dups == 0, "%d duplicates: the output re-sent to a live receiver" % dups)
    return n


def wait_proven(recv, conns):
    """Once the traffic pauses the output proves its last bytes read by a drain (our FIN, the
    receiver's close, a new connection: docs/SPOOL.md). Waits for that new connection, so the next
    phase starts from a connection with nothing to prove (what it tests: a busy or an idle one)."""
    t0 = time.monotonic()
    while recv.connections_total <= conns and time.monotonic() - t0 < q.tmo(15):
        time.sleep(0.05)
    check(recv.connections_total == conns + 1, "%d connections after a pause in the traffic: expected "
          "the drain's reconnection (%d)" % (recv.connections_total, conns + 1))


def phase_crash(server, ns, recv, start):
    ns.link(False)
    recv.abort()  # its reset is dropped with the link down: the connection is forgotten silently
    n = q.scale(2000)
    since = log_size(server)
    q.send_acked(server, q.gen_events(n, start=start), "Logstash's host gone")
    took = wait_log(server, ["nothing acknowledged for %d s" % TIMEOUT], since, TIMEOUT + q.tmo(6))
    check(took is not None, "the output never gave up the connection to the silent host; log tail:\n%s"
          % server.log_tail())
    log("busy connection to the silent host given up %.1f s after the send" % took)
    return n


def phase_connect_attempts(ns):
    ports, t0 = set(), time.monotonic()
    while time.monotonic() - t0 < 4 * TIMEOUT + 3 and len(ports) < 2:
        ports |= syn_sent_ports(ns)
        time.sleep(0.1)
    check(len(ports) >= 2, "connect attempts to the silent host: local ports %s in %.0f s; each should "
          "time out after %d s and be made again" % (sorted(ports), time.monotonic() - t0, TIMEOUT))
    log("connect attempts timed out and were made again (local ports %s)" % sorted(ports))


def phase_idle(server, ns):
    since = log_size(server)
    ns.link(False)
    # the keepalives' probes go unanswered: the output or the kernel (keepalive count) gives up
    took = wait_log(server, ["nothing acknowledged for %d s" % TIMEOUT, "connection lost: Connection timed out"],
                    since, 2 * TIMEOUT + q.tmo(6))
    check(took is not None, "an idle connection to a silent host was never noticed; log tail:\n%s"
          % server.log_tail())
    log("idle connection to the silent host found dead after %.1f s" % took)


def run():
    q.need_binaries()
    ns = q.NetNs()
    recv = q.Receiver(host=ns.peer_ip, netns=ns, rcvbuf=4096).start()
    server = q.Server(recv, extra=["--logstash-timeout", str(TIMEOUT)], name="lssilent")
    server.start()

    n1 = phase_backpressure(server, recv)
    log("phase 1: %d events through a receiver that stopped reading for %d s, one connection, "
        "no duplicates" % (n1, 3 * TIMEOUT))
    n2 = phase_crash(server, ns, recv, n1)
    phase_connect_attempts(ns)

    ns.link(True)
    recv2 = q.Receiver(host=ns.peer_ip, netns=ns).start()
    missing = recv2.wait_numbers(range(n1, n1 + n2), q.tmo(30), quiet=0.5)
    check(not missing, "%d of %d events sent while the host was gone never arrived after it came back; "
          "log tail:\n%s" % (len(missing), n2, server.log_tail()))
    log("phase 4: all %d events arrived after the host came back" % n2)
    wait_proven(recv2, 1)

    phase_idle(server, ns)
    ns.link(True)
    server.stop()
    return "slow receiver kept (one connection, no duplicates), silent host given up busy and idle, " \
           "connects retried, nothing lost"


if __name__ == "__main__":
    q.main(run)

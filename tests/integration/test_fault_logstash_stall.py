#!/usr/bin/env python3
"""Issue 26 point 1: a Logstash that stops reading (its pipeline blocked on a slow Elasticsearch)
and then dies must not lose acknowledged events. Its kernel acknowledged bytes its pipeline never
read; they vanish with its socket. The output must count as taken only what it has evidence
Logstash read, and send the rest again after the lost connection (duplicates, never gaps).

  1. a receiver (small SO_RCVBUF) reads normally while quicstash-send --max-rate 40000 --ack-log
     runs, then stops reading;
  2. once its socket holds unread data (SIOCINQ), the stall lasts 5 s (the old 1 s "settle" long
     past), and the receiver is killed: its socket closes with the data unread (a reset);
  3. a new receiver takes over on the same port: every acknowledged event (by its --ack-log line)
     must arrive at one of the two receivers;
  4. a clean stop with the receiver reading proves what it read (the peer's FIN after ours): the
     spool has nothing pending afterwards, so the next start sends nothing twice.
The same again over TLS (--logstash-tls; skipped without certtool).

Case tls-closed: a TLS Logstash whose window is closed from the start (the smallest SO_RCVBUF,
never reading) and that then dies. SIOCOUTQ counts every byte not acknowledged, also the part of
a 16 KiB record GnuTLS put on the wire before EAGAIN (credited to records only once the record is
whole) and the handshake's last flight: it exceeded the bytes counted as written, the
subtraction went below zero, and every written record counted as read (the cursor moved past
events Logstash never got: thousands lost). Now nothing counts as read then.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

STALL_S = 5.0


def wait_unread(recv, timeout):
    """Waits until the receiver's sockets hold unread bytes; returns their total (0: never)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = sum(recv.unread())
        if left > 0:
            return left
        time.sleep(0.05)
    return 0


def pending_after_stop(server):
    rc, out = server.check_spool()
    check(rc == 0, "--check-spool after a clean stop: exit %r\n%s" % (rc, out[-1500:]))
    m = re.search(r"^total.*?(\d+) pending$", out, re.M)
    check(m, "no total line in --check-spool's output:\n%s" % out[-1500:])
    return int(m.group(1))


def stall_then_kill(what, n, tls=None, extra=()):
    """One stall-then-die of Logstash under load; returns the summary of that case."""
    recv = q.Receiver(rcvbuf=262144, tls=tls).start()
    server = q.Server(recv, extra=extra, name="ls-stall").start()
    load = q.Load(server, n, client_timeout=int(q.tmo(120)), extra_args=["--max-rate", "40000"])
    load.start_client()
    q.mid_stream(load, 0.05)
    check(recv.count() > 0, "%s: the receiver read nothing before its stall" % what)
    recv.pause()
    left = wait_unread(recv, q.tmo(30))
    check(left > 0, "%s: the receiver stopped reading but its socket never held unread data; server log:\n%s"
          % (what, server.log_tail()))
    log("%s: receiver stopped reading: %d bytes unread in its socket; stalling %.0f s" % (what, left, STALL_S))
    time.sleep(STALL_S)
    acked_at_kill = len(load.acked_numbers())
    read_at_kill = recv.count()
    left = recv.kill()
    check(sum(left) > 0, "%s: the receiver's socket held no unread data when it was killed: the fault tests "
          "nothing" % what)
    log("%s: receiver killed with %d bytes unread (%d events acked, %d lines read)"
        % (what, sum(left), acked_at_kill, read_at_kill))
    recv2 = q.Receiver(port=recv.port, tls=tls).start()
    q.finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "%s: client exit 0 but --ack-log has %d of %d" % (what, len(acked), n))
    missing = q.arrived([recv, recv2], acked, q.tmo(60))
    check(not missing, "%s: %d acknowledged events never arrived (LOSS): first %s; server log:\n%s"
          % (what, len(missing), sorted(missing)[:20], server.log_tail()))
    for r in (recv, recv2):
        check(not r.bad_json, "%s: garbage at a receiver: %r" % (what, r.bad_json[:2]))
    seen = recv.seen() + recv2.seen()
    dups = sum(c - 1 for c in seen.values() if c > 1)
    log("%s: every one of %d acknowledged events arrived, %d duplicates" % (what, len(acked), dups))

    server.stop()
    pending = pending_after_stop(server)
    check(pending == 0, "%s: %d records pending after a clean stop with the receiver reading: the stop did "
          "not prove what Logstash read, the next start sends them again" % (what, pending))
    return "%s: zero loss of %d acked (%d bytes unread at the kill), %d duplicates" % (
        what, len(acked), sum(left), dups)


def tcp_case():
    return stall_then_kill("TCP", q.scale(400000))


def tls_case(pki=None):
    """Alone (--case tls), a missing certtool skips the test."""
    pki = pki or q.make_pki(q.mkdtemp("ls-stall-pki"))
    return stall_then_kill("TLS", q.scale(200000), tls=q.server_tls_context(pki),
                           extra=["--logstash-tls", "--logstash-ca", pki["ca.pem"]])


def tls_closed_case(pki=None):
    pki = pki or q.make_pki(q.mkdtemp("ls-closed-pki"))
    tls = q.server_tls_context(pki)
    recv = q.Receiver(rcvbuf=1, tls=tls).start()
    recv.pause()  # it completes the handshake and reads nothing
    server = q.Server(recv, extra=["--logstash-tls", "--logstash-ca", pki["ca.pem"]], name="ls-closed").start()
    n = 20000
    load = q.Load(server, n, client_timeout=int(q.tmo(120)))
    load.start_client()
    load.client.wait_acked(n, q.tmo(60))
    time.sleep(3)  # settle ticks (10 a second) with the window closed
    check(recv.count() == 0, "tls-closed: the paused receiver read %d lines" % recv.count())
    left = recv.kill()
    log("tls-closed: receiver killed with %d bytes unread, %d events acked" % (sum(left), len(load.acked_numbers())))
    recv2 = q.Receiver(port=recv.port, tls=tls).start()
    q.finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "tls-closed: --ack-log has %d of %d" % (len(acked), n))
    missing = q.arrived([recv2], acked, q.tmo(60))
    check(not missing, "tls-closed: %d acknowledged events never arrived (LOSS): first %s; server log:\n%s"
          % (len(missing), sorted(missing)[:20], server.log_tail()))
    server.stop()
    return "zero loss of %d acked over TLS with the window closed from the start" % len(acked)


def run():
    q.need_binaries()
    done = [tcp_case()]
    try:
        pki = q.make_pki(q.mkdtemp("ls-stall-pki"))
    except q.Skip as e:
        log("TLS case skipped: %s" % e)
        return done[0]
    done.append(tls_case(pki))
    done.append(tls_closed_case(pki))
    return "; ".join(done)


CASES = [("tcp", tcp_case), ("tls", tls_case), ("tls-closed", tls_closed_case)]

if __name__ == "__main__":
    q.main(run, cases=CASES)

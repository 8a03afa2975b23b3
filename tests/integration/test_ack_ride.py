#!/usr/bin/env python3
"""ACKs ride on data (issue 27): at everyday rates a QUIC ACK goes out with the next packet that
carries something anyway, not in a packet of its own. ngtcp2 acknowledges an eighth of the RTT after a
packet came (on loopback: at once), so before, each client packet of events drew an ACK-only packet
from the server and, a millisecond later, the packet with the answers; and each packet of answers
drew an ACK-only packet from the client, which woke the acceptor for nothing: two packets each way
per packet of events.

Cases:
  packets   quicstash-bench paces 1,000 events/s over 2 connections (a packet of one event every
            2 ms per connection, the answers about a millisecond later): the server counts at most
            1.5 packets received and 1.5 sent per event (about 1.0 expected each; 2.0 each with
            every ACK in a packet of its own). Received shows the client library's side (its ACK
            of the answers waits for its next events), sent the acceptor's (its ACK waits for the
            answers); QS_ACK_RIDE / ACC_ACK_RIDE set to 0 show the case failing."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

RATE = 1000


def case_packets():
    n = RATE * 2
    r, m, _ = q.counted_run("ackride", n, ["-r", str(RATE), "-c", "2", "-S", "1"])
    rx = m["quicstash_udp_received_packets_total"] / n
    tx = m["quicstash_udp_sent_packets_total"] / n
    log("%d events at %d/s over 2 connections: %.2f packets received and %.2f sent per event, ack p50 %.2f ms "
        "p99 %.2f ms" % (n, RATE, rx, tx, r["latency_us"]["p50"] / 1e3, r["latency_us"]["p99"] / 1e3))
    check(rx <= 1.5, "%.2f packets received per event: the client acknowledges the answers in packets of their "
          "own" % rx)
    check(tx <= 1.5, "%.2f packets sent per event: the acceptor acknowledges the events in packets of their "
          "own" % tx)
    return "%.2f packets in, %.2f out per event" % (rx, tx)


CASES = [("packets", case_packets)]


def run():
    return "; ".join("%s: %s" % (n, f()) for n, f in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

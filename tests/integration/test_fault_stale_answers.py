#!/usr/bin/env python3
"""Fault suite: answers meant for an acceptor that was killed never resolve the frames of the
acceptor that replaces it on the same channel.

A frame's ticket is its acceptor's handle: an index in its frame pool and that entry's reuse
count. A restarted acceptor starts a new pool, so the tickets it gives out were the old one's
too, and the answers still on their way for the old one's frames (from the parsers and the
shipper, which still hold them) reached the new one on the same channel and resolved its frames
as durable though no one had written them. Made to happen here: the shipper is stopped (SIGSTOP)
while client A sends, so A's events wait for it with first-use tickets; the parsers are stopped
and the acceptor killed; A resends and client B sends to the new acceptor, whose frames get the
same tickets and wait for the stopped parsers; the shipper continues (it commits the events it
had and answers their tickets): no frame of the new acceptor may be acknowledged now, none has
reached a parser. Then the parsers are killed (their queues are gone; the acceptor resends what
is not resolved) and every event in A's and B's --ack-log must arrive. Before the fix: 506
acknowledged while the parsers were stopped in one run, and 3-17 events lost in each of three."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, name="stale-answers").start()
    shipper, parsers = server.pids("shipper"), server.pids("parser")
    signal_all(shipper, signal.SIGSTOP)
    try:
        a = q.Load(server, 30000, name="a", client_timeout=int(q.tmo(180)))
        a.start_client()
        time.sleep(2)  # A's events wait for the shipper: every ticket of theirs is a first use
        check(a.client.acked_count() == 0, "A was acknowledged with the shipper stopped")
        signal_all(parsers, signal.SIGSTOP)
        old = server.kill_child("acceptor")
        server.wait_respawn("acceptor", old, 1)
        b = q.Load(server, 20000, start=100000, name="b", client_timeout=int(q.tmo(180)))
        b.start_client()
        time.sleep(3)  # A's resends and B's frames take the same tickets and wait for the parsers
    finally:
        signal_all(shipper, signal.SIGCONT)
    time.sleep(2)  # the shipper commits what it had and answers those tickets
    early = a.client.acked_count() + b.client.acked_count()
    log("%d events acknowledged while every frame of the new acceptor waited for stopped parsers" % early)
    signal_all(parsers, signal.SIGKILL)
    server.wait_respawn("parser", parsers[0], len(parsers))
    q.finish_client(a)
    q.finish_client(b)
    check(b.acked_numbers() == b.all_numbers(), "B: --ack-log has %d of %d" % (len(b.acked_numbers()), b.n))
    dups = q.verify_delivery(recv, a.acked_numbers() | b.acked_numbers(), q.tmo(60))
    check(early == 0, "%d events acknowledged that no parser had seen (answers for the killed acceptor's "
          "tickets)" % early)
    server.stop()
    return "acceptor killed with events in the stopped shipper: none acknowledged by its answers; %d + %d " \
        "acknowledged, all delivered (%d duplicates)" % (len(a.acked_numbers()), len(b.acked_numbers()), dups)


if __name__ == "__main__":
    q.main(run)

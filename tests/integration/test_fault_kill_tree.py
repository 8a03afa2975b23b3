#!/usr/bin/env python3
"""Fault suite (issue 3): kill -9 of the whole process tree mid-stream (a power cut as far as the
processes go), then quicstashd starts again on the same spool. The client may exit 2 when the server
disappears: it is rerun on the same input. Every event acknowledged by either run reaches the
receiver; the duplicate count is printed."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, name="killtree")
    server.start()
    n = q.scale(100000)
    load = q.Load(server, n, client_timeout=int(q.tmo(20)), feed_rate=n / 4)
    load.start_client()
    q.mid_stream(load, 0.15)
    # a backlog in the spool at the kill: the receiver goes down for a while before it
    recv.stop()
    load.client.wait_acked(int(n * 0.3), q.tmo(30))
    check(load.client.running(), "the client finished before the kill: not mid-stream")
    server.kill_tree()
    acked_at_kill = load.acked_numbers()
    log("kill -9 of the whole tree at %d acked, receiver has %d lines" % (len(acked_at_kill), recv.count()))
    check(not server.running(), "supervisor still running after SIGKILL")
    time.sleep(1.0)
    recv.start()
    server.start()
    log("restarted on the same spool")
    # events acknowledged before the kill must arrive without any client help
    dups = q.verify_delivery(recv, acked_at_kill, q.tmo(60), what="acknowledged before the kill")
    # the first client may have finished by reconnecting, or exited 2: then rerun it
    dups = q.finish_after_kills(load, recv, server, q.tmo(60))
    return "kill -9 of the tree at %d/%d acked: zero loss after restart, %d duplicates" % (len(acked_at_kill), n, dups)


if __name__ == "__main__":
    q.main(run)

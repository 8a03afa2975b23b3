#!/usr/bin/env python3
"""Logstash behind a name that moves (a load balancer's addresses change, DNS fails over): the
shipper is chrooted and cannot look names up, so before it connects to a named entry again it asks
the supervisor, which resolves it anew. quicstashd runs in a private mount namespace whose
/etc/hosts is a file of the test's ("logstash.test" -> 127.0.0.2, later 127.0.0.3).
  0. the name does not resolve when quicstashd starts (DNS not up yet at boot): it starts anyway,
     acknowledges events, and ships them once the name resolves;
  1. events reach the receiver at 127.0.0.2;
  2. the name moves to 127.0.0.3 and the old receiver goes away: the events reach the new one,
     and the log says where the name points now;
  3. the shipper can only ask for configured names: an unresolvable one is logged and the last
     address kept (the spool keeps the events until a receiver is reachable)."""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

NAME = "logstash.test"


def write_hosts(path, ip):
    """In place: the bind mount shows this inode, a rename would not be seen."""
    with open(path, "r+") as f:
        f.seek(0)
        f.truncate()
        f.write("127.0.0.1 localhost\n%s %s\n" % (ip, NAME))


def run():
    q.need_binaries()
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise q.Skip("needs root and util-linux's unshare for a private /etc/hosts")
    d = q.mkdtemp("dns")
    hosts = os.path.join(d, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n")  # the name does not resolve yet
    port = q.free_port("tcp", "127.0.0.2")
    old = q.Receiver(host="127.0.0.2", port=port).start()
    new = q.Receiver(host="127.0.0.3", port=port)  # not yet listening

    server = q.Server("%s:%d" % (NAME, port), name="dns")
    server.wrap = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                   'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
    server.start()
    check("starting anyway" in server.log(), "no word of the unresolvable name at start:\n%s" % server.log_tail())
    n = q.scale(2000)
    q.send_acked(server, q.gen_events(n), "name not resolving yet")
    time.sleep(1)
    check(old.count() == 0, "lines arrived before the name resolved")
    log("phase 0: started and acknowledged %d events while %s did not resolve" % (n, NAME))
    write_hosts(hosts, "127.0.0.2")
    check(not q.arrived([old], range(n), q.tmo(30)), "events missing at 127.0.0.2 once the name resolved; "
          "log:\n%s" % server.log_tail())
    log("phase 1: %d events at %s = 127.0.0.2 once it resolved" % (n, NAME))

    write_hosts(hosts, "127.0.0.3")
    new.start()
    old.stop()
    q.send_acked(server, q.gen_events(n, start=n), "name moved to 127.0.0.3")
    missing = q.arrived([new], range(n, 2 * n), q.tmo(30))
    check(not missing, "%d events never reached the name's new address; log:\n%s"
          % (len(missing), server.log_tail()))
    check("now resolves to 127.0.0.3 (was 127.0.0.2)" in server.log(),
          "the log does not say where %s points now:\n%s" % (NAME, server.log_tail()))
    log("phase 2: %s moved to 127.0.0.3: %d events arrived there" % (NAME, n))

    with open(hosts, "w") as f:  # O_TRUNC keeps the inode; no entry: the name does not resolve
        f.write("127.0.0.1 localhost\n")
    new.stop()
    q.send_acked(server, q.gen_events(n, start=2 * n), "name gone")
    failed = "resolving Logstash %s:%d again" % (NAME, port)
    deadline = time.monotonic() + q.tmo(10)
    while failed not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    check(failed in server.log(), "a failed lookup was not logged:\n%s" % server.log_tail())
    check(server.running(), "quicstashd died when the name stopped resolving")
    write_hosts(hosts, "127.0.0.3")
    back = q.Receiver(host="127.0.0.3", port=port).start()
    missing = q.arrived([back], range(2 * n, 3 * n), q.tmo(30))
    check(not missing, "%d events sent while the name did not resolve never arrived" % len(missing))
    log("phase 3: the name unresolvable for a while: logged, last address kept, nothing lost")
    server.stop()
    return "the output follows %s from 127.0.0.2 to 127.0.0.3, through the supervisor; nothing lost" % NAME


if __name__ == "__main__":
    q.main(run)

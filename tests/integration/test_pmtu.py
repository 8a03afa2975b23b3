#!/usr/bin/env python3
"""QUIC datagrams are never fragmented (RFC 9000, 14), on a path whose MTU is smaller than the
1500 bytes everyone assumes: a VPN or tunnel of 1400 bytes between the client and quicstashd.

ngtcp2 probes the path's MTU with packets of up to 1444 bytes. Without the DF bit the sending
kernel fragments a probe that is too large for its link, the pieces arrive, the probe "succeeds",
and every later full packet then travels as two IP fragments: on a lossy path (the clients this
server is for) a packet is then lost whenever either piece is. With DF set (IP_PMTUDISC_DO on the
client's and the acceptor's sockets), a probe too large is refused and discovery settles on a
size the link carries.

The client (quicstash-bench) runs in a network namespace behind a veth link of MTU 1400, the
server in this one, over IPv4 and then over IPv6. Each time:
  - every event is acknowledged, and the client's packets grew past QUIC's 1200-byte minimum
    (discovery still works) but stayed within what the link carries (1400 - IP - UDP headers);
  - no IP fragment was made on either side (the kernels' FragCreates counters);
and on loopback (MTU 65536) discovery reaches ngtcp2's largest probe.

Then the path shrinks under a running client (the link's MTU drops from 1500 to 1400, a route
moving into a tunnel): its packets of the size found before are refused (EMSGSIZE), the connection
is given up with that reason and made again from 1200 bytes, and every event is acknowledged.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

MTU = 1400
BENCH = os.path.join(q.QS_BIN, "quicstash-bench")


def bench(server, wrap=(), n=20000, rate=10000):
    """Runs quicstash-bench (under `wrap`) against server; returns its JSON report. The generated
    certificate names localhost and the loopback addresses, not the link's. At a steady rate, as
    clients send: a probe waits for room in the congestion window, and a saturated connection
    spends its first second or so finding its size."""
    argv = list(wrap) + [BENCH, "-s", server.addr, "--cert", server.cert, "--server-name", "localhost", "-n", str(n),
                         "--rate", str(rate), "--size", "600", "-c", "2", "-S", "2", "--json"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=q.tmo(120))
    check(p.returncode == 0, "quicstash-bench exit %d: %s%s\nserver log:\n%s"
          % (p.returncode, p.stdout[-800:], p.stderr[-800:], server.log_tail()))
    return json.loads(p.stdout.strip().splitlines()[-1])


def frags(ns):
    """IP fragments made so far: (in the namespace, here), IPv4 and IPv6 together."""
    def count(c):
        return c.get("IpFragCreates", 0) + c.get("Ip6FragCreates", 0)
    return count(ns.snmp(True)), count(ns.snmp(False))


def over(ns, family, host, recv):
    server = q.Server(logstash=recv, host=host).start()
    before = frags(ns)
    r = bench(server, wrap=["ip", "netns", "exec", ns.name])
    after = frags(ns)
    server.stop()
    headers = (20 if family == "IPv4" else 40) + 8
    log("%s over a %d-byte MTU: %d acked, packets up to %d bytes, fragments made %d (client) %d (server)"
        % (family, MTU, r["acked"], r["max_udp_payload"], after[0] - before[0], after[1] - before[1]))
    check(r["acked"] == r["sent"] and r["errors"] == 0, "%s: %r" % (family, r))
    check(1200 < r["max_udp_payload"] <= MTU - headers,
          "%s: the client's packets are %d bytes: PMTU discovery should settle between 1200 and %d"
          % (family, r["max_udp_payload"], MTU - headers))
    check(after[0] == before[0], "%s: the client's kernel made %d IP fragments (DF not set?)"
          % (family, after[0] - before[0]))
    check(after[1] == before[1], "%s: the server's kernel made %d IP fragments (DF not set?)"
          % (family, after[1] - before[1]))


def shrink(ns, recv):
    ns.mtu(1500)
    server = q.Server(logstash=recv, host=ns.host_ip).start()
    n = 20000  # 4 s at --max-rate 5000 on any build: still sending when the MTU drops after a third
    pad = "x" * 500
    path = os.path.join(server.dir, "big.txt")
    q.write_lines(path, [json.dumps({"n": i, "pad": pad}) for i in range(n)])
    ack_log = path + ".acks"
    argv = ["ip", "netns", "exec", ns.name, q.SEND, "-s", server.addr, "--cert", server.cert, "--server-name",
            "localhost", "--max-rate", "5000", "--timeout", "20", "--ack-log", ack_log, path]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # the MTU drops once the client has sent for a while (discovery settled), however long it took to start
    deadline = time.monotonic() + q.tmo(30)
    while p.poll() is None and time.monotonic() < deadline and len(q.read_ack_log(ack_log)) < n // 3:
        time.sleep(0.02)
    check(p.poll() is None and len(q.read_ack_log(ack_log)) >= n // 3, "the client should be mid-send when the "
          "MTU drops: exit %r, %d acknowledged" % (p.poll(), len(q.read_ack_log(ack_log))))
    ns.mtu(MTU)
    try:
        _, err = p.communicate(timeout=q.tmo(120))
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    server.stop()
    log("MTU 1500 -> %d under a running client: exit %r, %r, %s" % (MTU, p.returncode, q.summary(err),
        "reconnected" if "reconnecting" in err else "no reconnect"))
    check(p.returncode == 0 and q.summary(err) == (n, n, 0),
          "after the MTU dropped: exit %r, summary %r;\n%s" % (p.returncode, q.summary(err), err[-800:]))
    # "send: Message too long; again in N ms; reconnecting" (the client backs off with jitter)
    check(re.search(r"Message too long; (again in \d+ ms; )?reconnecting", err),
          "the connection should have been made again, saying why:\n%s" % err[-800:])


def run():
    q.need_binaries("quicstashd", "quicstash-bench")
    ns = q.NetNs()
    ns.mtu(MTU)
    recv = q.Receiver().start()
    over(ns, "IPv4", ns.host_ip, recv)
    over(ns, "IPv6", ns.host_ip6, recv)
    shrink(ns, recv)
    server = q.Server(logstash=recv).start()
    r = bench(server, n=5000)
    server.stop()
    log("loopback: packets up to %d bytes" % r["max_udp_payload"])
    check(r["max_udp_payload"] >= 1400, "loopback: packets of %d bytes only" % r["max_udp_payload"])
    return "DF set: no IP fragments over a 1400-byte MTU (IPv4 and IPv6), packets sized by PMTU " \
           "discovery; a path that shrinks mid-stream costs a reconnect, no events"


if __name__ == "__main__":
    q.main(run)

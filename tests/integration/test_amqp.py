#!/usr/bin/env python3
"""The RabbitMQ output (issue 24 item 2) against real RabbitMQ nodes (Debian's rabbitmq-server,
started here on loopback, never the system service), read back with python3-pika:

- single: one node, a durable queue; every event acknowledged to the client is in the queue,
  counted exactly, a duplicate only with the same event.id.
- refused: wrong credentials, an unknown vhost, a missing exchange: one clear log line each,
  retried with backoff, nothing lost once the fault is mended (the broker is mended, not
  quicstashd: the retries reach it).
- cluster: three nodes joined into one cluster, a quorum queue of three replicas; 100,000 events;
  kill -9 of the node quicstashd publishes to mid-run, later brought back; every acknowledged event
  in the queue.
- cluster-down: the whole cluster down: acknowledgements go on into the spool; back: the backlog
  drains into the queue.
- silent: a broker that accepts connections and answers nothing: acknowledgements go on at a
  steady pace (no pause of 2.5 s) while each handshake waits out its 5 s on its own thread.
- alarm: the node in a memory alarm (it blocks publishers and stops reading them): the shipper is
  told (connection.blocked, a capability it now announces) and stops publishing until
  connection.unblocked, idle meanwhile (before: nobody told it, its full send buffer woke the
  loop for nothing, a full CPU); events are acknowledged into the spool all along; the alarm
  cleared, every one of them reaches the queue."""
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log
from qslib import rabbit


def check_queue(bodies, acked_numbers, what):
    """Every acked number is in bodies; duplicates only with the same event.id. Returns
    (distinct, duplicates)."""
    ids = {}
    dups = 0
    for b in bodies:
        ev = json.loads(b)
        n, eid = ev["n"], q.field(ev, "event.id")
        check(eid, "a message without event.id: %r" % b[:200])
        if n in ids:
            dups += 1
            check(ids[n] == eid, "event %d twice with different event.id: %s, %s" % (n, ids[n], eid))
        ids[n] = eid
    missing = sorted(set(acked_numbers) - set(ids))
    check(not missing, "%s: %d acknowledged events are not in the queue (LOSS): first %s"
          % (what, len(missing), missing[:20]))
    log("%s: %d messages, %d distinct events, %d duplicates (same event.id), all %d acknowledged present"
        % (what, len(bodies), len(ids), dups, len(set(acked_numbers))))
    return len(ids), dups


def amqp_server(cluster, name, extra=(), vhost="%2F"):
    return q.Server(cluster.urls(vhost), name=name, extra=list(extra))


def send_all(server, n, start=0):
    lines = q.gen_events(n, start=start)
    rc, _out, err = q.send(server, lines, timeout=q.tmo(300), client_timeout=int(q.tmo(120)))
    check(rc == 0, "quicstash-send exit %r; stderr:\n%s\nserver log tail:\n%s" % (rc, err[-1500:], server.log_tail()))
    check(q.summary(err) == (n, n, 0), "summary %r, expected (%d, %d, 0)" % (q.summary(err), n, n))
    return range(start, start + n)


def wait_log(server, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.findall(pattern, server.log(since_start=True))
        if found:
            return found
        time.sleep(0.2)
    raise q.TestFailure("no log line matching %r in %.0f s; tail:\n%s" % (pattern, timeout, server.log_tail()))


def wait_caught_up(server, timeout):
    """The spool's backlog is shipped (the status line's backlog reaches 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = server.log(since_start=True)
        last = re.findall(r"backlog[ =](\d+)", st)
        if last and last[-1] == "0":
            return
        time.sleep(0.5)


def single():
    cluster = rabbit.Cluster(1, "amqp1").start()
    node = cluster.nodes[0]
    rabbit.declare_queue(node.port)
    server = amqp_server(cluster, "amqp-single").start()
    n = q.scale(20000)
    acked = send_all(server, n)
    bodies = rabbit.drain_queue([node.port], want=n, quiet=5.0)
    distinct, dups = check_queue(bodies, acked, "single node")
    check(distinct == n, "%d distinct events in the queue, %d sent" % (distinct, n))
    check(re.search(r"output amqp 127\.0\.0\.1:%d: connected" % node.port, server.log()), "no connected line")
    server.stop()
    cluster.stop_all()
    return "one node: %d events acknowledged, all in the queue (%d duplicates)" % (n, dups)


def refused_one(cluster, what, extra, vhost, pattern, mend):
    """quicstashd refused for `what`: acknowledgements go on into the spool, one clear log line
    however many retries, then the broker is mended (not quicstashd: its retries reach it) and every
    acknowledged event arrives."""
    node = cluster.nodes[0]
    server = amqp_server(cluster, "amqp-" + what.replace(" ", "-"), extra=extra, vhost=vhost).start()
    n = q.scale(2000)
    acked = send_all(server, n)
    time.sleep(4.0)  # several retries (backoff 0.1 s doubling)
    lines = [l for l in server.log(since_start=True).splitlines() if re.search(pattern, l)]
    check(len(lines) == 1, "%s: expected one log line matching %r, got %d:\n%s\nlog tail:\n%s"
          % (what, pattern, len(lines), "\n".join(lines[:5]), server.log_tail()))
    log("%s: %s" % (what, lines[0].strip()[-200:]))
    mend()
    bodies = rabbit.drain_queue([node.port], want=n, quiet=5.0, timeout=q.tmo(120),
                                vhost=vhost.replace("%2F", "/"))
    check_queue(bodies, acked, what)
    server.stop()


def refused():
    cluster = rabbit.Cluster(1, "amqpref").start()
    node = cluster.nodes[0]
    rabbit.declare_queue(node.port)
    cred = os.path.join(cluster.dir, "cred")
    with open(cred, "w") as f:
        f.write("qsuser:right\n")
    os.chmod(cred, 0o600)
    node.ctl("add_user", "qsuser", "wrong-one")
    node.ctl("set_permissions", "-p", "/", "qsuser", ".*", ".*", ".*")
    refused_one(cluster, "wrong credentials", ["--amqp-credentials", cred], "%2F",
                r"output amqp .*login: .*ACCESS_REFUSED", lambda: node.ctl("change_password", "qsuser", "right"))

    def add_vhost():
        node.ctl("add_vhost", "qsv")
        node.ctl("set_permissions", "-p", "qsv", "guest", ".*", ".*", ".*")
        rabbit.declare_queue(node.port, vhost="qsv")
    refused_one(cluster, "unknown vhost", [], "qsv", r"output amqp .*login: .*NOT_ALLOWED.*vhost", add_vhost)
    refused_one(cluster, "missing exchange", ["--amqp-exchange", "qsx"], "%2F",
                r"output amqp .*exchange 'qsx': .*NOT_FOUND",
                lambda: rabbit.declare_queue(node.port, exchange="qsx"))
    cluster.stop_all()
    return "wrong credentials, unknown vhost, missing exchange: one line each, all delivered once mended"


def options():
    """What the supervisor refuses at start (exit 2, one line): a credentials file others may read,
    or a symbolic link (the shipper would refuse it in a restart loop); amqp:// mixed with amqps://
    or with Logstash entries; entries naming different vhosts."""
    import subprocess
    q.need_binaries("quicstashd")
    d = q.mkdtemp("amqpopt")
    cred, link = os.path.join(d, "cred"), os.path.join(d, "link")
    with open(cred, "w") as f:
        f.write("u:p\n")
    os.chmod(cred, 0o644)
    os.symlink(cred, link)
    url = "amqp://127.0.0.1:5672/%2F"
    bad = [(["-l", url, "--amqp-credentials", cred], "group or others"),
           (["-l", url, "--amqp-credentials", link], "symbolic link"),
           (["-l", url + ",amqps://127.0.0.1:5671/%2F"], "do not mix"),
           (["-l", url + ",127.0.0.1:5000"], "do not mix"),
           (["-l", url + ",amqp://127.0.0.1:5673/other"], "same vhost")]
    for args, want in bad:
        if want == "symbolic link":
            os.chmod(cred, 0o600)
        r = subprocess.run([q.QUICSTASHD] + args + ["--spool-dir", os.path.join(d, "spool")],
                           capture_output=True, text=True, timeout=30, cwd=d)
        check(r.returncode == 2 and want in r.stderr, "%s: exit %r, stderr %r" % (args, r.returncode, r.stderr))
    return "%d bad AMQP configurations refused at start" % len(bad)


def tls():
    """amqps:// with --logstash-ca: every event in the queue over a verified TLS connection; with a
    CA that did not sign the broker's certificate: one clear line, nothing published, and after a
    restart with the right CA everything arrives."""
    pki = q.make_pki(q.mkdtemp("amqptls"))
    cluster = rabbit.Cluster(1, "amqptls", pki=pki).start()
    node = cluster.nodes[0]
    rabbit.declare_queue(node.port)
    url = "amqps://127.0.0.1:%d/%%2F" % node.tls_port
    server = q.Server(url, name="amqp-tls-wrong", extra=["--logstash-ca", pki["other-ca.pem"]]).start()
    n = q.scale(5000)
    acked = send_all(server, n)
    time.sleep(3.0)
    lines = [l for l in server.log(since_start=True).splitlines() if "output amqp" in l and "TLS connect" in l]
    check(len(lines) == 1, "wrong CA: expected one TLS line, got %d; log:\n%s" % (len(lines), server.log_tail()))
    log("wrong CA: %s" % lines[0].strip()[-200:])
    server.stop()
    server.extra = ["--logstash-ca", pki["ca.pem"]]  # same spool: what was acknowledged goes now
    server.start()
    bodies = rabbit.drain_queue([node.port], want=n, quiet=5.0, timeout=q.tmo(120))
    check_queue(bodies, acked, "amqps")
    check("(TLS, certificate verified)" in server.log(since_start=True), "no verified TLS connection logged")
    server.stop()
    cluster.stop_all()
    return "amqps: wrong CA refused in one line; right CA: %d events in the queue" % n


_CLUSTER = []  # the three-node cluster, shared by the cases of one run


def three_nodes():
    if not _CLUSTER:
        t0 = time.monotonic()
        cluster = rabbit.Cluster(3, "amqp3").start()
        log("three-node cluster up and joined in %.1f s" % (time.monotonic() - t0))
        rabbit.declare_queue(cluster.nodes[0].port, quorum=True, replicas=3)
        members = cluster.nodes[0].ctl("list_queues", "name", "type", "members", "--formatter", "json").stdout
        log("queue: %s" % members.strip()[-400:])
        check(all(nd.name in members for nd in cluster.nodes), "the quorum queue is not on all three nodes")
        server = amqp_server(cluster, "amqp-cluster").start()
        _CLUSTER.extend([cluster, server])
    return _CLUSTER


def connected_port(server, timeout):
    """The port of the node the output is connected to now (its last "connected" line)."""
    return int(wait_log(server, r"output amqp 127\.0\.0\.1:(\d+): connected", timeout)[-1])


def feed_events(client, start, n, timeout):
    data = ("\n".join(q.gen_events(n, start=start)) + "\n").encode()
    done = client.feed(data, timeout)
    check(done == len(data), "the client took %d of %d bytes" % (done, len(data)))


def all_in_queue(cluster, acked, what, timeout):
    """Reads the queue (from any live node) until every acknowledged event is in it (bounded)."""
    ports = [nd.port for nd in cluster.nodes]
    bodies, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        bodies += rabbit.drain_queue(ports, quiet=5.0, timeout=max(10, deadline - time.monotonic()))
        seen = {json.loads(b)["n"] for b in bodies}
        if set(acked) <= seen:
            break
    return check_queue(bodies, acked, what)


def cluster():
    cluster, server = three_nodes()
    n = q.scale(100000)
    d = q.mkdtemp("amqpc")
    client = q.AsyncSend(server, None, os.path.join(d, "acks"), client_timeout=int(q.tmo(300)))
    first = connected_port(server, q.tmo(30))
    victim = next(nd for nd in cluster.nodes if nd.port == first)
    feed_events(client, 0, n // 2, q.tmo(120))
    got = client.wait_acked(n // 4, q.tmo(120))
    check(got >= n // 4, "only %d acknowledged before the kill" % got)
    log("kill -9 node %s (port %d), the one quicstashd publishes to, at %d acknowledged" % (victim.name, first, got))
    victim.kill()
    feed_events(client, n // 2, n - n // 2, q.tmo(300))
    got = client.wait_acked(n * 3 // 4, q.tmo(300))
    now = connected_port(server, q.tmo(60))
    check(now != first, "the output did not move to another node")
    log("publishing to port %d now; node %s comes back at %d acknowledged" % (now, victim.name, got))
    victim.start()
    victim.wait_up(q.tmo(180))
    client.end_input()
    rc = client.wait(q.tmo(300))
    check(rc == 0, "quicstash-send exit %r: %s" % (rc, client.stderr()[-800:]))
    acked = [x - 1 for x in client.acked()]
    check(len(set(acked)) == n, "%d of %d acknowledged" % (len(set(acked)), n))
    distinct, dups = all_in_queue(cluster, acked, "three nodes, one killed", q.tmo(300))
    check(distinct == n, "%d distinct events in the queue, %d sent" % (distinct, n))
    return "three nodes, quorum queue: %d events, the node in use killed -9 and back, all in the queue " \
           "(%d duplicates, same event.id)" % (n, dups)


def cluster_down():
    cluster, server = three_nodes()
    n = q.scale(20000)
    for nd in cluster.nodes:
        nd.kill()
    log("the whole cluster is down (kill -9 of all three nodes)")
    acked = send_all(server, n, start=1000000)  # acknowledged into the spool, the queue away
    time.sleep(2.0)
    check(server.running(), "quicstashd died with the cluster down")
    for nd in cluster.nodes:
        nd.start()
    for nd in cluster.nodes:
        nd.wait_up(q.tmo(240))
    log("the cluster is back")
    distinct, dups = all_in_queue(cluster, acked, "whole cluster down and back", q.tmo(300))
    server.stop()
    cluster.stop_all()
    _CLUSTER.clear()
    return "whole cluster down: %d events acknowledged into the spool, all in the queue once it was back " \
           "(%d duplicates)" % (n, dups)


class SilentBroker:
    """A TCP listener that accepts connections and never answers (an overloaded or half-dead broker,
    or a middlebox): each AMQP handshake with it waits out its 5 s bound. Keeps the times it accepted."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted, self.conns = [], []
        self.done = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()
        q.at_cleanup(self.close)

    def _loop(self):
        while not self.done.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            self.accepted.append(time.monotonic())

    def close(self):
        self.done.set()
        self.t.join(2)
        for c in self.conns + [self.sock]:
            c.close()


def silent():
    """A broker that accepts and answers nothing: the handshake waits on its own thread, so events
    are acknowledged (into the spool) all along, at a steady pace, while each attempt waits out its
    5 s. Before, the shipper's loop waited with it: no acknowledgement for 5 s per attempt."""
    broker = SilentBroker()
    server = q.Server("amqp://127.0.0.1:%d/%%2F" % broker.port, name="amqp-silent").start()
    deadline = time.monotonic() + q.tmo(15)
    while not broker.accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    check(broker.accepted, "the shipper never connected to the silent broker")
    rate = 400
    load = q.Load(server, rate * 14, name="silent", feed_rate=rate)
    load.start_client()
    check(load.client.wait_acked(rate // 2, q.tmo(30)) >= rate // 2, "no acknowledgement at all: %s"
          % server.log_tail())
    t0 = time.monotonic()
    last, last_t, longest = load.client.acked_count(), t0, 0.0
    while time.monotonic() - t0 < 12.0:
        time.sleep(0.05)
        now, n = time.monotonic(), load.client.acked_count()
        if n != last:
            last, last_t = n, now
        longest = max(longest, now - last_t)
    t1 = time.monotonic()
    waits = [t for t in broker.accepted if t0 <= t <= t1 - 5.5]
    check(waits, "no handshake attempt waited its 5 s inside the 12 s measured (attempts at %s)"
          % ["%.1f" % (t - t0) for t in broker.accepted])
    check(re.search(r"output amqp 127\.0\.0\.1:%d: login: " % broker.port, server.log()),
          "no failed login logged:\n%s" % server.log_tail())
    check(longest < 2.5, "acknowledgements stopped for %.1f s while the handshake waited for a silent broker"
          % longest)
    q.finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "acknowledged %d of %d" % (len(acked), load.n))
    server.stop()
    return "silent broker: %d attempts, %d events acknowledged meanwhile, longest pause %.2f s" % (
        len(broker.accepted), len(acked), longest)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def alarm():
    cluster = rabbit.Cluster(1, "amqpalarm").start()
    node = cluster.nodes[0]
    rabbit.declare_queue(node.port)
    server = amqp_server(cluster, "amqp-alarm").start()
    acked = list(send_all(server, 1000))
    node.ctl("set_vm_memory_high_watermark", "absolute", "1")
    n = q.scale(20000)
    acked += list(send_all(server, n, start=1000))  # into the spool: acknowledged all the same
    shipper = server.pids("shipper")[0]
    time.sleep(1)
    cpu0, t0 = cpu_seconds(shipper), time.monotonic()
    time.sleep(4)
    busy = (cpu_seconds(shipper) - cpu0) / (time.monotonic() - t0)
    told = "blocks publishers" in server.log()
    log("alarm: the shipper at %.0f%% of a CPU, told: %s" % (busy * 100, told))
    node.ctl("set_vm_memory_high_watermark", "0.4")
    bodies = rabbit.drain_queue([node.port], want=len(acked), quiet=5.0)
    distinct, dups = check_queue(bodies, acked, "alarm")
    check(told, "the broker's alarm was never told to the shipper (connection.blocked):\n%s" % server.log_tail())
    check(busy < 0.25, "the shipper used %.0f%% of a CPU while the broker blocked it" % (busy * 100))
    server.stop()
    cluster.stop_all()
    return "memory alarm: publishing paused (shipper at %.0f%% CPU), %d acknowledged meanwhile, all in the queue " \
        "after it (%d duplicates)" % (busy * 100, n, dups)


if __name__ == "__main__":
    CASES = [("options", options), ("single", single), ("refused", refused), ("tls", tls), ("cluster", cluster), ("cluster-down", cluster_down),
             ("silent", silent), ("alarm", alarm)]
    q.main(lambda: "; ".join(fn() for _name, fn in CASES), cases=CASES)

#!/usr/bin/env python3
"""TLS 1.3 session resumption (issue 27, reconnect storms; docs/ARCHITECTURE.md "Session resumption").
A client keeps the server's last session ticket in memory and resumes with it on its next connection:
no certificate, no keyholder signature. Each case reconnects one quicstash-send (fed through a pipe,
so it stays the same process and client object) and reads the server's counters
(quicstash_handshakes_completed_total, quicstash_handshakes_resumed_total, and
quicstash_keyholder_signatures_total: a resumed handshake asks the keyholder nothing).

acceptor: the acceptor is killed; the client's reconnection to the new acceptor resumes.
restart: the whole server is stopped and started again with the same secret file: it resumes.
other_secret: started again with another secret: the ticket is refused, the full handshake happens and
  works.
client_cert: a client authenticated by its certificate (--auth any) gets no ticket: its reconnection is
  a full handshake, and it is that tenant's again.
token: under --auth token a client with its token resumes and is served; a client without a token
  that got a ticket from a server with --auth none, which is then restarted with --auth token and
  the same secret, resumes and is still refused unauthenticated.
refresh: a connection gets a new ticket after the refresh interval (a test hook shortens it), on its
  next packet (quicstash_session_tickets_sent_total), and its reconnection resumes."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check

FOO = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"  # sha256("foo")


def events(start, n):
    return ("\n".join(json.dumps({"n": start + i, "msg": "resume"}) for i in range(n)) + "\n").encode()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def counts(port):
    """(handshakes completed, resumed, signatures asked of the keyholder)"""
    m = q.scrape(port)
    return tuple(int(m.get("quicstash_%s_total" % k, 0))
                 for k in ("handshakes_completed", "handshakes_resumed", "keyholder_signatures"))


def server_with_metrics(recv, d, extra=(), name="resume", env=None):
    port, margs = q.metrics_server_args()
    server = q.Server(recv, extra=margs + list(extra), workdir=d, name=name)
    server.env.update(env or {})
    server.metrics_port = port
    server.opts = list(extra)
    return server.start()


def restart(server, extra=None):
    """Stops the server and starts it again in the same directory (same certificate, same secret file
    unless extra says otherwise), with a fresh metrics port: its counters start at 0."""
    server.stop()
    port, margs = q.metrics_server_args()
    server.extra = margs + (server.opts if extra is None else list(extra))
    server.metrics_port = port
    return server.start()


def client(server, d, name, extra=()):
    c = q.AsyncSend(server, None, os.path.join(d, name + ".acklog"), extra_args=list(extra),
                    client_timeout=int(q.tmo(60)))
    return c


def feed_acked(c, start, n, total, what):
    c.feed(events(start, n), q.tmo(10))
    got = c.wait_acked(total, q.tmo(60))
    check(got == total, "%s: %d of %d acknowledged\n%s" % (what, got, total, c.stderr()[-600:]))


def wait_counts(server, want, what):
    """The counters become want = (completed, resumed, keyholder signatures)."""
    deadline = time.monotonic() + q.tmo(10)
    got = counts(server.metrics_port)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.1)
        got = counts(server.metrics_port)
    check(got == want, "%s: handshakes (completed, resumed, signed) = %r, expected %r\n%s"
          % (what, got, want, server.log_tail()))


def finish(c, recv, numbers, what):
    c.end_input()
    rc = c.wait(q.tmo(30))
    check(rc == 0, "%s: client exit %r\n%s" % (what, rc, c.stderr()[-600:]))
    missing = recv.wait_numbers(numbers, q.tmo(30), quiet=0)
    check(not missing, "%s: acknowledged but never stored: %s" % (what, sorted(missing)[:10]))


def kill_acceptor(server):
    before = server.pids("acceptor")
    server.wait_respawn("acceptor", server.kill_child("acceptor"), len(before))


def tickets_sent(server):
    return int(q.scrape(server.metrics_port).get("quicstash_session_tickets_sent_total", 0))


def reconnected(name, blip, want, extra=(), client_args=()):
    """One client sends 20 events, blip(server) makes it reconnect, it sends 20 more: all are
    acknowledged and stored, and the server's counters after the blip are want. Returns (receiver,
    server, directory)."""
    q.need_binaries()
    recv = q.Receiver().start()
    d = q.mkdtemp("resume-" + name)
    server = server_with_metrics(recv, d, extra(d) if callable(extra) else extra)
    c = client(server, d, name, client_args(d) if callable(client_args) else client_args)
    feed_acked(c, 0, 20, 20, name + ": first connection")
    blip(server, d)
    feed_acked(c, 20, 20, 40, name + ": reconnected")
    wait_counts(server, want, name + ": reconnected")
    finish(c, recv, range(40), name)
    return recv, server, d


def case_acceptor():
    _, server, _ = reconnected("acceptor", lambda s, d: kill_acceptor(s), (2, 1, 1))
    check(server.wait_log("handshakes resumed 1", 0, q.tmo(5)), "no 'handshakes resumed 1' in the acceptor's "
          "stats line:\n%s" % server.log_tail())
    server.stop()
    return "reconnection to a restarted acceptor resumed (2 handshakes, 1 resumed)"


def case_restart():
    reconnected("restart", lambda s, d: restart(s), (1, 1, 0))[1].stop()
    return "reconnection to a server restarted with the same secret resumed"


def case_other_secret():
    blip = lambda s, d: restart(s, extra=["--secret-path", os.path.join(d, "other.secret")])  # noqa: E731
    reconnected("other_secret", blip, (1, 0, 1))[1].stop()
    return "with another secret the ticket was refused and the full handshake worked"


def case_client_cert():
    pki = {}

    def extra(d):
        pki.update(q.make_client_pki(os.path.join(d, "pki")))
        tenants = write(os.path.join(d, "tenants.conf"), "[tenant globex]\ncert-subject = CN=globex-edge\n")
        return ["--tenants", tenants, "--auth", "any", "--client-ca", pki["client-ca.pem"]]

    recv, server, _ = reconnected("client_cert", lambda s, d: kill_acceptor(s), (2, 0, 2), extra=extra,
                                  client_args=lambda d: ["--client-cert", pki["globex.pem"],
                                                         "--client-key", pki["globex.key"]])
    tagged = [ev for ev in recv.snapshot() if 20 <= ev.get("n", -1) < 40]
    check(tagged and all((ev.get("organization") or {}).get("id") == "globex" for ev in tagged),
          "the reconnected client's events are not globex's: %r" % tagged[:1])
    server.stop()
    return "a client authenticated by certificate got no ticket: its reconnection was a full handshake"


def case_token():
    tokfiles = {}

    def extra(d):
        tokfiles["tenants"] = write(os.path.join(d, "tenants.conf"), "[tenant acme]\ntoken-sha256 = %s\n" % FOO)
        tokfiles["foo"] = write(os.path.join(d, "foo.token"), "foo\n")
        return ["--tenants", tokfiles["tenants"], "--auth", "token"]

    recv, server, d = reconnected("token", lambda s, d: kill_acceptor(s), (2, 1, 1), extra=extra,
                                  client_args=lambda d: ["--token-file", tokfiles["foo"]])
    tenants = tokfiles["tenants"]
    # a client without a token gets a ticket from a server with --auth none ...
    restart(server, extra=[])
    n = client(server, d, "none")
    feed_acked(n, 100, 20, 20, "tokenless client under --auth none")
    # ... and resumes with it at the same server restarted with --auth token: still refused
    restart(server, extra=["--tenants", tenants, "--auth", "token"])
    n.feed(events(120, 20), q.tmo(10))
    n.end_input()
    rc = n.wait(q.tmo(60))
    check(rc == 2 and "server refused authentication: unauthenticated" in n.stderr(),
          "tokenless client resumed under --auth token: exit %r\n%s" % (rc, n.stderr()[-600:]))
    wait_counts(server, (1, 1, 0), "tokenless client resumed")
    time.sleep(0.5)
    got = [x for x in range(120, 140) if recv.seen()[x]]
    check(not got, "events of the resumed tokenless client were delivered: %s" % got[:10])
    server.stop()
    return "under --auth token a resumed connection is served with its token and refused without"


def case_refresh():
    """A long connection gets a new ticket now and then (hourly; a test hook makes it 300 ms): one
    after its handshake, another on a packet after the interval; the reconnection resumes."""
    q.need_binaries()
    q.need_test_hooks("QS_TEST_TICKET_REFRESH_MS")
    recv = q.Receiver().start()
    d = q.mkdtemp("resume-refresh")
    server = server_with_metrics(recv, d, env={"QS_TEST_TICKET_REFRESH_MS": "300"})
    c = client(server, d, "refresh")
    feed_acked(c, 0, 20, 20, "refresh: first events")
    check(tickets_sent(server) == 1, "tickets sent after the handshake: %d, expected 1" % tickets_sent(server))
    time.sleep(0.6)
    feed_acked(c, 20, 20, 40, "refresh: after the interval")
    deadline = time.monotonic() + q.tmo(10)
    while tickets_sent(server) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    check(tickets_sent(server) >= 2, "no new ticket after the refresh interval: %d sent" % tickets_sent(server))
    kill_acceptor(server)
    feed_acked(c, 40, 20, 60, "refresh: reconnected")
    wait_counts(server, (2, 1, 1), "refresh: reconnected")
    finish(c, recv, range(60), "refresh")
    sent = tickets_sent(server)
    server.stop()
    return "a long connection got a new ticket after the refresh interval (%d sent), and resumed" % sent


CASES = [("acceptor", case_acceptor), ("restart", case_restart), ("other_secret", case_other_secret),
         ("client_cert", case_client_cert), ("token", case_token), ("refresh", case_refresh)]


def run():
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

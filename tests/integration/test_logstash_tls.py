#!/usr/bin/env python3
"""json_lines over TLS to Logstash (--logstash-tls, as Logstash's tcp input with ssl_enable):
  a. trusting the CA that signed Logstash's certificate (--logstash-ca): every event arrives, once;
  b. Logstash restarts: everything sent meanwhile arrives at the new one, nothing is lost;
  c. the wrong CA: nothing is delivered, the log says why (TLS), the events wait in the spool; a
     restart with the right CA delivers them all;
  d. a certificate for another name (127.0.0.1 is not in it): nothing is delivered; once Logstash
     presents the right certificate everything arrives;
  e. Logstash requires a client certificate: without --logstash-cert/--logstash-key nothing
     arrives, with them everything does;
  f. bad TLS options are refused at start with the option named.
The certificates are made with certtool (qslib.make_pki); the receiver is Python's ssl."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def tls_server(pki, extra=(), name="tls", logstash=None):
    """quicstashd speaking TLS to `logstash` (a Receiver), trusting ca.pem unless extra says otherwise."""
    opts = ["--logstash-tls"] + (list(extra) if extra else ["--logstash-ca", pki["ca.pem"]])
    return q.Server(logstash, extra=opts, name=name).start()


# The shipper's line for a failed handshake or verification, e.g.
# "output logstash 127.0.0.1:PORT: TLS handshake failed: ...": "TLS", the address and a failure word.
TLS_FAILURE_RE = re.compile(r"fail|error|alert", re.I)


def tls_failure_lines(server, recv):
    return [l for l in server.log(since_start=True).splitlines()
            if "TLS" in l and recv.addr in l and TLS_FAILURE_RE.search(l)]


def nothing_delivered(server, recv, what):
    """Waits ~3 s (and until the shipper tried at least once, bounded): the receiver got no line,
    the log says why (TLS) and the server keeps running."""
    deadline, limit = time.monotonic() + q.tmo(3), time.monotonic() + q.tmo(15)
    while time.monotonic() < deadline or (recv.connections_total == 0 and time.monotonic() < limit):
        time.sleep(0.1)
    check(recv.connections_total > 0, "%s: the shipper never connected to the receiver; log:\n%s"
          % (what, server.log_tail()))
    check(recv.count() == 0, "%s: %d lines delivered to a peer that must not be trusted" % (what, recv.count()))
    check(server.running(), "%s: quicstashd died; log:\n%s" % (what, server.log_tail()))
    why = tls_failure_lines(server, recv)
    check(why, "%s: no log line with \"TLS\", %s and the failure; log:\n%s" % (what, recv.addr, server.log_tail()))
    log("%s: %d connections, 0 lines, receiver's last error %r; log: %s"
        % (what, recv.connections_total, recv.tls_last_error, why[-1].strip()))


def all_arrive(server, recvs, numbers, what):
    missing = q.arrived(recvs, numbers, q.tmo(30))
    check(not missing, "%s: %d of %d events never arrived: first %s; log:\n%s"
          % (what, len(missing), len(set(numbers)), sorted(missing)[:20], server.log_tail()))
    for r in recvs:
        check(not r.bad_json, "%s: invalid lines at the receiver: %r" % (what, r.bad_json[:2]))


# ---------------------------------------------------------------- the scenarios

def right_ca_and_restart(pki, n):
    """a and b."""
    ctx = q.server_tls_context(pki)
    recv = q.Receiver(tls=ctx).start()
    server = tls_server(pki, name="tls-ok", logstash=recv)
    q.send_acked(server, q.gen_events(n), "a. TLS")
    missing = recv.wait_numbers(range(n), q.tmo(30), quiet=1.0)
    check(not missing, "a. %d of %d events never arrived over TLS: first %s; log:\n%s"
          % (len(missing), n, sorted(missing)[:20], server.log_tail()))
    dups = sum(c - 1 for c in recv.seen().values() if c > 1)
    check(recv.count() == n and not dups, "a. %d lines (%d duplicates) for %d events" % (recv.count(), dups, n))
    check(not recv.bad_json and not recv.tls_failures,
          "a. %d invalid lines, %d failed handshakes (last: %s)" % (len(recv.bad_json), recv.tls_failures,
                                                                   recv.tls_last_error))
    log("a. %d events over TLS, exactly once, %d connection(s)" % (n, recv.connections_total))

    recv.stop()  # Logstash restarts
    q.send_acked(server, q.gen_events(n, start=n), "b. Logstash down")
    recv2 = q.Receiver(port=recv.port, tls=ctx).start()
    all_arrive(server, [recv2], range(n, 2 * n), "b. after Logstash came back")
    all_arrive(server, [recv, recv2], range(2 * n), "b. over the restart")
    check(not recv2.tls_failures, "b. %d failed handshakes: %s" % (recv2.tls_failures, recv2.tls_last_error))
    log("b. Logstash restarted: all %d events arrived, none lost" % (2 * n))
    server.stop()


def wrong_ca(pki, n):
    """c."""
    recv = q.Receiver(tls=q.server_tls_context(pki)).start()
    server = tls_server(pki, ["--logstash-ca", pki["other-ca.pem"]], name="tls-wrong-ca", logstash=recv)
    q.send_acked(server, q.gen_events(n), "c. wrong CA")
    nothing_delivered(server, recv, "c. wrong CA")
    server.stop()
    server.extra = ["--logstash-tls", "--logstash-ca", pki["ca.pem"]]  # start() re-reads extra
    server.start()
    all_arrive(server, [recv], range(n), "c. restarted with the right CA")
    log("c. restarted with the right CA: the %d events kept in the spool arrived" % n)
    server.stop()


def wrong_name(pki, n):
    """d."""
    recv = q.Receiver(tls=q.server_tls_context(pki, cert="wrong-name")).start()
    server = tls_server(pki, name="tls-wrong-name", logstash=recv)
    q.send_acked(server, q.gen_events(n), "d. wrong name")
    nothing_delivered(server, recv, "d. certificate for elsewhere.example, address 127.0.0.1")
    recv.stop()
    right = q.Receiver(port=recv.port, tls=q.server_tls_context(pki)).start()
    all_arrive(server, [right], range(n), "d. Logstash with the right certificate")
    log("d. Logstash with the right certificate: all %d events arrived" % n)
    server.stop()


def client_cert(pki, n):
    """e."""
    recv = q.Receiver(tls=q.server_tls_context(pki, require_client=True)).start()
    server = tls_server(pki, name="tls-client-cert", logstash=recv)
    q.send_acked(server, q.gen_events(n), "e. no client certificate")
    deadline = time.monotonic() + q.tmo(3)
    while time.monotonic() < deadline or (not recv.tls_failures and time.monotonic() < deadline + q.tmo(10)):
        time.sleep(0.1)
    check(recv.count() == 0 and recv.tls_failures > 0,
          "e. without a client certificate: %d lines, %d failed handshakes; log:\n%s"
          % (recv.count(), recv.tls_failures, server.log_tail()))
    log("e. without a client certificate: 0 lines, %d failed handshakes (%s)" % (recv.tls_failures, recv.tls_last_error))
    # TLS 1.3 finishes the client's side of the handshake before Logstash refuses it: the output
    # must still back off, not reconnect in a tight loop (~30 connections in 3 s before).
    check(recv.connections_total <= 10, "e. %d connections in ~%.0f s without a client certificate: "
          "no backoff" % (recv.connections_total, q.tmo(3)))
    server.stop()
    server.extra += ["--logstash-cert", pki["client.pem"], "--logstash-key", pki["client.key"]]
    server.start()
    all_arrive(server, [recv], range(n), "e. with a client certificate")
    log("e. with --logstash-cert/--logstash-key: all %d events arrived" % n)
    server.stop()


# ---------------------------------------------------------------- f. bad options

# What a bad option must lead to. Change an entry of CASES below to change a verdict.
EXIT_2 = "exit 2 naming it"
# A CA file may be read by the shipper only when it connects: then the server starts, and its log
# must name the file instead.
EXIT_OR_LOGGED = "exit != 0, or a log line naming it"


def bad_cases(pki, addr, d):
    """(arguments, names the output must show one of, expectation)."""
    return [
        (["-l", addr, "--logstash-tls", "--logstash-ca", "/nonexistent/ca.pem"],
         ("/nonexistent/ca.pem",), EXIT_OR_LOGGED),
        (["-l", addr, "--logstash-tls", "--logstash-ca", pki["ca.pem"], "--logstash-cert", pki["client.pem"]],
         ("--logstash-key", "--logstash-cert"), EXIT_2),
        (["-l", "file:" + os.path.join(d, "events.jsonl"), "--logstash-tls"],
         ("--logstash-tls",), EXIT_2),
    ]


def run_until(argv, cwd, until, timeout):
    """Runs quicstashd until it exits, `until(output)` holds or the timeout passes; then stops it
    (SIGTERM, SIGKILL to its process group if needed). Returns (exit code or None, output)."""
    out_path = os.path.join(cwd, "bad-%d.log" % int(time.monotonic() * 1000))
    with open(out_path, "wb") as f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, cwd=cwd,
                             start_new_session=True)
    killed = []

    def kill():
        if p.poll() is None:
            killed.append(True)
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=q.tmo(10))
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # children that outlived it
        except OSError:
            pass
        p.wait(timeout=10)

    q.at_cleanup(kill)
    deadline = time.monotonic() + timeout
    while True:
        rc = p.poll()
        with open(out_path, "rb") as f:
            out = f.read().decode("utf-8", "replace")
        if rc is not None or until(out) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    kill()
    return (None if killed else rc), out


def bad_options(pki, addr):
    d = q.mkdtemp("tls-bad")
    for args, names, expect in bad_cases(pki, addr, d):
        argv = [q.QUICSTASHD, "-s", "127.0.0.1:%d" % q.free_port("udp"), "--spool-dir",
                os.path.join(d, "spool")] + args
        named = lambda out: any(nm in out for nm in names)
        rc, out = run_until(argv, d, named if expect == EXIT_OR_LOGGED else lambda out: False, q.tmo(10))
        if expect == EXIT_2:
            ok = rc == 2 and named(out)
        else:
            ok = (rc is not None and rc != 0) or named(out)
        check(ok, "f. %s: %s (expected: %s %s); output:\n%s"
              % (" ".join(args), "still running after %.0f s" % q.tmo(10) if rc is None else "exit %d" % rc,
                 expect, " or ".join(names), out[-1500:]))
        log("f. %s: %s" % (" ".join(args), "running, the log names it" if rc is None else "exit %d" % rc))


def run():
    q.need_binaries()
    pki = q.make_pki(os.path.join(q.mkdtemp("tls-pki"), "pki"))
    n = q.scale(2000)
    right_ca_and_restart(pki, n)
    wrong_ca(pki, n)
    wrong_name(pki, n)
    client_cert(pki, n)
    recv = q.Receiver(tls=q.server_tls_context(pki)).start()  # so that a shipper has a peer to try
    bad_options(pki, recv.addr)
    return ("TLS to Logstash: delivered exactly once with the right CA, nothing lost over a restart; wrong CA, "
            "wrong name and a missing client certificate deliver nothing until fixed; bad options refused")


if __name__ == "__main__":
    q.main(run)

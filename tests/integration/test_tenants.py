#!/usr/bin/env python3
"""Tenants (issue 21, items 1-3 and 6; docs/TENANTS.md).

check-config: the issue's example file is valid; each broken file gives its FILE:LINE message from
  --check-config (exit 1); the same file at start is one line and exit 2; --hash-token prints the
  line to paste.
tagging: a client of tenant acme that sets organization.id to globex (top-level dotted key, nested
  object, both) has its events stored with organization.id = acme.
token: --auth token: no token, an unknown token: refused with the reason, quicstash-send exits 2,
  nothing delivered; the right token (either of a rotated pair): everything delivered.
mtls: --auth mtls: a certificate from another CA, an expired one, one naming no tenant: refused;
  by subject and by SAN: delivered, tagged with their tenant.
reload: a reload changing only the tenants file is applied in place: a token revoked by it is
  refused afterwards (nothing delivered), a tenant added by it is served; a client connected before
  it with the revoked token is closed unauthenticated, its acknowledged events all stored; another
  tenant's client connected across it keeps sending on the same connection (its connection count in
  the metrics does not move); a broken tenants file at reload keeps the running one and the log says
  why, at its line.
reload-limits: a max-message-size set by a reload in place rejects the next large event of a
  connection open across it.
revoke-sending: a client whose token is revoked while it sends is closed with `unauthenticated`
  where it is, once what it sent is answered; what was acknowledged is stored; another tenant's
  client sending all along is not touched."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

# sha256("foo") and sha256("bar"): the example file
FOO = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
BAR = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
EXAMPLE = """[defaults]
events-per-second = 20000
bytes-per-second  = 8M
max-connections   = 200
spool-quota       = 256M

[tenant acme]
token-sha256 = %s
token-sha256 = %s
events-per-second = 2000

[tenant globex]
cert-subject = CN=globex-edge
""" % (FOO, BAR)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def token_file(d, name, token):
    return write(os.path.join(d, "token-" + name), token + "\n")


def hash_token(token):
    p = subprocess.run([q.QUICSTASHD, "--hash-token"], input=(token + "\n").encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=q.tmo(30))
    check(p.returncode == 0, "--hash-token: exit %d %s" % (p.returncode, p.stderr[-300:]))
    return p.stdout.decode().strip()


def check_config(*args):
    p = subprocess.run([q.QUICSTASHD, "--check-config"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=q.tmo(30))
    return p.returncode, p.stderr.decode("utf-8", "replace")


BROKEN = [
    ("[tenant a]\nevents-per-second = 1\ncolour = blue\n", ":3: unknown key 'colour'"),
    ("[tenant a]\n\n[tenant a]\n", ":3: duplicate tenant 'a' (first at line 1)"),
    ("[defaults]\nbytes-per-second = 8X\n", ":2: bytes-per-second: bad number '8X'"),
    ("[tenant a]\ntoken-sha256 = %s0\n" % FOO[:-2], ":2: malformed token-sha256"),
    ("[tenant a]\ntoken-sha256 = %s\n[tenant b]\ntoken-sha256 = %s\n" % (FOO, FOO),
     ":4: token shared by tenants 'a' and 'b'"),
]


def case_check_config():
    d = q.mkdtemp("tenants-check")
    good = write(os.path.join(d, "example.conf"), EXAMPLE)
    rc, err = check_config("--tenants", good)
    check(rc == 0, "the issue's example: --check-config exit %d\n%s" % (rc, err))
    # a --config file naming the tenants file (tenants = FILE)
    conf = write(os.path.join(d, "quicstash.conf"), "tenants = %s\nauth = token\n" % good)
    rc, err = check_config("--config", conf)
    check(rc == 0, "tenants = FILE in --config: exit %d\n%s" % (rc, err))
    check(hash_token("foo") == "token-sha256 = " + FOO, "--hash-token foo: %r" % hash_token("foo"))
    # a client CA the acceptors could not load is the supervisor's error, never theirs in a restart loop
    rc, err = check_config("--tenants", good, "--client-ca", write(os.path.join(d, "ca.pem"), "not a certificate\n"))
    check(rc == 1 and "--client-ca" in err, "unusable --client-ca: exit %d %r" % (rc, err))
    for i, (text, want) in enumerate(BROKEN):
        path = write(os.path.join(d, "bad%d.conf" % i), text)
        rc, err = check_config("--tenants", path)
        check(rc == 1 and (path + want) in err, "%s: --check-config exit %d, stderr %r (expected %r)"
              % (path, rc, err, path + want))
    # every error of one file, each with its line (tenants renamed apart, per broken file)
    path = write(os.path.join(d, "all-bad.conf"), "".join(
        t.replace("[tenant a]", "[tenant a%d]" % i).replace("[tenant b]", "[tenant b%d]" % i)
        for i, (t, _) in enumerate(BROKEN)))
    rc, err = check_config("--tenants", path)
    lines = [l for l in err.splitlines() if l.startswith(path + ":")]
    check(rc == 1 and len(lines) == len(BROKEN), "all errors in one file: exit %d, %d lines (expected %d):\n%s"
          % (rc, len(lines), len(BROKEN), err))
    # at start: one line, exit 2
    bad = os.path.join(d, "bad0.conf")
    p = subprocess.run([q.QUICSTASHD, "--tenants", bad, "--spool-dir", os.path.join(d, "spool")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=q.tmo(30), cwd=d)
    lines = [l for l in p.stderr.decode().splitlines() if l.strip()]
    check(p.returncode == 2 and len(lines) == 1 and BROKEN[0][1] in lines[0],
          "bad tenants file at start: exit %d, stderr %r" % (p.returncode, lines))
    log("check-config: example valid, %d broken files named at their line, start refused in one line" % len(BROKEN))


def send_as(server, lines, token=None, cert=None, timeout=30):
    args = []
    if token:
        args += ["--token-file", token]
    if cert:
        args += ["--client-cert", cert + ".pem", "--client-key", cert + ".key"]
    return q.send(server, lines, extra_args=args, timeout=q.tmo(60), client_timeout=int(q.tmo(timeout)))


def events(start, n, **extra):
    out = []
    for i in range(start, start + n):
        ev = {"n": i, "msg": "event %d" % i}
        ev.update(extra)
        out.append(json.dumps(ev))
    return out


def expect_refused(server, recv, lines, reason, what, **kw):
    rc, _, err = send_as(server, lines, **kw)
    check(rc == 2 and ("server refused authentication: " + reason) in err,
          "%s: quicstash-send exit %r (expected 2 with %r);\n%s\nserver log:\n%s"
          % (what, rc, reason, err[-600:], server.log_tail()))
    numbers = [json.loads(l)["n"] for l in lines]
    time.sleep(0.5)
    got = [n for n in numbers if recv.seen()[n]]
    check(not got, "%s: refused, yet events %s were delivered" % (what, got[:10]))


def expect_delivered(server, recv, lines, what, tenant, **kw):
    rc, _, err = send_as(server, lines, **kw)
    check(rc == 0 and q.summary(err) == (len(lines), len(lines), 0),
          "%s: quicstash-send exit %r, summary %r;\n%s\nserver log:\n%s"
          % (what, rc, q.summary(err), err[-600:], server.log_tail()))
    numbers = [json.loads(l)["n"] for l in lines]
    missing = recv.wait_numbers(numbers, q.tmo(30), quiet=0)
    check(not missing, "%s: events %s never arrived" % (what, sorted(missing)[:10]))
    wanted = set(numbers)
    for ev in recv.snapshot():
        if ev.get("n") in wanted:
            org = ev.get("organization")
            check(isinstance(org, dict) and org.get("id") == tenant and "organization.id" not in ev,
                  "%s: event %d stored with organization %r (and organization.id %r), expected id %r"
                  % (what, ev["n"], org, ev.get("organization.id"), tenant))


def token_server(d, recv, tenants_text, auth="token", extra=()):
    path = write(os.path.join(d, "tenants.conf"), tenants_text)
    return q.Server(recv, extra=["--tenants", path, "--auth", auth] + list(extra), workdir=d, name="tenants").start()


def case_tagging():
    recv = q.Receiver().start()
    d = q.mkdtemp("tenants-tag")
    server = token_server(d, recv, EXAMPLE)
    acme = token_file(d, "acme", "foo")
    lines = (events(0, 20, **{"organization.id": "globex"}) + events(20, 20, organization={"id": "globex", "name": "n"})
             + [json.dumps({"n": 40 + i, "organization": {"id": "globex"}, "organization.id": "globex"})
                for i in range(20)])
    expect_delivered(server, recv, lines, "acme claiming globex", "acme", token=acme)
    kept = [ev for ev in recv.snapshot() if 20 <= ev.get("n", -1) < 40]
    check(kept and all(ev["organization"].get("name") == "n" for ev in kept),
          "the client's other organization members were not kept: %r" % kept[:1])
    server.stop()
    log("tagging: 60 events claiming globex (dotted, nested, both) stored as acme")


def case_token():
    recv = q.Receiver().start()
    d = q.mkdtemp("tenants-token")
    server = token_server(d, recv, EXAMPLE, extra=["--stats-interval", "1"])
    expect_refused(server, recv, events(0, 10), "unauthenticated", "no token")
    expect_refused(server, recv, events(10, 10), "unknown token", "unknown token",
                   token=token_file(d, "bad", "not-a-token"))
    # a token cut short by the stream's FIN, and a token of 0 bytes: the connection is refused
    for raw, reason in ((b"QSA1\x00\x05fo", "unauthenticated"), (b"QSA1\x00\x00", "malformed authentication")):
        rc, out, err = q.send(server, raw, extra_args=["--raw"], timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
        check(rc == 2 and ("server refused authentication: " + reason) in err,
              "raw %r: exit %r, expected the refusal %r;\n%s%s" % (raw, rc, reason, out[-300:], err[-300:]))
    expect_delivered(server, recv, events(20, 200), "acme's first token", "acme", token=token_file(d, "foo", "foo"))
    expect_delivered(server, recv, events(220, 200), "acme's second token", "acme", token=token_file(d, "bar", "bar"))
    # the variable, when no --token-file is given
    path = write(os.path.join(d, "env-input"), "\n".join(events(420, 10)) + "\n")
    p = subprocess.run([q.SEND, "-s", server.addr, "--cert", server.cert, "--timeout", str(int(q.tmo(30))), path],
                       env=dict(os.environ, QUICSTASH_TOKEN="foo"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=q.tmo(60))
    check(p.returncode == 0 and q.summary(p.stderr.decode()) == (10, 10, 0),
          "QUICSTASH_TOKEN: exit %r %s" % (p.returncode, p.stderr[-300:]))
    check("authentication refused for 127.0.0.1" in server.log() and "unknown token" in server.log(),
          "the refusals were not logged with the peer:\n%s" % server.log_tail())
    # the counters: refusals in the acceptor's stats line, acme's line every --stats-interval
    want = "tenant acme: connections 3 (open 0), events acknowledged 410, rejected 0"
    check(server.wait_log(want, 0, q.tmo(10)) and server.wait_log("refused authentication 4", 0, q.tmo(5)),
          "no per-tenant counters (%r) or refusal count in the log:\n%s" % (want, server.log_tail()))
    server.stop()
    log("token: none and unknown refused with their reason, nothing delivered; both rotated tokens delivered")


def case_mtls():
    recv = q.Receiver().start()
    d = q.mkdtemp("tenants-mtls")
    pki = q.make_client_pki(os.path.join(d, "pki"))
    text = EXAMPLE + "\n[tenant initech]\ncert-san = edge.initech.example\n"
    server = token_server(d, recv, text, auth="mtls", extra=["--client-ca", pki["client-ca.pem"]])
    c = lambda name: pki[name + ".pem"][:-4]  # noqa: E731
    expect_refused(server, recv, events(0, 10), "certificate refused: ", "expired certificate", cert=c("expired"))
    expect_refused(server, recv, events(10, 10), "unauthenticated", "certificate from another CA", cert=c("foreign"))
    expect_refused(server, recv, events(20, 10), "certificate matches no tenant", "no matching tenant",
                   cert=c("nobody"))
    expect_refused(server, recv, events(30, 10), "unauthenticated", "a token where mtls is required",
                   token=token_file(d, "foo", "foo"))
    expect_delivered(server, recv, events(100, 100), "globex by subject", "globex", cert=c("globex"))
    expect_delivered(server, recv, events(200, 100), "initech by SAN", "initech", cert=c("initech"))
    server.stop()
    log("mtls: expired, foreign CA, unknown subject refused; subject and SAN delivered")


def tenant_connections(port, tenant):
    """quicstash_tenant_connections_total of the tenant, summed over the acceptors (0: none yet)."""
    series = 'quicstash_tenant_connections_total{tenant="%s"}' % tenant
    return q.scrape(port).get(series, 0)


def case_reload():
    """A reload whose only change is the tenants file is applied in place: beta's connection, open
    across it, keeps sending on the same QUIC connection (its tenant's connection count does not
    move); acme's connection, whose token is revoked, is closed unauthenticated where it is; gamma,
    added, connects."""
    recv = q.Receiver().start()
    d = q.mkdtemp("tenants-reload")
    mport, margs = q.metrics_server_args()
    server = token_server(d, recv, EXAMPLE + "\n[tenant beta]\ntoken-sha256 = %s\n" % hash_token("beta")[15:],
                          extra=margs)
    foo, beta, gamma = (token_file(d, n, n) for n in ("foo", "beta", "gamma"))
    expect_delivered(server, recv, events(0, 50), "acme before the reload", "acme", token=foo)
    # acme and beta connected across the reload, fed through pipes
    clients = {}
    for name, tok, base in (("acme", foo, 1000), ("beta", beta, 5000)):
        c = q.AsyncSend(server, None, os.path.join(d, name + ".acklog"), extra_args=["--token-file", tok],
                        client_timeout=int(q.tmo(30)))
        c.feed(("\n".join(events(base, 100)) + "\n").encode(), q.tmo(10))
        check(c.wait_acked(100, q.tmo(30)) == 100, "%s's connected client: %d of 100 acknowledged\n%s"
              % (name, c.acked_count(), c.stderr()[-400:]))
        clients[name] = c
    beta_conns = tenant_connections(mport, "beta")
    check(beta_conns == 1, "beta: %r connections before the reload, expected 1" % beta_conns)
    # revoke acme's first token (the second stays: rotation), remove nothing else, add gamma
    text = EXAMPLE.replace("token-sha256 = %s\n" % FOO, "") + "\n[tenant beta]\ntoken-sha256 = %s\n" % \
        hash_token("beta")[15:] + "\n[tenant gamma]\n%s\n" % hash_token("gamma")
    write(os.path.join(d, "tenants.conf"), text)
    mark = len(server.log())
    os.kill(server.pid, signal.SIGHUP)
    check(server.wait_log("reload 1 complete", mark, q.tmo(60)), "the reload did not complete:\n%s"
          % server.log_tail())
    # beta, untouched: the same connection goes on sending and being acknowledged
    b = clients["beta"]
    b.feed(("\n".join(events(5100, 100)) + "\n").encode(), q.tmo(10))
    check(b.wait_acked(200, q.tmo(30)) == 200, "beta after the reload: %d of 200 acknowledged\n%s"
          % (b.acked_count(), b.stderr()[-400:]))
    after = tenant_connections(mport, "beta")
    check(after == beta_conns and "reconnecting" not in b.stderr(),
          "beta's connection was touched by a reload of the tenants alone: %r connections (before %r)\n%s"
          % (after, beta_conns, b.stderr()[-400:]))
    b.end_input()
    rc = b.wait(q.tmo(30))
    check(rc == 0, "beta's client: exit %r\n%s" % (rc, b.stderr()[-400:]))
    missing = recv.wait_numbers(list(range(5000, 5200)), q.tmo(30), quiet=0)
    check(not missing, "beta: acknowledged but never stored: %s" % sorted(missing)[:10])
    check("reload 1: tenants applied in place: 1 added, 1 token(s) revoked" in server.log(),
          "the reload did not say it applied the tenants in place:\n%s" % server.log_tail())
    acme = clients["acme"]
    rc = acme.wait(q.tmo(30))
    check(rc == 2 and "server refused authentication: unauthenticated: credential revoked" in acme.stderr(),
          "acme's connected client after its token was revoked: exit %r\n%s" % (rc, acme.stderr()[-600:]))
    acked = [1000 + x - 1 for x in acme.acked()]  # line numbers, from 1
    missing = recv.wait_numbers(acked, q.tmo(30), quiet=0)
    check(not missing, "acknowledged before the revocation but never stored: %s" % sorted(missing)[:10])
    expect_refused(server, recv, events(2000, 10), "unknown token", "acme's revoked token", token=foo)
    expect_delivered(server, recv, events(2100, 50), "acme's other token", "acme", token=token_file(d, "bar", "bar"))
    expect_delivered(server, recv, events(2200, 50), "beta, untouched", "beta", token=beta)
    expect_delivered(server, recv, events(2300, 50), "gamma, added", "gamma", token=gamma)
    # a broken file at reload: the running tenants stay, the log names the line
    write(os.path.join(d, "tenants.conf"), text + "colour = blue\n")
    mark = len(server.log())
    os.kill(server.pid, signal.SIGHUP)
    check(server.wait_log("configuration is invalid", mark, q.tmo(30)), "no log line about the bad tenants file:\n%s"
          % server.log_tail())
    check("unknown key 'colour'" in server.log()[mark:], "the log does not say why:\n%s" % server.log_tail())
    expect_delivered(server, recv, events(2400, 50), "gamma after a refused reload", "gamma", token=gamma)
    server.stop()
    log("reload in place: beta's connection kept sending across it (1 connection), acme's revoked token "
        "closed unauthenticated (acknowledged events stored, then refused), gamma added and served; a broken "
        "file kept the running tenants")


def case_reload_limits():
    """A limit changed by a reload in place applies to a connection open across it, at its next
    frame: beta's max-message-size, set by the reload, rejects the next large event on the same
    connection (its connection count does not move)."""
    recv = q.Receiver().start()
    d = q.mkdtemp("tenants-limits")
    mport, margs = q.metrics_server_args()
    text = "[tenant beta]\n%s\n" % hash_token("beta")
    server = token_server(d, recv, text, extra=margs)
    b = q.AsyncSend(server, None, os.path.join(d, "beta.acklog"), client_timeout=int(q.tmo(30)),
                    extra_args=["--token-file", token_file(d, "beta", "beta")])
    big = lambda n: json.dumps({"n": n, "pad": "x" * 600})  # noqa: E731
    b.feed((big(0) + "\n").encode(), q.tmo(10))
    check(b.wait_acked(1, q.tmo(30)) == 1, "beta: its large event before the reload was not acknowledged\n%s"
          % b.stderr()[-400:])
    write(os.path.join(d, "tenants.conf"), text + "max-message-size = 200\n")
    mark = len(server.log())
    os.kill(server.pid, signal.SIGHUP)
    check(server.wait_log("reload 1 complete", mark, q.tmo(60)), "the reload did not complete:\n%s"
          % server.log_tail())
    b.feed((big(1) + "\n" + json.dumps({"n": 2}) + "\n").encode(), q.tmo(10))
    b.end_input()
    rc = b.wait(q.tmo(30))
    check(rc is not None and q.summary(b.stderr()) == (3, 2, 1),
          "beta across a reload setting max-message-size = 200: exit %r, summary %r (expected 3 sent, 2 "
          "acknowledged, 1 rejected)\n%s" % (rc, q.summary(b.stderr()), b.stderr()[-400:]))
    conns = tenant_connections(mport, "beta")
    check(conns == 1, "beta: %r connections, expected its one connection across the reload" % conns)
    check("reload 1: tenants applied in place: 1 with new limits" in server.log(),
          "the reload did not say it applied new limits in place:\n%s" % server.log_tail())
    missing = recv.wait_numbers([0, 2], q.tmo(30), quiet=0)
    check(not missing, "beta: acknowledged but never stored: %s" % sorted(missing))
    server.stop()
    log("reload-limits: a max-message-size set by a reload in place rejected the next large event on the "
        "same connection")


def case_revoke_sending():
    """A token revoked while its client sends: the reload applies the tenants in place, the acceptor
    stops decoding the client's frames, and its connection is closed unauthenticated where it is once
    what it sent is answered; what was acknowledged is stored. The other tenant, sending all along on
    one connection, is not touched. Two rounds: the second revokes a tenant added by the first."""
    recv = q.Receiver().start()
    d = q.mkdtemp("tenants-revoke")
    rounds = 2
    tenants = ["[tenant t%d]\n%s\n%s\n" % (i, hash_token("old%d" % i), hash_token("new%d" % i)) for i in range(rounds)]
    keep = "[tenant keep]\n%s\n" % hash_token("keep")
    server = token_server(d, recv, keep + tenants[0])
    other = q.AsyncSend(server, None, os.path.join(d, "keep.acklog"), client_timeout=int(q.tmo(60)),
                        extra_args=["--token-file", token_file(d, "keep", "keep")])
    other_feed = q.Feeder(other, lambda k: json.dumps({"n": 500000 + k}), rate=2000)
    for i in range(rounds):
        tok = token_file(d, "old%d" % i, "old%d" % i)
        base = 10000 * (i + 1)
        client = q.AsyncSend(server, None, os.path.join(d, "t%d.acklog" % i), extra_args=["--token-file", tok],
                             client_timeout=int(q.tmo(30)))
        feeder = q.Feeder(client, lambda k, base=base: json.dumps({"n": base + k}), rate=5000)
        check(client.wait_acked(200, q.tmo(30)) >= 200, "t%d: not sending\n%s" % (i, client.stderr()[-400:]))
        tenants[i] = "[tenant t%d]\n%s\n" % (i, hash_token("new%d" % i))  # its old token revoked
        write(os.path.join(d, "tenants.conf"), keep + "".join(tenants[:i + 2]))
        mark = len(server.log())
        os.kill(server.pid, signal.SIGHUP)
        check(server.wait_log("reload %d complete" % (i + 1), mark, q.tmo(60)), "reload %d did not complete:\n%s"
              % (i + 1, server.log_tail()))
        rc = client.wait(q.tmo(30))
        feeder.stop()
        err = client.stderr()
        check(rc == 2 and "server refused authentication: unauthenticated: credential revoked" in err,
              "t%d, sending while its token was revoked: exit %r\n%s\nserver log:\n%s"
              % (i, rc, err[-600:], server.log_tail()))
        acked = [base + x - 1 for x in client.acked()]
        missing = recv.wait_numbers(acked, q.tmo(30), quiet=0)
        check(not missing, "t%d: acknowledged but never stored: %s" % (i, sorted(missing)[:10]))
        check("was revoked; closing it once answered" in server.log()[mark:], "no log line about the revocation")
        check("tenants applied in place" in server.log()[mark:], "reload %d was not applied in place:\n%s"
              % (i + 1, server.log_tail()))
        expect_delivered(server, recv, events(90000 + 100 * i, 20), "t%d's new token" % i, "t%d" % i,
                         token=token_file(d, "new%d" % i, "new%d" % i))
        log("round %d: closed unauthenticated (credential revoked), %d acknowledged events all stored" % (i, len(acked)))
    # the other tenant: one connection all along, still acknowledged after both reloads
    n = other.acked_count()
    check(other.wait_acked(n + 200, q.tmo(30)) >= n + 200 and other.running(),
          "the other tenant stopped being acknowledged:\n%s" % other.stderr()[-400:])
    other_feed.stop()
    rc = other.wait(q.tmo(30))
    check(rc == 0 and "reconnecting" not in other.stderr(), "the other tenant's client: exit %r\n%s"
          % (rc, other.stderr()[-400:]))
    check("tenant keep: the credential" not in server.log(), "the other tenant's connection was revoked")
    acked = [500000 + x - 1 for x in other.acked()]
    missing = recv.wait_numbers(acked, q.tmo(30), quiet=0)
    check(not missing, "the other tenant: acknowledged but never stored: %s" % sorted(missing)[:10])
    server.stop()


CASES = [("check-config", case_check_config), ("tagging", case_tagging), ("token", case_token),
         ("mtls", case_mtls), ("reload", case_reload),
         ("reload-limits", case_reload_limits), ("revoke-sending", case_revoke_sending)]


def run():
    q.need_binaries()
    for _, fn in CASES:
        fn()


if __name__ == "__main__":
    q.main(run, cases=CASES)

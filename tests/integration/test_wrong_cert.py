#!/usr/bin/env python3
"""A client trusting a different certificate cannot connect (issue 2): exit 2, a clear error,
nothing delivered. The right certificate works (so the test cannot pass on a dead server)."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def make_cert(d, cn):
    key = os.path.join(d, "other-key.pem")
    tmpl = os.path.join(d, "other.tmpl")
    pem = os.path.join(d, "other-cert.pem")
    der = os.path.join(d, "other-cert.der")
    with open(tmpl, "w") as f:
        f.write('cn = "%s"\nexpiration_days = 30\nsigning_key\nencryption_key\ntls_www_server\n'
                'dns_name = "localhost"\nip_address = "127.0.0.1"\nca\ncert_signing_key\n' % cn)
    run = lambda a: subprocess.run(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=True)
    try:
        run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", key])
        run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template", tmpl, "--outfile", pem])
        run(["certtool", "--certificate-info", "--infile", pem, "--outder", "--outfile", der])
    except (OSError, subprocess.CalledProcessError) as e:
        raise q.TestFailure("certtool (gnutls-bin) failed: %s" % e)
    return pem, der


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, name="wrongcert")
    server.start()
    check(os.path.exists(server.cert), "server did not write its certificate at %s" % server.cert)
    pem, der = make_cert(server.dir, "not-the-quicstash-server")
    lines = q.gen_events(100)
    for cert in (der, pem):
        t0 = time.monotonic()
        rc, out, err = q.send(server, lines, cert=cert, timeout=q.tmo(60), client_timeout=int(q.tmo(10)))
        log("wrong cert %s: rc=%s in %.1fs, stderr %r" % (os.path.basename(cert), rc, time.monotonic() - t0,
                                                          err.strip()[-300:]))
        check(rc == 2, "client trusting %s: exit %r, expected 2; stderr %r" % (os.path.basename(cert), rc, err[-500:]))
        check(re.search(r"certif|verif|trust|tls|handshake|x\.?509", err, re.I),
              "no clear certificate error on stderr: %r" % err[-500:])
        s = q.summary(err)
        check(s is None or s[1] == 0, "events acknowledged over an untrusted connection: %r" % (s,))
    time.sleep(1.0)
    check(recv.count() == 0, "%d events were delivered from a client that rejected the server's certificate"
          % recv.count())
    check(server.running(), "server died")
    # the right certificate works
    rc, out, err = q.send(server, lines, timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "client with the right certificate: exit %r; %s" % (rc, err[-500:]))
    missing = recv.wait_numbers(range(100), q.tmo(20), quiet=0.2)
    check(not missing, "right certificate: %d events missing" % len(missing))
    server.stop()
    return "wrong certificate (DER and PEM): exit 2, clear error, nothing delivered; right one works"


if __name__ == "__main__":
    q.main(run)

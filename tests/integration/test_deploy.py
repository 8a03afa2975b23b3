#!/usr/bin/env python3
"""The systemd units in deploy/ are valid (systemd-analyze verify, on a copy of the unit CMake
configured whose ExecStart points at the binary under test), hardened as documented, and socket
activation matches the daemon: one datagram socket with ReusePort (the supervisor adds its own
acceptor sockets to the group) on the daemon's default address. The addresses are in the
configuration file (deploy/quicstash.conf), which the unit reads, not in the unit; the file's
addresses are the daemon's defaults too. (test_package checks the units as the package installs them.)
Case families: quicstashd runs under the unit's RestrictAddressFamilies= (tests/tools/qs_restrict_af
installs the same seccomp rule systemd would), resolves its Logstash by name, acknowledges and
delivers events."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

HARDENING = ["ProtectSystem=strict", "StateDirectory=quicstash", "RuntimeDirectory=quicstash", "NoNewPrivileges=yes",
             "RestrictAddressFamilies=", "SystemCallFilter=", "CapabilityBoundingSet=", "PrivateTmp=yes",
             "ProtectHome=yes", "Type=notify", "WatchdogSec=", "ExecReload="]


FAMILIES = {"AF_UNIX": "unix", "AF_INET": "inet", "AF_INET6": "inet6", "AF_NETLINK": "netlink"}


def unit_text():
    with open(os.path.join(os.path.dirname(q.QS_BIN), "deploy", "quicstash.service")) as f:
        return f.read()


def case_families():
    q.need_binaries("quicstashd", "quicstash-send", "qs_restrict_af")
    allowed = re.search(r"^RestrictAddressFamilies=(.*)$", unit_text(), re.M).group(1).split()
    check(allowed and all(a in FAMILIES for a in allowed), "unexpected RestrictAddressFamilies=%s" % allowed)
    recv = q.Receiver().start()
    server = q.Server(logstash="localhost:%d" % recv.port)  # by name: getaddrinfo under the filter
    server.wrap = [os.path.join(q.QS_BIN, "qs_restrict_af"), ",".join(FAMILIES[a] for a in allowed)]
    server.start()
    n = 200
    q.send_acked(server, q.gen_events(n), "under RestrictAddressFamilies=%s" % " ".join(allowed))
    q.verify_delivery(recv, range(n), q.tmo(30))
    server.stop()
    return "served and delivered %d events with only %s" % (n, " ".join(allowed))


def case_units():
    q.need_binaries("quicstashd")
    if not shutil.which("systemd-analyze"):
        raise q.Skip("systemd-analyze is not installed")
    src = os.path.join(q.REPO, "deploy")
    d = q.mkdtemp("deploy")
    svc = unit_text()
    sock = open(os.path.join(src, "quicstash.socket")).read()
    conf = open(os.path.join(src, "quicstash.conf")).read()
    for h in HARDENING:
        check(h in svc, "quicstash.service lacks %s" % h)
    check("ListenDatagram=" in sock and "ReusePort=true" in sock, "quicstash.socket: no datagram socket with ReusePort")
    start = re.search(r"^ExecStart=(/\S+/quicstashd) (.*)$", svc, re.M)
    check(start and start.group(2).startswith("--config /"), "unexpected ExecStart: %r" % (start and start.group(0)))
    check(not re.search(r"(^| )(-s|-l|--server-addr|--logstash-addr)\b", start.group(2)),
          "the unit carries an address: %s" % start.group(0))
    helptext = " ".join(subprocess.run([q.QUICSTASHD, "--help"], stdout=subprocess.PIPE).stdout.decode().split())
    defaults = dict(re.findall(r"--(server-addr|logstash-addr) ADDR [^()]*(?:\([^()]*\)[^()]*)*?\(default: (\S+?)\)",
                               helptext))
    check(len(defaults) == 2, "--help gives no default for --server-addr or --logstash-addr: %r" % defaults)
    listen = re.search(r"^ListenDatagram=(\S+)$", sock, re.M).group(1)
    check(listen == defaults.get("server-addr"), "the socket listens on %s, the daemon's default is %s"
          % (listen, defaults.get("server-addr")))
    for name, value in defaults.items():
        check(re.search(r"^%s = %s$" % (name, re.escape(value)), conf, re.M),
              "deploy/quicstash.conf does not set %s = %s (the default, and the socket's)" % (name, value))
    with open(os.path.join(d, "quicstash.service"), "w") as f:
        f.write(svc.replace(start.group(1), q.QUICSTASHD))
    with open(os.path.join(d, "quicstash.socket"), "w") as f:
        f.write(sock)
    # Documentation=man:... is looked up through MANPATH: the man pages of this build
    man = os.path.join(d, "man")
    for page in ("quicstashd.8", "quicstash.conf.5"):
        os.makedirs(os.path.join(man, "man" + page[-1]), exist_ok=True)
        shutil.copy(os.path.join(os.path.dirname(q.QS_BIN), "man", page), os.path.join(man, "man" + page[-1]))
    p = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "quicstash.socket"),
                        os.path.join(d, "quicstash.service")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60, env=dict(os.environ, MANPATH=man))
    out = p.stdout.decode(errors="replace")
    log("systemd-analyze verify: exit %d %s" % (p.returncode, out.strip()[:500]))
    check(p.returncode == 0 and not re.search(r"(?i)unknown|invalid|failed|not found", out),
          "systemd-analyze verify complained:\n%s" % out)
    return "units verify clean; hardening options present; addresses in the file, the socket's the default"


CASES = [("units", case_units), ("families", case_families)]


def run():
    return "; ".join("%s: %s" % (n, f()) for n, f in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

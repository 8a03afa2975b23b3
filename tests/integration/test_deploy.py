#!/usr/bin/env python3
"""The systemd units in deploy/ are valid (systemd-analyze verify, on a copy whose ExecStart points
at the binary under test), hardened as documented, and socket activation matches the daemon:
one datagram socket with ReusePort (the supervisor adds its own acceptor sockets to the group)."""
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


def run():
    q.need_binaries("quicstashd")
    if not shutil.which("systemd-analyze"):
        raise q.Skip("systemd-analyze is not installed")
    src = os.path.join(q.REPO, "deploy")
    d = q.mkdtemp("deploy")
    svc = open(os.path.join(src, "quicstash.service")).read()
    sock = open(os.path.join(src, "quicstash.socket")).read()
    for h in HARDENING:
        check(h in svc, "quicstash.service lacks %s" % h)
    check("ListenDatagram=" in sock and "ReusePort=true" in sock, "quicstash.socket: no datagram socket with ReusePort")
    check(re.search(r"^ExecStart=/usr/bin/quicstashd ", svc, re.M), "unexpected ExecStart")
    with open(os.path.join(d, "quicstash.service"), "w") as f:
        f.write(svc.replace("/usr/bin/quicstashd", q.QUICSTASHD))
    with open(os.path.join(d, "quicstash.socket"), "w") as f:
        f.write(sock)
    p = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "quicstash.socket"),
                        os.path.join(d, "quicstash.service")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = p.stdout.decode(errors="replace")
    log("systemd-analyze verify: exit %d %s" % (p.returncode, out.strip()[:500]))
    check(p.returncode == 0 and not re.search(r"(?i)unknown|invalid|failed|not found", out),
          "systemd-analyze verify complained:\n%s" % out)
    return "units verify clean; hardening options present"


if __name__ == "__main__":
    q.main(run)

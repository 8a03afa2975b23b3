#!/usr/bin/env python3
"""Issue 23 under a real systemd as PID 1: the .deb installed and run as an operator would.
The host's own OS boots in a container (systemd-nspawn --boot) on an overlay of / whose upper layer
is a tmpfs (nothing reaches the host's disk; systemd-nspawn --volatile=overlay refuses / itself),
with a network namespace of its own (loopback only: the host's services enabled there cannot clash
with the host's ports) and basic.target as default target (no host service starts at all).
In that container:
1. (case activation) `dpkg -i` of the package: the user comes from sysusers, nothing is enabled.
   /etc/quicstash/quicstash.conf is given another Logstash port; `systemctl start quicstash.socket`
   starts nothing until a first datagram, which brings quicstash.service up (active: READY=1 sent);
   events sent with quicstash-send (the host's, in the container's network namespace, trusting the
   certificate the service made under its StateDirectory) reach a receiver on the file's port.
2. (case journal) `journalctl -u quicstash -o json`: native entries (not stderr) with QUICSTASH_ROLE
   from the supervisor and from each child (acceptor, parser, shipper: chrooted, logging through
   the bind of journald's socket, common/log_journal.c), each with a _PID other than the main one;
   nothing on stderr (libcap-ng said there that it could not drop the bounding set: the unit has no
   CAP_SETPCAP) and no "could not drop the supervisor's unneeded capabilities"; connection-ID
   steering works (the unit's CAP_BPF and bpf in its SystemCallFilter=).
3. (case reload) the file names another port, `systemctl reload quicstash`: the unit is active
   again with the same main pid, events sent after it reach the new port, and no child failed or
   fell back to stderr since (ExecReload sets the unit's directories up again: systemd gave
   RuntimeDirectory back to root, the shipper lost its chroot; the unit now puts the children one
   level below it).
4. (case security) `systemd-analyze security quicstash.service` on the live unit: at or below 3.6.
5. (case stop) `systemctl stop quicstash.service quicstash.socket`: both inactive with
   Result=success (no SIGKILL after TimeoutStopSec), no quicstashd process left.
Every case can run alone (it boots and installs what it needs); the container is powered off at exit.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

import test_package

BOOT_TIMEOUT = 120     # a boot takes 2-10 s here; a hung one ends the test with its log
SECURITY_BAR = test_package.SECURITY_BAR
PORTS = (5044, 5045)   # Logstash ports the configuration file names (before, after the reload)
N = 100                # events sent each time
CHILD_ROLES = ("acceptor", "parser", "shipper")


class Container:
    """The host's OS booted by systemd-nspawn on a tmpfs overlay of /, in its own network namespace."""

    def __init__(self):
        if os.geteuid() != 0:
            raise q.Skip("booting systemd in a container needs root")
        missing = [t for t in ("systemd-nspawn", "nsenter") if not shutil.which(t)]
        if missing or not os.access("/lib/systemd/systemd", os.X_OK):
            raise q.Skip("%s missing (scripts/install-deps installs systemd-container)" % (missing or "systemd"))
        self.dir = q.mkdtemp("boot")
        fs = os.path.join(self.dir, "fs")
        os.mkdir(fs)
        self.mounts = []
        self._mount(["-t", "tmpfs", "-o", "size=1G,mode=0755", "tmpfs", fs], "a tmpfs")
        for sub in ("upper", "work", "root"):
            os.mkdir(os.path.join(fs, sub))
        self.root = os.path.join(fs, "root")
        self._mount(["-t", "overlay", "-o", "lowerdir=/,upperdir=%s/upper,workdir=%s/work" % (fs, fs),
                     "overlay", self.root], "an overlay of /")
        self.logpath = os.path.join(self.dir, "nspawn.log")
        self.proc = None
        self.leader = None
        q.at_cleanup(self.stop)

    def _mount(self, args, what):
        p = subprocess.run(["mount"] + args, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise q.Skip("cannot mount %s here: %s" % (what, p.stderr.strip()))
        self.mounts.insert(0, args[-1])

    def boot(self):
        argv = ["systemd-nspawn", "-D", self.root, "--boot", "--register=no", "--keep-unit", "--private-network",
                # a host's PID 1 has both (connection-ID steering); nspawn leaves them out
                "--capability=CAP_BPF", "--system-call-filter=bpf",
                "--machine=qsboot%d" % os.getpid(), "--console=passive", "-q", "systemd.unit=basic.target"]
        log(" ".join(argv))
        t0 = time.monotonic()
        with open(self.logpath, "wb") as logf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True, preexec_fn=q._pdeathsig)
        deadline = t0 + BOOT_TIMEOUT
        state = "no PID 1 yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise q.Skip("systemd-nspawn cannot boot the host's OS here (exit %d): %s"
                             % (self.proc.returncode, self.nspawn_log()))
            self.leader = self.leader or self._find_leader()
            if self.leader:
                p = self.run(["systemctl", "is-system-running"], timeout=10, ok=False)
                state = p.stdout.strip()
                if state in ("running", "degraded"):
                    log("systemd booted in %.1fs (%s)" % (time.monotonic() - t0, state))
                    return self
            time.sleep(0.5)
        jobs = self.run(["systemctl", "list-jobs", "--no-pager"], timeout=10, ok=False).stdout if self.leader else ""
        raise q.TestFailure("systemd did not finish booting within %ds (state %r); jobs:\n%s\nnspawn:\n%s"
                            % (BOOT_TIMEOUT, state, jobs[-2000:], self.nspawn_log()))

    def _find_leader(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = f.read().split()
        except OSError:
            return None
        for k in kids:
            try:
                if os.readlink("/proc/%s/exe" % k).endswith("/systemd"):
                    return int(k)
            except OSError:
                pass
        return None

    def nspawn_log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()[-2000:]

    def run(self, argv, timeout=60, ok=True, ns=("-a",)):
        """argv inside the container (every namespace, or those of ns); ok: exit 0 required."""
        p = subprocess.run(["nsenter", "-t", str(self.leader)] + list(ns) + ["--"] + list(argv),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        check(not ok or p.returncode == 0, "in the container: %s: exit %d\n%s%s"
              % (" ".join(argv), p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
        return p

    def net_run(self, fn):
        """fn() on a thread in the container's network namespace (q.Receiver's netns interface)."""
        return q.run_in_netns("/proc/%d/ns/net" % self.leader, fn)

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def stop(self):
        """Powers the container off (SIGTERM: nspawn asks PID 1 to halt), then unmounts."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for m in self.mounts:
            if subprocess.run(["umount", m], capture_output=True, timeout=30).returncode != 0:
                subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)
        self.mounts = []


class NetView:
    """What q.Receiver needs of a network namespace: run(fn) inside it."""

    def __init__(self, c):
        self.run = c.net_run


_world = {}


def container():
    """The booted container, once per process."""
    if "c" not in _world:
        _world["c"] = Container().boot()
    return _world["c"]


def set_logstash(c, port):
    conf = c.path("/etc/quicstash/quicstash.conf")
    with open(conf) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^logstash-addr *=.*$", "logstash-addr = 127.0.0.1:%d" % port, text)
    check(n == 1, "no logstash-addr line in the installed %s" % conf)
    with open(conf, "w") as f:
        f.write(text)


def installed():
    """The package installed in the container, the socket started, the service brought up by a
    datagram, events delivered to the file's Logstash port; returns (container, receiver)."""
    if "recv" in _world:
        return _world["c"], _world["recv"]
    c = container()
    deb = test_package.build_deb()
    shutil.copy(deb, c.path("/root/quicstash.deb"))
    log(c.run(["dpkg", "-i", "/root/quicstash.deb"], timeout=120).stdout.strip().splitlines()[-1])
    pw = c.run(["getent", "passwd", "quicstash"], ok=False).stdout
    check(pw.startswith("quicstash:"), "no user quicstash after dpkg -i (sysusers)")
    en = c.run(["systemctl", "is-enabled", "quicstash.socket", "quicstash.service"], ok=False).stdout.split()
    check(en == ["disabled", "disabled"], "installing enabled something: %r" % en)
    set_logstash(c, PORTS[0])
    c.run(["systemctl", "start", "quicstash.socket"])
    check(service_state(c) == "inactive", "the service runs before any datagram: %s" % service_state(c))
    c.net_run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"wake", ("127.0.0.1", 4433)))
    wait_state(c, "active", 60)
    log("quicstash.service active after the first datagram: %s" % show(c, "MainPID", "ActiveEnterTimestamp"))
    recv = q.Receiver(port=PORTS[0], netns=NetView(c)).start()
    send_in(c, q.gen_events(N), "after socket activation")
    missing = q.arrived([recv], range(N), q.tmo(60))
    check(not missing, "%d of %d events not at 127.0.0.1:%d (the file's logstash-addr); journal:\n%s"
          % (len(missing), N, PORTS[0], journal_text(c)))
    _world["recv"] = recv
    return c, recv


def service_state(c, unit="quicstash.service"):
    return c.run(["systemctl", "is-active", unit], ok=False).stdout.strip()


def wait_state(c, want, timeout):
    deadline = time.monotonic() + q.tmo(timeout)
    while time.monotonic() < deadline:
        st = service_state(c)
        if st == want:
            return
        if st == "failed":
            break
        time.sleep(0.3)
    raise q.TestFailure("quicstash.service is %r, not %r within %ds:\n%s\njournal:\n%s" % (
        st, want, timeout, c.run(["systemctl", "status", "--no-pager", "quicstash.service"], ok=False).stdout,
        journal_text(c)))


def show(c, *props):
    out = c.run(["systemctl", "show", "quicstash.service", "-p", ",".join(props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(c):
    out = c.run(["journalctl", "-u", "quicstash.service", "-o", "json", "--no-pager"], timeout=60).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def journal_text(c):
    return c.run(["journalctl", "-u", "quicstash.service", "--no-pager", "-n", "40"], ok=False).stdout[-3000:]


def send_in(c, lines, what):
    """The host's quicstash-send in the container's network namespace, trusting the service's certificate."""
    q.need_binaries("quicstash-send")
    d = q.mkdtemp("bootsend")
    path = os.path.join(d, "events.txt")
    q.write_lines(path, lines)
    cert = c.path("/var/lib/quicstash/server_cert.der")
    check(os.path.exists(cert), "the service made no certificate under its StateDirectory")
    p = c.run([q.SEND, "-s", "127.0.0.1:4433", "--cert", cert, "--timeout", "30", path], timeout=q.tmo(90),
              ok=False, ns=("-n",))
    check(p.returncode == 0 and q.summary(p.stderr) == (len(lines), len(lines), 0),
          "%s: quicstash-send exit %d: %s\njournal:\n%s" % (what, p.returncode, p.stderr[-800:], journal_text(c)))


def case_activation():
    c, recv = installed()
    return "booted, installed, socket-activated, %d events at the file's port %d" % (N, PORTS[0])


def case_journal():
    c, _ = installed()
    main = int(show(c, "MainPID")["MainPID"])
    # the parser says why it refuses a frame (debug, with its code): one from the chrooted parser
    raw = os.path.join(q.mkdtemp("bootraw"), "bad.bin")
    with open(raw, "wb") as f:
        f.write(struct.pack(">I", 4) + b"{bad")
    bad = c.run([q.SEND, "-s", "127.0.0.1:4433", "--cert", c.path("/var/lib/quicstash/server_cert.der"),
                 "--raw", "--timeout", "20", raw], ok=False, ns=("-n",), timeout=60)
    log("raw bad frame: exit %d" % bad.returncode)
    deadline = time.monotonic() + q.tmo(20)
    while True:
        es = [e for e in journal(c) if e.get("SYSLOG_IDENTIFIER") == "quicstashd"]
        roles = {e.get("QUICSTASH_ROLE") for e in es if e.get("_TRANSPORT") == "journal"}
        if set(CHILD_ROLES) <= roles or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    stderr_ones = ["pid %s: %s" % (e.get("_PID"), e.get("MESSAGE")) for e in es if e.get("_TRANSPORT") != "journal"]
    check(not stderr_ones, "%d entries came through stderr, not the journal's native protocol "
          "(the main pid is %d): %r" % (len(stderr_ones), main, stderr_ones[:5]))
    for role in ("supervisor",) + CHILD_ROLES:
        mine = [e for e in es if e.get("QUICSTASH_ROLE") == role]
        check(mine, "no journal entry with QUICSTASH_ROLE=%s; roles seen %r:\n%s" % (role, sorted(roles),
                                                                                  journal_text(c)))
        pids = {int(e["_PID"]) for e in mine}
        check((pids == {main}) == (role == "supervisor"),
              "%s entries have _PID %r, the main pid is %d" % (role, sorted(pids), main))
    # the unit's CapabilityBoundingSet= has no CAP_SETPCAP: the supervisor still drops what it does not need
    # CAP_BPF and bpf in the unit's SystemCallFilter=: connection-ID steering works under the unit
    check(any("steered to" in e.get("MESSAGE", "") for e in es), "no connection-ID steering under the unit: %r"
          % [e["MESSAGE"] for e in es if "steer" in e.get("MESSAGE", "")])
    drop = [e["MESSAGE"] for e in es if "could not drop" in e.get("MESSAGE", "")]
    check(not drop, "the supervisor kept its capabilities under the unit: %r" % drop)
    return "%d native entries from the supervisor and %s, each from its own pid" % (len(es), ", ".join(CHILD_ROLES))


def case_reload():
    c, _ = installed()
    before = show(c, "MainPID")["MainPID"]
    seen = len(journal(c))
    recv2 = q.Receiver(port=PORTS[1], netns=NetView(c)).start()
    set_logstash(c, PORTS[1])
    p = c.run(["systemctl", "reload", "quicstash.service"], timeout=90, ok=False)
    check(p.returncode == 0, "systemctl reload: exit %d: %s\n%s" % (p.returncode, p.stderr.strip(), journal_text(c)))
    wait_state(c, "active", 30)
    after = show(c, "MainPID")["MainPID"]
    check(after == before, "the reload restarted the service: main pid %s, then %s" % (before, after))
    send_in(c, q.gen_events(N, start=1000), "after the reload")
    missing = q.arrived([recv2], range(1000, 1000 + N), q.tmo(60))
    check(not missing, "%d of %d events sent after the reload not at the new port %d; journal:\n%s"
          % (len(missing), N, PORTS[1], journal_text(c)))
    # ExecReload runs with the unit's directories set up again: the children keep their chroot
    later = [e for e in journal(c)[seen:] if e.get("SYSLOG_IDENTIFIER") == "quicstashd"]
    bad = ["pid %s: %s" % (e.get("_PID"), e.get("MESSAGE")) for e in later
           if e.get("_TRANSPORT") != "journal" or re.search(r"^restarting |exited with status [1-9]", e.get("MESSAGE", ""))]
    check(not bad, "after the reload, children failed or lost the journal: %r" % bad[:5])
    return "reloaded (same pid %s), events at the new port %d, %d journal entries since" % (after, PORTS[1], len(later))


def case_security():
    c, _ = installed()
    out = c.run(["systemd-analyze", "security", "--no-pager", "quicstash.service"]).stdout
    m = re.search(r"Overall exposure level for quicstash\.service: ([0-9.]+)", out)
    check(m, "no exposure level in:\n%s" % out[-1500:])
    check(float(m.group(1)) <= float(SECURITY_BAR), "exposure %s > %s:\n%s" % (m.group(1), SECURITY_BAR, out))
    return "live unit's exposure %s" % m.group(1)


def case_stop():
    c, _ = installed()
    c.run(["systemctl", "stop", "quicstash.service", "quicstash.socket"], timeout=90)
    st = [service_state(c, u) for u in ("quicstash.service", "quicstash.socket")]
    check(st == ["inactive", "inactive"], "after stop: %r" % st)
    props = show(c, "Result", "ExecMainCode", "ExecMainStatus")
    check(props.get("Result") == "success", "stop result %r (SIGKILL after the timeout?):\n%s"
          % (props, journal_text(c)))
    left = c.run(["pgrep", "-a", "quicstashd"], ok=False).stdout.strip()
    check(not left, "quicstashd processes left after stop: %s" % left)
    return "stopped cleanly (%s)" % ", ".join("%s=%s" % kv for kv in sorted(props.items()))


CASES = [("activation", case_activation), ("journal", case_journal), ("reload", case_reload),
         ("security", case_security), ("stop", case_stop)]


def test():
    return "; ".join("%s: %s" % (n, f()) for n, f in CASES)


if __name__ == "__main__":
    q.main(test, cases=CASES)

"""Server: quicstashd in its own directory (start, stop, children, logs), and KeptSocket (systemd)."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

from .base import QUICSTASHD, SANITIZE, SANITIZER_REPORT, TestFailure, check, log, tmo
from .cleanup import _pdeathsig, at_cleanup, mkdtemp, need_binaries
from .net import free_port


def _read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _stat(pid):
    """(state, ppid) of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def _alive(pid):
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _all_pids():
    for d in os.listdir("/proc"):
        if d.isdigit():
            yield int(d)


class Server:
    """quicstashd in its own temporary directory:
        quicstashd -s 127.0.0.1:UDP -l 127.0.0.1:TCP --spool-dir DIR/spool -c DIR/cert.der
                   --key-path DIR/key.pem [extra]
    stderr goes to DIR/server.log. start() waits for READY=1 through NOTIFY_SOCKET (or, failing
    that, a log line containing 'ready'). start() may be called again after stop()/kill_tree():
    same directory, spool, certificate and port."""

    def __init__(self, logstash=None, extra=(), udp_port=None, host="127.0.0.1", workdir=None, name="server",
                 confined=False):
        self.host = host
        # Under ASan the children run unconfined so that LeakSanitizer checks them at exit (a leak
        # makes a child exit 23 and the server's stop fail); confined=True for the tests of the
        # confinement itself. Without sanitizers the children are always confined.
        self.confined = confined
        self.udp_port = udp_port or free_port("udp", host)
        self.logstash = logstash if isinstance(logstash, str) or logstash is None else logstash.addr
        if self.logstash is None:
            self.logstash = "127.0.0.1:%d" % free_port("tcp")
        self.extra = list(extra)
        self.wrap = []  # a command that execs the rest (same pid), e.g. to start it in a namespace
        self.env = {}   # added to quicstashd's environment
        self.dir = workdir or mkdtemp(name)
        self.spool = os.path.join(self.dir, "spool")
        self.cert = os.path.join(self.dir, "cert.der")
        self.key = os.path.join(self.dir, "key.pem")
        self.logfile = os.path.join(self.dir, "server.log")
        self.proc = None
        self.notify_msgs = []
        self._notify_sock = None
        self._notify_thread = None
        self.ready_via = None
        at_cleanup(self.kill_tree)

    @property
    def addr(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (h, self.udp_port)

    def argv(self):
        return self.wrap + [QUICSTASHD, "-s", self.addr, "-l", self.logstash, "--spool-dir", self.spool, "-c",
                            self.cert, "--key-path", self.key] + self.extra

    def _notify_reader(self, sock):
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            if not data:
                continue
            self.notify_msgs.append(data.decode("utf-8", "replace"))

    def start(self, timeout=None, wait_ready=True):
        need_binaries("quicstashd")
        timeout = timeout or tmo(30)
        npath = os.path.join(self.dir, "notify-%d.sock" % int(time.monotonic() * 1000))
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(npath)
        self._notify_sock = ns
        self.notify_msgs = []
        t = threading.Thread(target=self._notify_reader, args=(ns,), daemon=True)
        t.start()
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = npath
        if SANITIZE and not self.confined:
            env["QS_TEST_CHILD_LEAKS"] = "1"
        env.update(self.env)
        self._log_start = os.path.getsize(self.logfile) if os.path.exists(self.logfile) else 0
        with open(self.logfile, "ab") as lf:
            lf.write(("---- %s start: %s\n" % (time.strftime("%H:%M:%S"), " ".join(self.argv()))).encode())
            lf.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, env=env,
                                         cwd=self.dir, start_new_session=True, preexec_fn=_pdeathsig)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        log_seen_at = None
        while time.monotonic() < deadline:
            if any("READY=1" in m for m in list(self.notify_msgs)):
                self.ready_via = "sd_notify"
                return
            rc = self.proc.poll()
            if rc is not None:
                raise TestFailure("quicstashd exited with %s before it was ready; log tail:\n%s"
                                  % (rc, self.log_tail()))
            if re.search(r"\bready\b", self.log(since_start=True), re.I):
                # fall back to the log line; give sd_notify a moment to arrive first
                log_seen_at = log_seen_at or time.monotonic()
                if time.monotonic() - log_seen_at > 1.0:
                    self.ready_via = "log"
                    log("note: no READY=1 through NOTIFY_SOCKET, used the log line")
                    return
            time.sleep(0.05)
        raise TestFailure("quicstashd not ready after %.0fs; log tail:\n%s" % (timeout, self.log_tail()))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self, role):
        """Pids of the live children with --role ROLE whose parent is the supervisor, sorted."""
        if not self.proc:
            return []
        out = []
        want = role.encode()
        for pid in _all_pids():
            argv = _read_cmdline(pid)
            if b"--role" not in argv:
                continue
            i = argv.index(b"--role")
            if i + 1 >= len(argv) or argv[i + 1] != want:
                continue
            st = _stat(pid)
            if st and st[1] == self.proc.pid and st[0] not in ("Z", "X"):
                out.append(pid)
        return sorted(out)

    def all_pids(self):
        return {r: self.pids(r) for r in ("acceptor", "parser", "shipper")}

    def kill_child(self, role, sig=signal.SIGKILL, index=0):
        pids = self.pids(role)
        check(len(pids) > index, "no %s child to kill (found %r)" % (role, pids))
        pid = pids[index]
        os.kill(pid, sig)
        return pid

    def wait_respawn(self, role, old_pid, count, timeout=None):
        """Waits until `count` live children of ROLE exist and old_pid is not among them."""
        deadline = time.monotonic() + (timeout or tmo(20))
        while time.monotonic() < deadline:
            p = self.pids(role)
            if len(p) >= count and old_pid not in p:
                return p
            time.sleep(0.05)
        raise TestFailure("%s %d was not replaced within the timeout (now %r); log tail:\n%s"
                          % (role, old_pid, self.pids(role), self.log_tail()))

    def _descendants(self):
        if not self.proc:
            return []
        root = self.proc.pid
        parent = {}
        for pid in _all_pids():
            st = _stat(pid)
            if st:
                parent[pid] = st[1]
        out, frontier = [], {root}
        while frontier:
            nxt = {p for p, pp in parent.items() if pp in frontier and p not in out}
            out.extend(nxt)
            frontier = nxt
        return out

    def stop(self, timeout=None, expect_rc=0):
        """SIGTERM, waits (bounded), checks the exit code (0 by default). Returns it."""
        if not self.proc:
            return None
        kids = self._descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout or tmo(30))
        except subprocess.TimeoutExpired:
            self.kill_tree()
            raise TestFailure("quicstashd did not stop within the timeout after SIGTERM; log tail:\n%s"
                              % self.log_tail())
        deadline = time.monotonic() + tmo(10)
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [k for k in kids if _alive(k)]
        for k in left:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        self._close_notify()
        check(not left, "children %r still alive after the supervisor stopped" % left)
        if expect_rc is not None:
            why = [l for l in self.log(since_start=True).splitlines()
                   if re.search(r"while stopping|did not stop|not stop cleanly|error|<3>", l)]
            check(rc == expect_rc, "quicstashd exited with %r after SIGTERM, expected %r (%s); log tail:\n%s"
                  % (rc, expect_rc, " | ".join(why[-4:]), self.log_tail()))
        self.check_sanitizers()
        return rc

    def check_sanitizers(self):
        """Under ASan: no sanitizer report anywhere in this run's log. A child that a report ends
        (ASan, UBSan: no recovery) or that leaks at a reload's exit is restarted or replaced by the
        supervisor, and the service may go on as if nothing happened: only its log tells."""
        if not SANITIZE:
            return
        lines = self.log(since_start=True).splitlines()
        bad = [i for i, l in enumerate(lines) if SANITIZER_REPORT.search(l)]
        check(not bad, "a sanitizer report in the server's log:\n%s"
              % ("\n".join(lines[bad[0]:bad[0] + 30]) if bad else ""))

    def kill_tree(self):
        """SIGKILL the supervisor and every descendant at once (a power cut, as far as processes go).
        One signal to the process group first (the server runs in a session of its own and its
        children stay in its group): every member dies at once, so none sees another die and stops
        cleanly before its own kill (a shipper that saw the supervisor go would commit and trim, a
        clean stop, not the crash a test asks for). Then each descendant by pid, for any that left
        the group."""
        if not self.proc:
            return
        pids = self._descendants()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        own = [self.proc.pid] if self.proc.poll() is None else []  # not a reaped (reusable) pid
        for p in own + pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._close_notify()

    def _close_notify(self):
        if self._notify_sock:
            try:
                self._notify_sock.close()
            except OSError:
                pass
            self._notify_sock = None

    def log(self, since_start=False):
        try:
            with open(self.logfile, "rb") as f:
                if since_start:
                    f.seek(self._log_start)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, text, since, timeout):
        """Waits until text appears in the log after offset since (len(server.log()) taken before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log()[since:]:
                return True
            time.sleep(0.1)
        return False

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def check_spool(self, repair=False, spool=None):
        """Runs quicstashd --check-spool DIR [--repair]; returns (rc, output)."""
        argv = [QUICSTASHD, "--check-spool", spool or self.spool] + (["--repair"] if repair else [])
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=tmo(60),
                           preexec_fn=_pdeathsig)
        return p.returncode, p.stdout.decode("utf-8", "replace")



class KeptSocket:
    """PID 1 keeps the socket while the service restarts: emulated by holding the socket here and
    passing it as LISTEN_FDS on every start. Each start gets a fresh runtime directory, as
    systemd's RuntimeDirectory= (removed when the service stops) gives it."""

    def __init__(self, server):
        self.server = server
        self.usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.usock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.usock.bind(("127.0.0.1", server.udp_port))
        self.starts = 0

    def start(self, extra=()):
        """Starts quicstashd on the kept socket (with `extra` arguments after the server's own) and
        waits for its "ready:" line."""
        server, fd = self.server, self.usock.fileno()
        argv = server.argv() + list(extra)
        # LISTEN_PID must be the service's pid: sh sets it to its own and execs quicstashd.
        cmd = "exec 3<&%d; LISTEN_FDS=1 LISTEN_PID=$$ exec %s" % (fd, " ".join("'%s'" % a for a in argv))
        lf = open(server.logfile, "ab")
        server._log_start = os.path.getsize(server.logfile)
        server.proc = subprocess.Popen(["sh", "-c", cmd], stdout=lf, stderr=lf, pass_fds=(fd,), cwd=server.dir,
                                       start_new_session=True, preexec_fn=_pdeathsig)
        deadline = time.monotonic() + tmo(30)
        while time.monotonic() < deadline and server.log().count("ready:") < self.starts + 1:
            time.sleep(0.05)
        self.starts += 1
        check("passed by systemd" in server.log(), "quicstashd did not take the passed socket")

    def close(self):
        self.usock.close()

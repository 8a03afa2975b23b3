#!/usr/bin/env python3
"""systemd integration without a running systemd (issue 4):
1. Socket activation: `systemd-socket-activate --datagram` owns the UDP socket and starts
   quicstashd on the first datagram; quicstashd serves on the passed socket (it says so) and
   delivers events.
2. sd_notify through a NOTIFY_SOCKET this test listens on: READY=1 once every child serves,
   STATUS= lines, RELOADING=1 (+MONOTONIC_USEC) then READY=1 around SIGHUP, STOPPING=1 on SIGTERM;
   children do not inherit NOTIFY_SOCKET (only the supervisor's pid sends).
3. WATCHDOG=1 when WATCHDOG_USEC asks for it.
4. A restart of the whole service with the socket kept by "systemd" (this test holds it and passes
   it as LISTEN_FDS, as PID 1 does): a client sending all along loses nothing acknowledged and
   surfaces no error (exit 0).
5. A crash of the whole service (kill -9) after a reload, with the socket kept and a fresh runtime
   directory: the restarted server resets the old connections (the secret is kept at --secret-path,
   and their bank-1 connection IDs are known to be gone), so the client resumes within seconds, not
   after its 30 s idle timeout.
6. The socket passed is elsewhere than --server-addr (one changed, not the other): quicstashd uses
   on the socket and its log says --server-addr is not used.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


class Notify:
    """A NOTIFY_SOCKET listener recording (sender pid, message)."""

    def __init__(self, d):
        self.path = os.path.join(d, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.msgs = []
        threading.Thread(target=self._loop, daemon=True).start()
        q.at_cleanup(self.sock.close)

    def _loop(self):
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except OSError:
                return
            pid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(cdata[0:4], "little")
            self.msgs.append((pid, data.decode(errors="replace")))

    def wait_for(self, needle, timeout, after=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (pid, m) in enumerate(self.msgs[after:], after):
                if needle in m:
                    return i, pid, m
            time.sleep(0.05)
        raise q.TestFailure("no %r through NOTIFY_SOCKET within %.0fs; got %r" % (needle, timeout, self.msgs[-10:]))


def socket_activation_and_notify():
    recv = q.Receiver().start()
    d = q.mkdtemp("sysd")
    port = q.free_port("udp")
    nt = Notify(d)
    env = dict(os.environ, NOTIFY_SOCKET=nt.path, WATCHDOG_USEC="1000000")
    argv = ["systemd-socket-activate", "--datagram", "-l", "127.0.0.1:%d" % port,
            "-E", "NOTIFY_SOCKET", "-E", "WATCHDOG_USEC",
            q.QUICSTASHD, "-s", "127.0.0.1:%d" % port, "-l", recv.addr, "--spool-dir", os.path.join(d, "spool"),
            "-c", os.path.join(d, "cert.der"), "--key-path", os.path.join(d, "key.pem")]
    logf = open(os.path.join(d, "server.log"), "wb")
    proc = subprocess.Popen(argv, stdout=logf, stderr=logf, env=env, cwd=d, start_new_session=True,
                            preexec_fn=q._pdeathsig)
    q.at_cleanup(lambda: (proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL)))
    time.sleep(0.5)
    # Nothing runs yet: the first datagram starts quicstashd. The certificate does not exist yet
    # either, so poke the port with a junk datagram, then wait for READY=1.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\x00" * 32, ("127.0.0.1", port))
    s.close()
    _, ready_pid, _ = nt.wait_for("READY=1", q.tmo(30))
    check(ready_pid == proc.pid, "READY=1 came from pid %r, not the service's main pid %d" % (ready_pid, proc.pid))
    text = open(os.path.join(d, "server.log"), errors="replace").read()
    check("passed by systemd" in text, "quicstashd did not use the activated socket; log:\n%s" % text[-1500:])
    nt.wait_for("STATUS=", q.tmo(5))
    nt.wait_for("WATCHDOG=1", q.tmo(5))
    srv = type("S", (), {})()
    srv.addr, srv.cert, srv.dir = "127.0.0.1:%d" % port, os.path.join(d, "cert.der"), d
    rc, out, err = q.send(srv, q.gen_events(500), timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "send through the activated socket: exit %r %s" % (rc, err[-500:]))
    check(not recv.wait_numbers(range(500), q.tmo(20)), "events missing after socket activation")
    # reload
    n0 = len(nt.msgs)
    os.kill(proc.pid, signal.SIGHUP)
    i, _, m = nt.wait_for("RELOADING=1", q.tmo(10), after=n0)
    check("MONOTONIC_USEC=" in m, "RELOADING=1 without MONOTONIC_USEC: %r" % m)
    nt.wait_for("READY=1", q.tmo(60), after=i + 1)
    # stop
    n0 = len(nt.msgs)
    os.kill(proc.pid, signal.SIGTERM)
    nt.wait_for("STOPPING=1", q.tmo(10), after=n0)
    rc = proc.wait(timeout=q.tmo(30))
    check(rc == 0, "quicstashd exit %r after SIGTERM" % rc)
    senders = {pid for pid, _ in nt.msgs}
    check(senders == {proc.pid}, "NOTIFY_SOCKET messages came from %r, not only the supervisor %d"
          % (senders, proc.pid))
    log("socket activation, READY/STATUS/WATCHDOG/RELOADING/STOPPING all seen from the main pid")


def restart_with_kept_socket():
    recv = q.Receiver().start()
    server = q.Server(recv, name="kept")
    kept = q.KeptSocket(server)
    kept.start()
    n = q.scale(60000)
    load = q.Load(server, n, client_timeout=int(q.tmo(60)), feed_rate=n / 4)
    load.start_client()
    q.mid_stream(load, 0.2)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    rc = server.proc.wait(timeout=q.tmo(60))
    check(rc == 0, "quicstashd exit %r on SIGTERM" % rc)
    kept.start()
    log("service restarted with the kept socket in %.2fs" % (time.monotonic() - t0))
    rc = q.finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "only %d of %d acknowledged" % (len(acked), n))
    dups = q.verify_delivery(recv, acked, q.tmo(60))
    server.stop()
    kept.close()
    return dups


def read_secret(server):
    path = os.path.join(server.dir, "quicstash.secret")
    st = os.stat(path)
    check(st.st_mode & 0o777 == 0o600 and st.st_size == 32,
          "%s: mode %o, %d bytes; expected 0600 and 32" % (path, st.st_mode & 0o777, st.st_size))
    with open(path, "rb") as f:
        return f.read()


# A client's QUIC idle timeout (client/lib/conn.c): how long a client whose server crashed waits
# before it gives up on its connection, unless the restarted server's stateless reset reaches it.
CLIENT_IDLE_TIMEOUT = 30.0


def crash_with_kept_socket():
    """kill -9 of the whole service (OOM killer, crash) after a reload, restarted on the kept socket
    with a fresh runtime directory. The new server must answer the old connections with stateless
    resets their clients accept, so every client reconnects at once instead of waiting out its idle
    timeout; nothing acknowledged is lost. Two things make that work: the secret is persistent state
    (--secret-path, default beside the certificate and key), and the old connections' IDs carry the
    steering key of the reloaded generation (bank 1), which the restarted server (bank 0) must treat
    as gone, not as a live sibling's misrouted packets."""
    recv = q.Receiver().start()
    server = q.Server(recv, name="crash")
    kept = q.KeptSocket(server)
    kept.start()
    secret = read_secret(server)
    n = q.scale(60000)
    load = q.Load(server, n, client_timeout=int(q.tmo(90)), feed_rate=n / 8)
    load.start_client()
    q.mid_stream(load, 0.05)
    reloads = server.log().count("reload 1 complete")
    os.kill(server.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + q.tmo(30)
    while server.log().count("reload 1 complete") == reloads and time.monotonic() < deadline:
        time.sleep(0.05)
    check(server.log().count("reload 1 complete") > reloads, "the reload did not complete:\n%s" % server.log_tail())
    check(load.client.running(), "the client finished before the crash")
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=q.tmo(10))
    time.sleep(1.0)  # the client keeps sending into the kept socket meanwhile
    acked_before = len(load.acked_numbers())
    kept.start()
    t0 = time.monotonic()
    resumed = load.client.wait_acked(acked_before + 10, CLIENT_IDLE_TIMEOUT + q.tmo(10))
    took = time.monotonic() - t0
    log("after the crash: acknowledgements resumed %.2fs after the new server was ready (%d -> %d)"
        % (took, acked_before, resumed))
    check(read_secret(server) == secret, "the secret changed across the restart")

    def reset_stats():
        return re.findall(r"stateless resets sent (\d+), misrouted packets dropped (\d+)", server.log(since_start=True))
    deadline = time.monotonic() + q.tmo(5)  # acceptors log their counters on a timer
    while not any(int(r) for r, _ in reset_stats()) and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = reset_stats()
    # Not scaled for sanitizers: a reconnect takes well under a second even there; the bound only
    # has to tell a stateless reset from the idle timeout.
    check(resumed > acked_before and took < CLIENT_IDLE_TIMEOUT / 3,
          "the client took %.1fs to make progress after the restart (idle timeout %.0fs): no stateless reset "
          "it accepted reached it (restarted server: resets sent, misrouted dropped %r); client stderr:\n%s"
          % (took, CLIENT_IDLE_TIMEOUT, stats[-2:], load.client.stderr()[-800:]))
    check(stats and max(int(r) for r, _ in stats) > 0 and all(m == "0" for _, m in stats),
          "the restarted server should reset the old connections and drop nothing as misrouted: %r" % stats[-3:])
    q.finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "only %d of %d acknowledged" % (len(acked), n))
    dups = q.verify_delivery(recv, acked, q.tmo(60))
    server.stop()
    kept.close()
    return took, dups


def activated_elsewhere():
    """The socket systemd passes is on another address than --server-addr (one of them changed, not
    both): quicstashd serves on the socket and says in its log that --server-addr is not used."""
    d = q.mkdtemp("sysd-other")
    port, other = q.free_port("udp"), q.free_port("udp")
    argv = ["systemd-socket-activate", "--datagram", "-l", "127.0.0.1:%d" % port,
            q.QUICSTASHD, "-s", "127.0.0.1:%d" % other, "-l", "127.0.0.1:%d" % q.free_port("tcp"),
            "--spool-dir", os.path.join(d, "spool"), "-c", os.path.join(d, "cert.der"),
            "--key-path", os.path.join(d, "key.pem")]
    logf = open(os.path.join(d, "server.log"), "wb")
    proc = subprocess.Popen(argv, stdout=logf, stderr=logf, cwd=d, start_new_session=True, preexec_fn=q._pdeathsig)
    q.at_cleanup(lambda: (proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL)))
    time.sleep(0.5)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\x00" * 32, ("127.0.0.1", port))
    s.close()
    want = "bound to 127.0.0.1 port %d, not --server-addr 127.0.0.1:%d" % (port, other)
    deadline = time.monotonic() + q.tmo(30)
    text = ""
    while want not in text and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        text = open(os.path.join(d, "server.log"), errors="replace").read()
    check(want in text and "passed by systemd" in text,
          "no warning that --server-addr is not used; log:\n%s" % text[-1500:])
    os.kill(proc.pid, signal.SIGTERM)
    check(proc.wait(timeout=q.tmo(30)) == 0, "quicstashd exit %r after SIGTERM" % proc.returncode)
    return "warned: %s" % want


def need_tools():
    q.need_binaries()
    if not os.access("/usr/bin/systemd-socket-activate", os.X_OK):
        raise q.Skip("systemd-socket-activate is not installed")


def run():
    need_tools()
    socket_activation_and_notify()
    activated_elsewhere()
    dups = restart_with_kept_socket()
    took, cdups = crash_with_kept_socket()
    return "socket activation + sd_notify protocol; a socket elsewhere than --server-addr: warned; whole-service restart under load with the socket " \
           "kept: zero loss, %d duplicates, client exit 0; kill -9 after a reload: clients resumed %.1fs " \
           "after the restart, zero loss, %d duplicates" % (dups, took, cdups)


def alone(fn):
    """fn as a case of its own, checking the tools first as run() does."""
    return lambda: (need_tools(), fn())[1]


CASES = [("socket-activation", alone(socket_activation_and_notify)),
         ("activated-elsewhere", alone(activated_elsewhere)),
         ("restart-kept-socket", alone(restart_with_kept_socket)),
         ("crash-kept-socket", alone(crash_with_kept_socket))]

if __name__ == "__main__":
    q.main(run, cases=CASES)

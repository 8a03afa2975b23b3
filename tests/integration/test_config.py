#!/usr/bin/env python3
"""The configuration a child runs is the one the supervisor validated (issue 26, points 5 and 7).

1. Typo, then crash: the --config file gets a typo without a reload; the shipper and a parser are
   killed (-9). They come back (the file is not read again) and events are still acknowledged. A
   SIGHUP with that typo, then with a NUL byte in a line, is refused (FILE:LINE in the log), the
   children stay, and a reload of a good change (debug) is applied to the supervisor and children.
2. A reload changing spool-dir, or naming an output file in a missing directory, is refused with
   the reason in the log; the service acknowledges.
3. Bad files at start, each exit 2 with a message naming the file (and line): --config naming a
   directory, --conf FILE (getopt's abbreviation), a line starting with NUL, a line over 8 KiB,
   -l file:/nonexistent/dir/x, a private key of mode 0644.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


class FileServer(q.Server):
    """A Server whose spool directory and output come from its --config file (the command line
    would win)."""

    def argv(self):
        a = super().argv()
        for opt in ("--spool-dir", "-l"):
            i = a.index(opt)
            a = a[:i] + a[i + 2:]
        return a


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def wait_log(server, text, since, timeout):
    return server.wait_log(text, since, timeout)


def send_ok(server, recv, start, n, what):
    rc, _, err = q.send(server, q.gen_events(n, start), timeout=q.tmo(90), client_timeout=int(q.tmo(45)))
    check(rc == 0, "%s: the send was not acknowledged (exit %r): %s\nlog tail:\n%s"
          % (what, rc, err[-400:], server.log_tail()))
    missing = recv.wait_numbers(range(start, start + n), q.tmo(30), quiet=0.2)
    check(not missing, "%s: %d events missing" % (what, len(missing)))
    return start + n


def stable(server, pids, what, seconds=2.0):
    """The children stay the same for a while (no restart loop, no reload)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = server.all_pids()
        check(now == pids, "%s: children changed %r -> %r; log tail:\n%s" % (what, pids, now, server.log_tail()))
        time.sleep(0.2)


def refused_reload(server, conf, data, why, what):
    write(conf, data)
    pids = server.all_pids()
    mark = len(server.log())
    os.kill(server.pid, signal.SIGHUP)
    check(wait_log(server, "the running generation stays", mark, q.tmo(15)),
          "%s: the reload was not refused; log tail:\n%s" % (what, server.log_tail()))
    check(why in server.log()[mark:], "%s: the log does not say %r:\n%s" % (what, why, server.log()[mark:]))
    stable(server, pids, what)


def typo_then_crash():
    recv = q.Receiver().start()
    d = q.mkdtemp("cfgcrash")
    conf = os.path.join(d, "quicstash.conf")
    write(conf, "parsers = 1\nstats-interval = 300\n")
    server = q.Server(recv, extra=["--config", conf], workdir=d, name="cfgcrash")
    server.start()
    n = q.scale(500)
    nxt = send_ok(server, recv, 0, n, "baseline")
    # A typo saved without a reload, then crashes: the children must not read the file again.
    write(conf, "parsers = 1\nstats-interval = soon\n")
    for role in ("shipper", "parser"):
        count = len(server.pids(role))
        mark = len(server.log())
        old = server.kill_child(role, signal.SIGKILL)
        server.wait_respawn(role, old, count)
        time.sleep(1)  # a child that read the file would have exited 2 by now (and again after backoff)
        check("exited with status 2" not in server.log()[mark:],
              "a restarted %s exited 2 (it read the edited file):\n%s" % (role, server.log()[mark:][-1500:]))
        nxt = send_ok(server, recv, nxt, n, "after kill -9 of the %s with a typo in the file" % role)
        log("%s killed with a typo in the file: back and acknowledging" % role)
    log("typo in the file, shipper and parser killed: both back, events acknowledged")
    # The same typo on SIGHUP: refused, the file's line named, nothing replaced.
    refused_reload(server, conf, "parsers = 1\nstats-interval = soon\n", "quicstash.conf:2", "SIGHUP with a typo")
    refused_reload(server, conf, b"parsers = 1\n\0stats-interval = 5\n", "quicstash.conf:2: NUL byte",
                   "SIGHUP with a NUL line")
    refused_reload(server, conf, "parsers = 1\n# " + "x" * 9000 + "\n", "quicstash.conf:2: line longer",
                   "SIGHUP with a line over 8 KiB")
    nxt = send_ok(server, recv, nxt, n, "after the refused reloads")
    # A crash after the refused reloads still runs the last validated text.
    old = server.kill_child("shipper", signal.SIGKILL)
    server.wait_respawn("shipper", old, 1)
    nxt = send_ok(server, recv, nxt, n, "after kill -9 of the shipper with a bad file")
    # A good change is applied in full: debug logging in the supervisor and in the new children.
    write(conf, "parsers = 1\nstats-interval = 300\ndebug\n")
    mark = len(server.log())
    os.kill(server.pid, signal.SIGHUP)
    check(wait_log(server, "reload 1 complete", mark, q.tmo(60)), "the good reload did not complete:\n%s"
          % server.log_tail())
    # the parser logs a rejected frame only with debug on
    q.send(server, ["this is not JSON"], timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(wait_log(server, "<7>parser[", mark, q.tmo(10)), "debug from the reloaded file is not applied to "
          "the parser:\n%s" % server.log()[mark:][-2000:])
    check("<7>supervisor[" in server.log()[mark:], "debug from the reloaded file is not applied to the supervisor")
    nxt = send_ok(server, recv, nxt, n, "after the good reload")
    server.stop()
    return nxt


def spool_dir_reload():
    recv = q.Receiver().start()
    d = q.mkdtemp("cfgspool")
    conf = os.path.join(d, "quicstash.conf")
    server = FileServer(recv, extra=["--config", conf], workdir=d, name="cfgspool")
    good = "parsers = 1\nspool-dir = %s\nlogstash-addr = %s\n" % (server.spool, recv.addr)
    write(conf, good)
    server.start()
    n = q.scale(500)
    nxt = send_ok(server, recv, 0, n, "baseline")
    other = os.path.join(d, "spool2")
    refused_reload(server, conf, good.replace(server.spool, other), "--spool-dir cannot change",
                   "SIGHUP with a new spool-dir")
    refused_reload(server, conf, good.replace(recv.addr, "file:/nonexistent/dir/x"),
                   "file:/nonexistent/dir/x: No such file", "SIGHUP with -l file: in a missing directory")
    check(server.running(), "the supervisor died")
    nxt = send_ok(server, recv, nxt, n, "after the refused spool-dir change")
    # and a crash after it still uses the spool it was started with
    old = server.kill_child("shipper", signal.SIGKILL)
    server.wait_respawn("shipper", old, 1)
    nxt = send_ok(server, recv, nxt, n, "after kill -9 of the shipper")
    server.stop()
    log("a new spool-dir, an output file in a missing directory on reload: refused with the reason, "
        "the service acknowledges")


def bad_files():
    d = q.mkdtemp("cfgbad")
    common = ["-s", "127.0.0.1:%d" % q.free_port("udp"), "-l", "127.0.0.1:%d" % q.free_port("tcp"),
              "--spool-dir", os.path.join(d, "spool"), "-c", os.path.join(d, "c.der"), "--key-path",
              os.path.join(d, "k.pem")]
    os.mkdir(os.path.join(d, "conf.d"))
    write(os.path.join(d, "typo.conf"), "parsers = 1\nmax-connections = lots\n")
    write(os.path.join(d, "nul.conf"), b"parsers = 1\n\0max-connections = lots\n")
    write(os.path.join(d, "long.conf"), "parsers = 1\n# " + "x" * 9000 + "max-connections = lots\n")
    # The key: a real pair made by a first start, then opened to group and others.
    srv = q.Server(workdir=d, name="cfgbad")
    srv.start()
    srv.stop()
    os.chmod(srv.key, 0o644)
    cases = [
        ("--config naming a directory", ["--config", "conf.d"], "conf.d"),
        ("--conf (abbreviation)", ["--conf", "typo.conf"], "typo.conf:2"),
        ("--co= (abbreviation)", ["--co=typo.conf"], "typo.conf:2"),
        ("a line starting with NUL", ["--config", "nul.conf"], "nul.conf:2"),
        ("a line over 8 KiB", ["--config", "long.conf"], "long.conf:2"),
        ("-l file: in a missing directory", ["-l", "file:/nonexistent/dir/x"], "/nonexistent/dir/x"),
        ("a key of mode 0644", ["-c", srv.cert, "--key-path", srv.key], srv.key),
    ]
    failed = []
    for what, args, name in cases:
        argv = [q.QUICSTASHD] + common + args
        p = subprocess.Popen(argv, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True, preexec_fn=q._pdeathsig)
        try:
            _, err = p.communicate(timeout=q.tmo(10))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            _, err = p.communicate()
            failed.append("%s: quicstashd started (still running after %.0fs) instead of exit 2"
                          % (what, q.tmo(10)))
            continue
        err = err.decode(errors="replace")
        if p.returncode == 2 and name in err and "starting" not in err:
            log("%s: exit 2, %s" % (what, err.strip().splitlines()[-1][:160]))
        else:
            failed.append("%s: exit %r, expected 2 with a message naming %r before starting; stderr: %s"
                          % (what, p.returncode, name, err.strip()[-300:]))
    check(not failed, "bad files not refused at start:\n  " + "\n  ".join(failed))


def run():
    q.need_binaries()
    bad_files()
    spool_dir_reload()
    n = typo_then_crash()
    return ("bad files refused at start (exit 2, FILE:LINE); typo then kill -9 of shipper and parser: "
            "serving; bad reloads and a new spool-dir refused; %d events acknowledged" % n)


CASES = [("bad-files", bad_files), ("spool-dir-reload", spool_dir_reload), ("typo-then-crash", typo_then_crash)]

if __name__ == "__main__":
    q.main(run, cases=CASES)

#!/usr/bin/env python3
"""quicstashd under systemd logs to journald with structured fields (issue 22 item 4), checked
against a real systemd-journald.

The test starts Debian's systemd-journald in a private mount namespace (a tmpfs on /run and on
/var/log/journal, so the machine's own logs are not touched) and quicstashd in that namespace with
stderr on a journal stream (systemd-cat) and JOURNAL_STREAM naming it, as systemd does for a service.
Then journalctl -o json (in the namespace) must show:
  1. every line of quicstashd as a native entry (_TRANSPORT=journal: nothing fell back to stderr),
     with SYSLOG_IDENTIFIER=quicstashd, from each role (QUICSTASH_ROLE) with the _PID of that
     process (the keyholder says nothing when all is well), the children included: they run chrooted in the runtime directory, where journald's
     socket is reachable only through the binding common/log_journal.c makes;
  2. PRIORITY as logged; CODE_FILE/CODE_FUNC of the call site;
  3. the fields call sites attach: a rejected frame (--debug) with QUICSTASH_PEER, QUICSTASH_PEER_PORT
     and QUICSTASH_CODE=invalid_json; the output's failure to reach Logstash (nobody listens) with
     QUICSTASH_PEER=the address and QUICSTASH_CODE=ECONNREFUSED;
  4. the rate limit's report as an entry with QUICSTASH_SUPPRESSED=N: 1,000 rejected frames, 20
     lines shown, 980 reported at the parser's exit;
  5. when a child cannot bind journald's socket into its chroot (here: a FIFO put where the binding
     goes, as a compromised child could), it says so and its lines still reach the journal, through
     stderr (_TRANSPORT=stdout), none lost.
Needs root (mount namespace, chroot) and systemd-journald; skips without them."""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

JOURNALD = "/lib/systemd/systemd-journald"
# In the new mount namespace: a fresh /run (journald makes /run/systemd/journal and /run/log/journal
# there) and, when the machine keeps a persistent journal, a tmpfs over it.
START = ("mount -t tmpfs tmpfs /run && "
         "{ [ ! -d /var/log/journal ] || mount -t tmpfs tmpfs /var/log/journal; } && exec %s" % JOURNALD)
# What systemd does for a service's stderr: a journal stream, and JOURNAL_STREAM=device:inode of it.
STREAM = 'export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); exec "$@"'
N_BAD = 1000


class Journald:
    def __init__(self, d):
        self.out = open(os.path.join(d, "journald.out"), "wb")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", START],
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out)
        q.at_cleanup(self.stop)
        sock = "/proc/%d/root/run/systemd/journal/stdout" % self.proc.pid
        deadline = time.monotonic() + q.tmo(20)
        while not os.path.exists(sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise q.Skip("systemd-journald did not start here (exit %r): %s"
                             % (self.proc.poll(), open(self.out.name, "rb").read()[-300:]))
            time.sleep(0.1)

    def enter(self):
        return ["nsenter", "--mount=/proc/%d/ns/mnt" % self.proc.pid, "--"]

    def entries(self):
        p = subprocess.run(self.enter() + ["journalctl", "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=quicstashd"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=q.tmo(30))
        return [json.loads(l) for l in p.stdout.decode("utf-8", "replace").splitlines() if l.startswith("{")]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def one(entries, what, pred):
    hits = [e for e in entries if pred(e)]
    check(hits, "no journal entry %s; quicstashd's entries:\n%s" % (what, "\n".join(
        "%s %s %s" % (e.get("QUICSTASH_ROLE"), e.get("PRIORITY"), e.get("MESSAGE")) for e in entries[-60:])))
    return hits[0]


def fallback(jd=None):
    jd = jd or journald()
    server = q.Server(None, name="journald-fallback", confined=True)
    rundir = os.path.join(server.dir, "run")
    os.makedirs(os.path.join(rundir, "run/systemd/journal"))
    os.mkfifo(os.path.join(rundir, "run/systemd/journal/socket"))
    server.extra += ["--runtime-dir", rundir]
    server.wrap = jd.enter() + ["systemd-cat", "-t", "quicstashd", "sh", "-c", STREAM, "journal-stream"]
    server.start()
    acc = server.pids("acceptor")
    server.stop()
    deadline = time.monotonic() + q.tmo(10)
    while True:
        es = [e for e in jd.entries() if e.get("_PID") and int(e["_PID"]) in acc]
        if any("serving QUIC" in e.get("MESSAGE", "") for e in es) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    one(es, "from the acceptor saying that it logs to stderr",
        lambda e: "journald:" in e.get("MESSAGE", "") and "logging to stderr" in e.get("MESSAGE", ""))
    e = one(es, "'serving QUIC' from the acceptor", lambda e: "serving QUIC" in e.get("MESSAGE", ""))
    check(e.get("_TRANSPORT") == "stdout" and e.get("PRIORITY") == "6",
          "the acceptor's line after the fallback: %r" % e)
    log("fallback: the acceptor's %d lines came through stderr" % len(es))
    return "the acceptor fell back to stderr, said so, and lost no line"


def journald():
    """A journald of the test's own, or Skip."""
    q.need_binaries()
    if os.geteuid() != 0:
        raise q.Skip("needs root: a mount namespace for journald, chrooted children")
    for tool in ("unshare", "nsenter", "systemd-cat", "journalctl", "stat"):
        if not shutil.which(tool):
            raise q.Skip("%s is not installed" % tool)
    if not os.access(JOURNALD, os.X_OK):
        raise q.Skip("%s is not installed (package systemd)" % JOURNALD)
    return Journald(q.mkdtemp("journald"))


def native(jd=None):
    jd = jd or journald()
    # confined: the children chroot also under ASan, the binding into the chroot is what is tested
    server = q.Server(None, extra=["--debug"], name="journald", confined=True)
    server.wrap = jd.enter() + ["systemd-cat", "-t", "quicstashd", "sh", "-c", STREAM, "journal-stream"]
    server.start()
    pids = {r: server.pids(r) for r in ("keyholder", "acceptor", "parser", "shipper")}
    pids["supervisor"] = [server.proc.pid]
    log("quicstashd pids: %r" % pids)
    rc, out, err = q.send(server, (struct.pack(">I", 4) + b"{bad") * N_BAD, extra_args=["--raw"],
                          timeout=q.tmo(60), client_timeout=int(q.tmo(20)))
    rejects = sum(1 for l in out.splitlines() if l.startswith("reject "))
    check(rc == 0 and rejects == N_BAD, "raw send: exit %r, %d of %d rejected; %r" % (rc, rejects, N_BAD, err[-300:]))
    server.stop()
    check(server.log(since_start=True).count("\n") <= 1, "quicstashd wrote to the log file, not the journal:\n%s"
          % server.log_tail())

    deadline = time.monotonic() + q.tmo(10)
    while True:
        es = jd.entries()
        if any(e.get("QUICSTASH_SUPPRESSED") for e in es) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    log("%d journal entries from quicstashd" % len(es))
    # 1. native entries only, from every role, with that process's pid
    stdout_ones = [e.get("MESSAGE") for e in es if e.get("_TRANSPORT") != "journal"]
    check(not stdout_ones, "%d entries came through stderr, not the native protocol: %r"
          % (len(stdout_ones), stdout_ones[:5]))
    for role, ps in pids.items():
        if role == "keyholder" and not any(e.get("QUICSTASH_ROLE") == role for e in es):
            continue  # it has nothing to say when all goes well
        e = one(es, "from the %s" % role, lambda e: e.get("QUICSTASH_ROLE") == role)
        check(int(e["_PID"]) in ps, "%s's entry has _PID %s, the %s runs as %r" % (role, e["_PID"], role, ps))
    # 2. priority and the call site
    e = one(es, "'ready' from the supervisor", lambda e: e.get("MESSAGE", "").startswith("ready: "))
    check(e.get("PRIORITY") == "6" and e.get("CODE_FILE", "").endswith("supervisor.c") and e.get("CODE_FUNC"),
          "the ready line: PRIORITY %r CODE_FILE %r CODE_FUNC %r" % (e.get("PRIORITY"), e.get("CODE_FILE"),
                                                                      e.get("CODE_FUNC")))
    # 3. the fields of a call site
    e = one(es, "for a rejected frame with its client and code",
            lambda e: e.get("QUICSTASH_ROLE") == "parser" and e.get("QUICSTASH_CODE") == "invalid_json")
    check(e.get("QUICSTASH_PEER") == "127.0.0.1" and e.get("QUICSTASH_PEER_PORT", "").isdigit()
          and e.get("PRIORITY") == "7", "rejected frame entry: %r" % e)
    e = one(es, "for the output's failure to reach Logstash",
            lambda e: e.get("QUICSTASH_ROLE") == "shipper" and e.get("QUICSTASH_CODE") == "ECONNREFUSED")
    check(e.get("QUICSTASH_PEER") == server.logstash and e.get("PRIORITY") == "4", "output entry: %r" % e)
    # 4. the rate limit's report
    shown = [e for e in es if e.get("QUICSTASH_ROLE") == "parser" and e.get("QUICSTASH_CODE") == "invalid_json"
             and not e.get("QUICSTASH_SUPPRESSED")]
    e = one(es, "with QUICSTASH_SUPPRESSED", lambda e: e.get("QUICSTASH_SUPPRESSED"))
    check(len(shown) + int(e["QUICSTASH_SUPPRESSED"]) == N_BAD and "similar messages suppressed" in e["MESSAGE"],
          "%d rejection entries shown + %s suppressed != %d: %r" % (len(shown), e["QUICSTASH_SUPPRESSED"], N_BAD, e))
    return "%d native entries from 5 roles with pids, priorities, peer/code fields and a suppressed count" % len(es)


def run():
    jd = journald()
    return "%s; %s" % (native(jd), fallback(jd))


CASES = [("native", native), ("fallback", fallback)]

if __name__ == "__main__":
    q.main(run, cases=CASES)

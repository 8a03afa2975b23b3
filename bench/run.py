#!/usr/bin/env python3
"""The side-by-side benchmark behind bench/run (see bench/README.md).

Measures, on the same corpus and with the same TCP receiver (qs-bench-receiver):
  1. quicstash end to end, acknowledged, --durability fsync and write, at full
     load and at half load (--rate = 50% of the full-load rate);
  2. rsyslog relaying imptcp -> omfwd TCP, in-memory queue and disk queue;
  3. the raw QUIC limit: ngtcp2's example HTTP/3 client uploading the corpus to
     its example server;
  4. plain TCP straight into the receiver.
Prints one table and writes it, with the machine's description, to
bench/RESULTS.md. Every process it starts runs in its own session and is
killed (its whole process group) at the end, also on errors and signals.
"""
import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import storm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------- processes

_children = []  # Popen objects, each the leader of its own session/group
_libc = ctypes.CDLL(None, use_errno=True)


def _pdeathsig():
    # in the child, before exec: die with us even if we are SIGKILLed (PR_SET_PDEATHSIG = 1)
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def _cleanup():
    for p in list(_children):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + 3
    for p in list(_children):
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group: children left behind too
        except OSError:
            pass
        try:
            p.wait(timeout=1)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
    _children.clear()


def _on_signal(sig, frame):
    _cleanup()
    sys.stderr.write("bench: interrupted by signal %d\n" % sig)
    os._exit(130)


def start(argv, log=None, env=None, cwd=None):
    """Starts argv in its own process group (so the group can be killed), tracked.

    A process group, not a session: with the kernel's autogroup scheduling (on by default) every
    session is one scheduling group sharing the CPU evenly with the others, so a server in a session
    of its own would share one group's CPU time among all its processes against the load generator
    in another. In bench/run's session every thread competes as itself, for every setup alike."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out if log else subprocess.DEVNULL,
                         env=env, cwd=cwd, process_group=0, preexec_fn=_pdeathsig)
    if log:
        out.close()
    _children.append(p)
    return p


def stop(p, timeout=10):
    """SIGTERM to p's group, then SIGKILL after timeout."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        p.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass
    if p in _children:
        _children.remove(p)


def run_measured(argv, timeout, stdout_path=None, log=None, cwd=None):
    """Runs argv to completion (killed after timeout); returns (rc, wall s, cpu s, stdout)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    err = open(log, "ab") if log else subprocess.DEVNULL
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, process_group=0,
                         preexec_fn=_pdeathsig)
    _children.append(p)
    timer = threading.Timer(timeout, lambda: _killpg_quiet(p.pid))
    timer.start()
    try:
        stdout = p.stdout.read() if out == subprocess.PIPE else b""
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
        if stdout_path:
            out.close()
        if log:
            err.close()
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    _children.remove(p)
    _killpg_quiet(p.pid)  # anything it left behind
    if stdout_path:
        with open(stdout_path, "rb") as f:
            stdout = f.read()
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, stdout.decode("utf-8", "replace")


def _killpg_quiet(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout, what, poll=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(poll)
    raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))


# ---------------------------------------------------------------- /proc

def proc_cpu(pid):
    """utime + stime of pid in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def proc_pgid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[2])  # field 5: process group
    except (OSError, ValueError, IndexError):
        return None


def quicstash_roles(pgid):
    """{pid: role} of every process in group pgid: role from '--role X', else supervisor."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if proc_pgid(pid) != pgid:
            continue
        argv = [a.decode("utf-8", "replace") for a in proc_cmdline(pid)]
        role = "supervisor"
        for i, a in enumerate(argv):
            if a == "--role" and i + 1 < len(argv):
                role = argv[i + 1]
            elif a.startswith("--role="):
                role = a.split("=", 1)[1]
        out[pid] = role
    return out


def cpu_snapshot(pgid):
    """{pid: (role, cpu s)} of group pgid (see proc_snapshot for its threads too)."""
    return {pid: v[:2] for pid, v in proc_snapshot(pgid).items()}


def proc_snapshot(pgid):
    """{pid: (role, cpu s, proc_threads(pid))} of every process in group pgid, read at one moment."""
    snap = {}
    for pid, role in quicstash_roles(pgid).items():
        c = proc_cpu(pid)
        if c is not None:
            snap[pid] = (role, c, proc_threads(pid))
    return snap


class PhaseSnapshot:
    """Takes proc_snapshot(pid) once `path` exists (polled every 20 ms, at most `timeout` s)."""

    def __init__(self, path, pid, timeout):
        self.path, self.pid, self.snap = path, pid, None
        self._stop = threading.Event()
        self._deadline = time.monotonic() + timeout
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(0.02) and time.monotonic() < self._deadline:
            if os.path.exists(self.path):
                self.snap = proc_snapshot(self.pid)
                return

    def stop(self):
        self._stop.set()
        self._thread.join()


def cpu_by_role(before, after):
    """CPU seconds per role between two snapshots (of cpu_snapshot or proc_snapshot)."""
    roles = {}
    for pid, v in after.items():
        role, c = v[0], v[1]
        c0 = before[pid][1] if pid in before else 0.0  # a child started during the run counts from 0
        roles[role] = roles.get(role, 0.0) + max(0.0, c - c0)
    return roles


def thread_kind(pid, tid, name, main_name):
    """"main" for a process's first thread; "unnamed" for another of the same name (a thread that never
    named itself); else its name without a trailing number (ZeroMQ's I/O threads "ZMQbg/IO/0",
    "ZMQbg/IO/1" are one kind, "ZMQbg/IO")."""
    if tid == pid:
        return "main"
    return "unnamed" if name == main_name else (re.sub(r"[/:#-]?\d+$", "", name) or name)


def proc_threads(pid):
    """{tid: (kind, voluntary, nonvoluntary context switches)} of every thread of pid ({} once gone).
    A voluntary switch is the thread going to sleep: each one is a later wake-up."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tids:
        name, vol, nonvol = "?", 0, 0
        try:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                for line in f:
                    if line.startswith("Name:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("voluntary_ctxt_switches:"):
                        vol = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        nonvol = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(t)] = (name, vol, nonvol)
    main_name = out.get(pid, ("",))[0]
    return {tid: (thread_kind(pid, tid, v[0], main_name),) + v[1:] for tid, v in out.items()}


def thread_profile(before, after, syscalls=None):
    """Per role between two proc_snapshot()s: {role: {"procs", "vol", "nonvol", "sys", "new_threads",
    "kinds": {kind: {"vol", "nonvol", "sys"}}}}: context switches of every thread (a thread new since
    `before` counts from 0), and system calls from syscalls ({tid: count}, perf's; "sys" None without).
    perf counts a thread started after it attached with the thread that started it: new_threads says
    that a role's system calls per kind are not to be shown."""
    out = {}
    for pid, (role, _, threads) in after.items():
        r = out.setdefault(role, {"procs": 0, "vol": 0, "nonvol": 0, "sys": None, "new_threads": 0, "kinds": {}})
        r["procs"] += 1
        old = before[pid][2] if pid in before else {}
        r["new_threads"] += len(set(threads) - set(old))
        for tid, (kind, vol, nonvol) in threads.items():
            v0, n0 = old[tid][1:] if tid in old else (0, 0)
            k = r["kinds"].setdefault(kind, {"vol": 0, "nonvol": 0, "sys": None})
            for d in (r, k):
                d["vol"] += max(0, vol - v0)
                d["nonvol"] += max(0, nonvol - n0)
                if syscalls is not None:
                    d["sys"] = (d["sys"] or 0) + syscalls.get(tid, 0)
    return out


_perf_checked = {}


def perf_why_not():
    """Why perf cannot count system calls here ("" when it can), tried once per run."""
    if "why" not in _perf_checked:
        try:
            p = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "--", "true"],
                               capture_output=True, text=True, timeout=30)
            err = p.stderr.strip()
            if p.returncode == 0:
                why = ""
            elif "paranoid" in err or "ermission" in err or "not permitted" in err:
                why = "perf not permitted here (kernel.perf_event_paranoid, or no CAP_PERFMON)"
            else:
                why = "perf failed: " + (err.splitlines() or ["exit %d" % p.returncode])[0][:100]
        except FileNotFoundError:
            why = "perf not installed"
        except (OSError, subprocess.SubprocessError) as e:
            why = "perf failed: %s" % e
        _perf_checked["why"] = why
    return _perf_checked["why"]


class SyscallCounter:
    """System calls of every thread of some processes from now to stop(): `perf stat -e
    raw_syscalls:sys_enter --per-thread -p PIDS`. Each call then also costs the traced thread a counter
    update (the same for every server measured). Never fails a run: without counts, why_not says why."""

    def __init__(self, ctx, name, pids):
        self.why_not, self.p = perf_why_not(), None
        if self.why_not or not pids:
            return
        self.out = os.path.join(ctx.work, name + ".perf")
        if os.path.exists(self.out):
            os.unlink(self.out)
        self.log = os.path.join(ctx.work, name + ".perf.log")
        self.p = start(["perf", "stat", "-e", "raw_syscalls:sys_enter", "--per-thread", "-x", ",", "-o", self.out,
                        "-p", ",".join(str(p) for p in sorted(pids))], log=self.log)
        try:  # perf opens its output file, then attaches its counters
            wait_for(lambda: os.path.exists(self.out) or self.p.poll() is not None, 10, "perf to start")
        except RuntimeError:
            pass
        time.sleep(0.2)

    def stop(self):
        """{tid: system calls}, or None (why_not says why)."""
        if not self.p:
            return None
        try:
            os.killpg(self.p.pid, signal.SIGINT)  # perf stat prints its counts on SIGINT
            self.p.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        stop(self.p)
        self.p = None
        counts = {}
        try:
            with open(self.out) as f:
                for line in f:  # "comm-TID,COUNT,,raw_syscalls:sys_enter,..."
                    m = re.match(r"^.*-(\d+),(\d+),", line)
                    if m:
                        counts[int(m.group(1))] = int(m.group(2))
        except OSError:
            pass
        if not counts:
            self.why_not = "perf counted nothing (see %s)" % os.path.basename(self.log)
            return None
        return counts


# ---------------------------------------------------------------- pieces

class Ctx:
    pass


def receiver_start(ctx, name, count, timeout):
    """Starts qs-bench-receiver; returns (proc, port, result path)."""
    pf = os.path.join(ctx.work, name + ".rport")
    res = os.path.join(ctx.work, name + ".receiver.json")
    for f in (pf, res):
        if os.path.exists(f):
            os.unlink(f)
    p = start([ctx.bin("qs-bench-receiver"), "-q", "-p", "0", "-P", pf, "-n", str(count), "-t", str(timeout),
               "-i", "10", "-o", res], log=os.path.join(ctx.work, name + ".receiver.log"))
    port = int(wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 10, "the receiver's port"))
    return p, port, res


def receiver_result(p, res, timeout):
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
    if p in _children:
        _children.remove(p)
    try:
        with open(res) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"lines": 0, "bytes": 0, "first_ns": 0, "last_ns": 0, "reason": "no result"}


def make_cert(ctx):
    key = os.path.join(ctx.work, "key.pem")
    cert = os.path.join(ctx.work, "cert.pem")
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    tmpl = os.path.join(ctx.work, "cert.tmpl")
    with open(tmpl, "w") as f:
        f.write('cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\n'
                'expiration_days = 30\ntls_www_server\nsigning_key\nencryption_key\n')
    # Ed25519 by default: in a connection storm each handshake's signature (keyholder) and its check
    # (client) cost about a third less than with ECDSA P-256 (docs/PERFORMANCE.md "Connection
    # storms", round 16); the operator's certificate is theirs to choose.
    subprocess.run(["certtool", "--generate-privkey", "--key-type=" + ctx.args.key_type, "--outfile", key],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    os.chmod(key, 0o600)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template", tmpl,
                    "--outfile", cert], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=30)
    return cert, key


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------- quicstash

def auth_setup(ctx, n=4):
    """A tenants file of n tenants with a token each (quicstashd --hash-token), in the work dir.
    Returns (quicstashd arguments, quicstash-bench arguments): connection i presents token i mod n."""
    lines, bench = [], []
    for i in range(n):
        tok = os.path.join(ctx.work, "tenant%d.token" % i)
        with open(tok, "w") as f:
            f.write("bench-token-%d-%s\n" % (i, os.urandom(8).hex()))
        with open(tok, "rb") as f:
            h = subprocess.run([ctx.bin("quicstashd"), "--hash-token"], stdin=f, stdout=subprocess.PIPE, check=True,
                               timeout=30).stdout.decode().strip()
        lines.append("[tenant bench%d]\n%s\n" % (i, h))
        bench += ["--token-file", tok]
    path = os.path.join(ctx.work, "tenants.conf")
    with open(path, "w") as f:
        f.write("".join(lines))
    return ["--tenants", path, "--auth", "token"], bench


def quicstashd_start(ctx, name, durability, rport, qs_extra=(), env_extra=None):
    """Starts quicstashd (fresh spool, output the receiver on rport, notify socket bound). Returns (proc,
    its UDP port, cert, spool dir, notify socket, log); wait_ready() then waits for it."""
    cert, key = make_cert(ctx)
    udp = free_port(socket.SOCK_DGRAM)
    spool = os.path.join(ctx.work, "spool-" + name)
    shutil.rmtree(spool, ignore_errors=True)
    qlog = os.path.join(ctx.work, name + ".quicstashd.log")
    nsock_path = os.path.join(ctx.work, name + ".notify")
    if os.path.exists(nsock_path):
        os.unlink(nsock_path)
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(nsock_path)
    nsock.settimeout(0.1)
    env = dict(os.environ, NOTIFY_SOCKET=nsock_path, **(env_extra or {}))
    argv = [ctx.bin("quicstashd"), "-s", "127.0.0.1:%d" % udp, "-l", "127.0.0.1:%d" % rport,
            "--spool-dir", spool, "-c", cert, "--key-path", key, "--durability", durability] + ctx.qs_args + \
        list(qs_extra)
    return start(argv, log=qlog, env=env, cwd=ctx.work), udp, cert, spool, nsock, qlog


def wait_ready(qd, nsock, qlog, timeout=30):
    """Until quicstashd qd says READY=1 on its notify socket nsock (raises if it exits or times out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if qd.poll() is not None:
            raise RuntimeError("quicstashd exited (%s); see %s" % (qd.returncode, qlog))
        try:
            if b"READY=1" in nsock.recv(4096):
                return
        except socket.timeout:
            pass
    raise RuntimeError("quicstashd not ready after %.0f s; see %s" % (timeout, qlog))


class Scraper:
    """GET /metrics every second on its own thread, as Prometheus would (--only metrics): the
    scrape must cost the data path nothing (docs/ARCHITECTURE.md, "Metrics")."""

    def __init__(self, port):
        self.port, self.ok, self.failed = port, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        import urllib.request
        while True:  # the first at once: a short run gets scraped too
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=5) as r:
                    r.read()
                self.ok += 1
            except OSError:
                self.failed += 1
            if self._stop.wait(1.0):
                return

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def quicstash_run(ctx, durability, rate, count, tag, env_extra=None, qs_extra=(), bench_extra=(), scraped=False,
                  delivered=None, syscalls=False, phase_file=None):
    """One quicstashd (fresh spool) + receiver + quicstash-bench. Returns a result dict. scraped: with
    --metrics-addr on a free loopback port, read every second while it runs. delivered: for another
    output (qs_extra's -l), a function of the count acknowledged giving the count that reached it
    (the receiver then stays unused). Context switches per role and thread kind in r["threads"];
    syscalls: system calls too, counted by perf (SyscallCounter). phase_file: quicstash-bench writes it when
    its second phase starts (--phase-file); the roles' CPU from then on is in r["cpu_phase"]."""
    name = "quicstash-%s-%s" % (durability, tag)
    scraper = None
    if scraped:
        mport = free_port()
        qs_extra = list(qs_extra) + ["--metrics-addr", "127.0.0.1:%d" % mport]
        scraper = Scraper(mport)
    recv, rport, rres = receiver_start(ctx, name, count, ctx.args.timeout)
    qd, udp, cert, spool, nsock, qlog = quicstashd_start(ctx, name, durability, rport, qs_extra, env_extra)
    try:
        wait_ready(qd, nsock, qlog)
        time.sleep(0.3)  # let every child settle (connections to the parsers and the receiver)
        if scraper:
            scraper.start()
        counter = SyscallCounter(ctx, name, quicstash_roles(qd.pid)) if syscalls else None
        before = proc_snapshot(qd.pid)
        phase = PhaseSnapshot(phase_file, qd.pid, ctx.args.timeout) if phase_file else None
        bargv = [ctx.bin("quicstash-bench"), "-s", "127.0.0.1:%d" % udp, "--cert", cert,
                 "--corpus", ctx.corpus, "-n", str(count), "-c", str(ctx.args.connections),
                 "-S", str(ctx.args.streams), "-w", str(ctx.args.window), "-T", str(ctx.args.threads),
                 "--json", "--label", name, "--warmup", str(ctx.args.warmup)] + list(bench_extra)
        if rate:
            bargv += ["-r", "%.0f" % rate]
        rc, wall, client_cpu, out = run_measured(bargv, ctx.args.timeout, log=os.path.join(ctx.work, name + ".bench.log"))
        # the receiver stops at `count` lines, or 10 s after the last data it got
        if delivered:
            m = re.search(r'"acked":(\d+)', out)
            rr = {"lines": delivered(int(m.group(1)) if m else 0)}
        else:
            rr = receiver_result(recv, rres, 60 if '"acked":0,' not in out else 1)
        after = proc_snapshot(qd.pid)
        if phase:
            phase.stop()
        sysc = counter.stop() if counter else None
    finally:
        if scraper:
            scraper.stop()
        stop(qd, timeout=15)
        stop(recv)
        nsock.close()
        if not ctx.args.keep:
            shutil.rmtree(spool, ignore_errors=True)  # up to ~0.4 GB per run
    try:
        b = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError("quicstash-bench gave no result (rc %d); see %s" % (rc, os.path.join(ctx.work, name + ".bench.log")))
    if not b["acked"]:
        raise RuntimeError("nothing acknowledged: %s (see %s)" % (b.get("first_error") or "?", qlog))
    roles = cpu_by_role(before, after)
    roles["client"] = client_cpu
    phase_roles = None
    if phase and phase.snap is not None:
        phase_roles = cpu_by_role(phase.snap, after)
        phase_roles["client"] = b.get("reconnect_cpu_s", 0.0)
    r = {
        "name": name, "events": b["acked"], "events_per_s": b["events_per_s"],
        "latency_us": b["latency_us"], "errors": b["errors"], "first_error": b.get("first_error", ""),
        "delivered": rr["lines"], "cpu": roles, "rate_target": rate, "bench": b, "receiver": rr,
        "threads": thread_profile(before, after, sysc),
    }
    if phase_roles is not None:
        r["cpu_phase"] = phase_roles
    if counter and sysc is None:
        r["syscalls_why_not"] = counter.why_not
    elif not counter:
        r["syscalls_why_not"] = "not counted"
    if rr["lines"] < b["acked"]:
        r["note"] = "receiver got %d of %d acknowledged events" % (rr["lines"], b["acked"])
    if scraper:
        r["scrapes"] = {"ok": scraper.ok, "failed": scraper.failed}
        if not scraper.ok or scraper.failed:
            r["note"] = (r.get("note", "") + "; " if r.get("note") else "") + "scrapes %d ok, %d failed" % (
                scraper.ok, scraper.failed)
    log("%s: %.0f events/s, ack p50 %.2f ms p99 %.2f ms, errors %d, delivered %d" % (
        name, b["events_per_s"], b["latency_us"]["p50"] / 1e3, b["latency_us"]["p99"] / 1e3, b["errors"],
        rr["lines"]))
    return r


# ---------------------------------------------------------------- rsyslog

RSYSLOG_CONF = """\
# bench/run: rsyslog relaying imptcp -> omfwd TCP (%(kind)s queue). Own work dir, no system config.
global(workDirectory="%(workdir)s" maxMessageSize="64k")
module(load="imptcp")
template(name="raw" type="string" string="%%rawmsg%%\\n")
ruleset(name="relay" queue.type="LinkedList" queue.size="100000") {
  action(type="omfwd" target="127.0.0.1" port="%(rport)d" protocol="tcp" template="raw"
         %(queue)s)
}
input(type="imptcp" address="127.0.0.1" port="%(iport)d" ruleset="relay")
"""

QUEUES = {
    "memory": 'queue.type="LinkedList" queue.size="100000" queue.dequeueBatchSize="1024"',
    "disk": 'queue.type="Disk" queue.filename="relayq" queue.maxDiskSpace="4g" queue.maxFileSize="64m" '
            'queue.dequeueBatchSize="1024"',
}


def rsyslog_run(ctx, kind, count, tag="", rate=0, syscalls=False):
    """rsyslogd relaying count lines from qs-bench-tcpsend (as fast as it takes them, or paced at rate
    lines/s) to the receiver. Context switches of its threads in r["threads"]; syscalls: system calls
    too (SyscallCounter)."""
    name = "rsyslog-%s%s" % (kind, tag)
    recv, rport, rres = receiver_start(ctx, name, count, ctx.args.timeout)
    workdir = os.path.join(ctx.work, name + ".work")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    iport = free_port()
    conf = os.path.join(ctx.work, name + ".conf")
    with open(conf, "w") as f:
        f.write(RSYSLOG_CONF % {"kind": kind, "workdir": workdir, "rport": rport, "iport": iport,
                                "queue": QUEUES[kind]})
    pidfile = os.path.join(ctx.work, name + ".pid")
    rs = start([ctx.rsyslogd, "-n", "-f", conf, "-i", pidfile], log=os.path.join(ctx.work, name + ".log"))
    try:
        def listening():
            if rs.poll() is not None:
                raise RuntimeError("rsyslogd exited (%s); see %s.log" % (rs.returncode, name))
            try:
                socket.create_connection(("127.0.0.1", iport), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(listening, 20, "rsyslogd to listen")
        time.sleep(0.2)
        counter = SyscallCounter(ctx, name, [rs.pid]) if syscalls else None
        cpu0 = proc_cpu(rs.pid) or 0.0
        before = {rs.pid: ("rsyslogd", cpu0, proc_threads(rs.pid))}
        rc, wall, send_cpu, out = run_measured([ctx.bin("qs-bench-tcpsend"), "-p", str(iport), "-n", str(count),
                                                "-t", str(ctx.args.timeout), "-r", "%.0f" % rate, ctx.corpus],
                                               ctx.args.timeout)
        rr = receiver_result(recv, rres, ctx.args.timeout)
        cpu1 = proc_cpu(rs.pid) or cpu0
        after = {rs.pid: ("rsyslogd", cpu1, proc_threads(rs.pid))}
        sysc = counter.stop() if counter else None
    finally:
        stop(rs)
        stop(recv)
        if not ctx.args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    s = json.loads(out.strip().splitlines()[-1]) if rc == 0 and out.strip() else None
    if not s or not rr["last_ns"]:
        raise RuntimeError("%s: sender rc %d, receiver %s" % (name, rc, rr))
    secs = (rr["last_ns"] - s["start_ns"]) / 1e9
    r = {"name": name, "events": rr["lines"], "events_per_s": rr["lines"] / secs if secs > 0 else 0,
         "errors": count - rr["lines"], "cpu": {"rsyslogd": cpu1 - cpu0, "sender": send_cpu},
         "threads": thread_profile(before, after, sysc), "rate_target": rate}
    if sysc is None:
        r["syscalls_why_not"] = counter.why_not if counter else "not counted"
    log("%s: %.0f events/s (%d lines in %.2f s)" % (name, r["events_per_s"], rr["lines"], secs))
    return r


# ---------------------------------------------------------------- raw QUIC

def rawquic_run(ctx, tag=""):
    name = "rawquic%s" % tag
    cert, key = make_cert(ctx)
    htdocs = os.path.join(ctx.work, "htdocs")
    os.makedirs(htdocs, exist_ok=True)
    port = free_port(socket.SOCK_DGRAM)
    srv = start([ctx.ngtcp2_server, "-q", "-d", htdocs, "127.0.0.1", str(port), key, cert],
                log=os.path.join(ctx.work, name + ".server.log"))
    try:
        time.sleep(0.3)
        if srv.poll() is not None:
            raise RuntimeError("%s exited; see %s.server.log" % (ctx.ngtcp2_server, name))
        cpu0 = proc_cpu(srv.pid) or 0.0
        rc, wall, ccpu, _ = run_measured([ctx.ngtcp2_client, "-q", "--exit-on-all-streams-close", "-m", "POST",
                                          "--data", ctx.corpus, "127.0.0.1", str(port),
                                          "https://127.0.0.1:%d/upload" % port], ctx.args.timeout,
                                         log=os.path.join(ctx.work, name + ".client.log"))
        cpu1 = proc_cpu(srv.pid) or cpu0
    finally:
        stop(srv)
    if rc != 0:
        raise RuntimeError("%s exited with %d; see %s.client.log" % (ctx.ngtcp2_client, rc, name))
    bps = ctx.corpus_bytes / wall
    r = {"name": name, "events": ctx.corpus_lines, "events_per_s": bps / ctx.mean_line, "errors": 0,
         "cpu": {"server": cpu1 - cpu0, "client": ccpu}, "bytes_per_s": bps}
    log("%s: %.1f MB/s = %.0f events/s at %.1f bytes/event (%.2f s)" % (name, bps / 1e6, r["events_per_s"],
                                                                         ctx.mean_line, wall))
    return r


# ---------------------------------------------------------------- plain TCP

def amqp_run(ctx, nodes, tag=""):
    """quicstash (fsync, full load) into RabbitMQ with publisher confirms: one node, or three nodes
    with a quorum queue of three replicas, started here on loopback by the tests' helper
    (tests/integration/qslib/rabbit.py, Debian's rabbitmq-server). Delivered: the queue's depth once
    it holds every acknowledged event or stops growing."""
    term = signal.getsignal(signal.SIGTERM)
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    from qslib import rabbit  # noqa: E402 (its cleanup kills the nodes at exit)
    signal.signal(signal.SIGTERM, term)
    cluster = rabbit.Cluster(nodes, "bench-amqp%d" % nodes).start()
    node = cluster.nodes[0]

    def depth():  # a passive declare through pika: cheap, unlike a rabbitmqctl (an Erlang VM) a second
        try:
            conn = rabbit.connect(node.port)
            n = conn.channel().queue_declare(queue=rabbit.QUEUE, passive=True).method.message_count
            conn.close()
            return n
        except Exception:  # noqa: BLE001 (a node busy or restarting: not yet)
            return 0

    def delivered(acked):
        t0 = last_t = time.monotonic()
        last = -1
        while time.monotonic() - last_t < 10:
            d = depth()
            if d >= acked:
                log("amqp%d: the queue holds all %d acknowledged events %.1f s after the load ended" %
                    (nodes, d, time.monotonic() - t0))
                return d
            if d != last:
                last, last_t = d, time.monotonic()
            time.sleep(1)
        return last

    try:
        rabbit.declare_queue(node.port, quorum=nodes > 1, replicas=nodes)
        return quicstash_run(ctx, "fsync", 0, ctx.corpus_lines, "amqp%d%s" % (nodes, tag),
                             qs_extra=["-l", cluster.urls()], delivered=delivered)
    finally:
        cluster.kill_all()


def tcp_run(ctx, tag=""):
    name = "tcp%s" % tag
    count = ctx.corpus_lines
    recv, rport, rres = receiver_start(ctx, name, count, ctx.args.timeout)
    try:
        rc, wall, scpu, out = run_measured([ctx.bin("qs-bench-tcpsend"), "-p", str(rport), "-t",
                                            str(ctx.args.timeout), ctx.corpus], ctx.args.timeout)
        rr = receiver_result(recv, rres, 60)
    finally:
        stop(recv)
    s = json.loads(out.strip().splitlines()[-1])
    secs = (rr["last_ns"] - s["start_ns"]) / 1e9
    r = {"name": name, "events": rr["lines"], "events_per_s": rr["lines"] / secs if secs > 0 else 0,
         "errors": count - rr["lines"], "cpu": {"sender": scpu}}
    log("%s: %.0f events/s (%d lines in %.3f s)" % (name, r["events_per_s"], rr["lines"], secs))
    return r


def parse_run(ctx):
    """qs-parse-bench: cJSON's parse alone and the parser's whole JSON work, ns per event on one core."""
    rc, _, _, out = run_measured([ctx.bin("qs-parse-bench"), "--corpus", ctx.corpus, "--count", "200000",
                                  "--seconds", "4", "--json"], ctx.args.timeout)
    if rc != 0:
        raise RuntimeError("qs-parse-bench exited %d: %s" % (rc, out.strip()[:200]))
    r = json.loads(out)
    log("parser JSON work: cJSON %.0f ns/event, qs_enrich %.0f ns/event" % (r["cjson_ns"], r["enrich_ns"]))
    return r


def steady_run(ctx, when):
    """qs-bench-steady: fixed work on every CPU at once, per 10 ms window; how steady the host's speed
    was around the measurements (a VM host that runs other guests on our cores slows us unseen)."""
    rc, _, _, out = run_measured([ctx.bin("qs-bench-steady"), "--seconds", str(ctx.args.steady_seconds),
                                  "--json"], ctx.args.timeout)
    if rc != 0:
        raise RuntimeError("qs-bench-steady exited %d: %s" % (rc, out.strip()[:200]))
    r = json.loads(out)
    log("host steadiness at the %s: median window %.0f%% of the best speed, slowest tenth %.0f%%, slowest "
        "hundredth %.0f%%" % (when, r["median_pct"], r["p10_pct"], r["p1_pct"]))
    return r


def steady_md(results):
    """The header line on the host's steadiness, and a warning when it stalled."""
    got = [(w, results.get("steady-" + w) or {}) for w in ("start", "end")]
    parts = ["%s median %.0f%%, slowest tenth %.0f%%, slowest hundredth %.0f%%" % (
        w, r["median_pct"], r["p10_pct"], r["p1_pct"]) for w, r in got if "median_pct" in r]
    if not parts:
        return []
    lines = ["- host steadiness (qs-bench-steady: fixed work on every CPU at once, counted per 10 ms window, "
             "as a share of the fastest tenth's speed; a steady machine shows about 100/95/90%%): %s" %
             "; ".join(parts)]
    worst = min(r["p1_pct"] for w, r in got if "p1_pct" in r)
    if worst < 50:
        lines.append("- **this host stalled**: in the slowest hundredth of 10 ms windows a CPU did at most %.0f%% of "
                     "its best work, as if it had been taken away for %.0f ms of the 10, about once a second per CPU. Every "
                     "event in flight then waits that long, whatever the load: latency percentiles from p99 up "
                     "measure this host's stalls as much as the software" % (worst, (100 - worst) / 10))
    return lines


def traced_run(ctx, rate, count):
    """One more fsync half-load run with the hop trace on (common/hoptrace.h), not in the table: the
    trace's own cost perturbs it a little. Returns scripts/hoptrace's JSON as r["hops"]."""
    d = os.path.join(ctx.work, "hops")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    r = quicstash_run(ctx, "fsync", rate, count, "half-traced", env_extra={"QS_HOPTRACE_DIR": d})
    # the cold start left out as in the latencies, unless the run is too short to have anything after it
    r["hops_skip_s"] = ctx.args.warmup if count / rate > 2 * ctx.args.warmup else 0.0
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "hoptrace"), d, "--json", "--skip-s",
                        str(r["hops_skip_s"])], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("scripts/hoptrace failed: %s" % p.stderr.strip()[-300:])
    r["hops"] = json.loads(p.stdout)
    if not ctx.args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return r


def hops_md(r):
    """The traced run's hops as markdown lines: a table, or one line saying why there is none."""
    h = (r or {}).get("hops")
    if not h:
        return ["\nWhere half-load acknowledgements wait: %s" % ((r or {}).get("failed") or "not run")]
    lat = r["latency_us"]
    out = ["\nWhere half-load acknowledgements wait (one more fsync run at the half-load rate with "
           "`QS_HOPTRACE_DIR` set, not in the table; scripts/hoptrace; client-side ack p50 %s / p99 %s ms; %d of "
           "%d events followed from datagram read to answer packet, the first %.1f s left out):\n" % (
               fmt_ms(lat["p50"]), fmt_ms(lat["p99"]), h["events"], h["queued"], r["hops_skip_s"]),
           "| hop (ms) | p50 | p90 | p99 | p99.9 | max |", "|---|---:|---:|---:|---:|---:|"]
    for name, st in h["hops_ms"].items():
        if st:
            out.append("| %s | %.3f | %.3f | %.3f | %.3f | %.3f |" % (name, st["p50"], st["p90"], st["p99"],
                                                                    st["p99_9"], st["max"]))
    if h["slow"]:
        by = sorted(h["slow_by_hop"].items(), key=lambda kv: -kv[1])
        out.append("\n%d events took over %.0f ms inside the server; the hop that held each longest: %s." % (
            h["slow"], h["slow_ms"], ", ".join("%s %d" % kv for kv in by)))
    return out


def median_p99_of(fn, n):
    """Half load: n runs, the one with the median p99 kept (a single run can land on a stall of the
    VM that has nothing to do with the server); every run's p99 is listed next to it."""
    runs = [fn("-%d" % i if n > 1 else "") for i in range(n)]
    runs.sort(key=lambda r: r["latency_us"]["p99"])
    r = dict(runs[len(runs) // 2])
    r["p99_runs"] = [x["latency_us"]["p99"] for x in runs]
    return r


def median_of(fn, n):
    return median_result([fn("-%d" % i if n > 1 else "") for i in range(n)])


def median_result(runs):
    """The run with the median rate (its CPU and latency figures come with it); all rates listed."""
    runs = sorted(runs, key=lambda r: r["events_per_s"])
    r = dict(runs[len(runs) // 2])
    r["runs"] = [round(x["events_per_s"]) for x in runs]
    return r


def pair_ratios(rounds, key, base):
    """events/s of key over base, round by round (both measured within the same minute)."""
    return [r[key]["events_per_s"] / r[base]["events_per_s"] for r in rounds
            if r.get(key, {}).get("events_per_s") and r.get(base, {}).get("events_per_s")]


def round_order(full, i):
    """The runs of round i: every other round has the runs paired with the plain fsync run (metrics,
    auth) before it, in reverse order (ABBA), so that what the second run of a pair gains or loses (a
    warm page cache, the last run's spool still being freed, a host growing busier) falls on each side
    alike. (With the auth row always second its cost read +8.3% where alternating rounds read +1%.)"""
    keys = [k for k, _ in full]
    group = [k for k in ("quicstash-fsync", "quicstash-fsync-metrics", "quicstash-fsync-auth") if k in keys]
    if i % 2 == 0 or "quicstash-fsync" not in keys or len(group) < 2:
        return full
    out = list(full)
    at = [keys.index(k) for k in group]
    for pos, k in zip(at, reversed(group)):
        out[pos] = full[keys.index(k)]
    return out


def pair_cpu_ratios(rounds, key, base):
    """Server CPU per event of key over base, round by round: steadier than events/s on a shared
    host, where a round's speed moves by tens of percent but the work per event much less."""
    out = []
    for r in rounds:
        a, b = r.get(key, {}), r.get(base, {})
        if a.get("events") and b.get("events") and server_cpu_per_m(a) and server_cpu_per_m(b):
            out.append(server_cpu_per_m(a) / server_cpu_per_m(b))
    return out


# ---------------------------------------------------------------- everyday rates and idle (issue 27)

def server_cpu_per_m(r):
    """Server CPU seconds per million events of a run (the load generator left out)."""
    ev = r.get("events") or 0
    return sum(v for k, v in (r.get("cpu") or {}).items() if k not in ("client", "sender")) / ev * 1e6 if ev else 0.0


def everyday_rounds(ctx, attempt, results):
    """At each --everyday-rates rate: rsyslog's in-memory relay fed by qs-bench-tcpsend --rate, then
    quicstash --durability fsync paced by quicstash-bench -r, the same lines at the same pace; --repeat
    rounds over every rate (this VM drifts within minutes: each round's ratio compares two runs of the
    same minute). Adds results["everyday-RATE"] per rate (everyday_summary)."""
    rounds = []
    rsyslog_missing = not os.access(ctx.rsyslogd, os.X_OK)
    for i in range(ctx.args.repeat):
        rounds.append({})
        for rate in ctx.args.everyday_rates:
            n = int(min(ctx.corpus_lines, max(100, rate * ctx.args.everyday_seconds)))  # tcpsend does not wrap
            tag = "%g-%d" % (rate, i)
            if rsyslog_missing:  # quicstash's own figures still stand (bench/install-deps installs it)
                rounds[-1][("rsyslog", rate)] = {"failed": "not run: %s not installed" % ctx.rsyslogd, "missing": 1}
            else:
                attempt("everyday", lambda: rsyslog_run(ctx, "memory", n, "-everyday" + tag, rate, True))
                rounds[-1][("rsyslog", rate)] = results.pop("everyday")
            attempt("everyday", lambda: quicstash_run(ctx, "fsync", rate, n, "everyday" + tag, syscalls=True))
            rounds[-1][("quicstash", rate)] = results.pop("everyday")
    for rate in ctx.args.everyday_rates:
        results["everyday-%g" % rate] = everyday_summary(rounds, rate)


def everyday_summary(rounds, rate):
    """One rate's rounds: for each server the run with the median server CPU per event (its figures come
    with it) and every run's CPU per million events; the ratio quicstash/rsyslog round by round."""
    def median_run(runs):
        ok = sorted((x for x in runs if "failed" not in x), key=server_cpu_per_m)
        if not ok:
            return runs[-1] if runs else {"failed": "not run"}
        r = dict(ok[len(ok) // 2])
        r["cpu_runs"] = [server_cpu_per_m(x) for x in ok]
        return r
    qs = [r[("quicstash", rate)] for r in rounds]
    rs = [r[("rsyslog", rate)] for r in rounds]
    ratios = [server_cpu_per_m(q) / server_cpu_per_m(s) for q, s in zip(qs, rs)
              if "failed" not in q and "failed" not in s and server_cpu_per_m(s) > 0]
    r = {"rate": rate, "quicstash": median_run(qs), "rsyslog": median_run(rs), "ratios": ratios}
    bad = ["%s: %s" % (k, r[k]["failed"]) for k in ("quicstash", "rsyslog") if "failed" in r[k] and
           "missing" not in r[k]]
    if bad:  # no run of a server succeeded: bench/run then exits 1
        r["failed"] = "; ".join(bad)
    return r


def idle_run(ctx):
    """quicstashd (fsync, defaults plus --qs-arg) with no connection for --idle-seconds, once every child
    has settled: per role its processes, CPU and wake-ups (voluntary context switches, i.e. times a
    thread went to sleep) per second per process, by thread kind; system calls where perf works."""
    name = "quicstash-idle"
    secs = ctx.args.idle_seconds
    recv, rport, _ = receiver_start(ctx, name, 1, int(secs) + 60)
    qd, _, _, spool, nsock, qlog = quicstashd_start(ctx, name, "fsync", rport)
    try:
        wait_ready(qd, nsock, qlog)
        time.sleep(1.0)  # every child up, connected to its peers and to the output, its timers started
        counter = SyscallCounter(ctx, name, quicstash_roles(qd.pid))
        before, t0 = proc_snapshot(qd.pid), time.monotonic()
        time.sleep(secs)
        after, t1 = proc_snapshot(qd.pid), time.monotonic()
        sysc = counter.stop()
    finally:
        stop(qd, timeout=15)
        stop(recv)
        nsock.close()
        shutil.rmtree(spool, ignore_errors=True)
    r = {"name": name, "seconds": t1 - t0, "cpu": cpu_by_role(before, after),
         "threads": thread_profile(before, after, sysc)}
    if sysc is None:
        r["syscalls_why_not"] = counter.why_not
    log("%s: %s" % (name, ", ".join("%s %.1f wake-ups/s per process" % (k, v["vol"] / r["seconds"] / v["procs"])
                                    for k, v in sorted(r["threads"].items()))))
    return r


def role_key(k):
    return (ROLE_ORDER.index(k) if k in ROLE_ORDER else 99, k)


def _count(d, field):
    return d["vol"] + d["nonvol"] if field == "ctx" else d[field] or 0


def fmt_kinds(d, field, per):
    """One role's count (thread_profile) per `per`, with its thread kinds: "x [main y, ZMQbg/IO z]"."""
    kinds = {} if field == "sys" and d["new_threads"] else d["kinds"]  # see thread_profile
    shown = [k for k in sorted(kinds, key=lambda k: (k != "main", k)) if _count(kinds[k], field) / per >= 0.005]
    out = "%.2f" % (_count(d, field) / per)
    if len(kinds) > 1 and shown:
        out += " [%s]" % ", ".join("%s %.2f" % (k, _count(kinds[k], field) / per) for k in shown)
    return out


def fmt_profile(r, field, per):
    """r's threads (thread_profile) counted per `per`: "total (role x [kind y, ...] ...)". field "ctx":
    context switches (voluntary + involuntary), "vol": voluntary, "sys": system calls."""
    prof = r.get("threads")
    if field == "sys" and r.get("syscalls_why_not"):
        return r["syscalls_why_not"]
    if not prof or not per:
        return "-"
    parts = ["%s %s" % (role, fmt_kinds(prof[role], field, per)) for role in sorted(prof, key=role_key)]
    return "%.2f (%s)" % (sum(_count(d, field) for d in prof.values()) / per, " ".join(parts))


def everyday_md(ctx, results):
    """The "Everyday rates" tables: cost against rsyslog per rate, then context switches and system calls
    per event per role."""
    got = [(rate, results.get("everyday-%g" % rate)) for rate in ctx.args.everyday_rates]
    got = [(rate, e) for rate, e in got if e]
    if not got:
        return []
    out = ["\nEveryday rates (issue 27): quicstash `--durability fsync` paced by quicstash-bench `-r RATE` "
           "(%d connections x %d streams) and rsyslog's in-memory relay fed by `qs-bench-tcpsend --rate RATE`: the "
           "same lines at the same pace for about %g s, alternating, %d round(s); for each server the run with the "
           "median CPU per event is shown (every run's in brackets). Target at 5,000 events/s: quicstash's CPU at most "
           "1.0x rsyslog's.\n" % (ctx.args.connections, ctx.args.streams, ctx.args.everyday_seconds, ctx.args.repeat),
           "| events/s | quicstash CPU s per M events: server total (by role) | rsyslogd CPU s per M events | "
           "quicstash / rsyslog | share of one CPU: quicstash / rsyslogd | ack p50 ms | ack p99 ms | errors |",
           "|---:|---|---|---|---:|---:|---:|---|"]
    for rate, e in got:
        q, s = e["quicstash"], e["rsyslog"]
        cells = []
        for x in (q, s):
            if "failed" in x:
                cells.append("FAILED: %s" % x["failed"].replace("|", "/")[:200])
            else:
                runs = x.get("cpu_runs") or []
                cells.append((fmt_cpu(x) if x is q else "%.2f" % server_cpu_per_m(x)) +
                             (" (%s)" % "/".join("%.2f" % c for c in runs) if len(runs) > 1 else ""))
        ratios = e["ratios"]
        ratio = "%.2f" % statistics.median(ratios) if ratios else "-"
        if len(ratios) > 1:
            ratio += " (round by round %s)" % "/".join("%.2f" % x for x in ratios)
        share = " / ".join("%.1f%%" % (server_cpu_per_m(x) / 1e6 * rate * 100) if "failed" not in x else "-"
                           for x in (q, s))
        lat = q.get("latency_us")
        lat = [fmt_ms(lat["p50"]), fmt_ms(lat["p99"])] if lat else ["-", "-"]
        errs = "quicstash %s, rsyslog %s" % (q.get("errors", "-"), s.get("errors", "-"))
        if q.get("note"):
            errs += " (%s)" % q["note"]
        out.append("| %g | %s | %s | %s | %s | %s | %s | %s |" % (rate, cells[0], cells[1], ratio, share, lat[0],
                                                                  lat[1], errs))
    out += ["\nPer event at everyday rates, same runs: context switches (voluntary + involuntary, every thread, from "
            "/proc/PID/task/*/status before and after) and system calls (`perf stat -e raw_syscalls:sys_enter "
            "--per-thread`), per role [and per thread kind: main, ZeroMQ's ZMQbg/IO and ZMQbg/Reaper, ...]:\n",
            "| events/s | setup | context switches per event | system calls per event |", "|---:|---|---|---|"]
    for rate, e in got:
        for label, x in (("quicstash", e["quicstash"]), ("rsyslogd", e["rsyslog"])):
            if "failed" not in x:
                out.append("| %g | %s | %s | %s |" % (rate, label, fmt_profile(x, "ctx", x["events"]),
                                                      fmt_profile(x, "sys", x["events"])))
    return out


def idle_md(ctx, results):
    """The "Idle" table: per role, CPU and wake-ups per second per process."""
    r = results.get("quicstash-idle")
    if not r:
        return []
    head = ("\nIdle (issue 27): quicstashd (`--durability fsync`, defaults) with no connection for %g s; target: each "
            "process wakes at most a few times a second. Wake-ups = voluntary context switches (a thread going to "
            "sleep), per second per process of the role [per thread kind]." % ctx.args.idle_seconds)
    if "failed" in r:
        return [head + " FAILED: %s" % r["failed"]]
    out = [head + "\n", "| role | processes | CPU % (of one CPU, all its processes) | wake-ups/s per process | "
           "involuntary switches/s per process | system calls/s per process |", "|---|---:|---:|---|---:|---|"]
    for role in sorted(r["threads"], key=role_key):
        t = r["threads"][role]
        per = r["seconds"] * t["procs"]
        out.append("| %s | %d | %.2f | %s | %.2f | %s |" % (
            role, t["procs"], r["cpu"].get(role, 0) / r["seconds"] * 100, fmt_kinds(t, "vol", per),
            t["nonvol"] / per, r.get("syscalls_why_not") or fmt_kinds(t, "sys", per)))
    return out


def half_floor_md(results):
    """Half-load p99 over the latency floor's, both of this run, against issue 27's target (3x)."""
    half = (results.get("quicstash-fsync-half") or {}).get("latency_us")
    floor = (results.get("quicstash-fsync-floor") or {}).get("latency_us")
    if not half or not floor or not floor["p99"]:
        return []
    return ["\nHalf load against the floor (issue 27: at most 3x): fsync half-load p99 %s ms / latency-floor p99 %s ms "
            "= **%.1fx**." % (fmt_ms(half["p99"]), fmt_ms(floor["p99"]), half["p99"] / floor["p99"])]


# ---------------------------------------------------------------- report

def machine():
    model, cores = "unknown", os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError):
        mem = 0
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    return {"cores": cores, "cpu": model, "kernel": platform.release(), "memory_gib": round(mem, 1),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg_at_start": load}


def source_desc(build):
    try:
        head = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        # (this run's own output, written by an earlier run, is no change to the build)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!bench/RESULTS.md"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "unknown", ""
    return "build %s of commit %s%s" % (build, head, " plus uncommitted changes" if dirty else "")


ROLE_ORDER = ["acceptor", "parser", "shipper", "supervisor", "keyholder", "client", "rsyslogd", "server", "sender"]


def fmt_cpu(r):
    ev = r.get("events") or 0
    if not ev or not r.get("cpu"):
        return ""
    per_m = {k: v / ev * 1e6 for k, v in r["cpu"].items()}
    keys = sorted(per_m, key=lambda k: (ROLE_ORDER.index(k) if k in ROLE_ORDER else 99, k))
    server = sum(v for k, v in per_m.items() if k not in ("client", "sender"))
    parts = " ".join("%s %.2f" % (k, per_m[k]) for k in keys)
    return "%.2f (%s)" % (server, parts)


def fmt_ratio(a, b):
    return "%.2f" % (a / b) if a and b else "-"


def fmt_ms(us):
    return "%.2f" % (us / 1e3)


def fmt_rounds(ratios):
    """The ratio of each alternating round (both figures measured within the same minute), and their median."""
    if not ratios or len(ratios) < 2:
        return ""
    pr = sorted(ratios)
    return " (round by round %s; median %.2f)" % ("/".join("%.2f" % x for x in ratios), pr[len(pr) // 2])


def server_cpu_roles(r):
    """Server CPU seconds per million events of a run, by role (the load generator left out)."""
    ev = r.get("events") or 0
    return {k: v / ev * 1e6 for k, v in (r.get("cpu") or {}).items() if k not in ("client", "sender")} if ev else {}


def paired_md(results, key, title, what, target):
    """A row's cost against the plain fsync full load: its events/s and its server CPU per event over
    the plain run's, round by round (both runs within the same minute: this host's speed drifts), the
    median of each against target (a fraction), and the CPU per event by role with and without."""
    r = results.get(key) or {}
    ratios = r.get("pair_ratios_off")
    if not ratios:
        return []
    med = statistics.median(ratios)
    off = results.get("quicstash-fsync") or {}
    on_roles, off_roles = server_cpu_roles(r), server_cpu_roles(off)
    roles = sorted(set(on_roles) | set(off_roles),
                   key=lambda k: (ROLE_ORDER.index(k) if k in ROLE_ORDER else 99, k))
    by_role = ", ".join("%s %.2f/%.2f" % (k, on_roles.get(k, 0), off_roles.get(k, 0)) for k in roles)
    out = ["\n%s: %s over the same full load without it, round by round: %s events/s, median %+.1f%% (target: "
           "within %g%%; on a shared or busy host one round varies more than that); server CPU per million events "
           "%.2f s with, %.2f s without (median runs; by role, with/without: %s)." % (
               title, what, "/".join("%.3f" % x for x in ratios), (med - 1) * 100, target * 100,
               server_cpu_per_m(r), server_cpu_per_m(off), by_role)]
    cpu = r.get("pair_cpu_off")
    if cpu:
        cmed = statistics.median(cpu)
        ok = cmed - 1 <= target and 1 - med <= target
        out.append("Server CPU per event with over without, round by round (the steadier figure): %s, median "
                   "%+.1f%%. Verdict: %s the %g%% target." % (
                       "/".join("%.3f" % x for x in cpu), (cmed - 1) * 100, "within" if ok else "over",
                       target * 100))
    return out


def metrics_md(results):
    """The cost of the metrics endpoint (docs/ARCHITECTURE.md, "Metrics")."""
    r = results.get("quicstash-fsync-metrics") or {}
    sc = r.get("scrapes", {})
    return paired_md(results, "quicstash-fsync-metrics", "Metrics",
                     "`--metrics-addr` scraped every second (%d scrapes in the median run, %d failed; the metrics "
                     "process's own CPU %.2f s per million events)" % (
                         sc.get("ok", 0), sc.get("failed", 0),
                         (r.get("cpu") or {}).get("metrics", 0) / (r.get("events") or 1) * 1e6), 0.02)


def auth_md(results):
    """The cost of authentication and fairness (docs/TENANTS.md): the auth row against the plain one."""
    return paired_md(results, "quicstash-fsync-auth", "Authentication and fairness",
                     "`--auth token` with 4 tenants (a token per connection, events tagged and shared out by "
                     "deficit round robin)", 0.05)


def table(results, ctx):
    base_rs = results.get("rsyslog-memory", {}).get("events_per_s")
    base_q = results.get("rawquic", {}).get("events_per_s")
    rows = [("quicstash-fsync", "quicstash `--durability fsync`, full load")]
    if ctx.args.parsers_row > 0:
        rows.append(("quicstash-fsync-parsers", "quicstash `--durability fsync`, full load, `--parsers %d`" %
                     ctx.args.parsers_row))
    if ctx.args.auth_row:
        rows.append(("quicstash-fsync-auth", "quicstash `--durability fsync`, full load, `--auth token`, 4 tenants "
                     "(a token per connection)"))
    rows.append(("quicstash-fsync-metrics", "quicstash `--durability fsync`, full load, `--metrics-addr`, "
                 "scraped every second"))
    rows += [("quicstash-fsync-half", "quicstash `--durability fsync`, half load"),
             ("quicstash-fsync-floor", "quicstash `--durability fsync`, latency floor (%.0f events/s)" %
              ctx.args.floor_rate),
             ("quicstash-write", "quicstash `--durability write`, full load"),
             ("quicstash-write-half", "quicstash `--durability write`, half load"),
             ("rsyslog-memory", "rsyslog imptcp->omfwd, in-memory queue"),
             ("rsyslog-disk", "rsyslog imptcp->omfwd, disk queue"),
             ("rawquic", "raw QUIC: ngtcp2 HTTP/3 upload (1 conn, 1 stream)"),
             ("quicstash-fsync-amqp1", "quicstash `--durability fsync` into RabbitMQ (confirms), one node, full load"),
             ("quicstash-fsync-amqp3", "quicstash `--durability fsync` into RabbitMQ (confirms), three-node quorum "
              "queue, full load"),
             ("tcp", "plain TCP into the receiver")]
    head = ("| setup | events/s | MB/s | x rsyslog mem | x raw QUIC | ack p50 ms | p90 | p99 | p99.9 | "
            "CPU s per M events: server total (by role) | errors |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for key, label in rows:
        r = results.get(key)
        if not r:
            lines.append("| %s | (not run) | | | | | | | | | |" % label)
            continue
        if "failed" in r:
            lines.append("| %s | FAILED: %s | | | | | | | | | |" % (label, r["failed"].replace("|", "/")))
            continue
        eps = r["events_per_s"]
        mbps = eps * ctx.mean_line / 1e6
        lat = r.get("latency_us")
        latcells = [fmt_ms(lat["p50"]), fmt_ms(lat["p90"]), fmt_ms(lat["p99"]), fmt_ms(lat["p99_9"])] if lat else \
            ["-"] * 4
        if r.get("p99_runs") and len(r["p99_runs"]) > 1:
            latcells[2] += " (median of %s)" % "/".join(fmt_ms(x) for x in r["p99_runs"])
        shown = "%.0f" % eps
        if r.get("rate_target"):
            shown += " (target %.0f)" % r["rate_target"]
        if r.get("runs") and len(r["runs"]) > 1:
            shown += " (median of %s)" % "/".join(str(x) for x in r["runs"])
        err = str(r.get("errors", 0))
        if r.get("note"):
            err += " (%s)" % r["note"]
        vs_rs = fmt_ratio(eps, base_rs) + fmt_rounds(r.get("pair_ratios"))
        vs_q = fmt_ratio(eps, base_q) + fmt_rounds(r.get("pair_ratios_q"))
        lines.append("| %s | %s | %.1f | %s | %s | %s | %s |" % (
            label, shown, mbps, vs_rs, vs_q, " | ".join(latcells),
            fmt_cpu(r) + " | " + err))
    return "\n".join(lines)


def rates_list(text):
    """--everyday-rates: a comma list of events/s, each above 0 ("" for none)."""
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("not a comma list of numbers: %r" % text)
    if any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("a rate must be above 0: %r" % text)
    return rates


def main():
    ap = argparse.ArgumentParser(description="quicstash side-by-side benchmark (bench/README.md)")
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"), help="CMake build dir (build)")
    ap.add_argument("--events", type=int, default=1000000, help="corpus size (1000000)")
    ap.add_argument("--count", type=int, default=0, help="use only the first N events of the corpus (all)")
    ap.add_argument("--quick", action="store_true", help="development run: --count 100000 --repeat 1")
    ap.add_argument("--connections", type=int, default=4, help="quicstash-bench connections (4)")
    ap.add_argument("--streams", type=int, default=4, help="quicstash-bench streams per connection (4)")
    ap.add_argument("--window", type=int, default=4096, help="quicstash-bench window per connection (4096)")
    ap.add_argument("--threads", type=int, default=1, help="quicstash-bench threads (1)")
    ap.add_argument("--half-seconds", type=float, default=10, help="length of each half-load run (10)")
    ap.add_argument("--half-repeat", type=int, default=5,
                    help="half-load runs per mode, the one with the median p99 kept (5): this VM has 0.1-0.3 s "
                         "stalls that land in some runs")
    ap.add_argument("--no-hop-trace", dest="hop_trace", action="store_false",
                    help="skip the extra traced half-load run that shows where acknowledgements wait")
    ap.add_argument("--parsers-row", type=int, default=os.cpu_count() if (os.cpu_count() or 1) > 1 else 0,
                    help="one more fsync full-load row with quicstashd --parsers N, in the alternating rounds "
                         "(N = the CPUs; 0 skips it): the default, one parser per two CPUs, favours latency")
    ap.add_argument("--no-auth-row", dest="auth_row", action="store_false",
                    help="skip the fsync full-load row with --auth token and 4 tenants (docs/TENANTS.md), in the "
                         "alternating rounds: what authentication and tagging cost against the row without")
    ap.add_argument("--floor-rate", type=float, default=5000,
                    help="events/s of the fsync latency-floor runs, the pipeline all but idle (5000; 0 skips them)")
    ap.add_argument("--floor-seconds", type=float, default=6, help="length of each floor run (6)")
    ap.add_argument("--floor-repeat", type=int, default=3, help="floor runs, the one with the median p99 kept (3)")
    ap.add_argument("--steady-seconds", type=float, default=2,
                    help="seconds of qs-bench-steady before and after the measurements (2; 0 skips it)")
    ap.add_argument("--warmup", type=float, default=0.5,
                    help="seconds at the start of each quicstash run whose latencies are shown apart (0.5)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each short baseline, median kept (3)")
    ap.add_argument("--timeout", type=int, default=120, help="bound on each single run, seconds (120)")
    ap.add_argument("--budget", type=int, default=900,
                    help="seconds for all measurements; runs that would start later are skipped (900)")
    ap.add_argument("--everyday-rates", default="500,5000,50000", type=rates_list,
                    help="events/s of the everyday-rate rows, quicstash against rsyslog at the same pace "
                         "(500,5000,50000; empty skips them)")
    ap.add_argument("--everyday-seconds", type=float, default=6, help="length of each everyday-rate run (6)")
    ap.add_argument("--idle-seconds", type=float, default=10,
                    help="how long the idle row watches a quicstashd with no connection (10; 0 skips it)")
    ap.add_argument("--only", default="",
                    help="comma list: quicstash,metrics,auth,rsyslog,rawquic,tcp,parse,amqp,everyday,idle,storm (all; "
                         "auth: only the plain fsync full load and the --auth row, alternating)")
    ap.add_argument("--storm-connections", type=int, default=10000,
                    help="clients connecting at once in the connection-storm row (10000; --only storm)")
    ap.add_argument("--key-type", default="ed25519", choices=["ed25519", "ecdsa", "rsa"],
                    help="the server certificate's key (certtool --key-type; ed25519)")
    ap.add_argument("--storm-threads", type=int, default=2, help="quicstash-bench threads of the storm row (2)")
    ap.add_argument("--storm-spread", type=float, default=20,
                    help="the reconnect-storm rows (resuming, and with full handshakes): seconds over which their "
                         "clients first connect (20; a negative value skips them)")
    ap.add_argument("--qs-arg", action="append", default=[], help="extra quicstashd argument (repeatable)")
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"), help="table file to write")
    ap.add_argument("--source-note", default="", help="what was measured, when --build is not this tree's build")
    ap.add_argument("--keep", action="store_true", help="keep spools and queue files in the work dir")
    ap.add_argument("--no-results", action="store_true", help="do not write the results file")
    args = ap.parse_args()
    if args.quick:
        args.repeat = args.half_repeat = 1
        args.count = args.count or 100000

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    ctx = Ctx()
    ctx.args = args
    build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
    ctx.bin = lambda n: os.path.join(build, "bin", n)
    for n in ("quicstashd", "quicstash-bench", "qs-bench-receiver", "qs-bench-tcpsend", "qs-parse-bench",
              "qs-bench-steady"):
        if not os.access(ctx.bin(n), os.X_OK):
            sys.exit("bench: %s missing: run make build (bench/run does)" % ctx.bin(n))
    ctx.rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    ctx.ngtcp2_server = shutil.which("gtlsserver") or "/usr/sbin/gtlsserver"
    ctx.ngtcp2_client = shutil.which("gtlsclient") or "/usr/bin/gtlsclient"
    ctx.qs_args = args.qs_arg
    ctx.work = os.path.join(build, "bench", "work")
    shutil.rmtree(ctx.work, ignore_errors=True)
    os.makedirs(ctx.work)

    full = os.path.join(build, "bench", "corpus.jsonl")
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_corpus.py"), "--count", str(args.events),
                    "--out", full], check=True, timeout=300)
    ctx.corpus = full
    if 0 < args.count < args.events:  # the first N lines of the same corpus
        ctx.corpus = os.path.join(ctx.work, "corpus-%d.jsonl" % args.count)
        with open(full, "rb") as src, open(ctx.corpus, "wb") as dst:
            for i, line in enumerate(src):
                if i == args.count:
                    break
                dst.write(line)
    ctx.corpus_bytes = os.path.getsize(ctx.corpus)
    with open(ctx.corpus, "rb") as f:
        ctx.corpus_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    ctx.mean_line = ctx.corpus_bytes / ctx.corpus_lines
    log("corpus %s: %d events, %d bytes, mean %.1f bytes/event (with newline)" % (
        ctx.corpus, ctx.corpus_lines, ctx.corpus_bytes, ctx.mean_line))

    only = set(filter(None, args.only.split(","))) or {"quicstash", "metrics", "rsyslog", "rawquic", "tcp", "parse",
                                                       "amqp", "everyday", "idle", "storm"}
    mach = machine()
    results = {}
    rounds = []  # the alternating full-load rounds, each run's own figures (results.json)
    t_start = time.monotonic()

    def attempt(key, fn):
        left = args.budget - (time.monotonic() - t_start)
        if left < 15:
            log("%s skipped: the time budget (--budget %d s) is spent" % (key, args.budget))
            results[key] = {"failed": "skipped: time budget spent"}
            return
        args.timeout = int(min(args.timeout, left))  # every single run stays inside the budget
        try:
            results[key] = fn()
        except Exception as e:  # one failing setup must not hide the others
            log("%s FAILED: %s" % (key, e))
            results[key] = {"failed": str(e)[:300]}
        finally:
            _cleanup()

    try:
        if args.steady_seconds > 0:
            attempt("steady-start", lambda: steady_run(ctx, "start"))
        if "parse" in only:
            attempt("parse", lambda: parse_run(ctx))
        if "tcp" in only:
            attempt("tcp", lambda: median_of(lambda t: tcp_run(ctx, t), args.repeat))
        if "amqp" in only and os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
            attempt("quicstash-fsync-amqp1", lambda: amqp_run(ctx, 1))
            attempt("quicstash-fsync-amqp3", lambda: amqp_run(ctx, 3))
        # The full-load runs of quicstash, rsyslog's in-memory relay and the raw QUIC upload alternate,
        # round by round: this VM's speed drifts by tens of percent within minutes, and a ratio of two
        # figures measured minutes apart measures the drift as much as the servers.
        full = []
        if "rawquic" in only:
            full.append(("rawquic", lambda t: rawquic_run(ctx, t)))
        if "rsyslog" in only:
            full.append(("rsyslog-memory", lambda t: rsyslog_run(ctx, "memory", ctx.corpus_lines, t)))
        if "quicstash" in only or "metrics" in only or "auth" in only:
            full.append(("quicstash-fsync", lambda t: quicstash_run(ctx, "fsync", 0, ctx.corpus_lines, "full" + t)))
        if "metrics" in only:  # paired with quicstash-fsync, round by round
            full.append(("quicstash-fsync-metrics", lambda t: quicstash_run(
                ctx, "fsync", 0, ctx.corpus_lines, "metrics" + t, scraped=True)))
        if "quicstash" in only:
            full.append(("quicstash-write", lambda t: quicstash_run(ctx, "write", 0, ctx.corpus_lines, "full" + t)))
            if args.parsers_row > 0:  # the parser's work spread over more cores (the default favours latency)
                full.append(("quicstash-fsync-parsers", lambda t: quicstash_run(
                    ctx, "fsync", 0, ctx.corpus_lines, "parsers" + t, qs_extra=["--parsers", str(args.parsers_row)])))
        if ("quicstash" in only and args.auth_row) or "auth" in only:  # paired with quicstash-fsync
            qs_auth, bench_auth = auth_setup(ctx)
            full.append(("quicstash-fsync-auth", lambda t: quicstash_run(
                ctx, "fsync", 0, ctx.corpus_lines, "auth" + t, qs_extra=qs_auth, bench_extra=bench_auth)))
        for i in range(args.repeat):
            rounds.append({})
            for key, fn in round_order(full, i):
                attempt(key, lambda: fn("-%d" % i if args.repeat > 1 else ""))
                rounds[-1][key] = results.pop(key)
        for key, _ in full:
            ok = [r[key] for r in rounds if "failed" not in r[key]]
            results[key] = median_result(ok) if ok else rounds[-1][key]
            if key.startswith("quicstash") and "failed" not in results[key]:
                results[key]["pair_ratios"] = pair_ratios(rounds, key, "rsyslog-memory")
                results[key]["pair_ratios_q"] = pair_ratios(rounds, key, "rawquic")
        for key in ("quicstash-fsync-metrics", "quicstash-fsync-auth"):  # paired with the plain row
            if "events_per_s" in results.get(key, {}):
                results[key]["pair_cpu_off"] = pair_cpu_ratios(rounds, key, "quicstash-fsync")
                results[key]["pair_ratios_off"] = pair_ratios(rounds, key, "quicstash-fsync")
        if "rsyslog" in only:
            attempt("rsyslog-disk", lambda: rsyslog_run(ctx, "disk", ctx.corpus_lines))
        if "quicstash" in only:
            for dur in ("fsync", "write"):
                fr = results["quicstash-" + dur]
                if fr.get("events_per_s"):
                    half = fr["events_per_s"] / 2
                    n = int(min(ctx.corpus_lines, max(1000, half * args.half_seconds)))
                    attempt("quicstash-%s-half" % dur, lambda: median_p99_of(
                        lambda t: quicstash_run(ctx, dur, half, n, "half" + t), args.half_repeat))
                    if dur == "fsync" and args.hop_trace:
                        attempt("quicstash-fsync-half-traced", lambda: traced_run(ctx, half, n))
        if "quicstash" in only and args.floor_rate > 0:
            # the same pipeline all but idle: the tail that this host gives whatever the load
            n = int(min(ctx.corpus_lines, max(1000, args.floor_rate * args.floor_seconds)))
            attempt("quicstash-fsync-floor", lambda: median_p99_of(
                lambda t: quicstash_run(ctx, "fsync", args.floor_rate, n, "floor" + t), args.floor_repeat))
        if "everyday" in only and args.everyday_rates:
            everyday_rounds(ctx, attempt, results)
        if "idle" in only and args.idle_seconds > 0:
            attempt("quicstash-idle", lambda: idle_run(ctx))
        if "storm" in only:
            attempt("storm", lambda: storm.storm_run(ctx, quicstash_run, free_port, args.storm_connections,
                                                     args.storm_threads))
            if args.storm_spread >= 0:
                for resume in (True, False):
                    attempt("storm-reconnect" + ("" if resume else "-full"), lambda: storm.storm_run(
                        ctx, quicstash_run, free_port, args.storm_connections, args.storm_threads, reconnect=True,
                        spread=args.storm_spread, resume=resume))
        if args.steady_seconds > 0:
            attempt("steady-end", lambda: steady_run(ctx, "end"))
    finally:
        _cleanup()

    elapsed = time.monotonic() - t_start
    tbl = table(results, ctx)
    qs = ("connections %d x streams %d, window %d events/connection, %d thread(s)" %
          (args.connections, args.streams, args.window, args.threads))
    md = []
    md.append("# quicstash benchmark results\n")
    md.append("Written by `bench/run` (see bench/README.md for what each figure means). "
              "Everything ran on this one machine, load generators included, on loopback.\n")
    md.append("- machine: %d cores, %s, kernel %s, %.1f GiB RAM" % (mach["cores"], mach["cpu"], mach["kernel"],
                                                                   mach["memory_gib"]))
    md.append("- date: %s; load average at start: %s" % (mach["date"], mach["loadavg_at_start"]))
    md.extend(steady_md(results))
    md.append("- measured: %s" % (args.source_note or source_desc(build)))
    md.append("- corpus: %d events, %d bytes, mean %.1f bytes/event with the newline (bench/gen_corpus.py, "
              "fixed seed)" % (ctx.corpus_lines, ctx.corpus_bytes, ctx.mean_line))
    md.append("- quicstash-bench: %s; quicstashd defaults%s" % (
        qs, (" plus " + " ".join(args.qs_arg)) if args.qs_arg else ""))
    md.append("- half load: --rate at 50%% of the same mode's full-load rate for about %.0f s, %d run(s), the "
              "run with the median p99 shown (latency from each event's intended send time)" % (
                  args.half_seconds, args.half_repeat))
    md.append("- latency percentiles leave out the events due in the first %.1f s of each run (cold start: a "
              "fresh server, fresh connections, all streams starting at once); those are listed below the "
              "table" % args.warmup)
    md.append("- bench/run took %.0f s of measurements\n" % elapsed)
    md.append(tbl)
    lags = []
    for key in ("quicstash-fsync-half", "quicstash-write-half"):
        lag = (results.get(key) or {}).get("bench", {}).get("send_lag_us")
        if lag and lag.get("count"):
            lags.append("%s p50 %s / p90 %s / p99 %s / p99.9 %s ms" % (
                key.replace("quicstash-", "").replace("-half", ""), fmt_ms(lag["p50"]), fmt_ms(lag["p90"]),
                fmt_ms(lag["p99"]), fmt_ms(lag["p99_9"])))
    if lags:
        md.append("\nLoad generator's own lateness at half load (event handed to the client library after its "
                  "intended send time; already inside the ack latencies above): " + "; ".join(lags) + ".")
    md.extend(metrics_md(results))
    md.extend(auth_md(results))
    md.extend(storm.storm_md(results.get("storm"), args.storm_connections))
    md.extend(storm.reconnect_md(results.get("storm-reconnect"), args.storm_connections,
                                 results.get("storm-reconnect-full")))
    floor = results.get("quicstash-fsync-floor") or {}
    if floor.get("latency_us"):
        md.append("\nLatency floor: the fsync pipeline at %.0f events/s, all but idle, acknowledges with p99 %s ms: "
                  "the tail that this machine gives whatever the load (fdatasync on its disk, and the host's stalls "
                  "above), to read the half-load p99 against." % (args.floor_rate, fmt_ms(floor["latency_us"]["p99"])))
    md.extend(half_floor_md(results))
    md.extend(everyday_md(ctx, results))
    md.extend(idle_md(ctx, results))
    if "quicstash" in only and args.hop_trace:
        md.extend(hops_md(results.get("quicstash-fsync-half-traced")))
    cold = []
    for key in ("quicstash-fsync", "quicstash-fsync-half", "quicstash-write", "quicstash-write-half"):
        w = (results.get(key) or {}).get("bench", {}).get("warmup_latency_us")
        if w and w.get("count"):
            cold.append("%s p50 %s / p99 %s / max %s ms (%d events)" % (
                key.replace("quicstash-", ""), fmt_ms(w["p50"]), fmt_ms(w["p99"]), fmt_ms(w["max"]), w["count"]))
    if cold:
        md.append("\nCold start (events due in the first %.1f s of the run shown, not in its percentiles above): "
                  % args.warmup + "; ".join(cold) + ".")
    mtu = (results.get("quicstash-fsync") or {}).get("bench", {}).get("max_udp_payload")
    if mtu:
        md.append("\nPacket size: quicstash's QUIC packets reached %d bytes of UDP payload by path MTU discovery, "
                  "with ngtcp2's default probes (1444 at most), which the example client uses too; loopback would carry "
                  "64 KiB (docs/PERFORMANCE.md, round 9)." % mtu)
    pr, fr = results.get("parse") or {}, (results.get("quicstash-fsync") or {})
    if pr.get("enrich_ns"):
        line = ("\nThe parser's JSON work on one core (qs-parse-bench, first %d events): cJSON's parse alone "
                "%.0f ns/event, validation and enrichment as the parser runs them %.0f ns/event, so cJSON is "
                "%.0f%% of it" % (pr["events"], pr["cjson_ns"], pr["enrich_ns"], 100 * pr["cjson_share"]))
        parser_s = (fr.get("cpu") or {}).get("parser")
        if parser_s and fr.get("events"):
            parser_ns = parser_s / fr["events"] * 1e9
            line += ("; the parser process used %.0f ns/event at full load (fsync), so cJSON alone is %.0f%% of "
                     "its CPU" % (parser_ns, 100 * pr["cjson_ns"] / parser_ns))
        md.append(line + ".")
    md.append("\nMB/s = events/s x mean event size. Ratios are events/s over the rsyslog in-memory relay and "
              "over the raw QUIC upload. CPU: utime+stime per million events, from /proc/PID/stat of each "
              "process before and after; \"server total\" excludes the load generator (client/sender).\n")
    text = "\n".join(md)
    print(text)
    if not args.no_results:
        with open(args.results, "w") as f:
            f.write(text)
        with open(os.path.join(ctx.work, "results.json"), "w") as f:
            json.dump({"machine": mach, "results": results, "rounds": rounds}, f, indent=1, default=str)
        log("wrote %s (raw numbers: %s)" % (args.results, os.path.join(ctx.work, "results.json")))
    failed = [k for k, r in results.items() if "failed" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        _cleanup()

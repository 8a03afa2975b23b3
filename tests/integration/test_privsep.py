#!/usr/bin/env python3
"""Privilege separation (issue 4), each property read from /proc, not claimed:
- every child runs as the unprivileged user (not root), no supplementary groups, no capabilities,
  NoNewPrivs 1, a seccomp filter (Seccomp: 2); the supervisor keeps only a small capability set;
- every child is chrooted into the runtime dir (the shipper reaches its spool only through a
  directory descriptor opened before);
  parsers and the keyholder have a network namespace of their own (no network);
- the TLS private key is in no acceptor's, parser's or shipper's memory (their writable memory is
  searched for the key's secret scalar); the keyholder is not dumpable;
- a test-only probe makes the parser try to open a file after it is confined: the kernel kills it
  (SIGSYS) and the supervisor logs it; the service keeps serving once the probe is off.
Run as root (CI is); skipped otherwise."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

CHILD_ROLES = ("acceptor", "parser", "shipper", "keyholder")


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def key_scalar(key_path):
    """The private key's secret as bytes, from certtool's dump."""
    p = subprocess.run(["certtool", "-k", "--infile", key_path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    text = p.stdout.decode(errors="replace")
    m = re.search(r"\n\s*(?:k|private key):\s*\n((?:[ \t]+[0-9a-f:]+\n)+)", text)
    check(m, "cannot read the key's secret with certtool:\n%s" % text[:500])
    hexs = re.sub(r"[^0-9a-f]", "", m.group(1))
    b = bytes.fromhex(hexs)
    return b.lstrip(b"\0")[-32:]


def memory_contains(pid, needle):
    """Searches the process' writable mappings (heap, stacks, data: where a loaded key lives) for
    needle, in chunks; huge reservations (sanitizer shadow memory) are skipped."""
    chunk = 8 << 20
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            addr, perms = parts[0], parts[1]
            if "r" not in perms or "w" not in perms or (len(parts) > 5 and parts[5].startswith("[v")):
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if hi - lo > (1 << 30):
                continue
            pos, tail = lo, b""
            while pos < hi:
                try:
                    mem.seek(pos)
                    data = mem.read(min(chunk, hi - pos))
                except (OSError, ValueError, OverflowError, MemoryError):
                    break
                if not data:
                    break
                if needle in tail + data:
                    return True
                tail = data[-len(needle):]
                pos += len(data)
    return False


def role_pids(server):
    return {r: server.pids(r) for r in CHILD_ROLES}


def check_confinement(server):
    pids = role_pids(server)
    log("children: %r" % pids)
    for r in CHILD_ROLES:
        check(pids[r], "no %s child found" % r)
    sup = status(server.pid)
    sup_caps = int(sup["CapEff"], 16)
    check(bin(sup_caps).count("1") <= 16,
          "the supervisor kept %d capabilities (CapEff %s): it should drop what it does not need"
          % (bin(sup_caps).count("1"), sup["CapEff"]))
    sup_net = os.readlink("/proc/%d/ns/net" % server.pid)
    rundir = None
    for r in CHILD_ROLES:
        for pid in pids[r]:
            st = status(pid)
            uid = [int(x) for x in st["Uid"].split()]
            gid = [int(x) for x in st["Gid"].split()]
            what = "%s %d" % (r, pid)
            check(all(u != 0 for u in uid), "%s runs with uid %r" % (what, uid))
            check(all(g != 0 for g in gid), "%s runs with gid %r" % (what, gid))
            check(st.get("Groups", "") == "", "%s keeps supplementary groups %r" % (what, st.get("Groups")))
            for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                check(int(st[cap], 16) == 0, "%s has %s %s" % (what, cap, st[cap]))
            check(st["NoNewPrivs"] == "1", "%s NoNewPrivs %s" % (what, st["NoNewPrivs"]))
            check(st["Seccomp"] == "2", "%s Seccomp %s (2 = filter)" % (what, st["Seccomp"]))
            root = os.readlink("/proc/%d/root" % pid)
            net = os.readlink("/proc/%d/ns/net" % pid)
            if r in ("acceptor", "parser", "keyholder", "shipper"):
                check(root != "/", "%s is not chrooted (root %s)" % (what, root))
                rundir = rundir or root
                check(root == rundir, "%s chrooted to %s, others to %s" % (what, root, rundir))
                server.rundir = rundir
            if r in ("parser", "keyholder"):
                check(net != sup_net, "%s shares the supervisor's network namespace %s" % (what, net))
            if r in ("keyholder", "acceptor"):
                # A process that is not dumpable has its /proc files owned by root.
                check(os.stat("/proc/%d/mem" % pid).st_uid == 0,
                      "%s is dumpable (core dumps would expose key material)" % what)
    return pids


def check_key_isolation(server, pids):
    secret = key_scalar(server.key)
    check(len(secret) >= 16, "key secret too short: %r" % secret)
    # Sanity: the keyholder, which must hold the key, does contain it: the search works.
    kh = pids["keyholder"][0]
    check(memory_contains(kh, secret), "the key's secret was not found in the keyholder either: "
          "the memory search is broken")
    for r in ("acceptor", "parser", "shipper"):
        for pid in pids[r]:
            check(not memory_contains(pid, secret), "the TLS private key is in the memory of %s %d" % (r, pid))
    log("the key's secret is in the keyholder only")


def run():
    if os.geteuid() != 0:
        raise q.Skip("privilege separation is only exercised when started as root")
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--parsers", "2", "--acceptors", "1"], name="privsep", confined=True)
    server.start()
    # traffic first: a handshake has used the keyholder, frames have gone through every role
    rc, out, err = q.send(server, q.gen_events(200), timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "send: exit %r %s\n%s" % (rc, err[-500:], server.log_tail()))
    check(not recv.wait_numbers(range(200), q.tmo(20)), "events missing")
    pids = check_confinement(server)
    check_key_isolation(server, pids)
    # the QUIC secret is persistent state beside the key, made by the supervisor (root, 0600); none in
    # the runtime directory the children's user owns
    st = os.stat(os.path.join(server.dir, "quicstash.secret"))
    check(st.st_uid == 0 and st.st_mode & 0o777 == 0o600 and st.st_size == 32,
          "quicstash.secret: uid %d mode %o size %d, expected root's, 0600, 32 bytes"
          % (st.st_uid, st.st_mode & 0o777, st.st_size))
    check(not os.path.exists(os.path.join(server.rundir, "quicstash.secret")), "a secret in the runtime directory")
    server.stop()
    # the runtime directory quicstashd made for itself (no --runtime-dir) goes with it, although the children that wrote into it ran as another user
    check(not os.path.exists(server.rundir), "runtime directory left behind: %s holds %r" % (
        server.rundir, os.listdir(server.rundir) if os.path.isdir(server.rundir) else "?"))

    # The probe: the parser tries to open a file once confined (a test-only hook).
    if not q.TEST_HOOKS:
        return "children unprivileged, capability-free, NoNewPrivs, seccomp-filtered, chrooted/netns as designed; " \
               "key only in the keyholder; seccomp probe NOT run (QS_TEST_HOOKS off in this build)"
    probe = q.Server(recv, extra=["--parsers", "1"], name="probe", confined=True)
    os.environ["QS_TEST_SANDBOX_PROBE"] = "parser-open"
    try:
        probe.start(wait_ready=False)
        deadline = time.monotonic() + q.tmo(20)
        while time.monotonic() < deadline and "seccomp" not in probe.log():
            time.sleep(0.1)
    finally:
        del os.environ["QS_TEST_SANDBOX_PROBE"]
    logtext = probe.log()
    check(re.search(r"parser \d+ was killed by its seccomp filter", logtext),
          "the supervisor did not report the parser killed by seccomp; log:\n%s" % logtext[-2000:])
    check(probe.running(), "the supervisor died with its parser")
    probe.kill_tree()
    return "children unprivileged, capability-free, NoNewPrivs, seccomp-filtered, chrooted/netns as designed; " \
           "key only in the keyholder; a parser opening a file is killed (SIGSYS) and reported"


if __name__ == "__main__":
    q.main(run)

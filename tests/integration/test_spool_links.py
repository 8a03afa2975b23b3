#!/usr/bin/env python3
"""Issue 26 point 4: links and FIFOs that the service user plants in its spool.
 A. `--check-spool --repair` as root with symbolic links named like a segment, cursor.tmp and
    repair.tmp pointing at a root-owned file outside the spool (and a damaged segment and cursor,
    so that the repair rewrites through both temporaries): the file is unchanged, the links are
    reported by name and the exit status is 2. Before, the linked "segment" was cut to 0 bytes.
 B. A FIFO named like a segment and one as cursor.tmp: `--check-spool` finishes (it hung in open)
    with exit 2 and names the FIFO.
 C. The server with a FIFO as its cursor, another named like the newest segment and a link named
    like a segment: it starts (it hung reading the cursor), ships the spool, the victim is unchanged.
 D. While the server runs, a shipped-to-be segment is replaced by a FIFO: the output skips it
    (logged as damage), ships everything else, keeps moving its cursor (the spool shrinks), takes
    new events, and stops on SIGTERM promptly (its loop used to block in open for good)."""
import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

VICTIM = b"root's precious data\n" * 200


def segs(spool):
    return sorted(f for f in os.listdir(spool) if re.fullmatch(r"[0-9a-f]{16}\.seg", f))


def real_segs(spool):
    return [f for f in segs(spool) if os.path.isfile(os.path.join(spool, f)) and not
            os.path.islink(os.path.join(spool, f))]


def seg_numbers(path):
    """The event numbers in a segment file (records: magic, len, time, crc, payload)."""
    data = open(path, "rb").read()
    out, at = set(), 0
    while at + 20 <= len(data):
        magic, n = struct.unpack(">4sI", data[at:at + 8])
        if magic != b"\xffQSR":
            break
        m = re.search(rb'"n":(\d+)', data[at + 20:at + 20 + n])
        if m:
            out.add(int(m.group(1)))
        at += 20 + n
    return out


def plant_fifo(spool, name):
    """A FIFO made by the service user (the spool's owner), as it could."""
    p = os.path.join(spool, name)
    os.mkfifo(p, 0o600)
    st = os.stat(spool)
    os.chown(p, st.st_uid, st.st_gid)


def make_victim(d):
    victim = os.path.join(d, "victim")
    with open(victim, "wb") as f:
        f.write(VICTIM)
    os.chmod(victim, 0o644)
    return victim


def victim_intact(victim, what):
    with open(victim, "rb") as f:
        data = f.read()
    check(data == VICTIM, "%s: the root-owned file outside the spool was changed through a link (%d bytes now)"
          % (what, len(data)))


def check_spool(server, repair=False):
    argv = [q.QUICSTASHD, "--check-spool", server.spool] + (["--repair"] if repair else [])
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=q.tmo(20))
    except subprocess.TimeoutExpired:
        raise q.TestFailure("--check-spool%s did not finish within %.0f s (blocked on a FIFO?)"
                            % (" --repair" if repair else "", q.tmo(20)))
    return p.returncode, p.stdout.decode("utf-8", "replace")


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x40]))


def fill(server, n, start=0):
    q.send_acked(server, q.gen_events(n, start), "filling the spool (%d events from %d)" % (n, start))


def case_repair(server, victim):
    names = segs(server.spool)
    first = os.path.join(server.spool, names[0])
    flip(first, os.path.getsize(first) // 2)  # damage in the middle: rewritten through repair.tmp
    flip(os.path.join(server.spool, "cursor"), 20)  # both slots: the cursor is stored through cursor.tmp
    flip(os.path.join(server.spool, "cursor"), 512 + 20)
    last = int(names[-1][:16], 16)
    link_seg = "%016x.seg" % (last + 1)
    for name in (link_seg, "cursor.tmp", "repair.tmp"):
        os.symlink(victim, os.path.join(server.spool, name))
    rc, out = check_spool(server, repair=True)
    log("A: --check-spool --repair exit %s:\n%s" % (rc, out.strip()[-900:]))
    victim_intact(victim, "A (--check-spool --repair)")
    check(rc == 2, "A: --check-spool --repair exit %r with links planted in the spool, expected 2" % rc)
    check(re.search(re.escape(link_seg) + r".*symbolic link", out),
          "A: the link named like a segment is not reported as a symbolic link:\n%s" % out)
    check("repaired:" in out, "A: the rest of the spool was not repaired:\n%s" % out)
    for name in (link_seg, "repair.tmp", "cursor.tmp"):
        p = os.path.join(server.spool, name)
        if os.path.islink(p):
            os.unlink(p)
    rc, out = check_spool(server)
    check(rc == 0, "A: after removing the links the repaired spool is not sound (exit %r):\n%s" % (rc, out))


def case_fifo_check(server):
    last = int(segs(server.spool)[-1][:16], 16)
    fifo_seg = "%016x.seg" % (last + 1)
    plant_fifo(server.spool, fifo_seg)
    plant_fifo(server.spool, "cursor.tmp")
    for repair in (False, True):
        t0 = time.monotonic()
        rc, out = check_spool(server, repair)
        log("B: --check-spool%s exit %s in %.1f s" % (" --repair" if repair else "", rc, time.monotonic() - t0))
        check(rc == 2, "B: --check-spool exit %r with a FIFO named like a segment, expected 2:\n%s" % (rc, out))
        check(re.search(re.escape(fifo_seg) + r".*not a regular file", out),
              "B: the FIFO is not reported by name:\n%s" % out)
    os.unlink(os.path.join(server.spool, fifo_seg))
    if os.path.exists(os.path.join(server.spool, "cursor.tmp")):
        os.unlink(os.path.join(server.spool, "cursor.tmp"))


def case_server_start(server, recv, victim, pending):
    last = int(segs(server.spool)[-1][:16], 16)
    os.unlink(os.path.join(server.spool, "cursor"))
    plant_fifo(server.spool, "cursor")
    plant_fifo(server.spool, "%016x.seg" % (last + 1))
    os.symlink(victim, os.path.join(server.spool, "%016x.seg" % (last + 2)))
    recv.start()
    server.start(timeout=q.tmo(20))
    q.verify_delivery(recv, pending, q.tmo(60), what="in the spool at the start")
    victim_intact(victim, "C (server start)")
    # the cursor moves (the shipped segments are retired; the newest stays until writing moves on)
    deadline = time.monotonic() + q.tmo(20)
    while time.monotonic() < deadline and len(real_segs(server.spool)) > 1:
        time.sleep(0.1)
    check(len(real_segs(server.spool)) <= 1, "C: shipped segments are not retired: %r" % real_segs(server.spool))
    check(re.search(r"not a regular file|symbolic link", server.log(since_start=True)),
          "C: the planted entries are not logged:\n%s" % server.log_tail())


def case_running(server, recv, victim):
    """The receiver paused (not reading) so the spool holds several segments; one of them is
    replaced by a FIFO under the running shipper."""
    recv.stop()
    base = 100000
    for i in range(0, 800, 50):  # small groups: segments roll at their size (128 KiB here)
        fill(server, 50, base + i)
    names = real_segs(server.spool)
    new = [n for n in names[:-1] if min(seg_numbers(os.path.join(server.spool, n)) or {0}) >= base]
    check(new, "D: the spool holds %r: no segment of new events but the write segment" % names)
    target = os.path.join(server.spool, new[0])
    lost = seg_numbers(target)
    os.unlink(target)
    plant_fifo(server.spool, os.path.basename(target))
    log("D: %s replaced by a FIFO (%d events in it) while the server runs" % (new[0], len(lost)))
    recv.start()
    want = set(range(base, base + 800)) - lost
    q.verify_delivery(recv, want, q.tmo(60), what="outside the replaced segment")
    fill(server, 300, base + 800)
    q.verify_delivery(recv, set(range(base + 800, base + 1100)), q.tmo(60), what="sent after the FIFO")
    deadline = time.monotonic() + q.tmo(20)
    while time.monotonic() < deadline and os.path.exists(target):
        time.sleep(0.1)
    check(not os.path.exists(target), "D: the cursor did not move past the replaced segment (still there)")
    check(re.search(r"skipped as damage", server.log(since_start=True)),
          "D: skipping the replaced segment is not logged:\n%s" % server.log_tail())
    t0 = time.monotonic()
    server.stop(timeout=q.tmo(10))
    log("D: stopped on SIGTERM in %.1f s" % (time.monotonic() - t0))
    victim_intact(victim, "D (running server)")


def run():
    q.need_binaries()
    if os.geteuid() != 0:
        raise q.Skip("not root: the point is what --check-spool does as root")
    recv = q.Receiver()  # down: the events stay in the spool
    server = q.Server(recv, extra=["--spool-max-bytes", "1M"], name="links")
    victim = make_victim(server.dir)
    server.start()
    fill(server, 2000)
    server.stop()
    case_repair(server, victim)
    case_fifo_check(server)
    pending = set()
    for name in segs(server.spool):
        pending |= seg_numbers(os.path.join(server.spool, name))
    case_server_start(server, recv, victim, pending)
    case_running(server, recv, victim)
    return "links and FIFOs in the spool: never followed, never blocking; reported by name"


if __name__ == "__main__":
    q.main(run)

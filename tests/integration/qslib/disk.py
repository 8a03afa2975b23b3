"""Spool files and tmpfs mounts (a full disk)."""

import os
import subprocess

from .base import Skip, check
from .cleanup import at_cleanup


def spool_files(spool):
    """Regular files under the spool directory: [(path, size)], sorted by name."""
    out = []
    for root, dirs, files in os.walk(spool):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p):
                out.append((p, os.path.getsize(p)))
    return sorted(out)


def spool_bytes(spool):
    return sum(s for _, s in spool_files(spool))


def mount_tmpfs(path, size):
    """Mounts a tmpfs of `size` (e.g. '3m') at path; raises Skip when mounting is impossible."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        raise Skip("not root: cannot mount a tmpfs for the disk-full test")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if p.returncode != 0:
        raise Skip("mount -t tmpfs impossible here: %s" % p.stdout.decode(errors="replace").strip())

    def um():
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    at_cleanup(um)
    return um


def remount_tmpfs(path, size):
    p = subprocess.run(["mount", "-o", "remount,size=%s" % size, path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    check(p.returncode == 0, "remount of %s failed: %s" % (path, p.stdout.decode(errors="replace")))

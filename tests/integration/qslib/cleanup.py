"""Cleanup at exit (and on SIGTERM), the child's death signal, temporary directories, binaries."""

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

from .base import KEEP, QS_BIN, TEST_HOOKS, Skip, check


_cleanups = []
_cleanup_lock = threading.Lock()


def at_cleanup(fn):
    with _cleanup_lock:
        _cleanups.append(fn)
    return fn


def _run_cleanups():
    with _cleanup_lock:
        fns = list(reversed(_cleanups))
        _cleanups.clear()
    for fn in fns:
        try:
            fn()
        except Exception as e:  # cleanup must go on
            sys.stderr.write("cleanup error: %r\n" % (e,))


atexit.register(_run_cleanups)


def _on_term(signum, frame):
    _run_cleanups()
    os._exit(1)


signal.signal(signal.SIGTERM, _on_term)

_libc = None


def _pdeathsig():
    """preexec_fn: the child dies with SIGKILL if the test process dies (ctest timeout)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix="qs-%s-" % prefix)

    def rm():
        if KEEP:
            sys.stderr.write("kept %s\n" % d)
        else:
            for sub in ("spool", "spool2"):
                mp = os.path.join(d, sub)
                if os.path.ismount(mp):
                    subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            shutil.rmtree(d, ignore_errors=True)

    at_cleanup(rm)
    return d


def need_binaries(*names):
    names = names or ("quicstashd", "quicstash-send")
    for n in names:
        p = os.path.join(QS_BIN, n)
        check(os.access(p, os.X_OK), "%s is not built (QS_BIN=%s)" % (p, QS_BIN))


def need_test_hooks(what):
    """Skips the test unless the binaries have the test-only hooks (cmake -DQS_TEST_HOOKS=ON; make test)."""
    if not TEST_HOOKS:
        raise Skip("needs %s, a test-only hook: this build has QS_TEST_HOOKS off (use make test)" % what)

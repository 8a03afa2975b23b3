"""Settings from the environment, the verdict exceptions, log/check and the sanitizer scaling."""

import os
import re
import sys
import time


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
QS_BIN = os.environ.get("QS_BIN") or os.path.join(REPO, "build", "bin")
SANITIZE = os.environ.get("QS_SANITIZE", "0").strip().lower() in ("1", "on", "true", "yes")
TEST_HOOKS = os.environ.get("QS_TEST_HOOKS", "1").strip().lower() in ("1", "on", "true", "yes")
KEEP = os.environ.get("QS_KEEP", "0") == "1"
QUICSTASHD = os.path.join(QS_BIN, "quicstashd")
SEND = os.path.join(QS_BIN, "quicstash-send")

# How much slower everything is under sanitizers: timeouts are multiplied, loads divided.
SLOW = 3.0 if SANITIZE else 1.0
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|UndefinedBehaviorSanitizer")

SKIP_CODE = 77


class Skip(Exception):
    """Raised by a test that cannot run here (e.g. mount impossible): exit 77, ctest SKIP."""


class TestFailure(AssertionError):
    pass


def scale(n, minimum=1):
    """Load size for this build: n, or n/3 under sanitizers (never below minimum)."""
    return max(minimum, int(n / SLOW))


def tmo(seconds):
    """A timeout for this build (longer under sanitizers)."""
    return seconds * SLOW


def log(msg):
    sys.stdout.write("[%7.2f] %s\n" % (time.monotonic() - _T0, msg))
    sys.stdout.flush()


_T0 = time.monotonic()


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)

"""Running a test: its verdict, exit status and the case selector (--list, --case, QS_CASE).

A test declares the parts that can run alone as cases, [(name, function)], and calls
main(run, cases=CASES). Without a selection run() runs, exactly as in the full suite. With
  python3 test_x.py --case NAME [--case NAME2]     or     QS_CASE=NAME[,NAME2] ctest -R test_x
only the named cases run, in the order given; --list prints the names. Every test has the case
"all" (run() itself). An unknown name is an error (exit 2, with the list), never a silent pass.
"""

import argparse
import os
import sys
import time
import traceback

from .base import QS_BIN, SANITIZE, SKIP_CODE, Skip, TestFailure, log
from .cleanup import _run_cleanups

USAGE_CODE = 2
ALL = "all"


def _selected(argv, cases, name):
    """The case names asked for (None: the whole test), or exits: 0 after --list, 2 on a bad name."""
    p = argparse.ArgumentParser(prog=name, description="Runs the test, or only the cases named.")
    p.add_argument("--case", action="append", default=[], metavar="NAME",
                   help="run only this case (repeatable, or NAME,NAME); default: QS_CASE, else all")
    p.add_argument("--list", action="store_true", help="print the case names and exit")
    args = p.parse_args(argv)
    names = [ALL] + [n for n, _ in cases]
    if args.list:
        print("\n".join(names))
        sys.exit(0)
    asked = [c.strip() for arg in (args.case or [os.environ.get("QS_CASE", "")]) for c in arg.split(",")]
    asked = [c for c in asked if c]
    unknown = [c for c in asked if c not in names]
    if unknown:
        sys.stderr.write("%s: unknown case %s; the cases are: %s\n" % (name, ", ".join(unknown), " ".join(names)))
        sys.exit(USAGE_CODE)
    return None if not asked or ALL in asked else asked


def _run_cases(fns, asked):
    """A function running the asked cases in order; its detail names each case."""
    def run():
        details = []
        for c in asked:
            log("case %s" % c)
            r = fns[c]()
            details.append("%s: %s" % (c, r) if r is not None else c)
        return "; ".join(details)
    return run


def main(fn, name=None, cases=()):
    """Runs fn() (or the cases selected, see above) and prints the verdict; exit 0 pass, 1 fail,
    2 unknown case, 77 skip."""
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    asked = _selected(sys.argv[1:], list(cases), name)
    if asked:
        fn = _run_cases(dict(cases), asked)
        name = "%s[%s]" % (name, ",".join(asked))
    log("%s: QS_BIN=%s sanitize=%s" % (name, QS_BIN, SANITIZE))
    t0 = time.monotonic()
    code = 0
    try:
        detail = fn()
        print("PASS %s (%.1fs)%s" % (name, time.monotonic() - t0, ": " + detail if detail else ""))
    except Skip as e:
        print("SKIP %s: %s" % (name, e))
        code = SKIP_CODE
    except TestFailure as e:
        print("FAIL %s (%.1fs): %s" % (name, time.monotonic() - t0, e))
        code = 1
    except Exception:
        traceback.print_exc(file=sys.stdout)
        print("FAIL %s (%.1fs): unexpected error (traceback above)" % (name, time.monotonic() - t0))
        code = 1
    sys.stdout.flush()
    _run_cleanups()
    sys.exit(code)

#!/usr/bin/env python3
"""The case selector of qslib.main (tests/README.md): --list prints the cases, --case NAME and
QS_CASE=NAME run only those, an unknown name exits 2 with the list and runs nothing, no selection
runs the whole test. Checked on a small test written here (real subprocesses, no server), and
--list on every integration test (each still imports qslib and lists "all" first).
"""
import glob
import os
import subprocess
import sys

import qslib as q
from qslib import check, log

HERE = os.path.dirname(os.path.abspath(__file__))

TOY = '''
import qslib as q

def one():
    print("RAN one")
    return "1"

def two():
    print("RAN two")
    raise q.TestFailure("two fails")

def run():
    print("RAN run")
    return "whole"

if __name__ == "__main__":
    q.main(run, cases=[("one", one), ("two", two)])
'''


def toy(d, *args, case=None):
    env = dict(os.environ, PYTHONPATH=HERE)
    env.pop("QS_CASE", None)
    if case is not None:
        env["QS_CASE"] = case
    p = subprocess.run([sys.executable, os.path.join(d, "test_toy.py")] + list(args), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=q.tmo(60))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def ran(out):
    return [l.split()[1] for l in out.splitlines() if l.startswith("RAN ")]


def expect(d, args, case, rc, runs, verdict):
    got_rc, out, err = toy(d, *args, case=case)
    what = "test_toy.py %s (QS_CASE=%r)" % (" ".join(args), case)
    check(got_rc == rc, "%s: exit %d, expected %d\n%s%s" % (what, got_rc, rc, out, err))
    check(ran(out) == runs, "%s: ran %r, expected %r\n%s" % (what, ran(out), runs, out))
    check(verdict in out, "%s: no %r in\n%s" % (what, verdict, out))
    return err


def toy_cases():
    d = q.mkdtemp("selector")
    with open(os.path.join(d, "test_toy.py"), "w") as f:
        f.write(TOY)
    rc, out, err = toy(d, "--list")
    check(rc == 0 and out.split() == ["all", "one", "two"], "--list: exit %d, %r" % (rc, out))
    expect(d, [], None, 0, ["run"], "PASS test_toy ")
    expect(d, ["--case", "all"], None, 0, ["run"], "PASS test_toy ")
    expect(d, ["--case", "one"], None, 0, ["one"], "PASS test_toy[one]")
    expect(d, ["--case", "two"], None, 1, ["two"], "FAIL test_toy[two]")
    expect(d, ["--case", "two", "--case", "one"], None, 1, ["two"], "FAIL test_toy[two,one]")
    expect(d, ["--case", "one,two"], None, 1, ["one", "two"], "FAIL test_toy[one,two]")
    expect(d, [], "one", 0, ["one"], "PASS test_toy[one]")
    expect(d, ["--case", "one"], "two", 0, ["one"], "PASS test_toy[one]")  # the option wins
    for args, case in ((["--case", "bogus"], None), ([], "bogus"), (["--case", "one,bogus"], None)):
        err = expect(d, args, case, 2, [], "")
        check("unknown case bogus" in err and "all one two" in err,
              "an unknown case: the error does not name it and list the cases: %r" % err)
    log("toy test: --list, --case, QS_CASE, unknown names: as documented")


def every_test_lists():
    tests = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    for t in tests:
        p = subprocess.run([sys.executable, t, "--list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=q.tmo(60))
        names = p.stdout.decode().split()
        check(p.returncode == 0 and names[:1] == ["all"] and len(set(names)) == len(names),
              "%s --list: exit %d, %r\n%s" % (os.path.basename(t), p.returncode, names, p.stderr.decode()[-800:]))
    p = subprocess.run([sys.executable, os.path.join(HERE, "test_config.py"), "--case", "bogus"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=q.tmo(60))
    check(p.returncode == 2 and b"typo-then-crash" in p.stderr, "test_config.py --case bogus: exit %d, %r"
          % (p.returncode, p.stderr[-500:]))
    return len(tests)


def run():
    toy_cases()
    n = every_test_lists()
    return "--list, --case, QS_CASE and unknown names (exit 2) as documented; %d tests list their cases" % n


if __name__ == "__main__":
    q.main(run)

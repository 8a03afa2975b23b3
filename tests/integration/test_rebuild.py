#!/usr/bin/env python3
"""A second `make run` rebuilds nothing, and `make run` builds only what it runs.

  configure-twice: the Makefile's configure, run twice in a fresh build directory, leaves every
                   compile command the same (CMake 3.25's FindPkgConfig moved libzmq's -isystem
                   between the include directories and the compile options on a re-configure:
                   73 of 101 objects were compiled again by every `make build`);
  run-twice:       `make run ARGS=--version` in a fresh build directory builds quicstashd and
                   quicstash-send and no test or bench program; the second compiles and links
                   nothing.
The build directories are the test's own (BUILD=...); `deps` is taken as done (make -o deps).
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

WORK = re.compile(r"Building C object (\S+)|Linking C \S+ (\S+)")


def make(build, *targets, **env_vars):
    argv = ["make", "-C", q.REPO, "-o", "deps", "BUILD=" + build, "JOBS=2"] + list(targets)
    argv += ["%s=%s" % kv for kv in env_vars.items()]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=q.tmo(900))
    out = p.stdout.decode("utf-8", "replace")
    check(p.returncode == 0, "%s failed (exit %d):\n%s" % (" ".join(argv), p.returncode, out[-3000:]))
    return out


def compile_commands(build):
    with open(os.path.join(build, "compile_commands.json"), "rb") as f:
        return f.read()


def configure_twice():
    build = os.path.join(q.mkdtemp("rebuild"), "build")
    make(build, "configure")
    first = compile_commands(build)
    make(build, "configure")
    second = compile_commands(build)
    check(first == second, "a second configure changed the compile commands (every object so changed is "
          "compiled again):\n%s" % "\n".join(
              l for l in set(second.decode().splitlines()) - set(first.decode().splitlines()) if "command" in l)[:3000])
    return "compile commands unchanged"


def run_twice():
    if q.SANITIZE:
        raise q.Skip("a build check: the plain run covers it")
    build = os.path.join(q.mkdtemp("rebuild"), "build")
    out = make(build, "run", ARGS="--version")
    check(re.search(r"^quicstashd \d", out, re.M), "make run ARGS=--version printed no version:\n" + out[-2000:])
    built = {m.group(1) or m.group(2) for m in WORK.finditer(out)}
    programs = sorted(os.listdir(os.path.join(build, "bin")))
    check(programs == ["quicstash-send", "quicstashd"], "make run built the programs %r" % programs)
    check(not os.path.isdir(os.path.join(build, "tests")) or not any(
        n.startswith("test_") for n in os.listdir(os.path.join(build, "tests"))), "make run built unit tests")
    log("first make run: %d objects and programs built" % len(built))
    again = make(build, "run", ARGS="--version")
    redone = [m.group(0) for m in WORK.finditer(again)]
    check(not redone, "the second make run built again:\n%s" % "\n".join(redone[:40]))
    return "first run built %d objects and programs, the second none" % len(built)


CASES = [("configure-twice", configure_twice), ("run-twice", run_twice)]


def run():
    return "; ".join([configure_twice()] + ([] if q.SANITIZE else [run_twice()]))


if __name__ == "__main__":
    q.main(run, cases=CASES)

#!/usr/bin/env python3
"""The binary users run has no test-only hook (issue 20, item 6; docs/ARCHITECTURE.md, "Test-only hooks").

1. Every product source file (compile_commands.json, all but tests/) is preprocessed with this build's
   own flags but without -DQS_TEST_HOOKS: its output must hold no "QS_TEST_" and no long option named
   "test-..." (a QS_TEST_* variable or a hidden --test-* option outside `#ifdef QS_TEST_HOOKS` fails here).
2. The same files preprocessed with -DQS_TEST_HOOKS must show the known hooks, or the check above sees
   nothing and proves nothing.
3. In a build configured without the hooks (plain cmake), the installed-to-be binaries themselves hold
   none of those strings.
"""

import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOOK = re.compile(r'QS_TEST_\w+|"test-[a-z-]+"')
KNOWN = {"QS_TEST_SANDBOX_PROBE", '"test-source-addr"', '"test-hold-streams"', '"test-rebind-after"',
         '"test-unread-answers"', '"test-reset-streams"', '"test-raw-reset"', "QS_TEST_CTL_FORBIDDEN",
         "QS_TEST_PARSER_DELAY_US", "QS_TEST_FAIR_FIFO", "QS_TEST_SHIPPER_DELAY_US"}
DROP_WITH_ARG = {"-o", "-MF", "-MT", "-MQ"}
DROP = {"-c", "-MD", "-MMD", "-DQS_TEST_HOOKS"}


def product_commands(build):
    path = os.path.join(build, "compile_commands.json")
    check(os.path.exists(path), "%s is missing (CMAKE_EXPORT_COMPILE_COMMANDS)" % path)
    with open(path) as f:
        entries = json.load(f)
    tests = os.path.join(REPO, "tests") + os.sep
    return [e for e in entries if not os.path.abspath(e["file"]).startswith(tests)]


def preprocess(entry, hooks):
    """The hook-like strings in entry's file preprocessed with or without QS_TEST_HOOKS."""
    argv = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in DROP_WITH_ARG:
            skip = True
        elif a not in DROP:
            out.append(a)
    out[1:1] = ["-E", "-P"] + (["-DQS_TEST_HOOKS"] if hooks else [])
    r = subprocess.run(out, cwd=entry["directory"], capture_output=True, text=True, timeout=q.tmo(120))
    check(r.returncode == 0, "preprocessing %s failed: %s" % (entry["file"], r.stderr[-1000:]))
    return set(HOOK.findall(r.stdout))


def scan(entries, hooks):
    found = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for e, hits in zip(entries, pool.map(lambda e: preprocess(e, hooks), entries)):
            if hits:
                found[os.path.relpath(e["file"], REPO)] = sorted(hits)
    return found


def scan_binaries(build):
    found = {}
    for name in ("quicstashd", "quicstash-send"):
        with open(os.path.join(build, "bin", name), "rb") as f:
            hits = set(re.findall(rb"QS_TEST_\w+|\x00test-[a-z-]+\x00", f.read()))
        if hits:
            found[name] = sorted(h.strip(b"\0").decode() for h in hits)
    return found


def run():
    q.need_binaries("quicstashd", "quicstash-send")
    build = os.path.dirname(os.path.abspath(q.QS_BIN))
    entries = product_commands(build)
    check(len(entries) > 20, "only %d product files in compile_commands.json" % len(entries))
    leaked = scan(entries, hooks=False)
    check(not leaked, "test-only hooks outside #ifdef QS_TEST_HOOKS: %r" % leaked)
    seen = set().union(*scan(entries, hooks=True).values())
    check(KNOWN <= seen, "with QS_TEST_HOOKS the known hooks are not all seen (the check is blind): "
          "missing %r" % sorted(KNOWN - seen))
    log("%d product files: no hook without QS_TEST_HOOKS; with it: %s" % (len(entries), sorted(seen)))
    detail = "%d product files free of hooks without QS_TEST_HOOKS, %d hooks seen with it" % (len(entries), len(seen))
    if q.TEST_HOOKS:
        return detail + "; binaries not scanned (this build has the hooks)"
    inbin = scan_binaries(build)
    check(not inbin, "hook strings in the product binaries: %r" % inbin)
    return detail + "; quicstashd and quicstash-send hold no hook string"


if __name__ == "__main__":
    q.main(run)

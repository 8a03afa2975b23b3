#!/usr/bin/env python3
"""Issue 23 item 4: the man pages agree with the options the programs take.
 daemon  every visible entry of the option table (qs-mangen --list reads common/options.c's) is in
         quicstashd --help and in quicstashd(8)'s OPTIONS; no hidden one is in either; every option
         tag in the page is an entry of the table.
 conf    quicstash.conf(5) describes as "NAME = ..." exactly the entries a --config file may set.
 send    every long option of quicstash-send's getopt table (client/send.c, the test-only ones
         under QS_TEST_HOOKS left out) is in --help and in quicstash-send(1), and every option tag
         of the page is in the table.
 bench   the same for quicstash-bench (bench/quicstash-bench.c) and quicstash-bench(1).
 top     the same for quicstash-top (top/top.c) and quicstash-top(1).
 render  `man --warnings` renders each page without a warning.
The pages are the build's (<build>/man), as installed."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

MAN = os.path.join(os.path.dirname(q.QS_BIN), "man")
PAGES = ("quicstashd.8", "quicstash.conf.5", "quicstash-send.1", "quicstash-bench.1", "quicstash-top.1")


def page(name):
    path = os.path.join(MAN, name)
    check(os.path.exists(path), "%s is not built" % path)
    with open(path) as f:
        return f.read()


def option_tags(roff):
    """The long options named by the .TP tags of the page's OPTIONS section."""
    opts = roff.split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    tags = re.findall(r"^\.TP\n(.*)$", opts, re.M)
    return [n.replace("\\-", "-") for t in tags for n in re.findall(r"\\fB\\-\\-((?:[a-z0-9]|\\-)+)\\fR", t)]


def help_options(binary):
    p = subprocess.run([os.path.join(q.QS_BIN, binary), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10)
    check(p.returncode == 0, "%s --help: exit %d" % (binary, p.returncode))
    return set(re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", p.stdout.decode()))


def getopt_table(source, array):
    """The long options of the struct option array named array in source, without the entries
    inside #ifdef QS_TEST_HOOKS blocks."""
    with open(os.path.join(q.REPO, source)) as f:
        text = f.read()
    body = re.search(r"struct option %s\[\] = \{(.*?)\n\s*\};" % array, text, re.S)
    check(body, "%s: no struct option %s[]" % (source, array))
    body = re.sub(r"#ifdef QS_TEST_HOOKS.*?#endif", "", body.group(1), flags=re.S)
    names = re.findall(r"\{\"([a-z0-9-]+)\",", body)
    check(names, "%s: %s[] has no option" % (source, array))
    return names


def table():
    p = subprocess.run([os.path.join(q.QS_BIN, "qs-mangen"), "--list"], stdout=subprocess.PIPE, timeout=10)
    check(p.returncode == 0, "qs-mangen --list: exit %d" % p.returncode)
    rows = [line.split() for line in p.stdout.decode().splitlines()]
    check(len(rows) > 20, "qs-mangen --list: %d options" % len(rows))
    return rows


def case_daemon():
    rows = table()
    visible = {r[0] for r in rows if r[1] == "visible"}
    hidden = {r[0] for r in rows if r[1] == "hidden"}
    helped, tags = help_options("quicstashd"), set(option_tags(page("quicstashd.8")))
    check(visible <= helped, "not in quicstashd --help: %s" % sorted(visible - helped))
    check(visible <= tags, "not in quicstashd(8): %s" % sorted(visible - tags))
    check(not (hidden & (helped | tags)), "hidden options shown: %s" % sorted(hidden & (helped | tags)))
    check(tags <= visible, "quicstashd(8) describes options the table lacks: %s" % sorted(tags - visible))
    return "%d options in the table, --help and quicstashd(8)" % len(visible)


def case_conf():
    rows = table()
    settable = {r[0] for r in rows if r[2] == "file"}
    opts = page("quicstash.conf.5").split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    named = {n.replace("\\-", "-") for n in re.findall(r"^\.TP\n\\fB((?:[a-z0-9]|\\-)+)\\fR = ", opts, re.M)}
    check(named == settable, "quicstash.conf(5) differs from the table's file options: missing %s, extra %s"
          % (sorted(settable - named), sorted(named - settable)))
    return "%d file options" % len(settable)


def client_case(binary, source, array):
    names = getopt_table(source, array)
    helped, tags = help_options(binary), option_tags(page(binary + ".1"))
    check(set(names) <= helped, "not in %s --help: %s" % (binary, sorted(set(names) - helped)))
    check(set(names) <= set(tags), "not in %s(1): %s" % (binary, sorted(set(names) - set(tags))))
    check(set(tags) <= set(names), "%s(1) describes options %s lacks: %s" % (binary, source, sorted(set(tags) - set(names))))
    return "%d options" % len(names)


def case_send():
    return client_case("quicstash-send", "client/send.c", "long_opts")


def case_bench():
    q.need_binaries("quicstash-bench")
    return client_case("quicstash-bench", "bench/quicstash-bench.c", "lo")


def case_top():
    q.need_binaries("quicstash-top")
    return client_case("quicstash-top", "top/top.c", "long_opts")


def case_render():
    for name in PAGES:
        p = subprocess.run(["man", "--warnings", "-l", os.path.join(MAN, name)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30,
                           env=dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 0 and not err.strip(), "man --warnings %s: exit %d\n%s" % (name, p.returncode, err))
        log("%s: %d lines rendered" % (name, p.stdout.count(b"\n")))
    return "%d pages without warnings" % len(PAGES)


CASES = [("daemon", case_daemon), ("conf", case_conf), ("send", case_send), ("bench", case_bench),
         ("top", case_top), ("render", case_render)]



def run():
    return "; ".join("%s: %s" % (n, f()) for n, f in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

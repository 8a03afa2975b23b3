#!/usr/bin/env python3
"""Malformed input (issue 2), through `quicstash-send --raw` and through the normal client.
Each case gets its rejection or a clean connection error; the server keeps serving other clients
(no child crashes, a normal send after each case succeeds); nothing accepted before is lost."""
import json
import os
import random
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

MAXMSG = 1024


def frame(obj_or_bytes):
    b = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
    return struct.pack(">I", len(b)) + b


def parse_raw(out):
    """quicstash-send --raw stdout: list of ('ack', next) / ('reject', seq, code, reason) /
    ('goaway', ms) / ('closed', reason)."""
    res = []
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        m = re.match(r"^ack (\d+)$", line)
        if m:
            res.append(("ack", int(m.group(1))))
            continue
        m = re.match(r"^reject (\d+) (\S+) ?(.*)$", line)
        if m:
            res.append(("reject", int(m.group(1)), m.group(2), m.group(3)))
            continue
        m = re.match(r"^goaway (\d+)$", line)
        if m:
            res.append(("goaway", int(m.group(1))))
            continue
        m = re.match(r"^closed:? ?(.*)$", line)
        if m:
            res.append(("closed", m.group(1)))
            continue
        res.append(("?", line))
    return res


class Ctx:
    def __init__(self):
        self.recv = q.Receiver().start()
        self.server = q.Server(self.recv, extra=["--max-message-size", "1K"], name="malformed")
        self.server.start()
        self.pids = self.server.all_pids()
        self.good = set()  # event numbers accepted so far
        self.next_n = 0
        self.cases = []

    def good_events(self, k):
        evs = [q.gen_event(i) for i in range(self.next_n, self.next_n + k)]
        self.next_n += k
        return evs

    def raw(self, data, name):
        rc, out, err = q.send(self.server, data, extra_args=["--raw"], timeout=q.tmo(60),
                              client_timeout=int(q.tmo(15)))
        ans = parse_raw(out)
        log("raw %-22s rc=%s answers=%s%s" % (name, rc, ans[:8], " stderr=%r" % err.strip()[-200:] if err.strip() else ""))
        check(rc is not None, "%s: quicstash-send --raw hung (killed after the timeout)" % name)
        check(not any(a[0] == "?" for a in ans), "%s: unparseable --raw output: %r" % (name, out[-500:]))
        return rc, ans, err

    def after_case(self, name):
        """The server still serves: no child crashed, a normal send works, nothing is lost."""
        now = self.server.all_pids()
        check(self.server.running(), "%s: quicstashd died" % name)
        check(now == self.pids, "%s: a child process was replaced (crash?): before %r, after %r; log tail:\n%s"
              % (name, self.pids, now, self.server.log_tail()))
        evs = self.good_events(20)
        rc, out, err = q.send(self.server, [json.dumps(e) for e in evs], timeout=q.tmo(60),
                              client_timeout=int(q.tmo(20)))
        check(rc == 0, "%s: a normal send afterwards failed: exit %r; %s" % (name, rc, err[-500:]))
        self.good |= {e["n"] for e in evs}
        self.cases.append(name)


def final_ack(ans):
    acks = [a[1] for a in ans if a[0] == "ack"]
    return max(acks) if acks else None


def rejects(ans):
    return {a[1]: a[2] for a in ans if a[0] == "reject"}


def run():
    q.need_binaries()
    c = Ctx()

    # 1. invalid JSON between good frames; the last three are what cJSON lets
    #    through and Logstash's parser would refuse or mangle (parser/strict.h):
    #    a leading zero, a bad \u escape, Latin-1 instead of UTF-8
    g = c.good_events(2)
    rc, ans, err = c.raw(frame(g[0]) + frame(b'{"a": 1,') + frame(b"{not json}") + frame(b'{"n": 01}')
                         + frame(b'{"s": "\\uZZZZ"}') + frame(b'{"s": "caf\xe9"}') + frame(g[1]), "invalid json")
    check(rejects(ans) == {1: "invalid_json", 2: "invalid_json", 3: "invalid_json", 4: "invalid_json",
                           5: "invalid_json"},
          "invalid JSON: expected rejections of frames 1-5 as invalid_json, got %r" % (ans,))
    check(final_ack(ans) == 7, "invalid JSON: expected 'ack 7' (all seven frames resolved), got %r" % (ans,))
    c.good |= {g[0]["n"], g[1]["n"]}
    c.after_case("invalid json")

    # 2. non-object JSON
    g = c.good_events(1)
    rc, ans, err = c.raw(frame(b"[1,2,3]") + frame(b'"a string"') + frame(b"42") + frame(b"null") + frame(b"true")
                         + frame(g[0]), "non-object json")
    check(rejects(ans) == {0: "not_object", 1: "not_object", 2: "not_object", 3: "not_object", 4: "not_object"},
          "non-object JSON: expected frames 0-4 rejected as not_object, got %r" % (ans,))
    check(final_ack(ans) == 6, "non-object JSON: expected 'ack 6', got %r" % (ans,))
    c.good.add(g[0]["n"])
    c.after_case("non-object json")

    # 3. a 2 KB frame over the 1K limit, then a good frame on the same stream
    g = c.good_events(2)
    big = json.dumps({"pad": "x" * 2048}).encode()
    rc, ans, err = c.raw(frame(g[0]) + frame(big) + frame(g[1]), "over the limit")
    check(rejects(ans) == {1: "too_large"}, "2 KB frame with a 1K limit: expected frame 1 rejected as too_large, "
          "got %r" % (ans,))
    check(final_ack(ans) == 3, "over the limit: the next good frame on the same stream was not acked: %r" % (ans,))
    c.good |= {g[0]["n"], g[1]["n"]}
    c.after_case("over the limit")

    # 3b. a declared 100 MB frame whose bytes are sent: skipped, not buffered, stream goes on
    g = c.good_events(1)
    rc, ans, err = c.raw(struct.pack(">I", 3 * 1024 * 1024) + b"{" * (3 * 1024 * 1024) + frame(g[0]), "3 MB skipped")
    check(rejects(ans).get(0) == "too_large" and final_ack(ans) == 2,
          "3 MB frame: expected 'reject 0 too_large' then 'ack 2', got %r" % (ans,))
    c.good.add(g[0]["n"])
    c.after_case("3 MB skipped")

    # 4. zero length
    g = c.good_events(1)
    rc, ans, err = c.raw(frame(b"") + frame(g[0]), "zero length")
    check(rejects(ans) == {0: "empty"}, "zero-length frame: expected 'reject 0 empty', got %r" % (ans,))
    check(final_ack(ans) == 2, "zero-length: expected 'ack 2', got %r" % (ans,))
    c.good.add(g[0]["n"])
    c.after_case("zero length")

    # 5. a length prefix cut off mid-way (2 of 4 bytes) at the end of the stream
    g = c.good_events(1)
    rc, ans, err = c.raw(frame(g[0]) + b"\x00\x00", "cut length prefix")
    check(final_ack(ans) is not None and final_ack(ans) >= 1, "cut prefix: the good frame before it was not acked: %r"
          % (ans,))
    check(rejects(ans).get(1) in ("truncated", None) and (1 in rejects(ans) or any(a[0] == "closed" for a in ans)
                                                           or rc in (1, 2)),
          "cut prefix: expected 'reject 1 truncated' or a clean connection error, got %r (rc %r)" % (ans, rc))
    c.good.add(g[0]["n"])
    c.after_case("cut length prefix")

    # 6. a body cut off
    g = c.good_events(1)
    rc, ans, err = c.raw(frame(g[0]) + struct.pack(">I", 100) + b'{"n": 12', "cut body")
    check(final_ack(ans) is not None and final_ack(ans) >= 1, "cut body: the good frame was not acked: %r" % (ans,))
    check(rejects(ans).get(1) in ("truncated", None) and (1 in rejects(ans) or any(a[0] == "closed" for a in ans)
                                                           or rc in (1, 2)),
          "cut body: expected 'reject 1 truncated' or a clean connection error, got %r (rc %r)" % (ans, rc))
    c.good.add(g[0]["n"])
    c.after_case("cut body")

    # 7. random bytes (fixed seeds), several sizes
    for seed, size in ((1, 16), (2, 1000), (3, 65536), (4, 300000)):
        data = random.Random(seed).randbytes(size)
        rc, ans, err = c.raw(data, "random %d bytes" % size)
        check(ans or rc in (1, 2), "random bytes: neither an answer nor a connection error (rc %r)" % rc)
        c.after_case("random %d" % size)

    # 8. random bytes after good frames: the good ones are kept
    g = c.good_events(3)
    rc, ans, err = c.raw(b"".join(frame(e) for e in g) + random.Random(9).randbytes(5000), "good then random")
    check(final_ack(ans) is not None and final_ack(ans) >= 3, "good then random: good frames not acked: %r" % (ans,))
    c.good |= {e["n"] for e in g}
    c.after_case("good then random")

    # 9. the normal client with some invalid lines
    g = c.good_events(4)
    lines = [json.dumps(g[0]), '{"broken": ', json.dumps(g[1]), "[1, 2, 3]", '"just a string"', "17",
             json.dumps(g[2]), "{not json at all", json.dumps(g[3])]
    bad_lines = {2: "invalid", 4: "object", 5: "object", 6: "object", 8: "invalid"}
    rc, out, err = q.send(c.server, lines, timeout=q.tmo(60), client_timeout=int(q.tmo(20)))
    log("normal client with bad lines: rc=%s stderr=%r" % (rc, err.strip()[-600:]))
    check(rc == 1, "normal client with rejected lines: exit %r, expected 1" % rc)
    check(q.summary(err) == (9, 4, 5), "summary: expected 'sent 9 acked 4 rejected 5', got %r" % (q.summary(err),))
    errlines = [l for l in err.splitlines() if not q.SUMMARY_RE.search(l)]
    for ln, why in bad_lines.items():
        hit = [l for l in errlines if re.search(r"(?<!\d)%d(?!\d)" % ln, l)]
        check(hit, "rejected line %d is not reported with its line number on stderr:\n%s" % (ln, err[-1000:]))
        check(any(why in l.lower() for l in hit), "line %d: reason %r not in %r" % (ln, why, hit))
    for good_ln in (1, 3, 7, 9):
        check(not any(re.search(r"\bline %d\b" % good_ln, l) for l in errlines),
              "good line %d reported as rejected: %s" % (good_ln, err[-800:]))
    c.good |= {e["n"] for e in g}
    c.after_case("normal client")

    # nothing accepted is lost
    missing = c.recv.wait_numbers(c.good, q.tmo(30), quiet=1.0)
    check(not missing, "accepted events lost: %s" % sorted(missing)[:20])
    seen = c.recv.seen()
    unexpected = [n for n in seen if n not in c.good]
    check(not unexpected, "events that were not acked arrived: %s" % unexpected[:10])
    check(not c.recv.bad_json, "garbage reached the receiver: %r" % c.recv.bad_json[:3])
    c.server.stop()
    return "%d cases, %d good events all delivered, no child crashed" % (len(c.cases), len(c.good))


if __name__ == "__main__":
    q.main(run)

#!/usr/bin/env python3
"""deploy/logstash/quicstash.conf, checked without Logstash (not a Debian package: it cannot be
installed here, so its own `--config.test_and_exit` cannot run).

  syntax:   the file parses by Logstash's configuration grammar (plugin sections, plugins,
            `name => value` attributes with strings, numbers, barewords, arrays and hashes, and
            if / else if / else branches), written out below; only input, filter and output
            sections, every brace and bracket closed;
  meaning:  the input is tcp with the json_lines codec at quicstashd's default --logstash-addr
            port; every elasticsearch output that names a document_id is inside `if [event][id]`
            and names exactly that field, so duplicates collapse and nothing without an id
            becomes one document;
  field:    a real event from quicstashd (-l file:PATH) holds [event][id] in the form the
            document id needs (<32 hex>-<seq>), and the same event sent twice with one client
            session and sequence gets the same id (what lets Elasticsearch collapse them).
"""
import json
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

CONF = os.path.join(q.REPO, "deploy", "logstash", "quicstash.conf")

TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<arrow>=>)
  | (?P<op>==|!=|<=|>=|=~|!~|<|>|!)
  | (?P<punct>[{}\[\](),])
  | (?P<dq>"(?:[^"\\]|\\.)*")
  | (?P<sq>'(?:[^'\\]|\\.)*')
  | (?P<regex>/(?:[^/\\\n]|\\.)*/)
  | (?P<number>-?\d+(?:\.\d+)?(?![\w@.-]))
  | (?P<word>[A-Za-z0-9_@.-]+)
""", re.X)


def tokenize(text):
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        check(m, "%s: cannot read at line %d: %r" % (CONF, text.count("\n", 0, pos) + 1, text[pos:pos + 30]))
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group(), text.count("\n", 0, m.start()) + 1))
    return out


class Parser:
    """Logstash's grammar (logstash-core/lib/logstash/config/grammar.treetop), as a tree of
    ("plugin", name, {attr: value}) and ("branch", [(condition tokens, body), ...])."""

    def __init__(self, tokens):
        self.t, self.i = tokens, 0

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else (None, None, -1)

    def take(self, kind=None, value=None):
        tok = self.peek()
        check(tok[0] is not None, "%s: the file ends inside a block (expected %s)" % (CONF, value or kind))
        check((kind is None or tok[0] == kind) and (value is None or tok[1] == value),
              "%s line %d: expected %s, found %r" % (CONF, tok[2], value or kind, tok[1]))
        self.i += 1
        return tok

    def config(self):
        sections = []
        while self.peek()[0] is not None:
            kind = self.take("word")[1]
            check(kind in ("input", "filter", "output"), "%s: unknown section %r" % (CONF, kind))
            sections.append((kind, self.block()))
        return sections

    def block(self):
        self.take("punct", "{")
        items = []
        while self.peek()[1] != "}":
            items.append(self.branch() if self.peek()[1] == "if" else self.plugin())
        self.take("punct", "}")
        return items

    def plugin(self):
        name = self.take("word")[1]
        return ("plugin", name, self.attributes())

    def attributes(self):
        self.take("punct", "{")
        attrs = {}
        while self.peek()[1] != "}":
            key = self.take()
            check(key[0] in ("word", "dq", "sq"), "%s line %d: bad attribute name %r" % (CONF, key[2], key[1]))
            self.take("arrow")
            attrs.setdefault(key[1], []).append(self.value())
        self.take("punct", "}")
        return attrs

    def value(self):
        kind, text, line = self.peek()
        if kind in ("dq", "sq"):
            self.i += 1
            return text[1:-1]
        if kind == "number":
            self.i += 1
            return float(text)
        if kind == "word":
            if self.peek(1)[1] == "{":  # a plugin as a value: codec => json_lines { ... }
                return self.plugin()
            self.i += 1
            return text
        if text == "[":
            self.i += 1
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.i += 1
            self.take("punct", "]")
            return items
        if text == "{":
            return self.attributes()
        check(False, "%s line %d: bad value %r" % (CONF, line, text))

    def condition(self):
        toks = []
        while self.peek()[1] != "{":
            tok = self.take()
            check(tok[0] in ("punct", "op", "dq", "sq", "regex", "number") or tok[1] in
                  ("in", "not", "and", "or", "xor", "nand") or tok[0] == "word" and toks and toks[-1][1] == "[",
                  "%s line %d: %r in a condition" % (CONF, tok[2], tok[1]))
            toks.append(tok)
        check(toks, "%s: an empty condition" % CONF)
        return "".join(t[1] for t in toks)

    def branch(self):
        self.take("word", "if")
        arms = [(self.condition(), self.block())]
        while self.peek()[1] == "else":
            self.take()
            if self.peek()[1] == "if":
                self.take()
                arms.append((self.condition(), self.block()))
            else:
                arms.append((None, self.block()))
                break
        return ("branch", arms)


def plugins(items, cond=()):
    """Every plugin of a section with the conditions it sits under."""
    for it in items:
        if it[0] == "plugin":
            yield it, cond
        else:
            for c, body in it[1]:
                yield from plugins(body, cond + (c,))


def load():
    with open(CONF, encoding="utf-8") as f:
        return Parser(tokenize(f.read())).config()


def case_syntax():
    sections = load()
    kinds = [k for k, _ in sections]
    check("input" in kinds and "output" in kinds, "sections %r" % kinds)
    return "%d sections parse" % len(sections)


def default_logstash_port():
    import subprocess
    out = subprocess.run([q.QUICSTASHD, "--help"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"--logstash-addr ADDR.*?\(default:([^)]*)\)", out, re.S)
    check(m, "no --logstash-addr default in --help")
    return int(re.sub(r"\s+", "", m.group(1)).rsplit(":", 1)[1])


def case_meaning():
    sections = dict((k, v) for k, v in load())
    inputs = [p for p, _ in plugins(sections["input"])]
    tcp = [p for p in inputs if p[1] == "tcp"]
    check(len(tcp) == 1, "expected one tcp input, found %r" % inputs)
    attrs = tcp[0][2]
    check(attrs.get("codec") == ["json_lines"] or (attrs.get("codec") and attrs["codec"][0][1] == "json_lines"),
          "the tcp input's codec is %r, not json_lines" % attrs.get("codec"))
    port = default_logstash_port()
    check(attrs.get("port") == [float(port)], "the tcp input's port %r is not quicstashd's default %d"
          % (attrs.get("port"), port))
    outs = [(p, c) for p, c in plugins(sections["output"]) if p[1] == "elasticsearch"]
    with_id = [(p, c) for p, c in outs if "document_id" in p[2]]
    check(with_id, "no elasticsearch output with a document_id")
    for p, cond in with_id:
        check(p[2]["document_id"] == ["%{[event][id]}"], "document_id is %r" % p[2]["document_id"])
        check("[event][id]" in cond, "a document_id output not under `if [event][id]` (conditions %r)" % (cond,))
        check(p[2].get("action", ["index"]) == ["index"], "action %r: a duplicate must replace, not fail"
              % p[2].get("action"))
        check(not re.search(r"%\{\+", str(p[2].get("index", [""])[0])), "a dated index: a late duplicate would "
              "land beside its first copy")
    return "tcp/json_lines on port %d, document_id %%{[event][id]} under its condition" % port


def field(ev, ref):
    for part in re.findall(r"\[([^\]]+)\]", ref):
        ev = ev[part]
    return ev


def case_field():
    d = q.mkdtemp("lspipe")
    out = os.path.join(d, "events.jsonl")
    server = q.Server("file:" + out, name="lspipe").start()
    ev = {"n": 1, "msg": "same event twice"}
    body = json.dumps(ev).encode()
    stream = q.stream_header(b"0123456789abcdef", 0) + struct.pack(">I", len(body)) + body
    for _ in range(2):  # the client's resend: same session, same sequence
        rc, o, e = q.send(server, stream, extra_args=["--raw"], timeout=q.tmo(60), client_timeout=int(q.tmo(15)))
        check(rc == 0 and "ack 1" in o, "raw send: exit %r\n%s%s" % (rc, o, e))
    server.stop()
    with open(out, encoding="utf-8") as f:
        events = [json.loads(l) for l in f if l.strip()]
    check(len(events) == 2, "expected the event twice in the output, got %d" % len(events))
    ids = [field(e, "[event][id]") for e in events]
    check(all(isinstance(i, str) and q.EVENT_ID_RE.match(i) for i in ids), "event ids %r" % ids)
    check(ids[0] == ids[1], "the two copies have different ids %r: they would not collapse" % ids)
    log("both copies: event.id %s" % ids[0])
    return "a resend carries the same [event][id]"


CASES = [("syntax", case_syntax), ("meaning", case_meaning), ("field", case_field)]


def run():
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

"""Test events: numbered JSON events, protocol frames, ECS field look-up, server fields."""

import json
import re
import struct


_WORDS = ["alpha", "béta", "gamma", "δέλτα", "日本語", "emoji 🚀", "tab\there", 'quote"d', "back\\slash",
          "ünïcödé", "zero", "слово"]


def gen_event(n):
    return {
        "n": n,
        "msg": "event %d %s %s" % (n, _WORDS[n % len(_WORDS)], _WORDS[(n * 7) % len(_WORDS)]),
        "host": "h%d" % (n % 5 + 1),
        "level": ["info", "warn", "error"][n % 3],
        "ok": n % 2 == 0,
        "none": None,
        "ratio": (n % 1000) / 8.0,
        "nested": {"a": [1, 2, 3], "b": {"c": "d", "n": n}, "s": "ß€"},
    }


def gen_events(n, start=0):
    """n JSON lines (str, no trailing newline), numbered start..start+n-1 in field "n"."""
    return [json.dumps(gen_event(i), ensure_ascii=False, separators=(",", ":")) for i in range(start, start + n)]


def frame(obj_or_bytes):
    """One protocol frame: u32 length, then the JSON object (a dict is dumped, bytes go as they are)."""
    b = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
    return struct.pack(">I", len(b)) + b


def stream_header(session, first_seq):
    """The 28-byte stream header (docs/PROTOCOL.md): QSH1, 16-byte session id, u64 first seq."""
    assert len(session) == 16
    return b"QSH1" + session + struct.pack(">Q", first_seq)


def write_lines(path, lines):
    with open(path, "wb") as f:
        for l in lines:
            f.write(l.encode("utf-8") if isinstance(l, str) else l)
            f.write(b"\n")
    return path


def field(ev, dotted):
    """ECS field lookup: flat 'a.b' key first, then nested {'a': {'b': ...}}. KeyError if absent."""
    if dotted in ev:
        return ev[dotted]
    cur = ev
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def has_field(ev, dotted):
    try:
        field(ev, dotted)
        return True
    except KeyError:
        return False


SERVER_FIELDS = ("event.ingested", "event.id", "source.ip", "source.port")
EVENT_ID_RE = re.compile(r"^[0-9a-fA-F]{32}-[0-9]+$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_rfc3339(s):
    import datetime
    m = RFC3339_RE.match(s)
    if not m:
        return None
    t = s.replace("z", "Z").replace("t", "T")
    frac = ""
    if m.group(1):
        frac = m.group(1)[:7]
        t = t.replace(m.group(1), frac, 1)
    t = t.replace("Z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None


def client_view(ev, original):
    """The delivered event with the server's fields removed, for comparison with what the client sent
    (only server fields that the client did not send itself are removed)."""
    out = dict(ev)
    for k in SERVER_FIELDS:
        out.pop(k, None)
    for top in ("event", "source"):
        if top in out and isinstance(out[top], dict) and top not in original:
            sub = {k: v for k, v in out[top].items() if "%s.%s" % (top, k) not in SERVER_FIELDS}
            if sub:
                out[top] = sub
            else:
                del out[top]
    return out

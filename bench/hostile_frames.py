#!/usr/bin/env python3
"""Hostile frames for the parser (issue 26, docs/PERFORMANCE.md "Hostile frames"): each shape is
one JSON object of at most SIZE bytes that was built to make a per-key lookup walk a big object
once per duplicate key (quadratic in the old code), plus an ordinary frame of the same size to
compare with. Writes the frame on one line to stdout, or to --out.

    bench/hostile_frames.py --shape dup-spoof --size 1048576 > bomb.json
    qs-parse-bench --frame bomb.json
"""
import argparse
import sys

# Each shape: (head, filler member, repeated member, tail). The frame is head, then `pad` filler
# members, then `rep` repeated members, then tail, with pad and rep chosen so that pad * rep (the
# old code's work) is the largest the size allows.
SHAPES = {
    # 100,000 empty keys then 40,000 "event.id" at 1 MiB: the frame of issue 26
    "dup-spoof": (b"{", b'"":0', b'"event.id":0', b"}"),
    # the same with the name \u-escaped: no raw scan can see it, only cJSON's decoded tree
    "dup-spoof-escaped": (b"{", b'"":0', b'"event\\u002eid":0', b"}"),
    # many "event" objects to merge, after many other keys
    "many-events": (b"{", b'"":0', b'"event":{"a":0}', b"}"),
    # one "event" object with many keys, then many copies of the field we replace (escaped, so
    # the raw splice path gives up and the tree is edited)
    "event-dup-fields": (b'{"event":{', b'"":0', b'"i\\u0064":0', b"}}"),
    "source-dup-fields": (b'{"source":{', b'"":0', b'"p\\u006frt":0', b"}}"),
}


def _fill(head, filler, rep, tail, size):
    # members are joined by ',': len = head + tail + pad*(f+1) + rep_n*(r+1) - 1 <= size;
    # pad*rep_n is largest with each part taking half the room
    room = size - len(head) - len(tail) + 1
    f, r = len(filler) + 1, len(rep) + 1
    pad = room // 2 // f
    n = (room - pad * f) // r
    return head + b",".join([filler] * pad + [rep] * n) + tail


def merge_wide(size):
    """Two "event" objects with the same distinct keys: merging the second into the first looked
    each key up in the first."""
    keys, used = [], 0
    while True:
        k = b'"k%d":0' % len(keys)
        if 2 * (used + len(k) + 1) + 24 > size:
            break
        keys.append(k)
        used += len(k) + 1
    obj = b"{" + b",".join(keys) + b"}"
    return b'{"event":' + obj + b',"event":' + obj + b"}"


def ordinary(size):
    """An ordinary frame of about the same size: distinct keys with short strings and numbers."""
    parts, used, i = [], 2, 0
    while True:
        m = b'"field%d":"value %d of an ordinary event","n%d":%d' % (i, i, i, i * 7)
        if used + len(m) + 1 > size:
            break
        parts.append(m)
        used += len(m) + 1
        i += 1
    return b"{" + b",".join(parts) + b"}"


def build(shape, size):
    if shape == "merge-wide":
        return merge_wide(size)
    if shape == "ordinary":
        return ordinary(size)
    return _fill(*SHAPES[shape], size)


ALL = sorted(SHAPES) + ["merge-wide", "ordinary"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=ALL, required=True)
    ap.add_argument("--size", type=int, default=1 << 20, help="at most this many bytes (default 1 MiB)")
    ap.add_argument("--out", help="file to write (default stdout)")
    a = ap.parse_args()
    frame = build(a.shape, a.size)
    assert len(frame) <= a.size, (len(frame), a.size)
    if a.out:
        with open(a.out, "wb") as f:
            f.write(frame + b"\n")
    else:
        sys.stdout.buffer.write(frame + b"\n")


if __name__ == "__main__":
    main()

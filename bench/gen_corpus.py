#!/usr/bin/env python3
"""Generates the benchmark corpus: newline-delimited JSON log events, each
200..300 bytes (without the newline), from a fixed seed, so that every run of
bench/run measures the same bytes.

    bench/gen_corpus.py [--count 1000000] [--seed 20250101] [--out build/bench/corpus.jsonl]

The corpus is written once: when OUT exists and OUT.meta matches the
parameters and the generator version, nothing is done. The events mix
application logs, HTTP access logs (with nested http/url/user_agent objects),
and system/audit events, with ECS-like field names.
"""
import argparse
import hashlib
import json
import os
import random
import sys

VERSION = 1
MIN_LEN, MAX_LEN = 200, 300

HOSTS = ["web-%02d" % i for i in range(1, 25)] + ["db-%02d" % i for i in range(1, 7)] + \
        ["cache-%02d" % i for i in range(1, 5)] + ["worker-%03d" % i for i in range(1, 41)]
SERVICES = ["checkout", "cart", "auth", "search", "catalog", "payments", "shipping", "users",
            "inventory", "gateway", "recommendations", "notifications"]
LEVELS = ["DEBUG"] * 10 + ["INFO"] * 62 + ["WARN"] * 18 + ["ERROR"] * 9 + ["FATAL"]
METHODS = ["GET"] * 70 + ["POST"] * 18 + ["PUT"] * 5 + ["DELETE"] * 4 + ["PATCH"] * 3
STATUSES = [200] * 80 + [201] * 4 + [204] * 3 + [301] * 2 + [304] * 3 + [400] * 2 + [401] + \
           [403] + [404] * 3 + [500] + [502] + [503]
PATHS = ["/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/cart", "/api/v2/search",
         "/login", "/logout", "/static/app.{id}.js", "/images/p/{id}.jpg", "/health",
         "/api/v1/users/{id}/profile", "/api/v1/payments/{id}/capture", "/metrics"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "curl/7.88.1",
          "Mozilla/5.0 (Macintosh) Safari/605.1.15", "Go-http-client/2.0",
          "okhttp/4.12.0", "python-requests/2.31.0", "Mozilla/5.0 (Windows NT 10.0) Chrome/126.0"]
WORDS = ("request user order cache miss hit timeout retry connection pool database query slow "
         "completed failed started token expired refreshed payment declined accepted queue "
         "backlog worker shard replica leader election snapshot compaction latency budget "
         "exceeded upstream downstream circuit breaker open closed session invalid").split()
MESSAGES = [
    "user {u} logged in from {ip}",
    "order {id} created with {n} items total {amt} EUR",
    "payment {id} {ok} after {ms} ms",
    "cache {w} for key product:{id}",
    "slow query on {tbl} took {ms} ms rows={n}",
    "retrying upstream {svc} attempt {n} of 5",
    "connection pool exhausted ({n}/{n2} in use)",
    "token for session {hex} {w2}",
    "worker {n} finished job {id} in {ms} ms",
    "{w} {w} {w} {w}",
]
TABLES = ["orders", "users", "line_items", "payments", "sessions", "products"]


def ts(rng, step, i):
    # increasing timestamps spread over one day, millisecond precision, some jitter
    t = i * step + rng.random() * 0.05
    sec = int(t)
    ms = int((t - sec) * 1000)
    h, m, s = sec // 3600 % 24, sec // 60 % 60, sec % 60
    return "2025-03-14T%02d:%02d:%02d.%03dZ" % (h, m, s, ms)


def ip(rng):
    return "%d.%d.%d.%d" % (rng.choice((10, 172, 192, 203)), rng.randrange(256), rng.randrange(256),
                            rng.randrange(1, 255))


def message(rng):
    tpl = rng.choice(MESSAGES)
    return tpl.format(u="u%06d" % rng.randrange(10 ** 6), ip=ip(rng), id=rng.randrange(10 ** 8),
                      n=rng.randrange(1, 40), n2=rng.choice((50, 100, 200)),
                      amt="%.2f" % (rng.random() * 500), ok=rng.choice(("captured", "declined")),
                      ms=rng.randrange(1, 5000), w=rng.choice(WORDS), tbl=rng.choice(TABLES),
                      svc=rng.choice(SERVICES), hex="%016x" % rng.getrandbits(64),
                      w2=rng.choice(("expired", "refreshed", "revoked")))


def event(rng, i, step):
    kind = rng.random()
    host = rng.choice(HOSTS)
    e = {"@timestamp": ts(rng, step, i), "host": {"name": host}}
    if kind < 0.45:  # HTTP access log with nested objects
        path = rng.choice(PATHS).replace("{id}", str(rng.randrange(10 ** 6)))
        status = rng.choice(STATUSES)
        e["log"] = {"level": "ERROR" if status >= 500 else ("WARN" if status >= 400 else "INFO")}
        e["http"] = {"request": {"method": rng.choice(METHODS)},
                     "response": {"status_code": status, "bytes": rng.randrange(0, 250000)}}
        e["url"] = {"path": path}
        e["source"] = {"ip": ip(rng)}
        e["event"] = {"duration": rng.randrange(100000, 900000000)}
        e["user_agent"] = {"original": rng.choice(AGENTS)}
    elif kind < 0.85:  # application log
        e["log"] = {"level": rng.choice(LEVELS), "logger": "com.example.%s.%s" % (
            rng.choice(SERVICES), rng.choice(("Handler", "Client", "Repo", "Job")))}
        e["service"] = {"name": rng.choice(SERVICES), "version": "1.%d.%d" % (rng.randrange(20),
                                                                             rng.randrange(10))}
        e["message"] = message(rng)
        e["trace"] = {"id": "%032x" % rng.getrandbits(128)}
        if rng.random() < 0.3:
            e["labels"] = {"env": rng.choice(("prod", "staging")), "region": rng.choice(
                ("eu-west-1", "us-east-1", "ap-south-1"))}
    else:  # system / audit
        e["log"] = {"level": rng.choice(LEVELS)}
        e["process"] = {"name": rng.choice(("sshd", "systemd", "kernel", "cron", "sudo")),
                        "pid": rng.randrange(1, 65536)}
        e["user"] = {"name": rng.choice(("root", "deploy", "alice", "bob", "backup"))}
        e["message"] = message(rng)
        e["tags"] = rng.sample(("audit", "security", "ops", "batch", "infra"), rng.randrange(1, 4))
    return e


def render(rng, i, step):
    e = event(rng, i, step)
    s = json.dumps(e, separators=(",", ":"), ensure_ascii=True)
    if len(s) < MIN_LEN:
        # pad with a realistic free-text field up to a length drawn in range
        target = rng.randrange(MIN_LEN, MAX_LEN + 1)
        need = target - len(s) - len(',"note":""')
        words = []
        while sum(len(w) + 1 for w in words) < need:
            words.append(rng.choice(WORDS))
        note = " ".join(words)[:max(need, 1)]
        e["note"] = note
        s = json.dumps(e, separators=(",", ":"), ensure_ascii=True)
    if len(s) > MAX_LEN:
        for key in ("user_agent", "labels", "trace", "tags", "event", "source", "note"):
            if key in e and len(s) > MAX_LEN:
                del e[key]
                s = json.dumps(e, separators=(",", ":"), ensure_ascii=True)
    while len(s) < MIN_LEN:  # after trimming, top up
        e["note"] = e.get("note", "") + rng.choice(WORDS) + " "
        s = json.dumps(e, separators=(",", ":"), ensure_ascii=True)
    if len(s) > MAX_LEN:
        raise SystemExit("gen_corpus: event %d is %d bytes" % (i, len(s)))
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000000)
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--out", default="build/bench/corpus.jsonl")
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    a = ap.parse_args()

    meta_want = {"version": VERSION, "count": a.count, "seed": a.seed}
    meta_path = a.out + ".meta"
    if not a.force and os.path.exists(a.out) and os.path.exists(meta_path):
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            if all(meta.get(k) == v for k, v in meta_want.items()) and \
                    os.path.getsize(a.out) == meta.get("bytes"):
                print("gen_corpus: reusing %s (%d events, %d bytes)" % (a.out, meta["count"], meta["bytes"]),
                      file=sys.stderr)
                return
        except (OSError, ValueError):
            pass

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    rng = random.Random(a.seed)
    step = 86399.0 / max(a.count, 1)
    tmp = a.out + ".tmp"
    total = 0
    h = hashlib.sha256()
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        buf = []
        for i in range(a.count):
            line = render(rng, i, step) + "\n"
            total += len(line)
            buf.append(line)
            if len(buf) == 10000:
                chunk = "".join(buf)
                h.update(chunk.encode())
                f.write(chunk)
                buf = []
        chunk = "".join(buf)
        h.update(chunk.encode())
        f.write(chunk)
    os.replace(tmp, a.out)
    meta = dict(meta_want, bytes=total, mean_line=total / a.count if a.count else 0,
                sha256=h.hexdigest())
    with open(meta_path, "w") as f:
        json.dump(meta, f)
        f.write("\n")
    print("gen_corpus: wrote %s (%d events, %d bytes, mean %.1f bytes/line)" %
          (a.out, a.count, total, meta["mean_line"]), file=sys.stderr)


if __name__ == "__main__":
    main()

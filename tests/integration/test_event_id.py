#!/usr/bin/env python3
"""event.id cannot be forged (issue 26, point 6).
Client A sends events on a stream whose header names session S. Its stored event.id must not carry
S (nor must anything downstream), and equals hex(HMAC-SHA256(K_id, u32 0 || S)[:16]) "-" seq with
K_id = HKDF-Expand-SHA256(the server's secret file, "quicstash event-id v1"), computed here with
Python's hmac. Client B reads A's stored ids and uses their session part as its own session id
(the attack of the issue: before, event.id was hex(S)-seq, so B's events got exactly A's ids and
replaced A's documents in Elasticsearch): none of B's ids may equal one of A's. A's own resend of S
on new connections gets exactly A's ids, and so does a resend after a restart of the whole server
on the same secret file. Streams without a header get a session of their own per stream."""
import hashlib
import hmac
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

K = 20           # events per stream
FIRST_SEQ = 1000  # A's stream starts here: the seq part of the id is checked too
S = bytes.fromhex("5e55105e55105e55105e55105e551051")  # A's session id: its secret


def expected_session(secret, session):
    """id_session as docs/PROTOCOL.md defines it, computed apart from the server's GnuTLS code."""
    k_id = hmac.new(secret, b"quicstash event-id v1\x01", hashlib.sha256).digest()  # HKDF-Expand, one block
    return hmac.new(k_id, struct.pack(">I", 0) + session, hashlib.sha256).digest()[:16].hex()


def send_stream(server, recv, who, start_n, session, first_seq=FIRST_SEQ):
    """One connection, one stream of K events n = start_n.. (header with session, or none);
    waits until all are acknowledged and arrived. Returns {seq: event.id}."""
    body = b"".join(q.frame({"n": start_n + i, "who": who}) for i in range(K))
    data = (q.stream_header(session, first_seq) if session is not None else b"") + body
    rc, out, err = q.send(server, data, extra_args=["--raw"], timeout=q.tmo(60), client_timeout=int(q.tmo(20)))
    acks = [int(x) for x in re.findall(r"^ack (\d+)$", out, re.M)]
    base = first_seq if session is not None else 0
    check(rc == 0 and acks and max(acks) == base + K and "reject" not in out,
          "%s: quicstash-send --raw exit %r, answers %r (expected ack %d); stderr %s\nserver log:\n%s"
          % (who, rc, out[-400:], base + K, err[-400:], server.log_tail()))
    numbers = range(start_n, start_n + K)
    missing = recv.wait_numbers(numbers, q.tmo(30), quiet=0)
    check(not missing, "%s: events %s never reached the receiver" % (who, sorted(missing)[:10]))
    ids = {}
    for ev in recv.snapshot():
        if ev.get("who") == who:
            eid = q.field(ev, "event.id")
            check(isinstance(eid, str) and q.EVENT_ID_RE.match(eid), "%s: event.id %r is not <32 hex>-<seq>" % (who, eid))
            ids.setdefault(base + ev["n"] - start_n, set()).add(eid)
    check(all(len(v) == 1 for v in ids.values()), "%s: one event stored with several ids: %r" % (who, ids))
    ids = {seq: v.pop() for seq, v in ids.items()}
    for seq, eid in ids.items():
        check(eid.endswith("-%d" % seq), "%s: event.id %s does not end in its seq -%d" % (who, eid, seq))
    log("%s: %d events, ids %s .. %s" % (who, len(ids), ids[base], ids[base + K - 1]))
    return ids


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--acceptors", "2"], name="eventid")
    server.start()

    a = send_stream(server, recv, "A", 0, S)

    # The attack: B only sees A's events downstream, takes the session part of their ids and sends
    # under it, same seqs.
    forged = bytes.fromhex(a[FIRST_SEQ].split("-")[0])
    b = send_stream(server, recv, "B", 100, forged)
    same = sorted(seq for seq in b if b[seq] == a.get(seq))
    check(not same, "forged: B used A's id session %s as its session id and got A's event.id for seqs %s "
          "(its events would replace A's in Elasticsearch)" % (forged.hex(), same[:5]))
    check(not set(b.values()) & set(a.values()), "forged: some of B's ids equal A's")

    # Nothing downstream carries A's session id: nobody reading events can resend as A.
    with recv.lock:
        lines = list(recv.lines)
    leaked = [l for l in lines if S.hex().encode() in l.lower()]
    check(not leaked, "A's session id %s is visible downstream: %r" % (S.hex(), leaked[:1]))

    # The id is the documented function of the server's secret file (docs/PROTOCOL.md).
    with open(os.path.join(server.dir, "quicstash.secret"), "rb") as f:
        secret = f.read()
    want = expected_session(secret, S)
    check(all(eid == "%s-%d" % (want, seq) for seq, eid in a.items()),
          "A's ids %s.. are not HMAC(K_id, u32 0 || S): expected %s-<seq>" % (a[FIRST_SEQ], want))
    check(expected_session(secret, forged) == b[FIRST_SEQ].split("-")[0], "B's ids are not HMAC(K_id, forged)")

    # A's own resends (new connections, so possibly another acceptor) get exactly A's ids.
    for r in range(3):
        again = send_stream(server, recv, "A-resend-%d" % r, 200 + 100 * r, S)
        check(again == a, "resend %d of session S got other ids than A's: %s.. instead of %s.."
              % (r, again[FIRST_SEQ], a[FIRST_SEQ]))

    # Without a header, each stream gets a session of its own.
    h1 = send_stream(server, recv, "headerless-1", 600, None)
    h2 = send_stream(server, recv, "headerless-2", 700, None)
    check(h1[0].split("-")[0] != h2[0].split("-")[0], "two headerless streams share a session: %s" % h1[0])

    # A restart of the whole server on the same secret file keeps the ids.
    server.stop()
    server.start()
    after = send_stream(server, recv, "A-after-restart", 800, S)
    check(after == a, "after a restart with the same secret, session S got %s.. instead of A's %s.."
          % (after[FIRST_SEQ], a[FIRST_SEQ]))
    server.stop()
    return "forged ids differ from A's, A's resends (3 connections and after a restart) keep %s-<seq>" % want


if __name__ == "__main__":
    q.main(run)

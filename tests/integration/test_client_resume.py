#!/usr/bin/env python3
"""quicstash-send for people who resend (issue 25), against a real server over real QUIC:

1. kill-resume: the client is killed (SIGKILL) mid-send; `--resume --ack-log` sends exactly the lines
   the ack log does not hold (counted from its summary), the receiver gets every input line, and no
   line acknowledged by the first run is sent again (each arrives once).
2. sigint-resume: the same after SIGINT (Ctrl-C): the client closes, prints the summary so far (with
   elapsed time and rate; its acked count is the ack log's) and exits 2.
3. unsent: Ctrl-C (and SIGTERM) while nothing could leave (no server yet): 'sent 0', exit 2 (lines
   that never left are not counted as sent).
4. torn: an ack log whose last line is torn (no newline): cut off and reported, the line it was part
   of is sent, every line is in the log once afterwards; a log that is not of this input, a symlink,
   and --resume without --ack-log are refused (exit 2).
5. handshake-retry: the keyholder is dead and not yet restarted (the supervisor held with SIGSTOP:
   its crash backoff made long), so handshakes fail with the server's TLS internal_error; the client
   retries with backoff and succeeds once the keyholder is back (exit 0, everything acknowledged).
   With --handshake-retries 0 the same failure ends it (exit 2); the retries are bounded (a port
   where nothing listens: 'gave up after 3 attempts' with --handshake-retries 2).
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

FINAL_RE = re.compile(r"sent (\d+) acked (\d+) rejected (\d+)(?: skipped (\d+))? in ([\d.]+) s \((\d+)/s\)")


def final_line(err, what):
    """(sent, acked, rejected, skipped or None, seconds) from the client's last summary line."""
    m = FINAL_RE.findall(err)
    check(m, "%s: no summary line 'sent N acked A rejected R in T s (X/s)' on stderr:\n%s" % (what, err[-1500:]))
    s, a, r, k, t, _ = m[-1]
    return int(s), int(a), int(r), int(k) if k else None, float(t)


def start(name):
    recv = q.Receiver().start()
    server = q.Server(recv, name=name)
    server.start()
    return recv, server


def resume_all(server, recv, load, before, what):
    """Reruns the load's input with --resume; checks what it sent and what arrived."""
    rc, out, err = q.send(server, ack_log=load.ack_path, input_path=load.input, extra_args=["--resume"],
                          client_timeout=int(q.tmo(60)))
    log("resume: exit %r; %s" % (rc, err.strip()[-300:]))
    check(rc == 0, "%s: the resumed run exited %r:\n%s\nserver log:\n%s" % (what, rc, err[-1500:], server.log_tail()))
    sent, acked, rejected, skipped, _ = final_line(err, what + ", resumed")
    rest = load.n - len(before)
    check(skipped == len(before) and sent == rest and acked == rest and rejected == 0,
          "%s: the ack log held %d of %d lines; the resumed run should skip them and send the other %d, "
          "its summary says sent %d acked %d rejected %d skipped %r" % (what, len(before), load.n, rest, sent,
                                                                          acked, rejected, skipped))
    acks = q.read_ack_log(load.ack_path)
    check(sorted(acks) == list(range(1, load.n + 1)),
          "%s: after the resumed run the ack log should hold each of the %d lines once: %d entries, %d distinct"
          % (what, load.n, len(acks), len(set(acks))))
    dups = q.verify_delivery(recv, set(range(load.n)), q.tmo(60), "input lines")
    seen = recv.seen()
    again = sorted(k for k in before if seen[k - 1] > 1)
    check(not again, "%s: %d lines acknowledged by the first run arrived again (sent again on --resume): "
          "first %s" % (what, len(again), again[:10]))
    return sent, dups


def interrupted_send(sig, name):
    recv, server = start(name)
    n = q.scale(20000)
    load = q.Load(server, n, client_timeout=int(q.tmo(60)), extra_args=q.paced(n, 8), name=name)
    c = load.start_client()
    q.mid_stream(load, 0.3)
    c.proc.send_signal(sig)
    rc = c.wait(q.tmo(30))
    before = set(q.read_ack_log(load.ack_path))
    err = c.stderr()
    log("%s at %d of %d acknowledged: exit %r; %s" % (signal.Signals(sig).name, len(before), n, rc,
                                                      err.strip()[-300:]))
    if sig == signal.SIGKILL:
        check(rc == -signal.SIGKILL, "the client did not die of SIGKILL: exit %r" % rc)
    else:
        check(rc == 2, "after SIGINT the client exited %r, not 2:\n%s" % (rc, err[-1500:]))
        check("interrupted (SIGINT)" in err, "after SIGINT the client did not say it was interrupted:\n%s"
              % err[-1500:])
        sent, acked, rejected, skipped, secs = final_line(err, "SIGINT")
        check(acked == len(before) and sent >= acked and secs > 0,
              "SIGINT summary: sent %d acked %d in %.1f s, but the ack log holds %d lines"
              % (sent, acked, secs, len(before)))
    check(0 < len(before) < n, "the interrupted run acknowledged %d of %d: not mid-send" % (len(before), n))
    sent, dups = resume_all(server, recv, load, before, name)
    server.stop()
    return "interrupted at %d/%d acknowledged, the resumed run sent the other %d (%d duplicates of lines " \
           "in flight)" % (len(before), n, sent, dups)


def kill_resume():
    return interrupted_send(signal.SIGKILL, "kill-resume")


def sigint_resume():
    return interrupted_send(signal.SIGINT, "sigint-resume")


def unsent():
    """Nothing listens (the client retries a refused first handshake): Ctrl-C (or SIGTERM), nothing left."""
    d = q.mkdtemp("unsent")
    addr = "127.0.0.1:%d" % q.free_port("udp")
    inp = q.write_lines(os.path.join(d, "in.jsonl"), q.gen_events(100))
    recv, server = start("unsent-cert")  # only for a certificate to trust
    for sig in (signal.SIGINT, signal.SIGTERM):
        name = signal.Signals(sig).name
        c = q.AsyncSend(addr, inp, os.path.join(d, "acks-" + name), cert=server.cert)
        time.sleep(1.0)
        check(c.running(), "the client gave up at once on a port where nothing listens:\n%s" % c.stderr()[-800:])
        c.proc.send_signal(sig)
        rc = c.wait(q.tmo(10))
        err = c.stderr()
        sent, acked, rejected, _, _ = final_line(err, name + " before connecting")
        check(rc == 2 and (sent, acked, rejected) == (0, 0, 0) and "interrupted (%s)" % name in err,
              "%s before any connection: exit %r, summary sent %d acked %d rejected %d (expected exit 2, all 0: "
              "100 lines queued never left)\n%s" % (name, rc, sent, acked, rejected, err[-800:]))
    server.stop()
    return "100 lines queued, none left: 'sent 0', exit 2 (SIGINT and SIGTERM)"


def refused(server, argv_extra, ack, inp, want, what):
    rc, out, err = q.send(server, ack_log=ack, input_path=inp, extra_args=argv_extra, client_timeout=10)
    check(rc == 2 and want in err, "%s: exit %r (expected 2 and %r):\n%s" % (what, rc, want, err[-800:]))


def torn():
    recv, server = start("torn")
    n = 200
    inp = q.write_lines(os.path.join(server.dir, "torn.jsonl"), q.gen_events(n))
    ack = os.path.join(server.dir, "torn-acks")
    with open(ack, "w") as f:
        f.write("".join("%d\n" % k for k in range(1, 100)) + "10")  # "100" torn after 2 bytes
    rc, out, err = q.send(server, ack_log=ack, input_path=inp, extra_args=["--resume"], client_timeout=int(q.tmo(60)))
    check(rc == 0 and "dropped a torn last line (2 bytes)" in err,
          "a torn last line: exit %r, no notice of it:\n%s" % (rc, err[-1500:]))
    sent, acked, _, skipped, _ = final_line(err, "torn")
    check((sent, acked, skipped) == (101, 101, 99),
          "torn: sent %d acked %d skipped %r (expected 101, 101, 99: line 100 was torn, so not acknowledged)"
          % (sent, acked, skipped))
    acks = q.read_ack_log(ack)
    check(sorted(acks) == list(range(1, n + 1)),
          "torn: the ack log should hold 1..%d once each: %d entries, not in range %s"
          % (n, len(acks), [a for a in acks if not 1 <= a <= n][:5]))
    missing = recv.wait_numbers(set(range(99, n)), q.tmo(60))
    check(not missing, "torn: lines never arrived: %s" % sorted(missing)[:10])
    time.sleep(0.5)
    early = [k for k, c in recv.seen().items() if c and k < 99]
    check(not early, "torn: lines the ack log held were sent: %s" % early[:10])
    # Logs that are not this input's, a symlink, --resume alone: refused before anything is sent.
    bad = os.path.join(server.dir, "bad-acks")
    with open(bad, "w") as f:
        f.write("1\nnot a number\n3\n")
    refused(server, ["--resume"], bad, inp, "is not a line of this input", "a garbage line")
    with open(bad, "w") as f:
        f.write("other.jsonl:4\n")
    refused(server, ["--resume"], bad, inp, "is not a line of this input", "another input's entry")
    link = os.path.join(server.dir, "link-acks")
    os.symlink(ack, link)
    refused(server, [], link, inp, "symbolic link", "a symlink")
    rc, out, err = q.send(server, input_path=inp, extra_args=["--resume"], client_timeout=10)
    check(rc == 2 and "--resume needs --ack-log" in err, "--resume alone: exit %r: %s" % (rc, err[-500:]))
    check(recv.count() == n - 99, "refused runs sent something: %d lines at the receiver" % recv.count())
    server.stop()
    return "torn last line cut and reported, line 100 sent; bad logs, a symlink, --resume alone refused"


def keyholder_down(server):
    """Kills the keyholder with the supervisor stopped (no restart until keyholder_back)."""
    kh = server.pids("keyholder")
    check(kh, "no keyholder child")
    os.kill(server.pid, signal.SIGSTOP)
    os.kill(kh[0], signal.SIGKILL)


def keyholder_back(server):
    os.kill(server.pid, signal.SIGCONT)


def wait_stderr(c, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and text not in c.stderr() and c.running():
        time.sleep(0.05)
    return text in c.stderr()


def handshake_retry():
    recv, server = start("hs-retry")
    n = 300
    inp = q.write_lines(os.path.join(server.dir, "hs.jsonl"), q.gen_events(n))
    keyholder_down(server)
    try:
        c = q.AsyncSend(server, inp, os.path.join(server.dir, "hs-acks"), client_timeout=int(q.tmo(60)))
        seen = wait_stderr(c, "Internal error", q.tmo(20))
        check(seen and c.running(), "with the keyholder down the client should fail a handshake (internal_error) "
              "and retry: running %r, stderr:\n%s\nserver log:\n%s" % (c.running(), c.stderr()[-1500:],
                                                                         server.log_tail()))
    finally:
        keyholder_back(server)
    rc = c.wait(q.tmo(60))
    err = c.stderr()
    retries = err.count("Internal error")
    log("keyholder back: client exit %r after %d failed handshakes; %s" % (rc, retries, err.strip()[-200:]))
    check(rc == 0 and re.search(r"\(retry 1 of 8\); again in \d+ ms; reconnecting", err),
          "the client did not retry the handshake until the keyholder was back: exit %r\n%s" % (rc, err[-1500:]))
    sent, acked, _, _, _ = final_line(err, "handshake retry")
    check((sent, acked) == (n, n), "after the retries: sent %d acked %d of %d" % (sent, acked, n))
    q.verify_delivery(recv, set(range(n)), q.tmo(60))
    # No retries asked: the first internal_error ends the run, as before.
    keyholder_down(server)
    try:
        rc, out, err = q.send(server, input_path=inp, extra_args=["--handshake-retries", "0"], client_timeout=30)
    finally:
        keyholder_back(server)
    check(rc == 2 and "Internal error" in err and "reconnecting" not in err,
          "--handshake-retries 0 with the keyholder down: exit %r (expected 2 at the first failure):\n%s"
          % (rc, err[-800:]))
    # Bounded: nothing listens on this port, two retries, then the client gives up.
    port = q.free_port("udp")
    t0 = time.monotonic()
    rc, out, err = q.send("127.0.0.1:%d" % port, q.gen_events(3), cert=server.cert,
                          extra_args=["--handshake-retries", "2"], client_timeout=60)
    dt = time.monotonic() - t0
    check(rc == 2 and "gave up after 3 attempts" in err and err.count("reconnecting") == 2,
          "a refused port with --handshake-retries 2: exit %r in %.1f s:\n%s" % (rc, dt, err[-800:]))
    server.stop()
    return "%d failed handshakes (internal_error) retried, then all %d acknowledged; 0 retries: exit 2; " \
           "bounded: gave up after 3 attempts in %.1f s" % (retries, n, dt)


CASES = [("kill-resume", kill_resume), ("sigint-resume", sigint_resume), ("unsent", unsent), ("torn", torn),
         ("handshake-retry", handshake_retry)]


def run():
    q.need_binaries()
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)

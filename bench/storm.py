"""The connection-storm row of bench/run (`--only storm`; docs/PERFORMANCE.md "Connection storms").

N clients (quicstash-bench -c N -S 1, one event each) connect at once to a fresh default quicstashd,
as after a crash or a network blip. Reported: the time until every connection was up, handshakes a
second, the CPU per handshake of each role, the handshakes that failed (and were retried), the
Retry packets the acceptors sent, the new connections they refused as busy (too many handshakes in
progress) and the datagrams the server's UDP socket dropped (its receive buffer was full).

The reconnect-storm row (storm_run(reconnect=True), beside it in the same run): the same N clients
first connect spread over some seconds (not measured), send their event, and then all reconnect at
once, each presenting the TLS session ticket of its first connection (quicstash-bench --reconnect), as
after a network blip or a restart of the server. Reported for that second phase only: the time until
all were up again, handshakes a second, how many resumed (the client's and the server's count), and
the CPU per handshake of each role from the moment it started (--phase-file).

On loopback every client has the address 127.0.0.1, where a real storm comes from N hosts, so the
per-source limits (docs/ARCHITECTURE.md "Per-source limits") are lifted: everything else is default.
"""
import os
import re
import socket
import threading

STORM_QS_ARGS = ["--max-connections-per-source", "0", "--max-handshakes-per-source", "0"]


def udp_drops(port):
    """The receive-buffer drops of the UDP sockets bound to port (/proc/net/udp{,6}: 'drops', the
    last column), summed; None if there is none."""
    total, found = 0, False
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            cols = ln.split()
            if len(cols) > 12 and int(cols[1].rsplit(":", 1)[1], 16) == port:
                total += int(cols[-1])
                found = True
    return total if found else None


def rcvbuf_errors():
    """The host's UDP RcvbufErrors (/proc/net/snmp): every socket's drops, ours among them."""
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


class DropWatch:
    """Polls the server socket's drop counter while it lives (it is gone once quicstashd stops)."""

    def __init__(self, port):
        self.port, self.drops = port, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.wait(0.1):
            d = udp_drops(self.port)
            if d is not None:
                self.drops = max(d, self.drops or 0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def acceptor_counts(qlog, name):
    """A counter of the acceptors' stats lines ('Retry sent', 'refused during a storm'), summed over
    the slots (the last, largest count of each); None without a stats line."""
    per_slot = {}
    try:
        with open(qlog, errors="replace") as f:
            for m in re.finditer(r"slot (\d+): connections accepted \d+.*?%s (\d+)" % re.escape(name), f.read()):
                per_slot[m.group(1)] = max(per_slot.get(m.group(1), 0), int(m.group(2)))
    except OSError:
        return None
    return sum(per_slot.values()) if per_slot else None


def storm_run(ctx, quicstash_run, free_port, n, threads, tag="", reconnect=False, spread=0.0, resume=True):
    """One storm of n connections against a fresh server; a result dict for storm_md. reconnect: the
    reconnect storm (first connections spread over `spread` s; see above), for reconnect_md; resume=False:
    the same with full handshakes only (quicstash-bench --no-resume), what resumption is measured against."""
    port = free_port(socket.SOCK_DGRAM)
    addr = ["-s", "127.0.0.1:%d" % port]  # after quicstash_run's own -s: the later one wins
    snmp0 = rcvbuf_errors()
    extra, phase = [], None
    if reconnect:
        tag = tag or ("-reconnect" if resume else "-reconnect-full")
        phase = os.path.join(ctx.work, "storm%s.phase" % tag)
        if os.path.exists(phase):
            os.unlink(phase)
        extra = ["--reconnect", "--spread", "%g" % spread, "--phase-file", phase] + ([] if resume else ["--no-resume"])
    with DropWatch(port) as dw:
        r = quicstash_run(ctx, "fsync", 0, n, "storm" + tag, qs_extra=STORM_QS_ARGS + addr,
                          bench_extra=addr + ["-c", str(n), "-S", "1", "-T", str(threads), "-w", "1",
                                              "--connect-timeout", "60"] + extra, phase_file=phase)
    b = r["bench"]
    qlog = os.path.join(ctx.work, "quicstash-fsync-storm%s.quicstashd.log" % tag)
    r.update(storm_connections=n, storm_threads=threads, connect_s=b.get("connect_s", -1),
             handshakes=b.get("handshakes", 0), conn_failures=b.get("connections_failed", 0) + b.get("connections_lost", 0),
             drops=dw.drops, host_rcvbuf_errors=rcvbuf_errors() - snmp0,
             retries=acceptor_counts(qlog, "Retry sent"), storm_refused=acceptor_counts(qlog, "refused during a storm"),
             stale=acceptor_counts(qlog, "stale Initials dropped"),
             initial_wait_ms=acceptor_counts(qlog, "longest wait"),
             server_resumed=acceptor_counts(qlog, "handshakes resumed"))
    if reconnect:
        r.update(spread_s=spread, resume=resume, reconnect_s=b.get("reconnect_s", -1), recon_handshakes=b.get("reconnect_handshakes", 0),
                 resumed=b.get("resumed", 0))
    return r


def reconnect_md(r, n, full=None):
    """The reconnect storm's paragraph, under the storm row's; full: the same with full handshakes."""
    if full:
        return reconnect_md(r, n) + reconnect_md(full, n)
    if not r:
        return []
    if "failed" in r:
        return ["\nReconnect storm (%d connections): FAILED: %s" % (n, r["failed"])]
    hs = r["recon_handshakes"] or 1
    cpu = r.get("cpu_phase") or {}
    per = ", ".join("%s %.0f" % (k, v / hs * 1e6) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])) or "?"
    up = "all up again in %.2f s (%.0f handshakes/s)" % (r["reconnect_s"], hs / r["reconnect_s"]) \
        if r["reconnect_s"] > 0 else "NOT all up again"
    how = "with the TLS session ticket of their first connection (quicstash-bench --reconnect)" if r["resume"] else \
        "without resuming, full handshakes (--reconnect --no-resume)"
    return ["\nReconnect storm: the same %d clients connect over %g s (not measured), send their event, then all "
            "reconnect at once %s: %s; %d handshakes, %d resumed (the acceptors' stats lines, at most one a second, counted %s by the last); CPU us per handshake of that reconnect by "
            "role: %s. Over the whole run: %s Retry sent, %s refused as busy, %d datagrams dropped by full receive "
            "buffers; %d of %d events acknowledged." % (
                n, r["spread_s"], how, up, r["recon_handshakes"], r["resumed"],
                "?" if r["server_resumed"] is None else r["server_resumed"], per,
                "?" if r["retries"] is None else r["retries"], "?" if r["storm_refused"] is None else r["storm_refused"],
                r["host_rcvbuf_errors"], r["events"], n)]


def storm_md(r, n):
    """The paragraph under the table."""
    if not r:
        return []
    if "failed" in r:  # the run itself failed (bench/run's attempt())
        return ["\nConnection storm (%d connections at once): FAILED: %s" % (n, r["failed"])]
    hs = r["handshakes"] or 1
    per = ", ".join("%s %.0f" % (k, v / hs * 1e6) for k, v in sorted(r["cpu"].items(), key=lambda kv: -kv[1]))
    up = "all up in %.2f s (%.0f handshakes/s)" % (r["connect_s"], hs / r["connect_s"]) if r["connect_s"] > 0 else \
        "NOT all up"
    return ["\nConnection storm: %d clients connect at once (quicstash-bench -c %d -S 1 -T %d, one event each; "
            "quicstashd defaults but the per-source limits, as if from %d hosts): %s; %d handshakes, %d connections "
            "failed or lost (and retried), %s Retry sent, %s refused as busy, %s stale Initials dropped unread (a first Initial waited %s ms at most in the queue), %d datagrams dropped by full receive buffers "
            "(the host's RcvbufErrors; the server socket's own drop counter: %s); CPU us "
            "per handshake by role: %s. %d of %d events acknowledged." % (
                n, n, r["storm_threads"], n, up, r["handshakes"], r["conn_failures"],
                "?" if r["retries"] is None else r["retries"], "?" if r["storm_refused"] is None else r["storm_refused"],
                "-" if r.get("stale") is None else r["stale"],
                "-" if r.get("initial_wait_ms") is None else r["initial_wait_ms"], r["host_rcvbuf_errors"], "?" if r["drops"] is None else r["drops"], per, r["events"], n)]

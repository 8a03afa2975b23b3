"""Shared harness for the quicstash integration and fault tests (Python 3 stdlib only).

Environment:
  QS_BIN       directory holding quicstashd and quicstash-send (ctest sets it;
               default: <repo>/build/bin)
  QS_SANITIZE  "1" when the binaries are built with ASan+UBSan: loads are scaled
               down with scale(), every assertion stays.
  QS_TEST_HOOKS "0" when the binaries lack the test-only hooks (ctest sets it;
               default "1"): the tests that need one skip (need_test_hooks).
  QS_KEEP      "1" keeps the temporary directories (for debugging).

Every wait is bounded; every process started here is killed at exit.
A test calls qslib.main(fn): fn runs, the verdict line is "PASS name: ..." or
"FAIL name: ...", and the exit status is 0, 1 (fail) or 77 (skip, see Skip).
"""

import atexit
import collections
import ctypes
import fcntl
import heapq
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import struct
import sys
import tempfile
import termios
import threading
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QS_BIN = os.environ.get("QS_BIN") or os.path.join(REPO, "build", "bin")
SANITIZE = os.environ.get("QS_SANITIZE", "0").strip().lower() in ("1", "on", "true", "yes")
TEST_HOOKS = os.environ.get("QS_TEST_HOOKS", "1").strip().lower() in ("1", "on", "true", "yes")
KEEP = os.environ.get("QS_KEEP", "0") == "1"
QUICSTASHD = os.path.join(QS_BIN, "quicstashd")
SEND = os.path.join(QS_BIN, "quicstash-send")

# How much slower everything is under sanitizers: timeouts are multiplied, loads divided.
SLOW = 3.0 if SANITIZE else 1.0
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|UndefinedBehaviorSanitizer")

SKIP_CODE = 77


class Skip(Exception):
    """Raised by a test that cannot run here (e.g. mount impossible): exit 77, ctest SKIP."""


class TestFailure(AssertionError):
    pass


def scale(n, minimum=1):
    """Load size for this build: n, or n/3 under sanitizers (never below minimum)."""
    return max(minimum, int(n / SLOW))


def tmo(seconds):
    """A timeout for this build (longer under sanitizers)."""
    return seconds * SLOW


def log(msg):
    sys.stdout.write("[%7.2f] %s\n" % (time.monotonic() - _T0, msg))
    sys.stdout.flush()


_T0 = time.monotonic()


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


# ---------------------------------------------------------------- cleanup

_cleanups = []
_cleanup_lock = threading.Lock()


def at_cleanup(fn):
    with _cleanup_lock:
        _cleanups.append(fn)
    return fn


def _run_cleanups():
    with _cleanup_lock:
        fns = list(reversed(_cleanups))
        _cleanups.clear()
    for fn in fns:
        try:
            fn()
        except Exception as e:  # cleanup must go on
            sys.stderr.write("cleanup error: %r\n" % (e,))


atexit.register(_run_cleanups)


def _on_term(signum, frame):
    _run_cleanups()
    os._exit(1)


signal.signal(signal.SIGTERM, _on_term)

_libc = None


def _pdeathsig():
    """preexec_fn: the child dies with SIGKILL if the test process dies (ctest timeout)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix="qs-%s-" % prefix)

    def rm():
        if KEEP:
            sys.stderr.write("kept %s\n" % d)
        else:
            for sub in ("spool", "spool2"):
                mp = os.path.join(d, sub)
                if os.path.ismount(mp):
                    subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            shutil.rmtree(d, ignore_errors=True)

    at_cleanup(rm)
    return d


def need_binaries(*names):
    names = names or ("quicstashd", "quicstash-send")
    for n in names:
        p = os.path.join(QS_BIN, n)
        check(os.access(p, os.X_OK), "%s is not built (QS_BIN=%s)" % (p, QS_BIN))


def need_test_hooks(what):
    """Skips the test unless the binaries have the test-only hooks (cmake -DQS_TEST_HOOKS=ON; make test)."""
    if not TEST_HOOKS:
        raise Skip("needs %s, a test-only hook: this build has QS_TEST_HOOKS off (use make test)" % what)


# ---------------------------------------------------------------- ports

def free_port(kind="udp", host="127.0.0.1"):
    """An unused loopback port for kind 'udp' or 'tcp' (checked free for both when possible)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        st = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        s = socket.socket(fam, st)
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        # also make sure the other protocol's port is free: tests use both kinds
        other = socket.socket(fam, socket.SOCK_STREAM if kind == "udp" else socket.SOCK_DGRAM)
        try:
            other.bind((host, port))
        except OSError:
            continue
        finally:
            other.close()
        return port
    raise TestFailure("no free %s port" % kind)


# ---------------------------------------------------------------- events

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


# ---------------------------------------------------------------- receiver

class Receiver:
    """A TCP server on 127.0.0.1:port collecting newline-delimited lines from any number of
    connections (a stand-in for Logstash's tcp input with the json_lines codec).
    tls: an ssl.SSLContext (server side, see server_tls_context()) makes it speak TLS, as Logstash's
    tcp input with ssl_enable => true: each connection's handshake runs in its own thread, and a
    failed one only ends that connection (counted in tls_failures, reason in tls_last_error)."""

    def __init__(self, port=None, slow=False, host="127.0.0.1", netns=None, rcvbuf=None, tls=None):
        self.host = host
        self.netns = netns       # a NetNs: listen inside it (at its peer address)
        self.port = port or (5000 if netns else free_port("tcp", host))
        self.slow = slow
        self.rcvbuf = rcvbuf     # SO_RCVBUF of the listener: a small window fills at once
        self._go = threading.Event()  # cleared by pause(): the connections stop reading
        self._go.set()
        self.lock = threading.Lock()
        self.lines = []          # raw bytes lines, without '\n'
        self.partials = []       # bytes left without a newline when a connection closed
        self.bad_json = []       # lines that are not JSON objects
        self.counts = collections.Counter()  # event "n" -> times seen
        self.events = []         # parsed events (dicts), in arrival order
        self.connections_total = 0
        self.tls = tls
        self.tls_failures = 0    # connections whose TLS handshake failed (not those cut by stop())
        self.tls_last_error = None
        self._listener = None
        self._conns = set()
        self._threads = []
        self._running = False
        at_cleanup(self.stop)

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        if self._running:
            return self
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if self.netns:
            s = self.netns.run(lambda: socket.socket(fam, socket.SOCK_STREAM))
        else:
            s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        deadline = time.monotonic() + 10
        while True:
            try:
                s.bind((self.host, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    s.close()
                    raise
                time.sleep(0.1)
        s.listen(64)
        s.settimeout(0.2)
        self._listener = s
        self._running = True
        t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        """Closes the listener and every connection (Logstash going down)."""
        self._running = False
        s, self._listener = self._listener, None
        if s:
            try:
                s.close()
            except OSError:
                pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        self._go.set()
        for t in self._threads:
            t.join(timeout=2)
        self._threads = [t for t in self._threads if t.is_alive()]

    def pause(self):
        """Stops reading (Logstash's pipeline pushing back): its TCP window closes."""
        self._go.clear()

    def resume(self):
        self._go.set()

    def abort(self):
        """Drops every connection with a reset and stops listening (a host that crashed: its
        kernel forgets the connections)."""
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        self.stop()

    def unread(self):
        """Bytes waiting unread in each connection's kernel receive queue (SIOCINQ): what its TCP
        acknowledged and it never read."""
        with self.lock:
            conns = list(self._conns)
        out = []
        for c in conns:
            try:
                out.append(struct.unpack("i", fcntl.ioctl(c.fileno(), termios.FIONREAD, b"\0" * 4))[0])
            except (OSError, ValueError):
                pass
        return out

    def kill(self):
        """Ends as a killed Logstash does: the listener and every connection closed at once, unread
        data and all (the kernel resets a connection whose data was never read, RFC 1122 4.2.2.13).
        Returns unread() as it was just before."""
        self._running = False
        s, self._listener = self._listener, None
        if s:
            s.close()
        with self.lock:
            conns = list(self._conns)
        left = self.unread()
        for c in conns:
            try:
                c.close()  # no shutdown(): no FIN first, as for a process that dies
            except OSError:
                pass
        self._go.set()  # the paused threads find their sockets closed and end
        for t in self._threads:
            t.join(timeout=2)
        self._threads = [t for t in self._threads if t.is_alive()]
        return left

    def _accept_loop(self, s):
        while self._running:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.slow:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with self.lock:
                self._conns.add(c)
                self.connections_total += 1
            t = threading.Thread(target=self._conn_loop, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _conn_loop(self, c):
        if self.tls is not None:
            c = self._tls_accept(c)
            if c is None:
                return
        buf = b""
        try:
            while True:
                self._go.wait()
                if not self._running:
                    break
                try:
                    data = c.recv(1024 if self.slow else 262144)
                except OSError:
                    break
                if not data:
                    break
                buf += data
                if b"\n" in buf:
                    parts = buf.split(b"\n")
                    buf = parts.pop()
                    self._add(parts)
                if self.slow:
                    time.sleep(0.01)
        finally:
            with self.lock:
                self._conns.discard(c)
                if buf:
                    self.partials.append(buf)
            try:
                c.close()
            except OSError:
                pass

    def _tls_accept(self, c):
        """The server side of the TLS handshake on the accepted connection c. Returns the TLS
        socket, or None when the handshake failed (counted, the connection closed)."""
        s = None
        try:
            with self.lock:
                # No handshake inside wrap_socket: the TLS socket must take c's place in _conns
                # (wrapping detaches c) before the handshake blocks, so that stop() can cut it.
                # Under the lock, stop() either finds s in _conns or has already cleared _running.
                s = self.tls.wrap_socket(c, server_side=True, do_handshake_on_connect=False)
                self._conns.discard(c)
                self._conns.add(s)
                if not self._running:
                    raise OSError("receiver stopped")
            # a peer that never completes its handshake must not hold the thread for ever
            s.settimeout(tmo(10))
            s.do_handshake()
            s.settimeout(None)
            return s
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            with self.lock:
                self._conns.discard(c)
                self._conns.discard(s)
                if self._running:  # a handshake cut short by stop() is no TLS failure
                    self.tls_failures += 1
                    self.tls_last_error = str(e) or type(e).__name__
            for x in (s, c):
                try:
                    if x is not None:
                        x.close()
                except OSError:
                    pass
            return None

    def _add(self, lines):
        parsed = []
        for l in lines:
            try:
                ev = json.loads(l.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                ev = None
            parsed.append((l, ev))
        with self.lock:
            for l, ev in parsed:
                self.lines.append(l)
                if isinstance(ev, dict):
                    self.events.append(ev)
                    n = ev.get("n")
                    if isinstance(n, int):
                        self.counts[n] += 1
                else:
                    self.bad_json.append(l)

    def count(self):
        with self.lock:
            return len(self.lines)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def seen(self):
        with self.lock:
            return collections.Counter(self.counts)

    def wait_count(self, n, timeout):
        """Waits until at least n lines arrived; returns the count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                break
            time.sleep(0.05)
        return self.count()

    def wait_numbers(self, numbers, timeout, quiet=1.0):
        """Waits until every number in `numbers` was seen (bounded). Returns the missing set.
        After everything arrived, waits `quiet` more seconds to catch late duplicates."""
        numbers = set(numbers)
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                missing = {x for x in numbers if self.counts[x] == 0}
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not missing and quiet:
            time.sleep(quiet)
        return missing


# ---------------------------------------------------------------- TLS to Logstash

# certtool templates: (signed by, template). Every certificate gets the same short life.
_PKI = {
    "ca": (None, 'cn = "quicstash test CA"\nca\ncert_signing_key\n'),
    # an unrelated CA: trusting it is trusting the wrong CA
    "other-ca": (None, 'cn = "unrelated test CA"\nca\ncert_signing_key\n'),
    "server": ("ca", 'cn = "logstash"\ndns_name = "localhost"\nip_address = "127.0.0.1"\n'
                     'tls_www_server\nsigning_key\nencryption_key\n'),
    # signed by the right CA, but for another name: 127.0.0.1 must not match it
    "wrong-name": ("ca", 'cn = "elsewhere.example"\ndns_name = "elsewhere.example"\n'
                         'tls_www_server\nsigning_key\nencryption_key\n'),
    "client": ("ca", 'cn = "quicstash shipper"\ntls_www_client\nsigning_key\n'),
}


def make_pki(d):
    """Certificates for TLS to Logstash, made with GnuTLS's certtool (gnutls-bin; Skip without it)
    in directory d. Returns {file name: path} for NAME.pem and NAME.key, NAME in:
      ca          the CA that signs the others
      server      Logstash's certificate: IP 127.0.0.1 and DNS localhost
      wrong-name  signed by ca, only for DNS elsewhere.example
      client      a client certificate (tls_www_client) for a Logstash that requires one
      other-ca    an unrelated self-signed CA
    Keys are ECDSA P-256 (instant to generate; certtool leaves out encryption_key, meaningless
    for an EC key)."""
    if not shutil.which("certtool"):
        raise Skip("certtool (gnutls-bin) is not installed")
    os.makedirs(d, exist_ok=True)

    def certtool(*args):
        p = subprocess.run(["certtool", "--no-text"] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        check(p.returncode == 0, "certtool %s: exit %d\n%s"
              % (" ".join(args), p.returncode, p.stdout.decode("utf-8", "replace")[-1000:]))

    out = {}
    for name, (signer, template) in _PKI.items():  # the CAs come first
        key, pem, tmpl = (os.path.join(d, name + ext) for ext in (".key", ".pem", ".tmpl"))
        with open(tmpl, "w") as f:
            f.write(template + "expiration_days = 30\n")
        certtool("--generate-privkey", "--key-type", "ecdsa", "--curve", "secp256r1", "--outfile", key)
        if signer is None:
            certtool("--generate-self-signed", "--load-privkey", key, "--template", tmpl, "--outfile", pem)
        else:
            certtool("--generate-certificate", "--load-privkey", key, "--template", tmpl, "--outfile", pem,
                     "--load-ca-certificate", out[signer + ".pem"], "--load-ca-privkey", out[signer + ".key"])
        out[name + ".pem"], out[name + ".key"] = pem, key
    return out


def server_tls_context(pki, cert="server", require_client=False):
    """A server-side ssl.SSLContext for Receiver(tls=...) presenting pki's CERT.pem/CERT.key; with
    require_client, a client certificate signed by pki's ca.pem is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki[cert + ".pem"], pki[cert + ".key"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=pki["ca.pem"])
    return ctx


class NetNs:
    """A network namespace joined to this one by a veth pair: another host on a /30 link, for
    servers that must be cut off silently (the link down drops packets, nothing is reset).
    Needs root and iproute2; Skip otherwise. Removed at exit."""

    CLONE_NEWNET = 0x40000000

    def __init__(self):
        if os.geteuid() != 0 or not shutil.which("ip"):
            raise Skip("network namespaces need root and iproute2's ip")
        tag = "%d%03d" % (os.getpid() % 100000, random.randrange(1000))
        self.name = "qsns" + tag
        self.here, self.there = "qsa" + tag, "qsb" + tag   # veth ends (<= 15 characters)
        net = random.randrange(1, 16000) * 4
        self.host_ip = "10.213.%d.%d" % (net // 256, net % 256 + 1)
        self.peer_ip = "10.213.%d.%d" % (net // 256, net % 256 + 2)
        self.host_ip6 = "fd51:7a5:%x::1" % net   # ULA /64s, no duplicate detection (usable at once)
        self.peer_ip6 = "fd51:7a5:%x::2" % net
        at_cleanup(self.remove)
        try:
            self._ip("netns", "add", self.name)
            self._ip("link", "add", self.here, "type", "veth", "peer", "name", self.there, "netns", self.name)
            self._ip("addr", "add", self.host_ip + "/30", "dev", self.here)
            self._ip("link", "set", self.here, "up")
            self._ip("addr", "add", self.peer_ip + "/30", "dev", self.there, ns=True)
            self._ip("-6", "addr", "add", self.host_ip6 + "/64", "dev", self.here, "nodad")
            self._ip("-6", "addr", "add", self.peer_ip6 + "/64", "dev", self.there, "nodad", ns=True)
            self._ip("link", "set", self.there, "up", ns=True)
            self._ip("link", "set", "lo", "up", ns=True)
            # A fixed neighbour entry: the far host stays "resolved" when its link goes down, as
            # behind a router, so packets vanish instead of failing ARP with "no route to host".
            mac = subprocess.run(["ip", "netns", "exec", self.name, "cat", "/sys/class/net/%s/address" % self.there],
                                 check=True, capture_output=True, text=True, timeout=30).stdout.strip()
            self._ip("neigh", "replace", self.peer_ip, "lladdr", mac, "dev", self.here, "nud", "permanent")
        except subprocess.CalledProcessError as e:
            raise Skip("cannot make a network namespace here: %s" % (e.stderr or b"").decode().strip())

    def _ip(self, *args, ns=False):
        cmd = ["ip"] + (["netns", "exec", self.name, "ip"] if ns else []) + list(args)
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    def mtu(self, n):
        """Sets both ends of the link to an MTU of n bytes (a tunnel's, a VPN's)."""
        self._ip("link", "set", self.here, "mtu", str(n))
        self._ip("link", "set", self.there, "mtu", str(n), ns=True)

    def snmp(self, inside):
        """The IP counters (/proc/net/snmp and snmp6) of the namespace (inside) or of this one."""
        out = {}
        for path in ("/proc/net/snmp", "/proc/net/snmp6"):
            text = subprocess.run(["ip", "netns", "exec", self.name, "cat", path], check=True, capture_output=True,
                                  text=True, timeout=30).stdout if inside else open(path).read()
            lines = text.splitlines()
            for i, line in enumerate(lines):
                if path.endswith("6"):
                    k, _, v = line.partition(" ")
                    out[k] = int(v.strip() or 0)
                elif line.startswith("Ip: ") and i + 1 < len(lines) and lines[i + 1].startswith("Ip: "):
                    names, vals = line.split()[1:], lines[i + 1].split()[1:]
                    out.update({"Ip" + n: int(v) for n, v in zip(names, vals)})
        return out

    def link(self, up):
        """Brings the far end of the link up or down (down: every packet is dropped, silently)."""
        self._ip("link", "set", self.there, "up" if up else "down", ns=True)

    def run(self, fn):
        """fn() on a thread inside the namespace (setns moves only the calling thread); a socket
        made there stays in the namespace."""
        out = {}

        def body():
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
                try:
                    if libc.setns(fd, self.CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                out["v"] = fn()
            except BaseException as e:  # handed to the caller
                out["e"] = e

        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join(30)
        if "e" in out:
            raise out["e"]
        return out["v"]

    def remove(self):
        subprocess.run(["ip", "link", "del", self.here], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


class LossyRelay:
    """A UDP relay between clients and a server that loses, duplicates, reorders and delays
    datagrams, each direction on its own, from a fixed seed: the mobile and edge networks the
    clients are on, where this kernel has no netem. Clients send to .addr; each client address
    gets its own upstream socket (a NAT). blackout(s) drops everything for s seconds. Counts what
    it did in .stats."""

    def __init__(self, upstream, loss=0.0, dup=0.0, reorder=0.0, delay_ms=0.0, seed=1):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host.strip("[]"), int(port))
        self.loss, self.dup, self.reorder, self.delay = loss, dup, reorder, delay_ms / 1000.0
        self.rng = random.Random(seed)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.clients = {}      # client address -> upstream socket
        self.back = {}         # upstream socket -> client address
        self.queue = []        # (due, seq, send function, datagram): the delay line
        self.seq = 0
        self.dark_until = 0.0
        self.stats = collections.Counter()
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        at_cleanup(self.stop)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.sock.getsockname()[1]

    def blackout(self, seconds):
        self.dark_until = time.monotonic() + seconds

    def stop(self):
        self.running = False
        self.thread.join(5)

    def _up(self, client):
        u = self.clients.get(client)
        if u is None:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            u.connect(self.upstream)
            u.setblocking(False)
            self.clients[client], self.back[u] = u, client
        return u

    def _pass(self, direction, data, send):
        now = time.monotonic()
        self.stats[direction] += 1
        if now < self.dark_until:
            self.stats["blackout"] += 1
            return
        r = self.rng.random()
        if r < self.loss:
            self.stats["lost"] += 1
            return
        due = now + self.delay
        if self.rng.random() < self.reorder:
            due += 0.005   # overtaken by what follows within 5 ms
            self.stats["reordered"] += 1
        copies = 2 if r < self.loss + self.dup else 1
        self.stats["duplicated"] += copies - 1
        for _ in range(copies):
            self.seq += 1
            heapq.heappush(self.queue, (due, self.seq, send, data))

    def _flush(self):
        now = time.monotonic()
        while self.queue and self.queue[0][0] <= now:
            _, _, fn, d = heapq.heappop(self.queue)
            try:
                fn(d)
            except OSError:
                pass

    def _loop(self):
        while self.running:
            socks = [self.sock] + list(self.back)
            wait = 0.05 if not self.queue else max(0.0, self.queue[0][0] - time.monotonic())
            r, _, _ = select.select(socks, [], [], wait)
            for s in r:
                for _ in range(64):
                    try:
                        data, frm = s.recvfrom(65536) if s is self.sock else (s.recv(65536), None)
                    except (BlockingIOError, OSError):
                        break
                    if s is self.sock:
                        u = self._up(frm)
                        self._pass("up", data, u.send)
                    else:
                        c = self.back[s]
                        self._pass("down", data, lambda d, c=c: self.sock.sendto(d, c))
            self._flush()
        for s in [self.sock] + list(self.back):
            s.close()


# ---------------------------------------------------------------- server

def _read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _stat(pid):
    """(state, ppid) of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def _alive(pid):
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _all_pids():
    for d in os.listdir("/proc"):
        if d.isdigit():
            yield int(d)


class Server:
    """quicstashd in its own temporary directory:
        quicstashd -s 127.0.0.1:UDP -l 127.0.0.1:TCP --spool-dir DIR/spool -c DIR/cert.der
                   --key-path DIR/key.pem [extra]
    stderr goes to DIR/server.log. start() waits for READY=1 through NOTIFY_SOCKET (or, failing
    that, a log line containing 'ready'). start() may be called again after stop()/kill_tree():
    same directory, spool, certificate and port."""

    def __init__(self, logstash=None, extra=(), udp_port=None, host="127.0.0.1", workdir=None, name="server",
                 confined=False):
        self.host = host
        # Under ASan the children run unconfined so that LeakSanitizer checks them at exit (a leak
        # makes a child exit 23 and the server's stop fail); confined=True for the tests of the
        # confinement itself. Without sanitizers the children are always confined.
        self.confined = confined
        self.udp_port = udp_port or free_port("udp", host)
        self.logstash = logstash if isinstance(logstash, str) or logstash is None else logstash.addr
        if self.logstash is None:
            self.logstash = "127.0.0.1:%d" % free_port("tcp")
        self.extra = list(extra)
        self.wrap = []  # a command that execs the rest (same pid), e.g. to start it in a namespace
        self.env = {}   # added to quicstashd's environment
        self.dir = workdir or mkdtemp(name)
        self.spool = os.path.join(self.dir, "spool")
        self.cert = os.path.join(self.dir, "cert.der")
        self.key = os.path.join(self.dir, "key.pem")
        self.logfile = os.path.join(self.dir, "server.log")
        self.proc = None
        self.notify_msgs = []
        self._notify_sock = None
        self._notify_thread = None
        self.ready_via = None
        at_cleanup(self.kill_tree)

    @property
    def addr(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (h, self.udp_port)

    def argv(self):
        return self.wrap + [QUICSTASHD, "-s", self.addr, "-l", self.logstash, "--spool-dir", self.spool, "-c",
                            self.cert, "--key-path", self.key] + self.extra

    def _notify_reader(self, sock):
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            if not data:
                continue
            self.notify_msgs.append(data.decode("utf-8", "replace"))

    def start(self, timeout=None, wait_ready=True):
        need_binaries("quicstashd")
        timeout = timeout or tmo(30)
        npath = os.path.join(self.dir, "notify-%d.sock" % int(time.monotonic() * 1000))
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(npath)
        self._notify_sock = ns
        self.notify_msgs = []
        t = threading.Thread(target=self._notify_reader, args=(ns,), daemon=True)
        t.start()
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = npath
        if SANITIZE and not self.confined:
            env["QS_TEST_CHILD_LEAKS"] = "1"
        env.update(self.env)
        self._log_start = os.path.getsize(self.logfile) if os.path.exists(self.logfile) else 0
        with open(self.logfile, "ab") as lf:
            lf.write(("---- %s start: %s\n" % (time.strftime("%H:%M:%S"), " ".join(self.argv()))).encode())
            lf.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, env=env,
                                         cwd=self.dir, start_new_session=True, preexec_fn=_pdeathsig)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        log_seen_at = None
        while time.monotonic() < deadline:
            if any("READY=1" in m for m in list(self.notify_msgs)):
                self.ready_via = "sd_notify"
                return
            rc = self.proc.poll()
            if rc is not None:
                raise TestFailure("quicstashd exited with %s before it was ready; log tail:\n%s"
                                  % (rc, self.log_tail()))
            if re.search(r"\bready\b", self.log(since_start=True), re.I):
                # fall back to the log line; give sd_notify a moment to arrive first
                log_seen_at = log_seen_at or time.monotonic()
                if time.monotonic() - log_seen_at > 1.0:
                    self.ready_via = "log"
                    log("note: no READY=1 through NOTIFY_SOCKET, used the log line")
                    return
            time.sleep(0.05)
        raise TestFailure("quicstashd not ready after %.0fs; log tail:\n%s" % (timeout, self.log_tail()))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self, role):
        """Pids of the live children with --role ROLE whose parent is the supervisor, sorted."""
        if not self.proc:
            return []
        out = []
        want = role.encode()
        for pid in _all_pids():
            argv = _read_cmdline(pid)
            if b"--role" not in argv:
                continue
            i = argv.index(b"--role")
            if i + 1 >= len(argv) or argv[i + 1] != want:
                continue
            st = _stat(pid)
            if st and st[1] == self.proc.pid and st[0] not in ("Z", "X"):
                out.append(pid)
        return sorted(out)

    def all_pids(self):
        return {r: self.pids(r) for r in ("acceptor", "parser", "shipper")}

    def kill_child(self, role, sig=signal.SIGKILL, index=0):
        pids = self.pids(role)
        check(len(pids) > index, "no %s child to kill (found %r)" % (role, pids))
        pid = pids[index]
        os.kill(pid, sig)
        return pid

    def wait_respawn(self, role, old_pid, count, timeout=None):
        """Waits until `count` live children of ROLE exist and old_pid is not among them."""
        deadline = time.monotonic() + (timeout or tmo(20))
        while time.monotonic() < deadline:
            p = self.pids(role)
            if len(p) >= count and old_pid not in p:
                return p
            time.sleep(0.05)
        raise TestFailure("%s %d was not replaced within the timeout (now %r); log tail:\n%s"
                          % (role, old_pid, self.pids(role), self.log_tail()))

    def _descendants(self):
        if not self.proc:
            return []
        root = self.proc.pid
        parent = {}
        for pid in _all_pids():
            st = _stat(pid)
            if st:
                parent[pid] = st[1]
        out, frontier = [], {root}
        while frontier:
            nxt = {p for p, pp in parent.items() if pp in frontier and p not in out}
            out.extend(nxt)
            frontier = nxt
        return out

    def stop(self, timeout=None, expect_rc=0):
        """SIGTERM, waits (bounded), checks the exit code (0 by default). Returns it."""
        if not self.proc:
            return None
        kids = self._descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout or tmo(30))
        except subprocess.TimeoutExpired:
            self.kill_tree()
            raise TestFailure("quicstashd did not stop within the timeout after SIGTERM; log tail:\n%s"
                              % self.log_tail())
        deadline = time.monotonic() + tmo(10)
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [k for k in kids if _alive(k)]
        for k in left:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        self._close_notify()
        check(not left, "children %r still alive after the supervisor stopped" % left)
        if expect_rc is not None:
            why = [l for l in self.log(since_start=True).splitlines()
                   if re.search(r"while stopping|did not stop|not stop cleanly|error|<3>", l)]
            check(rc == expect_rc, "quicstashd exited with %r after SIGTERM, expected %r (%s); log tail:\n%s"
                  % (rc, expect_rc, " | ".join(why[-4:]), self.log_tail()))
        self.check_sanitizers()
        return rc

    def check_sanitizers(self):
        """Under ASan: no sanitizer report anywhere in this run's log. A child that a report ends
        (ASan, UBSan: no recovery) or that leaks at a reload's exit is restarted or replaced by the
        supervisor, and the service may go on as if nothing happened: only its log tells."""
        if not SANITIZE:
            return
        lines = self.log(since_start=True).splitlines()
        bad = [i for i, l in enumerate(lines) if SANITIZER_REPORT.search(l)]
        check(not bad, "a sanitizer report in the server's log:\n%s"
              % ("\n".join(lines[bad[0]:bad[0] + 30]) if bad else ""))

    def kill_tree(self):
        """SIGKILL the supervisor and every descendant at once (a power cut, as far as processes go)."""
        if not self.proc:
            return
        pids = self._descendants()
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own session's group, a backstop
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._close_notify()

    def _close_notify(self):
        if self._notify_sock:
            try:
                self._notify_sock.close()
            except OSError:
                pass
            self._notify_sock = None

    def log(self, since_start=False):
        try:
            with open(self.logfile, "rb") as f:
                if since_start:
                    f.seek(self._log_start)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def check_spool(self, repair=False, spool=None):
        """Runs quicstashd --check-spool DIR [--repair]; returns (rc, output)."""
        argv = [QUICSTASHD, "--check-spool", spool or self.spool] + (["--repair"] if repair else [])
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=tmo(60),
                           preexec_fn=_pdeathsig)
        return p.returncode, p.stdout.decode("utf-8", "replace")


# ---------------------------------------------------------------- client

class KeptSocket:
    """PID 1 keeps the socket while the service restarts: emulated by holding the socket here and
    passing it as LISTEN_FDS on every start. Each start gets a fresh runtime directory, as
    systemd's RuntimeDirectory= (removed when the service stops) gives it."""

    def __init__(self, server):
        self.server = server
        self.usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.usock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.usock.bind(("127.0.0.1", server.udp_port))
        self.starts = 0

    def start(self, extra=()):
        """Starts quicstashd on the kept socket (with `extra` arguments after the server's own) and
        waits for its "ready:" line."""
        server, fd = self.server, self.usock.fileno()
        argv = server.argv() + list(extra)
        # LISTEN_PID must be the service's pid: sh sets it to its own and execs quicstashd.
        cmd = "exec 3<&%d; LISTEN_FDS=1 LISTEN_PID=$$ exec %s" % (fd, " ".join("'%s'" % a for a in argv))
        lf = open(server.logfile, "ab")
        server._log_start = os.path.getsize(server.logfile)
        server.proc = subprocess.Popen(["sh", "-c", cmd], stdout=lf, stderr=lf, pass_fds=(fd,), cwd=server.dir,
                                       start_new_session=True, preexec_fn=_pdeathsig)
        deadline = time.monotonic() + tmo(30)
        while time.monotonic() < deadline and server.log().count("ready:") < self.starts + 1:
            time.sleep(0.05)
        self.starts += 1
        check("passed by systemd" in server.log(), "quicstashd did not take the passed socket")

    def close(self):
        self.usock.close()


def _send_argv(server, extra_args, ack_log=None, cert=None):
    # server: a Server, anything with .addr and .cert (duck typing), or an "host:port" string
    addr = server if isinstance(server, str) else server.addr
    cert = cert or (None if isinstance(server, str) else getattr(server, "cert", None))
    argv = [SEND, "-s", addr] + (["--cert", cert] if cert else [])
    if ack_log:
        argv += ["--ack-log", ack_log]
    return argv + list(extra_args)


def send(server, lines=None, extra_args=(), timeout=None, ack_log=None, cert=None, input_path=None,
         client_timeout=None):
    """Runs quicstash-send on `lines` (list of str/bytes lines, or raw bytes with --raw) and returns
    (exit code, stdout, stderr). The process is killed after `timeout` seconds (exit code None)."""
    need_binaries("quicstash-send")
    timeout = timeout or tmo(120)
    d = getattr(server, "dir", None) or mkdtemp("send")
    if input_path is None:
        input_path = os.path.join(d, "input-%d-%d.txt" % (os.getpid(), random.randrange(1 << 30)))
        if isinstance(lines, (bytes, bytearray)):
            with open(input_path, "wb") as f:
                f.write(lines)
        else:
            write_lines(input_path, lines or [])
    argv = _send_argv(server, extra_args, ack_log, cert)
    if client_timeout is not None:
        argv += ["--timeout", str(client_timeout)]
    argv.append(input_path)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=_pdeathsig)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


SUMMARY_RE = re.compile(r"sent\s+(\d+)\s+acked\s+(\d+)\s+rejected\s+(\d+)")


def send_acked(server, lines, what):
    """q.send, which must be acknowledged in full: acks come once events are durable in the
    spool, whether or not Logstash takes them."""
    rc, out, err = send(server, lines, timeout=tmo(120), client_timeout=int(tmo(60)))
    check(rc == 0 and summary(err) == (len(lines), len(lines), 0),
          "%s: quicstash-send exit %r, summary %r (expected every event acknowledged);\n%s\nserver log:\n%s"
          % (what, rc, summary(err), err[-800:], server.log_tail()))


def arrived(receivers, numbers, timeout):
    """Waits until every number arrived at one of the receivers; returns the missing ones."""
    numbers = set(numbers)
    deadline = time.monotonic() + timeout
    while True:
        seen = set()
        for r in receivers:
            seen |= {n for n, c in r.seen().items() if c}
        missing = numbers - seen
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.1)


def summary(stderr):
    """(sent, acked, rejected) from quicstash-send's last summary line, or None."""
    m = SUMMARY_RE.findall(stderr)
    return tuple(int(x) for x in m[-1]) if m else None


class AsyncSend:
    """quicstash-send running in the background on an input file, with --ack-log."""

    def __init__(self, server, input_path, ack_log, extra_args=(), client_timeout=None, cert=None):
        """input_path None: the client reads a pipe (stdin) that the test writes with feed() and
        ends with end_input(); until then it stays mid-stream, however fast or slow the host."""
        need_binaries("quicstash-send")
        self.ack_log = ack_log
        self.input_path = input_path
        argv = _send_argv(server, extra_args, ack_log, cert)
        if client_timeout is not None:
            argv += ["--timeout", str(client_timeout)]
        if input_path is not None:
            argv.append(input_path)
        self.argv = argv
        d = os.path.dirname(ack_log)
        self.out_path = ack_log + ".stdout"
        self.err_path = ack_log + ".stderr"
        self._out = open(self.out_path, "ab")
        self._err = open(self.err_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if input_path else subprocess.PIPE,
                                     stdout=self._out, stderr=self._err, cwd=d, preexec_fn=_pdeathsig)
        if self.proc.stdin:
            os.set_blocking(self.proc.stdin.fileno(), False)
        at_cleanup(self.kill)

    def feed(self, data, timeout, stop=None):
        """Writes bytes to the client's stdin; returns how many were written before `timeout`,
        the client's exit (broken pipe) or `stop` (a threading.Event) was set."""
        fd, done = self.proc.stdin.fileno(), 0
        deadline = time.monotonic() + timeout
        while done < len(data) and time.monotonic() < deadline and not (stop and stop.is_set()):
            if not select.select([], [fd], [], 0.05)[1]:
                continue
            try:
                done += os.write(fd, data[done:done + 65536])
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError):
                break
        return done

    def end_input(self):
        """Closes the client's stdin: it finishes what it holds and exits."""
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass  # the client is gone: nothing more to say to it

    def acked(self):
        return read_ack_log(self.ack_log)

    def acked_count(self):
        return len(self.acked())

    def wait_acked(self, n, timeout):
        """Waits until at least n lines are acknowledged or the client exits; returns the count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.acked_count()
            if c >= n or self.proc.poll() is not None:
                return c
            time.sleep(0.02)
        return self.acked_count()

    def wait_stall(self, quiet, timeout):
        """Waits until no acknowledgement arrived for `quiet` seconds (bounded by timeout)."""
        deadline = time.monotonic() + timeout
        last, last_t = self.acked_count(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            c = self.acked_count()
            if c != last:
                last, last_t = c, time.monotonic()
            elif time.monotonic() - last_t >= quiet:
                return c, True
            if self.proc.poll() is not None:
                return c, False
        return last, False

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        self.end_input()
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class Feeder:
    """Feeds lines make_line(0), make_line(1), ... to a stdin-fed AsyncSend at about `rate` a second
    until stop(). A paced input file ends n/rate seconds after it starts (sooner when --max-rate
    catches up after a stall), so a fault injected late on a slow host found the client done; a
    fed client is mid-stream until the test says otherwise. No catch-up burst: a full pipe holds
    the feeder back. Bounded: at most `limit` lines (default 600 s worth).
    On stop(), lines up to `minimum` are written unpaced (a load of at least that many), then stdin
    is closed. With copy_path, lines from `prewritten` on are appended to that file before the
    client sees them: a rerun on the file sends everything the fed client may have seen."""

    TICK = 0.02

    def __init__(self, client, make_line, rate, minimum=0, limit=None, copy_path=None, prewritten=0):
        self.client, self.make_line, self.rate = client, make_line, rate
        self.minimum = minimum
        self.limit = limit or max(minimum, int(rate * 600))
        self.copy_path, self.prewritten = copy_path, prewritten
        self.count = 0  # lines generated (written to the pipe, or pending in it)
        self._pending = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        at_cleanup(self._abort)

    def _take(self, k):
        """Generates the next k lines into the pending bytes (and the copy file)."""
        k0, k1 = self.count, self.count + k
        lines = [self.make_line(i) + "\n" for i in range(k0, k1)]
        if self.copy_path and k1 > self.prewritten:
            with open(self.copy_path, "a", encoding="utf-8") as f:
                f.write("".join(lines[max(0, self.prewritten - k0):]))
        self._pending += "".join(lines).encode("utf-8")
        self.count = k1

    def _push(self, stop, timeout):
        """Writes the pending bytes; False when the client is gone or the time is up."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline and not (stop and stop.is_set()):
            n = self.client.feed(self._pending, max(0.0, deadline - time.monotonic()), stop)
            self._pending = self._pending[n:]
            if n == 0 and not self.client.running():
                return False
        return not self._pending

    def _loop(self):
        last, credit = time.monotonic(), 0.0
        while not self._stop.is_set() and self.count < self.limit and self.client.running():
            time.sleep(self.TICK)
            now = time.monotonic()
            credit = min(credit + (now - last) * self.rate, max(1.0, self.rate * 0.1))
            last = now
            k = min(int(credit), self.limit - self.count)
            if k > 0:
                credit -= k
                self._take(k)
                self._push(self._stop, 3600)

    def stop(self, timeout=None):
        """Stops pacing, writes what is pending and the lines up to `minimum`, closes stdin."""
        self._stop.set()
        self._thread.join()
        if self.count < self.minimum:
            self._take(self.minimum - self.count)
        self._push(None, timeout or tmo(60))
        self.client.end_input()
        return self.count

    def _abort(self):
        self._stop.set()
        self.client.end_input()


def read_ack_log(path):
    """Line numbers (1-based) from an --ack-log file; a trailing partial line is ignored."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    for l in data.split(b"\n")[:-1]:
        l = l.strip()
        if l:
            try:
                out.append(int(l))
            except ValueError:
                raise TestFailure("--ack-log %s holds a line that is not a number: %r" % (path, l[:80]))
    return out


def verify_delivery(receiver, acked_numbers, timeout, what="acknowledged"):
    """Zero-loss check: every number in acked_numbers reached the receiver (waits, bounded).
    Returns the duplicate count among them (printed). Raises TestFailure listing missing numbers."""
    acked = set(acked_numbers)
    missing = receiver.wait_numbers(acked, timeout)
    seen = receiver.seen()
    dups = sum(seen[n] - 1 for n in acked if seen[n] > 1)
    log("delivery: %d %s, %d missing, %d duplicates, receiver lines %d (invalid %d, partial %d)"
        % (len(acked), what, len(missing), dups, receiver.count(), len(receiver.bad_json), len(receiver.partials)))
    if missing:
        m = sorted(missing)
        raise TestFailure("%d %s events never reached the receiver (LOSS): first %s"
                          % (len(m), what, m[:20]))
    return dups


# ---------------------------------------------------------------- running a test

def main(fn, name=None):
    """Runs fn() and prints the verdict; exit 0 pass, 1 fail, 77 skip."""
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    log("%s: QS_BIN=%s sanitize=%s" % (name, QS_BIN, SANITIZE))
    t0 = time.monotonic()
    code = 0
    try:
        detail = fn()
        print("PASS %s (%.1fs)%s" % (name, time.monotonic() - t0, ": " + detail if detail else ""))
    except Skip as e:
        print("SKIP %s: %s" % (name, e))
        code = SKIP_CODE
    except TestFailure as e:
        print("FAIL %s (%.1fs): %s" % (name, time.monotonic() - t0, e))
        code = 1
    except Exception:
        traceback.print_exc(file=sys.stdout)
        print("FAIL %s (%.1fs): unexpected error (traceback above)" % (name, time.monotonic() - t0))
        code = 1
    sys.stdout.flush()
    _run_cleanups()
    sys.exit(code)


# ---------------------------------------------------------------- fault-suite helpers

class Load:
    """Numbered events start..start+n-1 in an input file, sent by quicstash-send with --ack-log.
    start_client() may be called again (a rerun appends to the same ack log)."""

    def __init__(self, server, n, start=0, client_timeout=None, extra_args=(), name="load", feed_rate=None):
        """feed_rate: the first client reads a Feeder at that many events a second, and runs until
        stop_feed() (finish_client and finish_after_kills call it): at least n events, more if the
        test took longer than n / feed_rate seconds to get there."""
        self.server = server
        self.n = n
        self.start = start
        self.client_timeout = client_timeout if client_timeout is not None else int(tmo(60))
        self.extra_args = list(extra_args)
        self.lines = gen_events(n, start)
        self.input = write_lines(os.path.join(server.dir, "%s-input.jsonl" % name), self.lines)
        self.ack_path = os.path.join(server.dir, "%s-acks.txt" % name)
        self.clients = []
        self.feed_rate = feed_rate
        self.feeder = None

    def _line(self, k):
        return self.lines[k] if k < self.n else gen_events(1, self.start + k)[0]

    def start_client(self):
        fed = self.feed_rate and not self.clients  # a rerun reads the whole input file
        c = AsyncSend(self.server, None if fed else self.input, self.ack_path, extra_args=self.extra_args,
                      client_timeout=self.client_timeout)
        self.clients.append(c)
        if fed:
            self.feeder = Feeder(c, self._line, self.feed_rate, minimum=self.n, copy_path=self.input,
                                 prewritten=self.n)
        return c

    def stop_feed(self):
        """Ends a fed load (no-op otherwise): the client gets the rest of its n events and EOF."""
        if self.feeder and not self.feeder._stop.is_set():
            self.n = max(self.n, self.feeder.stop())
            log("%s: fed %d events, input closed" % (os.path.basename(self.input), self.n))

    @property
    def client(self):
        return self.clients[-1]

    def acked_numbers(self):
        ks = read_ack_log(self.ack_path)
        n = max(self.n, self.feeder.count if self.feeder else 0)
        bad = [k for k in ks if not 1 <= k <= n]
        check(not bad, "--ack-log holds line numbers outside 1..%d: %s" % (n, bad[:10]))
        return {self.start + k - 1 for k in ks}

    def all_numbers(self):
        return set(range(self.start, self.start + self.n))


def paced(n, seconds):
    """quicstash-send arguments that spread n events over about `seconds` (--max-rate catches up
    after a stall). For a client that must still be sending when a fault comes, however slow the
    host, use a Feeder (Load(feed_rate=...)) instead: a paced file ends on its own."""
    return ["--max-rate", str(max(1, int(n / seconds)))]


def mid_stream(load, fraction=0.1, timeout=None):
    """Waits until `fraction` of the load is acknowledged while the client still runs."""
    want = max(1, int(load.n * fraction))
    got = load.client.wait_acked(want, timeout or tmo(60))
    check(load.client.running(),
          "the client finished (exit %r) before the fault could be injected mid-stream; stderr: %s"
          % (load.client.proc.returncode, load.client.stderr()[-500:]))
    check(got >= want, "only %d of %d events acknowledged before the fault (waited); client stderr: %s\nserver log:\n%s"
          % (got, want, load.client.stderr()[-500:], load.server.log_tail()))
    log("mid-stream: %d of %d acknowledged" % (got, load.n))
    return got


def finish_client(load, timeout=None, expect=(0,)):
    load.stop_feed()
    rc = load.client.wait(timeout or tmo(150))
    if rc is None:
        load.client.kill()
    log("client exit %r; stderr tail: %s" % (rc, load.client.stderr().strip()[-300:]))
    check(rc in expect, "quicstash-send exit %r, expected %s; stderr tail:\n%s\nserver log tail:\n%s"
          % (rc, " or ".join(map(str, expect)), load.client.stderr()[-1500:], load.server.log_tail()))
    return rc


def finish_after_kills(load, recv, server, wait):
    """After kill -9s of the server: lets the client finish (waiting up to `wait`; it may have exited 2
    when the server disappeared, then it is rerun on the same input), checks that every event is
    acknowledged and reached the receiver whole, stops the server and checks its spool.
    Returns the duplicate count."""
    load.stop_feed()
    rc = load.client.wait(wait)
    if rc is None:
        load.client.kill()
    log("client exit %r" % rc)
    check(rc in (0, 2, None), "client: exit %r (expected 0, or 2 when the server disappeared)" % rc)
    if rc != 0:
        load.client_timeout = int(tmo(60))
        load.start_client()
        finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "after the last run --ack-log has %d of %d" % (len(acked), load.n))
    dups = verify_delivery(recv, acked, tmo(60))
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    server.stop()
    rc, out = server.check_spool()
    check(rc == 0, "--check-spool after the crash and a clean stop: exit %r\n%s" % (rc, out[-1500:]))
    return dups


def spool_files(spool):
    """Regular files under the spool directory: [(path, size)], sorted by name."""
    out = []
    for root, dirs, files in os.walk(spool):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p):
                out.append((p, os.path.getsize(p)))
    return sorted(out)


def spool_bytes(spool):
    return sum(s for _, s in spool_files(spool))


def mount_tmpfs(path, size):
    """Mounts a tmpfs of `size` (e.g. '3m') at path; raises Skip when mounting is impossible."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        raise Skip("not root: cannot mount a tmpfs for the disk-full test")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if p.returncode != 0:
        raise Skip("mount -t tmpfs impossible here: %s" % p.stdout.decode(errors="replace").strip())

    def um():
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    at_cleanup(um)
    return um


def remount_tmpfs(path, size):
    p = subprocess.run(["mount", "-o", "remount,size=%s" % size, path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    check(p.returncode == 0, "remount of %s failed: %s" % (path, p.stdout.decode(errors="replace")))


def fault_kill_child_case(role, n=None, extra=()):
    """Issue 3: kill -9 of one child (role) mid-stream. The client finishes (exit 0) and every
    acknowledged event reaches the receiver. Returns the verdict detail."""
    need_binaries()
    recv = Receiver().start()
    server = Server(recv, extra=list(extra), name="kill-" + role)
    server.start()
    n = n or scale(100000)
    load = Load(server, n, client_timeout=int(tmo(90)), feed_rate=n / 4)
    load.start_client()
    mid_stream(load, 0.1)
    before = server.pids(role)
    old = server.kill_child(role)
    acked_at_kill = len(load.acked_numbers())
    new = server.wait_respawn(role, old, len(before))
    log("kill -9 %s %d at %d acked; new %s pids %r" % (role, old, acked_at_kill, role, new))
    rc = finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "client exit 0 but only %d of %d line numbers in --ack-log"
          % (len(acked), n))
    dups = verify_delivery(recv, acked, tmo(60))
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    server.stop()
    return "kill -9 of the %s at %d/%d acked: zero loss, %d duplicates" % (role, acked_at_kill, n, dups)

"""Loopback ports, and network fault tools: a network namespace (NetNs) and a lossy UDP relay."""

import collections
import ctypes
import heapq
import os
import random
import select
import shutil
import socket
import subprocess
import threading
import time

from .base import Skip, TestFailure
from .cleanup import at_cleanup


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


def run_in_netns(ns_path, fn):
    """fn() on a thread that has joined the network namespace at ns_path (a /run/netns file or
    /proc/PID/ns/net): setns moves only the calling thread, and a socket made there stays in the
    namespace. Its result, or its exception raised here."""
    out = {}

    def body():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(ns_path, os.O_RDONLY)
            try:
                if libc.setns(fd, NetNs.CLONE_NEWNET) != 0:
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
        return run_in_netns("/run/netns/" + self.name, fn)

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

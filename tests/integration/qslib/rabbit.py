"""Real RabbitMQ nodes for the AMQP output's tests (Debian's rabbitmq-server, never the system
service): each node on loopback with its own name, AMQP and distribution ports and data directory,
sharing a private epmd port and Erlang cookie with the other nodes of its cluster; started, killed
and stopped by the test, every wait bounded. The consumer is python3-pika."""
import os
import shutil
import signal
import subprocess
import sys
import time

from .base import Skip, log, tmo
from .cleanup import at_cleanup, mkdtemp
from .net import free_port

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
QUEUE = "quicstash"


def need_rabbit():
    if not os.path.exists(os.path.join(RABBIT_BIN, "rabbitmq-server")):
        raise Skip("rabbitmq-server is not installed (scripts/install-deps)")
    try:
        import pika  # noqa: F401
    except ImportError:
        # a python3 other than Debian's (pyenv) does not see Debian's pure-Python packages
        sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import pika  # noqa: F401,F811
    except ImportError:
        raise Skip("python3-pika is not installed (scripts/install-deps)")


class Cluster:
    """n RabbitMQ nodes in one directory: node i is qsN@localhost on its own ports. start() starts
    them all and joins nodes 2..n to node 1."""

    def __init__(self, n=1, name="rabbit", pki=None):
        """pki (qslib.make_pki): each node also listens for amqps on node.tls_port with server.pem."""
        need_rabbit()
        self.pki = pki
        self.dir = mkdtemp(name)
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        cookie = os.path.join(self.home, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write("QSTEST%d" % os.getpid())
        os.chmod(cookie, 0o400)
        self.epmd_port = free_port("tcp")
        tag = "%d%d" % (os.getpid() % 100000, int(time.monotonic() * 1000) % 1000)
        self.nodes = [Node(self, i, "qs%s_%d@localhost" % (tag, i)) for i in range(n)]
        # an epmd of our own (the nodes find it on its port): ended by its pid with the nodes
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        self.epmd = subprocess.Popen([epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        at_cleanup(self.kill_all)

    def env(self):
        e = dict(os.environ)
        e.update({"HOME": self.home, "ERL_EPMD_PORT": str(self.epmd_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
                  "RABBITMQ_CONF_ENV_FILE": "/dev/null"})
        return e

    def start(self, timeout=None):
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_up(timeout or tmo(120))
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", self.nodes[0].name)
            node.ctl("start_app")
        return self

    def urls(self, vhost="%2F"):
        return ",".join("amqp://127.0.0.1:%d/%s" % (nd.port, vhost) for nd in self.nodes)

    def kill_all(self):
        for node in self.nodes:
            node.kill()
        if self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait(timeout=10)

    def stop_all(self):
        for node in self.nodes:
            node.kill(signal.SIGTERM)


class Node:
    def __init__(self, cluster, i, name):
        self.cluster = cluster
        self.i = i
        self.name = name
        self.port = free_port("tcp")
        self.dist_port = free_port("tcp")
        self.tls_port = free_port("tcp") if cluster.pki else None
        self.dir = os.path.join(cluster.dir, "node%d" % i)
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write("listeners.tcp.1 = 127.0.0.1:%d\nloopback_users = none\n"
                    "log.file.level = info\nlog.console = false\n" % self.port)
            if cluster.pki:
                f.write("listeners.ssl.default = 127.0.0.1:%d\nssl_options.cacertfile = %s\n"
                        "ssl_options.certfile = %s\nssl_options.keyfile = %s\nssl_options.verify = verify_none\n"
                        "ssl_options.fail_if_no_peer_cert = false\n"
                        % (self.tls_port, cluster.pki["ca.pem"], cluster.pki["server.pem"], cluster.pki["server.key"]))
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        self.proc = None

    def env(self):
        e = self.cluster.env()
        e.update({
            "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        })
        return e

    def start(self):
        out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([os.path.join(RABBIT_BIN, "rabbitmq-server")], env=self.env(), cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        out.close()
        self.started_at = time.monotonic()

    def ctl(self, *args, timeout=None, check=True):
        r = subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n", self.name] + list(args),
                           env=self.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout or tmo(60))
        if check and r.returncode != 0:
            raise RuntimeError("rabbitmqctl %s on %s: %s %s" % (" ".join(args), self.name, r.stdout, r.stderr))
        return r

    def wait_up(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq node %s exited %s; see %s" % (self.name, self.proc.returncode,
                                                                           self.dir))
            r = self.ctl("await_startup", "--timeout", "5", timeout=30, check=False)
            if r.returncode == 0:
                log("rabbitmq node %s up on port %d after %.1f s" % (self.name, self.port,
                                                                    time.monotonic() - self.started_at))
                return
            time.sleep(0.5)
        raise RuntimeError("rabbitmq node %s not up in %.0f s; see %s" % (self.name, timeout, self.dir))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """The whole node (the shell script, beam.smp and its port programs): kill -9 by default."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=tmo(60))
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def connect(port, user="guest", password="guest", vhost="/"):
    import pika
    params = pika.ConnectionParameters(host="127.0.0.1", port=port, virtual_host=vhost,
                                       credentials=pika.PlainCredentials(user, password),
                                       connection_attempts=3, retry_delay=1, blocked_connection_timeout=60)
    return pika.BlockingConnection(params)


def declare_queue(port, queue=QUEUE, quorum=False, replicas=3, exchange=None, vhost="/"):
    conn = connect(port, vhost=vhost)
    ch = conn.channel()
    args = {"x-queue-type": "quorum", "x-quorum-initial-group-size": replicas} if quorum else {}
    ch.queue_declare(queue=queue, durable=True, arguments=args)
    if exchange:
        ch.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)
        ch.queue_bind(queue=queue, exchange=exchange, routing_key=queue)
    conn.close()


def drain_queue(ports, queue=QUEUE, quiet=3.0, timeout=None, want=None, vhost="/"):
    """Every message of the queue (trying each port in turn): bodies as bytes, in order read. Stops
    after `quiet` seconds with nothing new (or once `want` messages were read), bounded by timeout."""
    import pika
    timeout = timeout or tmo(300)
    deadline = time.monotonic() + timeout
    bodies = []
    while time.monotonic() < deadline:
        for port in ports:
            try:
                conn = connect(port, vhost=vhost)
                break
            except pika.exceptions.AMQPError:
                continue
        else:
            time.sleep(1)
            continue
        try:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=2000)
            last = time.monotonic()
            for method, _props, body in ch.consume(queue, inactivity_timeout=0.5):
                if method is None:
                    if time.monotonic() - last >= quiet or time.monotonic() > deadline:
                        break
                    continue
                bodies.append(body)
                last = time.monotonic()
                if len(bodies) % 1000 == 0:
                    ch.basic_ack(method.delivery_tag, multiple=True)
                if want is not None and len(bodies) >= want:
                    break
            ch.basic_ack(0, multiple=True)
            ch.cancel()
            conn.close()
            return bodies
        except pika.exceptions.AMQPError as e:
            log("consumer: %r; reading on" % (e,))
            time.sleep(1)
    raise RuntimeError("could not read queue %s within %.0f s" % (queue, timeout))


def remove(path):
    shutil.rmtree(path, ignore_errors=True)

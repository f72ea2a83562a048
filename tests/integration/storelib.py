"""storelib.py - a private redis-server for the store's tests, and a RESP client to look inside.

RedisServer starts /usr/bin/redis-server on a free loopback port (and a unix socket) in a
directory of its own, without persistence, and stops it by PID. A missing redis-server is a
failure (install-deps installs it), never a skip.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import free_port

REDIS_SERVER = "/usr/bin/redis-server"


def resp_command(sock, *words):
    """Send one command and read one RESP reply (bulk strings, integers, arrays, nil)."""
    out = b"*%d\r\n" % len(words)
    for w in words:
        w = w if isinstance(w, bytes) else str(w).encode()
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    sock.sendall(out)
    reader = sock.makefile("rb")

    def one():
        line = reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = reader.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [one() for _ in range(n)]
        raise RuntimeError("bad RESP line %r" % line)
    return one()


class RedisServer:
    def __init__(self):
        if not os.access(REDIS_SERVER, os.X_OK):
            raise RuntimeError("%s missing: run scripts/install-deps" % REDIS_SERVER)
        self.dir = tempfile.mkdtemp(prefix="porter-redis-")
        self.port = free_port()
        self.socket_path = os.path.join(self.dir, "redis.sock")
        self.process = None

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--unixsocket", self.socket_path, "--unixsocketperm", "700"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start on port %d" % self.port)

    def command(self, *words):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            return resp_command(s, *words)

    def url(self, database=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, database)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def poll(condition, timeout=10.0, step=0.05):
    """Call condition() until it returns something true, at most timeout seconds."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value or time.time() > deadline:
            return value
        time.sleep(step)

"""storelib.py - a private redis-server for the store's tests, and a RESP client to look inside.

RedisServer starts /usr/bin/redis-server on a free loopback port (and a unix socket) in a
directory of its own, without persistence, and stops it by PID. A missing redis-server is a
failure (install-deps installs it), never a skip.
"""
import os
import socket

from daemons import ManagedProcess, free_port

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


class RedisServer(ManagedProcess):
    name = "redis"
    output = "redis.log"

    def __init__(self):
        if not os.access(REDIS_SERVER, os.X_OK):
            raise RuntimeError("%s missing: run scripts/install-deps" % REDIS_SERVER)
        super().__init__()
        self.port = free_port()
        self.socket_path = os.path.join(self.dir, "redis.sock")

    def arguments(self):
        return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--unixsocket", self.socket_path, "--unixsocketperm", "700"]

    def ready(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def command(self, *words):
        """One command on a new connection; its RESP reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            return resp_command(s, *words)

    def url(self, database=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, database)


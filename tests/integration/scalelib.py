"""scalelib.py - a private HAProxy in front of porter instances, for the scale-out tests and
bench/scale.py.

HAProxy (Debian's /usr/sbin/haproxy) runs in the foreground (-db) with a configuration file in
its own temporary directory, listens only on 127.0.0.1, and is stopped by PID. Its admin
socket answers "show servers state", so a test can wait until a backend server is seen UP or
DOWN by the health check instead of sleeping.

    with HAProxy(servers=[("a", port_a), ("b", port_b)], proxy="v2") as h:
        h.port                      # the frontend
        h.wait_state("a", "DOWN")   # poll the health check's verdict (bounded)

The configuration it writes is the one docs/scale-out.md shows (check intervals scaled down).
"""
import os
import socket

from daemons import ManagedProcess, free_port, port_open, wait_until

HAPROXY = "/usr/sbin/haproxy"

CONFIG = """global
    maxconn 4096
    stats socket {dir}/admin.sock mode 600 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch

{frontends}
"""

FRONTEND = """frontend smtp_{name}
    bind 127.0.0.1:{port}{bind_options}
    default_backend porters_{name}

backend porters_{name}
    balance roundrobin
    option smtpchk EHLO haproxy.test
    default-server inter {inter} fastinter {inter} downinter {inter} fall 2 rise 2 {send_proxy} check-send-proxy
{servers}
"""


# What each frontend kind sends the gateways: v1, v2, or v2 after TLS ended at HAProxy (the
# TLS facts, the SNI as AUTHORITY, and a CRC32C over the header).
SEND_PROXY = {
    "v1": "send-proxy",
    "v2": "send-proxy-v2",
    "tls": "send-proxy-v2 proxy-v2-options ssl,ssl-cipher,cert-cn,authority,crc32c",
}


class HAProxy(ManagedProcess):
    """haproxy with one frontend per kind in proxy ("v1", "v2", "tls"; comma-separated), each
    balancing over the same servers [(name, port)]; "tls" needs certificate (a PEM file with
    the certificate and its key) and ends the clients' TLS at HAProxy."""

    name = "haproxy"
    output = "haproxy.log"
    start_timeout = 20

    def __init__(self, servers, proxy="v2", inter="300ms", certificate=None):
        if not os.access(HAPROXY, os.X_OK):
            raise RuntimeError("%s missing: run scripts/install-deps" % HAPROXY)
        super().__init__()
        self.ports = {}
        frontends = []
        for version in proxy.split(","):
            port = free_port()
            self.ports[version] = port
            lines = "\n".join("    server %s 127.0.0.1:%d check" % (name, server_port)
                              for name, server_port in servers)
            bind_options = " ssl crt %s" % certificate if version == "tls" else ""
            frontends.append(FRONTEND.format(name=version, port=port, inter=inter,
                                             bind_options=bind_options,
                                             send_proxy=SEND_PROXY[version], servers=lines))
        self.port = self.ports[proxy.split(",")[0]]
        self.config_path = os.path.join(self.dir, "haproxy.cfg")
        with open(self.config_path, "w") as f:
            f.write(CONFIG.format(dir=self.dir, frontends="\n".join(frontends)))

    def arguments(self):
        return [HAPROXY, "-f", self.config_path, "-db"]

    def ready(self):
        """The admin socket is there and every frontend accepts connections."""
        return os.path.exists(os.path.join(self.dir, "admin.sock")) and \
            all(port_open(port) for port in self.ports.values())

    def admin(self, command):
        """One command on the admin socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(os.path.join(self.dir, "admin.sock"))
            s.sendall(command.encode() + b"\n")
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        return answer.decode("utf-8", "replace")

    def pin(self, server, servers, version="v2"):
        """Send the next connections of one frontend to server only (weight 0 for the others,
        at once; None gives every server its weight back)."""
        # the chosen one first, so that the backend is never without a server
        for name in sorted(servers, key=lambda n: n != server):
            weight = 1 if server is None or name == server else 0
            self.admin("set weight porters_%s/%s %d" % (version, name, weight))

    def states(self, version=None):
        """{server name: "UP"/"DOWN"/...} for one frontend's backend (the first by default)."""
        version = version or next(iter(self.ports))
        out = {}
        for line in self.admin("show stat").splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "porters_%s" % version and \
                    fields[1] not in ("FRONTEND", "BACKEND"):
                out[fields[1]] = fields[17]
        return out

    def wait_steady(self, timeout=15):
        """Poll until every server of every frontend is plainly UP (no check on the way down or
        up: "UP 1/2" is a transition); True if they all were."""
        def steady():
            try:
                states = [self.states(v) for v in self.ports]
            except OSError:
                return False  # the admin socket is not answering yet
            return all(states) and all(v == "UP" for st in states for v in st.values())
        return wait_until(steady, timeout)

    def wait_state(self, server, state, timeout=15, version=None):
        """Poll until the health check says server is state (its first word); True if it did."""
        def reached():
            try:
                return self.states(version).get(server, "").split(" ")[0] == state
            except OSError:
                return False  # the admin socket is not answering yet
        return wait_until(reached, timeout)

"""authdns.py - what the SPF, DKIM and DMARC integration tests share: a dnsmasq serving the test
zones on a loopback port, a tiny DNS client to see that it answers, SMTP sessions through
`porter stdio` with any client address (libspf2 passes loopback clients, so SPF and DMARC need
a client that is not 127.0.0.1), and DKIM keys made at test time.

Use:
    dns = Dnsmasq(txt={"example.org": ["v=spf1 -all"]}, hosts={"mx.example.org": ["192.0.2.1"]})
    dns.start() ... dns.stop()
    with StdioSession(porter, "192.0.2.10") as s:
        s.command("EHLO client.example") ...
Every process started here is stopped by its PID (Dnsmasq is a daemons.ManagedProcess);
everything listens on 127.0.0.1 only.
"""
import base64
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

from daemons import ManagedProcess, keep_wanted
from harness import PORTER, read_reply, sanitizer_check

DNSMASQ = "/usr/sbin/dnsmasq"
OPENDKIM_GENKEY = "/usr/sbin/opendkim-genkey"
OPENSSL = "/usr/bin/openssl"


def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq serves both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def dns_query(port, name, qtype, timeout=1.0):
    """One UDP query to 127.0.0.1:port; (rcode, answer count) or None on timeout."""
    qid = random.randint(0, 65535)
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, ("127.0.0.1", port))
            data = s.recv(65535)
        except OSError:
            return None
    flags, _, answers = struct.unpack(">HHH", data[2:8])
    return flags & 15, answers


def txt_pieces(text):
    """A TXT record's text as dnsmasq arguments: 250-byte character-strings, no commas."""
    if "," in text:
        raise ValueError("dnsmasq cannot serve a comma inside a TXT string: %r" % text)
    return [text[i:i + 250] for i in range(0, len(text), 250)] or [""]


class Dnsmasq(ManagedProcess):
    """dnsmasq answering only from the records given, authoritative (NXDOMAIN) for domains; its
    own log (stderr) in dnsmasq.log of its directory."""

    name = "dnsmasq"
    output = "dnsmasq.log"
    stop_timeout = 5

    def __init__(self, txt=None, hosts=None, mx=None, domains=("example", "test"), ttl=0, ptr=None,
                 servers=None, query_log=None):
        super().__init__()
        self.servers = servers or []  # [(domain, port)]: forwarded to 127.0.0.1#port
        self.query_log = query_log    # a file that gets one line per query (--log-queries)
        self.txt = txt or {}
        self.hosts = hosts or {}  # names to addresses; dnsmasq adds their PTR records too
        self.mx = mx or []
        self.ptr = ptr or []      # [(reverse name, target name)]: PTR records of their own
        self.domains = domains
        self.ttl = ttl
        self.port = free_udp_tcp_port()

    def arguments(self):
        args = [DNSMASQ, "--no-daemon", "--port=%d" % self.port, "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file=", "--local-ttl=%d" % self.ttl,
                "--log-facility=%s" % (self.query_log or "-")]
        if self.query_log:
            args.append("--log-queries")
        for domain, port in self.servers:
            args.append("--server=/%s/127.0.0.1#%d" % (domain, port))
        for domain in self.domains:
            args.append("--local=/%s/" % domain)
        for name, records in self.txt.items():
            for record in records:
                args.append("--txt-record=%s,%s" % (name, ",".join(txt_pieces(record))))
        for name, addresses in self.hosts.items():
            args.append("--host-record=%s,%s" % (name, ",".join(addresses)))
        for domain, target, preference in self.mx:
            args.append("--mx-host=%s,%s,%d" % (domain, target, preference))
        for name, target in self.ptr:
            args.append("--ptr-record=%s,%s" % (name, target))
        return args

    def ready(self):
        return dns_query(self.port, "probe.%s" % self.domains[0], 16, 0.2) is not None


class StdioSession:
    """One SMTP session through `porter stdio -c DIR --client-ip IP`, command by command."""

    def __init__(self, porter, client_ip, timeout=20, env=None):
        self.timeout = timeout
        self.process = subprocess.Popen([PORTER, "stdio", "-c", porter.dir, "--client-ip", client_ip],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env)
        self.buffer = b""
        self.log = ""
        self.errors = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.greeting = self.reply()

    def _drain(self):
        """Keep reading standard error (the log) so that porter never blocks on it."""
        for chunk in iter(lambda: self.process.stderr.read1(65536), b""):
            self.errors.append(chunk)

    def reply(self):
        """One whole reply: (code, [lines]); (0, lines) when the output ended or timed out."""
        deadline = time.time() + self.timeout

        def more():
            left = deadline - time.time()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                return b""
            return os.read(self.process.stdout.fileno(), 65536)
        code, lines, self.buffer = read_reply(self.buffer, more)
        return (code, lines)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def command(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def message(self, data):
        """DATA with data (bytes, CRLF lines, no final dot); the reply to the final dot."""
        code, lines = self.command("DATA")
        if code != 354:
            return code, lines
        if isinstance(data, str):
            data = data.encode()
        stuffed = b"\r\n".join((b"." + l if l.startswith(b".") else l) for l in data.split(b"\r\n"))
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        self.send(stuffed + b".\r\n")
        return self.reply()

    def close(self):
        """QUIT, wait for the process; its standard error (the log)."""
        if self.process.poll() is None:
            try:
                self.send("QUIT\r\n")
                self.process.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                self.process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.reader.join(timeout=self.timeout)
        self.process.stdout.close()
        self.process.stderr.close()
        if not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        self.log = b"".join(self.errors).decode("utf-8", "replace")
        sanitizer_check(self.log, "porter stdio")
        return self.log

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.process.stdout.closed:
            self.close()


def transaction(porter, client_ip, helo, sender, recipients, data=None, env=None):
    """A whole session; a dict of the replies: helo, mail, rcpt (list), data, and the log."""
    out = {"rcpt": []}
    with StdioSession(porter, client_ip, env=env) as s:
        out["helo"] = s.command("EHLO %s" % helo)
        out["mail"] = s.command("MAIL FROM:<%s>" % sender)
        for recipient in recipients:
            out["rcpt"].append(s.command("RCPT TO:<%s>" % recipient))
        if data is not None and any(code == 250 for code, _ in out["rcpt"]):
            out["data"] = s.message(data)
        out["log"] = s.close()
    return out


def rsa_key(directory, selector, domain, bits=1024):
    """opendkim-genkey: (path of the private key PEM, DNS TXT text "v=DKIM1; k=rsa; p=...")."""
    subprocess.run([OPENDKIM_GENKEY, "-b", str(bits), "-s", selector, "-d", domain, "-D", directory],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(directory, selector + ".txt")) as f:
        text = f.read()
    # a zone fragment: sel._domainkey IN TXT ( "v=DKIM1; h=sha256; k=rsa; " "p=..." ) ; comment
    record = "".join(text.split(";  -----")[0].split('"')[1::2])
    return os.path.join(directory, selector + ".private"), record.strip()


def ed25519_key(directory, name):
    """openssl genpkey: (path of the PKCS#8 PEM private key, DNS TXT text, the raw 32-byte seed
    as base64 for python3-dkim)."""
    path = os.path.join(directory, name + ".pem")
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "ed25519", "-out", path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    public = subprocess.run([OPENSSL, "pkey", "-in", path, "-pubout", "-outform", "DER"], check=True,
                            stdout=subprocess.PIPE).stdout[-32:]
    private = subprocess.run([OPENSSL, "pkey", "-in", path, "-outform", "DER"], check=True,
                             stdout=subprocess.PIPE).stdout[-32:]
    return (path, "v=DKIM1; k=ed25519; p=" + base64.b64encode(public).decode(),
            base64.b64encode(private))


def write_passwd(directory, user="alice", password="correct horse battery staple"):
    """A password file for the auth_file plugin (mode 0600) in directory; the AUTH PLAIN
    command that logs in with it."""
    import certs  # tests/integration/certs.py: crypt(3) hashes with the system's libcrypt
    path = os.path.join(directory, "passwd")
    with open(path, "w") as f:
        f.write("%s:%s\n" % (user, certs.crypt_hash(password, "$6$")))
    os.chmod(path, 0o600)
    return "AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()


def without_leak_check():
    """The environment for a porter that signs with an Ed25519 key: libopendkim 2.11.0~beta2
    (Debian 12) leaks each Ed25519 signature's key objects in dkim_free (about 900 bytes;
    fixed upstream by OpenDKIM pull request 321), so LeakSanitizer is off for such a process
    only; every other sanitizer check stays on."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return env


def have_tools():
    """The programs these tests need, or the first one missing."""
    for tool in (DNSMASQ, OPENDKIM_GENKEY, OPENSSL):
        if not os.access(tool, os.X_OK):
            return tool
    return None


def keep_dir(path):
    """Remove a temporary directory unless PORTER_KEEP is set."""
    if not keep_wanted():
        shutil.rmtree(path, ignore_errors=True)

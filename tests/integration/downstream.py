"""downstream.py - the downstream MTAs of the relay tests (queue_smtp.test, queue_spool.test).

  Postfix(...)       a real Postfix instance with its own configuration directory (postfix -c
                     DIR start / stop) on a loopback high port, delivering example.com's
                     mailboxes (virtual_mailbox_maps) into Maildirs, trusting 127.0.0.0/8 for
                     XFORWARD and XCLIENT, optionally with STARTTLS.
  SmtpSink(...)      Postfix's smtp-sink (also -L for LMTP), with its options for scripted
                     failures (-r, -f, -q ... COMMANDS), dumping each message to a file.
  Scripted(...)      a small SMTP/LMTP server in a thread for what smtp-sink cannot do:
                     per-recipient replies (at RCPT and, with LMTP, after DATA), AUTH PLAIN,
                     chosen extensions, hanging mid-DATA; it records every command and message.
  Exim(...)          Debian's Exim 4.96 (exim4-daemon-heavy, unpacked by scripts/install-deps
                     into /opt/porter-test-exim) running the configuration of docs/deploy.md
                     (read from the guide) plus the test's spool, log and ACL rules, in the
                     foreground (-bdf) on a loopback port; reconfigure() rewrites it and sends
                     SIGHUP (Exim re-executes itself with the new file).
  FakeMilter         nothing: tests use tests/milter/test_milter for quarantines.

Everything listens on 127.0.0.1 only; every process is stopped by PID (or postfix -c DIR stop).
Postfix, SmtpSink and Exim are daemons.ManagedProcess: started, waited for, stopped and cleaned
up the one way every test daemon is; log_text() is what they logged.
"""
import base64
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading

from daemons import (ManagedProcess, free_port, maildir_messages, port_open, read, unix_open,
                     wait_until)
from harness import TOP_SRCDIR

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
EXIM = os.environ.get("PORTER_TEST_EXIM", "/opt/porter-test-exim/usr/sbin/exim4")
DEPLOY_GUIDE = os.path.join(TOP_SRCDIR, "docs", "deploy.md")


def unstuff(data):
    """SMTP DATA bytes (dot-stuffed, ending in CRLF.CRLF) to the message."""
    lines = data.split(b"\r\n")
    out = []
    for line in lines:
        if line == b".":
            break
        out.append(line[1:] if line.startswith(b".") else line)
    return b"\r\n".join(out) + b"\r\n"


class Mailboxes(ManagedProcess):
    """A downstream MTA delivering user@example.com into Maildirs under self.mail."""

    def messages(self, user):
        """Delivered messages of user@example.com (bytes), oldest first."""
        return maildir_messages(os.path.join(self.mail, user))

    def wait_messages(self, user, count, timeout=15):
        """The messages of user once there are count of them (or whatever came by timeout)."""
        wait_until(lambda: len(self.messages(user)) >= count, timeout)
        return self.messages(user)


class Postfix(Mailboxes):
    """A private Postfix instance: python -c 'with Postfix() as pf: ...'."""

    name = "postfix"
    start_timeout = 20

    def __init__(self, users=("bob", "carol", "dave"), tls=False, settings=None):
        super().__init__()
        self.log_path = os.path.join(self.dir, "maillog")
        self.running = False
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.etc = os.path.join(self.dir, "etc")
        self.mail = os.path.join(self.dir, "mail")
        for d in (self.etc, self.mail, os.path.join(self.dir, "queue"), os.path.join(self.dir, "data")):
            os.makedirs(d)
        nobody = pwd.getpwnam("nobody")
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        os.chown(os.path.join(self.dir, "data"), postfix_user.pw_uid, postfix_user.pw_gid)
        self.users = users
        extra_settings = settings or {}  # main.cf lines of the test (smtpd_milters, ...)
        with open("/usr/share/postfix/master.cf.dist") as f:
            master = f.read()
        master = master.replace(
            "smtp      inet  n       -       y       -       -       smtpd",
            "127.0.0.1:%d inet n - n - - smtpd" % self.port)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master)
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(self.dir, "queue"),
            "data_directory": os.path.join(self.dir, "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "downstream.test",
            "mydomain": "downstream.test",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "virtual_mailbox_domains": "example.com",
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": "texthash:" + os.path.join(self.etc, "vmailbox"),
            "virtual_uid_maps": "static:%d" % nobody.pw_uid,
            "virtual_gid_maps": "static:%d" % nobody.pw_gid,
            "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "maillog_file": os.path.join(self.dir, "maillog"),
            "maillog_file_prefixes": self.dir,
            "alias_maps": "",
            "alias_database": "",
            "shlib_directory": "/usr/lib/postfix",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "meta_directory": "/etc/postfix",
            "smtputf8_enable": "yes",
            "smtpd_tls_security_level": "none",
        }
        if tls:
            key = os.path.join(self.etc, "key.pem")
            cert = os.path.join(self.etc, "cert.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "2", "-subj", "/CN=downstream.test", "-keyout", key, "-out", cert],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            settings.update({"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": cert,
                             "smtpd_tls_key_file": key})
        settings.update(extra_settings)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for key, value in settings.items():
                f.write("%s = %s\n" % (key, value))
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            for user in users:
                f.write("%s@example.com %s/\n" % (user, user))

    def launch(self):
        """postfix -c DIR start: Postfix's master runs in the background on its own."""
        subprocess.run([POSTFIX, "-c", self.etc, "start"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self.running = True

    def ready(self):
        return port_open(self.port)

    def stop(self):
        """postfix -c DIR stop (it signals its master by the PID in the master's pid file)."""
        if not self.running:
            return
        self.running = False
        subprocess.run([POSTFIX, "-c", self.etc, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        # postfix stop returns before every daemon is gone: wait for its master's pid file
        pid_file = os.path.join(self.dir, "queue", "pid", "master.pid")
        wait_until(lambda: not os.path.exists(pid_file), 10, step=0.1)


class SmtpSink(ManagedProcess):
    """smtp-sink on a free port; options like ["-r", "RCPT"]; dumps one file per message
    (into self.dir: its output is discarded, not logged there)."""

    name = "smtp-sink"
    prefix = "porter-sink-"

    def __init__(self, options=(), lmtp=False, port=None, unix_path=None, ipv6=False):
        super().__init__()
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.dir, 0o777)
        os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
        self.port = port or free_port()
        self.unix_path = unix_path
        host = "[::1]" if ipv6 else "127.0.0.1"
        self.host = "::1" if ipv6 else "127.0.0.1"
        listen = ("unix:" + unix_path) if unix_path else "%s:%d" % (host, self.port)
        self.address = listen
        args = [SMTP_SINK, "-u", "nobody", "-d", os.path.join(self.dir, "%M.")] + list(options)
        if lmtp:
            args.append("-L")
        args += [listen, "256"]
        self.args = args

    def arguments(self):
        return self.args

    def ready(self):
        return unix_open(self.unix_path) if self.unix_path else port_open(self.port, self.host)

    def messages(self):
        """Dumped messages as bytes (smtp-sink's X- headers first), by file name."""
        out = []
        for name in sorted(glob.glob(os.path.join(self.dir, "*"))):
            with open(name, "rb") as f:
                out.append(f.read())
        return out

    def wait_count(self, count, timeout=15):
        """How many messages there are once there are count (or by timeout)."""
        wait_until(lambda: len(self.messages()) >= count, timeout, step=0.1)
        return len(self.messages())


class Scripted:
    """A scripted SMTP/LMTP server in a thread.

    rcpt: {address: "550 5.1.1 no such user"} replies to RCPT (default 250);
    final: {address: "452 4.2.2 over quota"} per-recipient replies after DATA (LMTP), or for
           SMTP the key "*" is the reply to the final dot;
    extensions: EHLO keywords; auth: (user, password) accepted with AUTH PLAIN;
    hang: "data" (read 354's body but never answer the dot) or "body" (stop reading after the
          first 64 KiB of the body); mail: reply to MAIL; drop_mail_after: close a connection
          without a word at its MAIL number N+1 (a server that timed out an idle connection);
          hang_mail_after: never answer a connection's MAIL number N+1 (a hung server).
    Records: connections, commands (lines), transactions [{mail, rcpts, data, message}].
    """

    def __init__(self, lmtp=False, rcpt=None, final=None, extensions=("PIPELINING", "8BITMIME",
                 "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8", "SIZE 100000000"), auth=None,
                 hang=None, mail=None, drop_mail_after=None, hang_mail_after=None):
        self.lmtp = lmtp
        self.rcpt_replies = rcpt or {}
        self.final_replies = final or {}
        self.extensions = list(extensions)
        if auth:
            self.extensions.append("AUTH PLAIN")
        self.auth = auth
        self.hang = hang
        self.mail_reply = mail
        self.drop_mail_after = drop_mail_after
        self.hang_mail_after = hang_mail_after
        self.port = free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.connections = 0
        self.commands = []
        self.transactions = []
        self.auth_seen = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.threads = []

    def start(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=5)
        self.listener.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        conn.settimeout(0.2)
        buffer = b""

        def send(line):
            conn.sendall(line.encode() + b"\r\n")

        def readline():
            nonlocal buffer
            while b"\r\n" not in buffer:
                if self.stopping.is_set():
                    return None
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return None
                if not chunk:
                    return None
                buffer += chunk
            line, buffer = buffer.split(b"\r\n", 1)
            return line.decode("utf-8", "replace")

        try:
            send("220 scripted.test ESMTP")
            mail = None
            rcpts = []
            accepted = []
            mails_here = 0
            while True:
                line = readline()
                if line is None:
                    return
                with self.lock:
                    self.commands.append(line)
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "LHLO"):
                    lines = ["scripted.test"] + self.extensions
                    for i, text in enumerate(lines):
                        send("250%s%s" % ("-" if i < len(lines) - 1 else " ", text))
                elif verb == "HELO":
                    send("250 scripted.test")
                elif verb == "AUTH":
                    parts = line.split()
                    decoded = base64.b64decode(parts[2]).split(b"\0") if len(parts) > 2 else []
                    with self.lock:
                        self.auth_seen.append([p.decode() for p in decoded])
                    if self.auth and len(decoded) == 3 and decoded[1].decode() == self.auth[0] \
                            and decoded[2].decode() == self.auth[1]:
                        send("235 2.7.0 Authentication successful")
                    else:
                        send("535 5.7.8 Authentication failed")
                elif verb == "MAIL":
                    mails_here += 1
                    if self.drop_mail_after is not None and mails_here > self.drop_mail_after:
                        return
                    if self.hang_mail_after is not None and mails_here > self.hang_mail_after:
                        self.stopping.wait()
                        return
                    if self.auth and not self.auth_seen:
                        send("530 5.7.0 Authentication required")
                        continue
                    if self.mail_reply:
                        send(self.mail_reply)
                        continue
                    mail = line
                    rcpts = []
                    accepted = []
                    send("250 2.1.0 Ok")
                elif verb == "RCPT":
                    address = line[line.find("<") + 1:line.find(">")]
                    rcpts.append(line)
                    reply = self.rcpt_replies.get(address, "250 2.1.5 Ok")
                    if reply.startswith("2"):
                        accepted.append(address)
                    send(reply)
                elif verb == "DATA":
                    if not accepted:
                        send("554 5.5.1 No valid recipients")
                        continue
                    send("354 End data with <CR><LF>.<CR><LF>")
                    data = b""
                    if self.hang == "body":
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                        while len(data) < 65536 and not self.stopping.is_set():
                            try:
                                chunk = conn.recv(4096)
                            except socket.timeout:
                                continue
                            if not chunk:
                                return
                            data += chunk
                        self.stopping.wait()
                        return
                    data = buffer
                    buffer = b""
                    while b"\r\n.\r\n" not in data and not data.startswith(b".\r\n"):
                        if self.stopping.is_set():
                            return
                        try:
                            chunk = conn.recv(65536)
                        except socket.timeout:
                            continue
                        if not chunk:
                            return
                        data += chunk
                    end = data.index(b"\r\n.\r\n") + 5 if not data.startswith(b".\r\n") else 3
                    buffer = data[end:]
                    data = data[:end]
                    with self.lock:
                        self.transactions.append({"mail": mail, "rcpts": list(rcpts),
                                                  "accepted": list(accepted), "data": data,
                                                  "message": unstuff(data)})
                    if self.hang == "data":
                        self.stopping.wait()
                        return
                    if self.lmtp:
                        for address in accepted:
                            send(self.final_replies.get(address, "250 2.0.0 <%s> delivered" % address))
                    else:
                        send(self.final_replies.get("*", "250 2.0.0 Ok: queued as SCRIPTED"))
                elif verb == "RSET":
                    mail = None
                    rcpts = []
                    accepted = []
                    send("250 2.0.0 Ok")
                elif verb == "QUIT":
                    send("221 2.0.0 Bye")
                    return
                elif verb == "XFORWARD" and any(e.startswith("XFORWARD") for e in self.extensions):
                    send("250 2.0.0 Ok")
                elif verb == "NOOP":
                    send("250 2.0.0 Ok")
                else:
                    send("502 5.5.2 Error: command not recognized")
        except OSError:
            return
        finally:
            conn.close()


def guide_block(marker):
    """The fenced block that follows the line containing marker in docs/deploy.md."""
    with open(DEPLOY_GUIDE) as f:
        text = f.read()
    start = text.index(marker)
    start = text.index("```\n", start) + 4
    return text[start:text.index("```\n", start)]


EXIM_GUIDE_MARKER = "<!-- exim.test reads the block below"


class Exim(Mailboxes):
    """The guide's Exim configuration on a free loopback port, trusting 127.0.0.1 (Porter).

    rcpt_rules / data_rules: ACL statements put where the guide says "# site recipient
    checks" / "# site content checks"; replace: [(guide text, new text)] edits that must
    apply (each old text must be in the guide); extra_main: main options the guide does not
    set. Mailboxes: MAILBOXES/USER Maildirs (owned by Debian-exim, the guide's user)."""

    EXIM_USER = "Debian-exim"
    name = "exim"
    output = "exim.out"
    start_timeout = 20
    keep_failed = True

    def __init__(self, users=("bob", "carol", "dave"), rcpt_rules="", data_rules=""):
        super().__init__()
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.mail = os.path.join(self.dir, "mail")
        self.spool = os.path.join(self.dir, "spool")
        self.conf = os.path.join(self.dir, "exim.conf")
        exim = pwd.getpwnam(self.EXIM_USER)
        for d in [self.spool, self.mail] + [os.path.join(self.mail, u) for u in users]:
            os.makedirs(d, exist_ok=True)
            os.chown(d, exim.pw_uid, exim.pw_gid)
        self.log_path = os.path.join(self.spool, "log", "mainlog")
        self.rcpt_rules = rcpt_rules
        self.data_rules = data_rules
        self.write()

    def write(self, replace=(), extra_main=""):
        conf = guide_block(EXIM_GUIDE_MARKER)
        edits = [("  # site recipient checks\n", self.rcpt_rules),
                 ("  # site content checks\n", self.data_rules)] + list(replace)
        for old, new in edits:
            if old not in conf:
                raise RuntimeError("docs/deploy.md's Exim configuration lacks %r" % old)
            conf = conf.replace(old, new)
        test_main = ("# the test's own paths (docs/deploy.md's configuration follows)\n"
                     "spool_directory = %s\nlog_file_path = %s/log/%%slog\nexim_path = %s\n"
                     "keep_environment =\nexim_user = %s\nexim_group = %s\n%s\n"
                     % (self.spool, self.spool, EXIM, self.EXIM_USER, self.EXIM_USER, extra_main))
        with open(self.conf, "w") as f:
            f.write(test_main + conf)

    def arguments(self):
        return [EXIM, "-C", self.conf, "-DLISTEN=<; 127.0.0.1.%d" % self.port,
                "-DMAILBOXES=" + self.mail, "-DPORTER_HOSTS=127.0.0.1", "-bdf"]

    def ready(self):
        return port_open(self.port)

    def start(self):
        if not os.access(EXIM, os.X_OK):
            raise RuntimeError("no Exim at %s (scripts/install-deps unpacks it)" % EXIM)
        return super().start()

    def startup_text(self):
        return self.log_text()[-2000:] + self.panic_log() + read(self.output_path)[-1000:]

    def reconfigure(self, replace=(), extra_main=""):
        """New configuration, SIGHUP, wait until the new daemon listens (bounded)."""
        self.write(replace, extra_main)
        started = self.log_text().count("daemon started")
        self.process.send_signal(signal.SIGHUP)
        wait_until(lambda: self.log_text().count("daemon started") > started, 20)
        if not wait_until(self.ready, 20):
            raise RuntimeError("exim did not restart:\n" + self.startup_text())

    def panic_log(self):
        return read(os.path.join(self.spool, "log", "paniclog"))

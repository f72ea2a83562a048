"""harness.py - start a real porter on loopback for an integration test, talk to it, stop it.

Every test builds a configuration directory of its own (a temporary directory), starts
`porter run -f` on a free loopback port, drives it with real clients (smtplib, raw sockets,
swaks), and stops it by PID (Porter is a daemons.ManagedProcess, like every test daemon).
Nothing here talks to anything but 127.0.0.1 / ::1.

Use:
    with Porter(plugins="rcpt_ok rcpthosts=rcpthosts\nqueue_maildir path=maildir") as p:
        p.smtp()...
    check(condition, "what", got, want)  -> records a result; finish() prints the summary line.
"""
import os
import smtplib
import socket
import sys

from daemons import ManagedProcess, free_port, maildir_messages, port_listening, wait_port, wait_until  # noqa: F401 (free_port, wait_port: for the tests)

TOP_BUILDDIR = os.environ.get("top_builddir", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TOP_SRCDIR = os.environ.get("top_srcdir", TOP_BUILDDIR)
PORTER = os.path.join(TOP_BUILDDIR, "porter")
PLUGIN_DIR = os.path.join(TOP_BUILDDIR, "native-plugins")

_results = {"passed": 0, "failed": 0}


def check(condition, what, got=None, want=None):
    """Record one assertion; print got/want on failure."""
    if condition:
        _results["passed"] += 1
        print("ok - %s" % what)
    else:
        _results["failed"] += 1
        print("not ok - %s: got %r, want %r" % (what, got, want))
    sys.stdout.flush()
    return condition


def run_tests(tests, *arguments):
    """Run each test function, named in a comment line first, with arguments (or a tuple
    (function, its own arguments...)); one that raises is a failed check, never the end of the
    run: one broken scenario must not hide the others."""
    for test in tests:
        function, args = (test[0], test[1:]) if isinstance(test, tuple) else (test, arguments)
        print("# %s" % function.__name__)
        sys.stdout.flush()
        try:
            function(*args)
        except Exception as e:
            check(False, "%s ran to the end" % function.__name__, repr(e), "no exception")


def finish():
    """Print the closing line and exit with the right status."""
    print("%d passed, %d failed" % (_results["passed"], _results["failed"]))
    sys.exit(1 if _results["failed"] or _results["passed"] == 0 else 0)


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer", "double free", "Segmentation fault")


def sanitizer_check(text, where):
    """Fail the test when a sanitizer (or a crash) reported anything in text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = [m for m in SANITIZER_MARKERS if m in text]
    if found:
        start = text.find(found[0])
        check(False, "no sanitizer report or crash in %s" % where, text[max(0, start - 200):start + 1500], "none")


def read_reply(buffer, read_more):
    """The one SMTP reply parser of the tests: (code, [lines], rest of buffer).

    read_more() returns more bytes, or b"" at the end of input (then code is 0); a line that
    does not start with a number gives code -1."""
    lines = []
    while True:
        while b"\r\n" not in buffer:
            chunk = read_more()
            if not chunk:
                return (0, lines, buffer)
            buffer += chunk
        line, buffer = buffer.split(b"\r\n", 1)
        text = line.decode("utf-8", "replace")
        lines.append(text)
        if len(text) < 4 or text[3] != "-":
            try:
                return (int(text[:3]), lines, buffer)
            except ValueError:
                return (-1, lines, buffer)


def cpu_seconds(pids):
    """User+system CPU seconds used so far by these processes (for benchmarks)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / tick
        except OSError:
            pass
    return total


DEFAULT_PLUGINS = "rcpt_ok rcpthosts=rcpthosts\nqueue_maildir path=maildir\n"


class Porter(ManagedProcess):
    """A porter daemon with its own configuration directory, on a free loopback port."""

    name = "porter"
    prefix = "porter-test-"
    output = "porter.log"
    stop_timeout = 20
    keep_failed = True

    def __init__(self, plugins=DEFAULT_PLUGINS, settings=None, rcpthosts="localhost\nexample.com\n",
                 relayclients="", workers=1):
        super().__init__()
        self.port = free_port()
        self.workers = workers
        self.settings = {
            "hostname": "porter.test",
            "listen": "127.0.0.1:%d smtp" % self.port,
            "workers": str(workers),
            "plugin_dir": PLUGIN_DIR,
            "spool_dir": os.path.join(self.dir, "spool"),
            "log_level": "info",
            "log": "stderr",  # porter run -f and porter stdio: the log is the process's stderr
            "shutdown_timeout": "5s",
        }
        if settings:
            self.settings.update(settings)
        self.write_config(plugins, rcpthosts, relayclients)

    def write_config(self, plugins, rcpthosts="localhost\nexample.com\n", relayclients=""):
        with open(os.path.join(self.dir, "porter.conf"), "w") as f:
            for key, value in self.settings.items():
                for item in (value if isinstance(value, list) else [value]):
                    f.write("%s = %s\n" % (key, item))
        with open(os.path.join(self.dir, "plugins"), "w") as f:
            f.write(plugins)
        with open(os.path.join(self.dir, "rcpthosts"), "w") as f:
            f.write(rcpthosts)
        with open(os.path.join(self.dir, "relayclients"), "w") as f:
            f.write(relayclients)

    def arguments(self):
        return [PORTER, "run", "-f", "-c", self.dir]

    def ready(self):
        # listening, not a connection: a probe would be a session every plugin and milter sees
        return port_listening(self.port)

    def stop(self):
        """Stop by PID; then any sanitizer report (or crash) in the log fails the test."""
        was_open = self.log is not None
        super().stop()
        if was_open:
            sanitizer_check(self.log_text(), "porter daemon log")

    def maildir_messages(self, folder="maildir"):
        """The delivered messages (bytes), oldest first."""
        return maildir_messages(os.path.join(self.dir, folder))

    def wait_messages(self, count, timeout=10, folder="maildir"):
        """The delivered messages once there are count of them (or whatever came by timeout)."""
        wait_until(lambda: len(self.maildir_messages(folder)) >= count, timeout)
        return self.maildir_messages(folder)

    def connect(self, timeout=10):
        return Client(self.port, timeout)

    def worker_pids(self):
        """PIDs of this master's worker processes (children of the master we started)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
        return sorted(pids)


def dot_stuff(message):
    """A message (CRLF lines) as DATA carries it, dot-stuffed; without the final dot."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in message.split(b"\r\n")[:-1])


def send_transaction(p, sender, recipients, message, mail_params="", rcpt_params="", bdat=False,
                     helo="client.example"):
    """One transaction on a new connection to Porter p: (RCPT codes, (final code, final text));
    final (0, "") when no recipient was taken; ([], (code, text)) when MAIL was refused.
    bdat: the message in two BDAT chunks instead of DATA."""
    c = p.connect(timeout=60)
    c.reply()
    c.command("EHLO %s" % helo)
    code, lines = c.command("MAIL FROM:<%s>%s" % (sender, mail_params))
    if code != 250:
        c.close()
        return [], (code, " ".join(lines))
    codes = [c.command("RCPT TO:<%s>%s" % (r, rcpt_params))[0] for r in recipients]
    if not any(x == 250 for x in codes):
        c.close()
        return codes, (0, "")
    if bdat:
        half = len(message) // 2
        c.send(b"BDAT %d\r\n" % half + message[:half])
        c.reply()
        c.send(b"BDAT %d LAST\r\n" % (len(message) - half) + message[half:])
    else:
        c.command("DATA")
        c.send(dot_stuff(message) + b".\r\n")
    code, lines = c.reply()
    c.command("QUIT")
    c.close()
    return codes, (code, " ".join(lines))


def smtplib_send(port, sender, recipients, data, xclient=None):
    """One transaction with Python's smtplib (XCLIENT first when given): (refused recipients,
    (code, text)) where code answers MAIL, the last RCPT or the data; (0, "") means accepted."""
    c = smtplib.SMTP("127.0.0.1", port, timeout=60)
    try:
        c.ehlo("client.example")
        if xclient:
            c.docmd("XCLIENT", xclient)
            c.ehlo("client.example")
        try:
            refused = c.sendmail(sender, recipients, data)
            return refused, (0, "")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[-1]
            return e.recipients, (code, text.decode())
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
            return {}, (e.smtp_code, e.smtp_error.decode())
    finally:
        try:
            c.quit()
        except smtplib.SMTPException:
            pass


class Client:
    """A raw SMTP client over a socket: send bytes, read whole replies; from the loopback
    address source when given."""

    def __init__(self, port, timeout=10, host="127.0.0.1", source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buffer = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self):
        """One complete (possibly multi-line) reply: (code, [lines]). code 0 on EOF."""
        code, lines, self.buffer = read_reply(self.buffer, lambda: self.sock.recv(65536))
        return (code, lines)

    def command(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def mail(self, message, sender="alice@example.org", rcpt="bob@example.com", mail_params=""):
        """MAIL, RCPT and DATA with message (CRLF lines, dot-stuffed where needed) on this open
        connection: the reply codes, up to a refused RCPT."""
        codes = [self.command("MAIL FROM:<%s>%s" % (sender, mail_params))[0],
                 self.command("RCPT TO:<%s>" % rcpt)[0]]
        if codes[-1] != 250:
            return codes
        codes.append(self.command("DATA")[0])
        self.send(message + b".\r\n")
        codes.append(self.reply()[0])
        return codes

    def closed(self, timeout=5):
        """True when the server closed the connection (EOF) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buffer += data
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            return True

    def close(self):
        self.sock.close()

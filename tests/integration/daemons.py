"""daemons.py - the private daemons of the integration tests: one way to start them, wait for
them and stop them, and Debian's clamd, spamd and p0f started that way.

ManagedProcess is the base of every test daemon class (harness.Porter, downstream.Postfix /
SmtpSink / Exim, scalelib.HAProxy, storelib.RedisServer, authdns.Dnsmasq, the Daemon of the
start_* functions below). A subclass says only what is its own: arguments() (its command line,
after writing its configuration into self.dir) and ready() (its readiness check); the base
starts it in the foreground with its output in a log file in its own temporary directory,
polls ready() (bounded; early out when the process ends), stops it by PID (SIGTERM, SIGKILL
after stop_timeout; never by name), closes the log, and at __exit__ (or at exit, for an
instance used without "with") removes the directory. The directory and the end of the log
are kept, and said where, when PORTER_KEEP is set or, for classes with keep_failed, when the
"with" block failed. log_text() is what failure messages quote.

The small helpers every test shares live here too: free_port(), port_open(), port_listening(),
wait_port(), wait_until() (the bounded poll), stop_process(), read_text().

Each start_* function writes the daemon's own configuration into the test's directory, starts
it in the foreground, waits (bounded) until it answers on its socket in that directory, and
returns a Daemon, or None after recording a failed check: a daemon that is not installed or
does not start is a test failure, never a skip (scripts/install-deps installs them). Nothing
listens anywhere but in the test directory or on 127.0.0.1. stop_all() ends every process
started here by its PID; call it at the end of the test (a finally block).

Also: send() runs one SMTP transaction against a Porter, and EICAR / GTUBE are the standard
test strings."""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
CLAMD_SIGNATURE = "Porter.Test.EICAR"

PROCESSES = []  # every Daemon started, for stop_all()


def free_port():
    """A TCP port free on 127.0.0.1 now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    """True when a TCP connection to host:port is accepted (within half a second)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_listening(port):
    """True when a TCP socket listens on port (any local address), as /proc/net/tcp and tcp6
    show it: a readiness check that opens no connection, so the daemon sees no session of ours."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except (OSError, StopIteration, IndexError, ValueError):
            pass
    return False


def unix_open(path):
    """True when the unix socket at path accepts a connection."""
    if not os.path.exists(path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            return True
    except OSError:
        return False


def wait_until(condition, timeout=10.0, step=0.05, process=None):
    """Call condition() until it returns something true, at most timeout seconds (it is called
    at least once, and once per round: it may act); its last answer. With process, give up
    early (False) once that process has ended."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value or time.time() > deadline:
            return value
        if process is not None and process.poll() is not None:
            return False
        time.sleep(step)


def wait_port(port, host="127.0.0.1", timeout=10.0, process=None):
    """True once host:port accepts a connection (bounded by timeout; False early when process
    ended)."""
    return bool(wait_until(lambda: port_open(port, host), timeout, process=process))


def wait_unix(path, timeout, process=None):
    """True once a unix socket at path accepts a connection (bounded by timeout); False
    early when process ended."""
    return bool(wait_until(lambda: unix_open(path), timeout, process=process))


def read(path):
    """The text of a file (undecodable bytes replaced), or "" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def maildir_order(path):
    """A delivered message's place in time: its mtime (a coarse clock: messages written within
    one tick tie), then the time its Maildir name starts with, SECONDS.M<microseconds>... as
    queue_maildir and Dovecot name files (other names tie and keep their name order)."""
    name = os.path.basename(path)
    match = re.match(r"(\d+)\.M(\d+)", name)
    named = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    return (os.stat(path).st_mtime_ns, named, name)


def maildir_messages(maildir):
    """The messages delivered into a Maildir's new/ (bytes), oldest first; [] when there is
    none."""
    new = os.path.join(maildir, "new")
    if not os.path.isdir(new):
        return []
    paths = sorted((os.path.join(new, name) for name in os.listdir(new)), key=maildir_order)
    out = []
    for path in paths:
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def stop_process(process, timeout=15, terminate=True):
    """Stop one process we started, by its PID: SIGTERM (unless terminate is False: it was
    sent already), then SIGKILL after timeout seconds; reaps it. Nothing happens to a process
    that already ended (or None)."""
    if process is not None and process.poll() is None:
        if terminate:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def keep_wanted():
    """True when the developer asked to keep the tests' directories (PORTER_KEEP set)."""
    return os.environ.get("PORTER_KEEP") is not None


class ManagedProcess:
    """A private daemon of a test, run in the foreground and stopped by its PID.

    A subclass sets name (for messages), maybe output (the file in self.dir that gets the
    process's stdout and stderr; None discards them), start_timeout, stop_timeout and
    keep_failed, and defines arguments() and ready(). It may point log_path at the daemon's own
    log file (what log_text() reads), and override launch() and stop() when the daemon is
    not one foreground process (Postfix)."""

    name = "daemon"
    prefix = None          # the temporary directory's prefix; "porter-NAME-" by default
    output = None
    start_timeout = 10
    stop_timeout = 10
    keep_failed = False    # keep the directory (and print the log's end) when "with" failed

    def __init__(self, directory=None):
        """directory: where the daemon keeps its files, the caller's (left in place); by
        default a new temporary directory, removed when the daemon is done with."""
        self.own_dir = directory is None
        self.dir = tempfile.mkdtemp(prefix=self.prefix or "porter-%s-" % self.name) \
            if directory is None else directory
        self.output_path = os.path.join(self.dir, self.output) if self.output else None
        self.log_path = self.output_path
        self.process = None
        self.log = None        # the output file while the process runs
        self.terminated = False
        self.kept = False
        atexit.register(self.cleanup)  # also for a daemon used without "with"

    def arguments(self):
        """The daemon's command line (a list)."""
        raise NotImplementedError

    def ready(self):
        """True when the started daemon serves (polled, bounded by start_timeout)."""
        return True

    def launch(self, arguments=None, **popen):
        """Start the process (arguments() unless a test gives its own command line, and
        subprocess.Popen options such as env or pass_fds), its output into output_path
        (appended: a restart keeps the earlier lines). Subclasses that start differently
        override this."""
        if self.output_path:
            self.log = open(self.output_path, "ab")
            out = self.log
        else:
            out = subprocess.DEVNULL
        self.terminated = False
        self.process = subprocess.Popen(arguments or self.arguments(), stdout=out,
                                        stderr=subprocess.STDOUT, **popen)

    def start(self):
        """launch(), then wait for ready(); a daemon that does not come up is stopped and
        raises RuntimeError quoting its log."""
        self.launch()
        if not wait_until(self.ready, self.start_timeout, process=self.process):
            self.stop()
            raise RuntimeError("%s did not start:\n%s" % (self.name, self.startup_text()))
        return self

    def startup_text(self):
        """What a failure to start quotes: the end of the log."""
        return self.log_text()[-4000:]

    def terminate(self):
        """SIGTERM now, without waiting for the exit (stop() reaps it, bounded): several slow
        leavers (libmilter takes seconds) then exit at the same time."""
        if self.process is not None and self.process.poll() is None and not self.terminated:
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self):
        """Stop the process by its PID (bounded) and close its output file."""
        stop_process(self.process, self.stop_timeout, terminate=not self.terminated)
        if self.log is not None:
            self.log.close()
            self.log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.own_dir:
            if keep_wanted() or (exc[0] is not None and self.keep_failed):
                self.kept = True
                print("# kept %s in %s" % (self.name, self.dir))
                print(self.log_text()[-4000:])
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def cleanup(self):
        """At exit: stop the daemon if a test left it running, and remove the directory
        unless it was kept to look at."""
        self.stop()
        if self.own_dir and not self.kept and not keep_wanted():
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        """The daemon's log so far ("" when there is none)."""
        return read(self.log_path) if self.log_path else ""

    def wait_log(self, pattern, timeout=10):
        """The first match of the regular expression pattern in the log, waiting for it
        (bounded: a reply can come before its log line is written); None if it never came."""
        return wait_until(lambda: re.search(pattern, self.log_text()), timeout) or None


class Daemon(ManagedProcess):
    """A Debian daemon started in the test's directory work (left in place: the test removes
    it), by a start_* function below or by a test through started(): argv, its output file
    (a name in work), its readiness check (ready(daemon)), socket_path or port (where it
    answers), log (the path of its own log file, default its output), started_in (seconds from
    exec to the first answer, set by started())."""

    stop_timeout = 15

    def __init__(self, name, work, argv, output, ready, socket_path=None, port=None, log=None,
                 start_timeout=120):
        self.name, self.output, self.start_timeout = name, output, start_timeout
        super().__init__(directory=work)
        self.argv, self.ready_check = argv, ready
        self.socket, self.port = socket_path, port
        if log is not None:
            self.log_path = log
        self.started_in = None

    def arguments(self):
        return self.argv

    def ready(self):
        return self.ready_check(self)

    def launch(self, arguments=None, **popen):
        super().launch(arguments, **popen)
        PROCESSES.append(self)

    def startup_text(self):
        text = self.log_text()
        if self.log_path != self.output_path:
            text += read(self.output_path)
        return text[-600:]


def find(program):
    """The path of an installed program (sbin directories included), or None."""
    for directory in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        path = os.path.join(directory, program)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(program)


def stop_all():
    """Stop every Daemon started here, by PID (all signalled first, then each reaped)."""
    for daemon in PROCESSES:
        daemon.terminate()
    for daemon in PROCESSES:
        daemon.stop()


def ask_unix(path, request, timeout=10):
    """Send request to a unix socket, read until the daemon closes; the answer or b''."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(request)
            answer = b""
            while True:
                data = s.recv(65536)
                if not data:
                    return answer
                answer += data
    except OSError:
        return b""


def installed(program, package):
    """The program's path; a failed check naming the Debian package when it is missing."""
    from harness import check  # harness imports this module: not at the top
    path = find(program)
    check(path is not None, "%s is installed (Debian package %s; scripts/install-deps)" %
          (program, package), None, program)
    return path


def started(daemon, what, want):
    """Start a Daemon; the Daemon, or None after a failed check saying what did not happen
    (quoting the daemon's log)."""
    from harness import check
    began = time.time()
    try:
        daemon.start()
    except RuntimeError:
        check(False, what, daemon.startup_text(), want)
        return None
    daemon.started_in = time.time() - began
    check(True, what)
    return daemon


def start_clamd(work, tcp_port=None):
    """clamd with a one-signature database written here (an .ndb body signature for EICAR,
    named CLAMD_SIGNATURE), LocalSocket in work (and TCPSocket on 127.0.0.1:tcp_port when
    given). Returns a Daemon or None."""
    clamd = installed("clamd", "clamav-daemon")
    if clamd is None:
        return None
    database = os.path.join(work, "clamdb")
    os.makedirs(database, exist_ok=True)
    with open(os.path.join(database, "porter-test.ndb"), "w") as f:
        f.write("%s:0:*:%s\n" % (CLAMD_SIGNATURE, EICAR.hex()))
    path = os.path.join(work, "clamd.sock")
    log = os.path.join(work, "clamd.log")
    conf = os.path.join(work, "clamd.conf")
    with open(conf, "w") as f:
        f.write("Foreground yes\nLocalSocket %s\nDatabaseDirectory %s\nLogFile %s\n"
                "Bytecode no\nPidFile %s/clamd.pid\nMaxThreads 4\n" % (path, database, log, work))
        if tcp_port is not None:
            f.write("TCPSocket %d\nTCPAddr 127.0.0.1\n" % tcp_port)
    daemon = Daemon("clamd", work, [clamd, "-c", conf], "clamd.out",
                    lambda d: unix_open(path), socket_path=path, log=log)
    return started(daemon, "clamd started with the test signature database", path)


def start_spamd(work):
    """spamd with Debian's shipped rules and site configuration, local tests only (-L; no
    Bayes, no DNS, no user configuration: --cf lines), its own helper home in work, listening
    on a unix socket there. Ready when it answers PING; Daemon.started_in says how long that took."""
    spamd = installed("spamd", "spamd")
    if spamd is None:
        return None
    home = os.path.join(work, "spamd-home")
    os.makedirs(home, exist_ok=True)
    path = os.path.join(work, "spamd.sock")
    argv = [spamd, "-L", "-x", "-s", "stderr", "--socketpath=" + path,
            "--pidfile=" + os.path.join(work, "spamd.pid"), "--max-children=2",
            "--min-children=1", "--helper-home-dir=" + home, "-u", "nobody",
            "--cf=use_bayes 0", "--cf=bayes_auto_learn 0", "--cf=skip_rbl_checks 1",
            "--cf=dns_available no"]
    daemon = Daemon("spamd", work, argv, "spamd.out",
                    lambda d: b"PONG" in ask_unix(path, b"PING SPAMC/1.5\r\n\r\n"),
                    socket_path=path, start_timeout=240)
    return started(daemon, "spamd started and answers PING", "SPAMD/1.5 0 PONG")


def start_p0f(work):
    """p0f 3 on the loopback interface (needs root, as CI runs), in the foreground, its API
    socket and log in work. Returns a Daemon or None."""
    p0f = installed("p0f", "p0f")
    if p0f is None:
        return None
    path = os.path.join(work, "p0f.sock")
    log = os.path.join(work, "p0f.log")
    daemon = Daemon("p0f", work, [p0f, "-i", "lo", "-s", path, "-o", log], "p0f.out",
                    lambda d: unix_open(path), socket_path=path, log=log, start_timeout=30)
    return started(daemon, "p0f listens on its API socket (on lo, as root)", path)


def start_test_milter(*args, port=None, socket_spec=None, work=None):
    """tests/milter/test_milter (a libmilter milter; its options in args) on a free loopback
    port, on port, or on socket_spec in libmilter's syntax ("unix:PATH", "inet6:PORT@::1"), its
    event log (-l) the Daemon's log (log_text(); log_path); in work, or in a directory of its
    own. Returns the started Daemon (RuntimeError when it does not start), spec being what
    Porter's milter plugin is told (socket=...)."""
    from harness import TOP_BUILDDIR
    if socket_spec is None:
        socket_spec = "inet:%d@127.0.0.1" % (port or free_port())
    kind, where = socket_spec.split(":", 1)
    if kind in ("unix", "local"):
        spec, path, port = "unix:" + where, where, None

        def ready(daemon):
            return os.path.exists(where)
    else:
        number, host = where.split("@", 1)
        spec, path, port = "%s:%s:%s" % (kind, "[%s]" % host if ":" in host else host, number), \
            None, int(number)

        def ready(daemon):
            return port_open(port, host)
    daemon = Daemon("test_milter", work, None, None, ready, socket_path=path, port=port,
                    start_timeout=10)
    daemon.log_path = os.path.join(daemon.dir, "test_milter-%d.log" % len(PROCESSES))
    daemon.argv = [os.path.join(TOP_BUILDDIR, "tests", "milter", "test_milter"), "-s",
                   socket_spec, "-l", daemon.log_path] + list(args)
    daemon.spec = spec
    return daemon.start()


def send(p, message, sender="alice@example.org", rcpt="bob@example.com", timeout=60):
    """One transaction on a new connection to Porter p; returns the end-of-data reply
    (code, lines), or the refusal of MAIL, RCPT or DATA."""
    c = p.connect(timeout=timeout)
    c.reply()
    c.command("EHLO client.example")
    for line in ("MAIL FROM:<%s>" % sender, "RCPT TO:<%s>" % rcpt, "DATA"):
        code, lines = c.command(line)
        if code not in (250, 354):
            c.close()
            return code, lines
    c.send(message + b".\r\n")
    result = c.reply()
    c.command("QUIT")
    c.close()
    return result

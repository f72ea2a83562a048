"""daemons.py - private instances of Debian's daemons for integration tests (clamd, spamd, p0f).

Each start_* function writes the daemon's own configuration into the test's directory, starts
it in the foreground, waits (bounded) until it answers on its socket in that directory, and
returns a Daemon, or None after recording a failed check: a daemon that is not installed or
does not start is a test failure, never a skip (scripts/install-deps installs them). Nothing
listens anywhere but in the test directory or on 127.0.0.1. stop_all() ends every process
started here by its PID; call it at the end of the test (a finally block).

Also: send() runs one SMTP transaction against a Porter, and EICAR / GTUBE are the standard
test strings."""
import os
import shutil
import signal
import socket
import subprocess
import time

from harness import check

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
CLAMD_SIGNATURE = "Porter.Test.EICAR"

PROCESSES = []


class Daemon:
    """A started daemon: its process, its socket (a path or a port), its log file."""

    def __init__(self, process, socket_path=None, port=None, log=None, started_in=None):
        self.process, self.socket, self.port, self.log = process, socket_path, port, log
        self.started_in = started_in  # seconds from exec to the first answer

    def stop(self):
        stop(self.process)

    def log_text(self):
        return read(self.log) if self.log else ""


def find(program):
    """The path of an installed program (sbin directories included), or None."""
    for directory in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        path = os.path.join(directory, program)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(program)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def start(argv, out_path):
    """Start argv with stdout and stderr into out_path; remembered for stop_all()."""
    with open(out_path, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    PROCESSES.append(process)
    return process


def stop(process):
    """SIGTERM, then SIGKILL after 15 s, by PID."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_all():
    for process in PROCESSES:
        stop(process)


def wait_unix(path, timeout, process=None):
    """True once a unix socket at path accepts a connection (bounded by timeout); False
    early when process ended."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            return False
        if os.path.exists(path):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(path)
                    return True
            except OSError:
                pass
        time.sleep(0.05)
    return False


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
    path = find(program)
    check(path is not None, "%s is installed (Debian package %s; scripts/install-deps)" %
          (program, package), None, program)
    return path


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
    began = time.time()
    process = start([clamd, "-c", conf], os.path.join(work, "clamd.out"))
    up = wait_unix(path, 120, process)
    if not check(up, "clamd started with the test signature database",
                 (read(log) + read(os.path.join(work, "clamd.out")))[-600:], path):
        stop(process)
        return None
    return Daemon(process, socket_path=path, log=log, started_in=time.time() - began)


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
    log = os.path.join(work, "spamd.out")
    began = time.time()
    process = start([spamd, "-L", "-x", "-s", "stderr", "--socketpath=" + path,
                     "--pidfile=" + os.path.join(work, "spamd.pid"), "--max-children=2",
                     "--min-children=1", "--helper-home-dir=" + home, "-u", "nobody",
                     "--cf=use_bayes 0", "--cf=bayes_auto_learn 0", "--cf=skip_rbl_checks 1",
                     "--cf=dns_available no"], log)
    ready = False
    if wait_unix(path, 120, process):
        deadline = time.time() + 120
        while not ready and time.time() < deadline and process.poll() is None:
            ready = b"PONG" in ask_unix(path, b"PING SPAMC/1.5\r\n\r\n")
            if not ready:
                time.sleep(0.1)
    if not check(ready, "spamd started and answers PING", read(log)[-600:], "SPAMD/1.5 0 PONG"):
        stop(process)
        return None
    return Daemon(process, socket_path=path, log=log, started_in=time.time() - began)


def start_p0f(work):
    """p0f 3 on the loopback interface (needs root, as CI runs), in the foreground, its API
    socket and log in work. Returns a Daemon or None."""
    p0f = installed("p0f", "p0f")
    if p0f is None:
        return None
    path = os.path.join(work, "p0f.sock")
    out = os.path.join(work, "p0f.out")
    began = time.time()
    process = start([p0f, "-i", "lo", "-s", path, "-o", os.path.join(work, "p0f.log")], out)
    if not check(wait_unix(path, 30, process), "p0f listens on its API socket (on lo, as root)",
                 read(out)[-600:], path):
        stop(process)
        return None
    return Daemon(process, socket_path=path, log=os.path.join(work, "p0f.log"),
                  started_in=time.time() - began)


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

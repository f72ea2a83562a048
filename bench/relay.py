#!/usr/bin/python3
"""relay.py - messages/s relaying to smtp-sink: smtp-sink alone, Porter with queue_smtp (relay
now) and Porter with queue_spool (fsync to the queue, then the delivery process relays), for
4 KB and 100 KB messages at 10 and 100 parallel sessions, all in one run.

Usage: bench/relay.py [--messages N] [--large-messages N] [--workers N] [--rounds N]
  --messages        messages per 4 KB run (default 2000)
  --large-messages  messages per 100 KB run (default 400)
  --workers         porter worker processes (default: one per core)
  --rounds          runs per cell; the median is printed (default 1)

Needs a built tree (./porter, native-plugins/*.so) and Postfix's smtp-source and smtp-sink.
Load: smtp-source, one message per connection, one recipient. A run passes only when
smtp-source saw every message accepted (it stops at the first error); queue_spool's second
figure is end-to-end (until the queue is empty again). Everything is on 127.0.0.1; every
process started here is stopped by PID. Prints one line per run and a table; no assertions.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PORTER = os.path.join(TOP, "porter")
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
TIMEOUT = 300
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from daemons import free_port, wait_port  # noqa: E402


def stop(process):
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Sink:
    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen([SMTP_SINK, "-u", "nobody", "-m", "1000",
                                         "127.0.0.1:%d" % self.port, "1024"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise RuntimeError("smtp-sink did not start")

    def stop(self):
        stop(self.process)


class Porter:
    def __init__(self, work, plugins, settings, workers):
        self.dir = tempfile.mkdtemp(prefix="porter-relay-", dir=work)
        self.port = free_port()
        conf = {
            "hostname": "bench.porter.test",
            "listen": "127.0.0.1:%d smtp" % self.port,
            "workers": str(workers),
            "plugin_dir": os.path.join(TOP, "native-plugins"),
            "spool_dir": os.path.join(self.dir, "spool"),
            "log_level": "warning",
            "max_connections_per_ip": "2000",
        }
        conf.update(settings)
        with open(os.path.join(self.dir, "porter.conf"), "w") as f:
            for key, value in conf.items():
                f.write("%s = %s\n" % (key, value))
        with open(os.path.join(self.dir, "plugins"), "w") as f:
            f.write(plugins)
        with open(os.path.join(self.dir, "rcpthosts"), "w") as f:
            f.write("example.com\n")
        self.log = open(os.path.join(self.dir, "porter.log"), "wb")
        self.process = subprocess.Popen([PORTER, "run", "-f", "-c", self.dir], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        if not wait_port(self.port):
            stop(self.process)
            raise RuntimeError("porter did not start: see %s/porter.log" % self.dir)

    def queued(self):
        active = os.path.join(self.dir, "queue", "active")
        return len(os.listdir(active)) if os.path.isdir(active) else 0

    def stop(self):
        stop(self.process)
        self.log.close()


def source(port, sessions, messages, size):
    """smtp-source against port; seconds taken, or None when it failed."""
    start = time.time()
    r = subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
                        "-M", "bench.example", "-f", "sender@bench.example", "-t",
                        "rcpt@example.com", "127.0.0.1:%d" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    took = time.time() - start
    if r.returncode != 0:
        sys.stderr.write("smtp-source failed: %s\n" % r.stdout.decode(errors="replace")[-500:])
        return None
    return took


def run_cell(kind, size, sessions, messages, workers, work):
    """messages/s for one configuration; (accepted rate, end-to-end rate or None)."""
    sink = Sink()
    porter = None
    try:
        if kind == "smtp-sink alone":
            took = source(sink.port, sessions, messages, size)
            return (messages / took if took else None), None
        if kind == "queue_smtp":
            plugins = ("rcpt_ok rcpthosts=rcpthosts\nqueue_smtp host=127.0.0.1:%d tls=none "
                       "pool=128 connections=512\n" % sink.port)
            porter = Porter(work, plugins, {}, workers)
            took = source(porter.port, sessions, messages, size)
            return (messages / took if took else None), None
        plugins = "rcpt_ok rcpthosts=rcpthosts\nqueue_spool\n"
        settings = {"queue_dir": "queue", "relay_host": "127.0.0.1:%d" % sink.port,
                    "relay_tls": "none", "delivery_concurrency": "50", "retry_schedule": "1s"}
        porter = Porter(work, plugins, settings, workers)
        start = time.time()
        took = source(porter.port, sessions, messages, size)
        if not took:
            return None, None
        deadline = time.time() + TIMEOUT
        while porter.queued() > 0 and time.time() < deadline:
            time.sleep(0.02)
        drained = time.time() - start
        return messages / took, (messages / drained if porter.queued() == 0 else None)
    finally:
        if porter:
            porter.stop()
            shutil.rmtree(porter.dir, ignore_errors=True)
        sink.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--large-messages", type=int, default=400)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for program in (PORTER, SMTP_SOURCE, SMTP_SINK):
        if not os.access(program, os.X_OK):
            sys.exit("relay.py: %s is missing (build porter; install postfix)" % program)
    work = tempfile.mkdtemp(prefix="porter-bench-")
    kinds = ("smtp-sink alone", "queue_smtp", "queue_spool")
    results = {}
    try:
        for size in (4096, 102400):
            messages = args.messages if size == 4096 else args.large_messages
            for sessions in (10, 100):
                for kind in kinds:
                    rates, ends = [], []
                    for round_number in range(args.rounds):
                        rate, end = run_cell(kind, size, sessions, messages, args.workers, work)
                        print("  %-16s %4d KB  %3d sessions  %5d msgs  %s msg/s%s" % (
                            kind, size // 1024, sessions, messages,
                            "%.0f" % rate if rate else "FAILED",
                            ("  (end to end %.0f msg/s)" % end) if end else ""))
                        sys.stdout.flush()
                        if rate:
                            rates.append(rate)
                        if end:
                            ends.append(end)
                    results[(kind, size, sessions)] = (
                        statistics.median(rates) if rates else None,
                        statistics.median(ends) if ends else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("%-44s %12s %12s %12s %12s" % ("messages/s (accepted by the client)", "4KB x10",
                                         "4KB x100", "100KB x10", "100KB x100"))
    for kind in kinds:
        cells = []
        for size in (4096, 102400):
            for sessions in (10, 100):
                rate, end = results.get((kind, size, sessions), (None, None))
                cells.append(("%.0f" % rate if rate else "-") + ("/%.0f" % end if end else ""))
        label = kind + (" (accepted/end-to-end)" if kind == "queue_spool" else "")
        print("%-44s %12s %12s %12s %12s" % (label, *cells))
    for size in (4096, 102400):
        for sessions in (10, 100):
            alone = results.get(("smtp-sink alone", size, sessions), (None,))[0]
            relay = results.get(("queue_smtp", size, sessions), (None,))[0]
            if alone and relay:
                print("queue_smtp slowdown vs smtp-sink alone, %d KB x%d: %.2fx" % (
                    size // 1024, sessions, alone / relay))


if __name__ == "__main__":
    main()

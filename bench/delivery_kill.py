#!/usr/bin/python3
"""delivery_kill.py - duplicates per kill -9 of a busy delivery process (docs/queue.md).

Porter with queue_spool relays to smtp-sink (one dump file per message delivered) with the
default delivery_concurrency (20). Senders keep the queue busy; every --interval seconds (a
random moment within it) the delivery process is killed with SIGKILL; the master starts a new
one, which sends again the messages whose downstream 250 it had not yet made durable. After
--kills kills the senders stop and the queue drains. Each message carries a unique Message-Id:
a duplicate is a second delivery of one. Prints the duplicates after each kill and a summary
(mean, median, max per kill), and checks that every message that got a 250 was delivered.

Usage: bench/delivery_kill.py [--kills N] [--interval SECONDS] [--senders N]
                              [--concurrency N]
Needs a built tree and Postfix's smtp-sink; runs as root (smtp-sink -u nobody). Everything
is on 127.0.0.1; every process started here is stopped by PID. Figures, no assertions.
"""
import argparse
import glob
import os
import random
import re
import signal
import smtplib
import statistics
import sys
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
os.environ.setdefault("top_builddir", TOP)
os.environ.setdefault("top_srcdir", TOP)
from harness import Porter  # noqa: E402
from downstream import SmtpSink  # noqa: E402

MESSAGE_ID = re.compile(rb"^Message-Id: <([^>]+)>", re.M | re.I)


class Senders:
    """Threads that send one message after another, each with a unique Message-Id."""

    def __init__(self, port, count):
        self.port = port
        self.accepted = set()
        self.lock = threading.Lock()
        self.stopping = False
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(count)]

    def run(self, number):
        sequence = 0
        while not self.stopping:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
                    for _ in range(50):
                        if self.stopping:
                            break
                        sequence += 1
                        mid = "bench-%d-%d@example.org" % (number, sequence)
                        body = ("From: a@example.org\r\nTo: bob@example.com\r\nMessage-Id: <%s>\r\n"
                                "Subject: kill bench\r\n\r\n" % mid) + "x" * 2000 + "\r\n"
                        smtp.sendmail("a@example.org", ["bob@example.com"], body)
                        with self.lock:
                            self.accepted.add(mid)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=60)


def delivered(sink):
    """Message-Id -> times delivered."""
    counts = {}
    for name in glob.glob(os.path.join(sink.dir, "*")):
        try:
            with open(name, "rb") as f:
                match = MESSAGE_ID.search(f.read(8192))
        except OSError:
            continue
        if match:
            key = match.group(1).decode()
            counts[key] = counts.get(key, 0) + 1
    return counts


def duplicates(sink):
    return sum(n - 1 for n in delivered(sink).values())


def delivery_pid(p):
    pids = re.findall(r"event=delivery_spawned pid=(\d+)", p.log_text())
    return int(pids[-1]) if pids else None


def queue_empty(queue_dir):
    return not os.listdir(os.path.join(queue_dir, "active"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.5)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    with SmtpSink() as sink:
        p = Porter(plugins="rcpt_ok rcpthosts=rcpthosts\nqueue_spool\n", settings={
            "relay_host": "127.0.0.1:%d" % sink.port,
            "delivery_concurrency": str(args.concurrency),
            "retry_schedule": "1s",
            "log_level": "info",
        })
        queue_dir = os.path.join(p.dir, "queue")
        p.settings["queue_dir"] = queue_dir
        p.write_config("rcpt_ok rcpthosts=rcpthosts\nqueue_spool\n")
        with p:
            senders = Senders(p.port, args.senders)
            senders.start()
            time.sleep(2)
            per_kill, before, killed = [], duplicates(sink), 0
            for number in range(args.kills):
                time.sleep(random.uniform(0.5, 1.0) * args.interval)
                pid = delivery_pid(p)
                if pid is None:
                    continue
                backlog = len(os.listdir(os.path.join(queue_dir, "active")))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed += 1
                # the master restarts it within a second; the re-sends come first
                deadline = time.time() + 10
                while delivery_pid(p) == pid and time.time() < deadline:
                    time.sleep(0.05)
                time.sleep(args.interval * 0.5)
                now = duplicates(sink)
                per_kill.append(now - before)
                print("kill %2d: pid %d, %4d files in active/, %2d duplicates" %
                      (number + 1, pid, backlog, now - before), flush=True)
                before = now
            senders.stop()
            deadline = time.time() + 120
            while not queue_empty(queue_dir) and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(1)
            counts = delivered(sink)
            # duplicates that showed up after the last interval belong to the last kill
            if per_kill:
                per_kill[-1] += sum(n - 1 for n in counts.values()) - before
            lost = sorted(senders.accepted - set(counts))
    total = sum(counts.values())
    print("senders: %d, delivery_concurrency: %d, kills: %d" % (args.senders, args.concurrency, killed))
    print("messages accepted (250): %d, delivered: %d (%d distinct), lost: %d" %
          (len(senders.accepted), total, len(counts), len(lost)))
    if per_kill:
        print("duplicates: %d in all; per kill of a busy delivery process: mean %.1f, median %.1f, "
              "max %d" % (sum(per_kill), statistics.mean(per_kill), statistics.median(per_kill),
                          max(per_kill)))


main()

#!/usr/bin/python3
"""bench/smtp.py - throughput of Porter's raw accept path next to Postfix's smtp-sink.

Starts porter (chain: rcpt_ok + queue_discard) and smtp-sink on loopback ports, drives each
with Postfix's smtp-source (MESSAGES messages of SIZE bytes at concurrency 1, 10, 100), and
prints messages/s and CPU milliseconds per message for both, measured in the same run. Then
opens IDLE idle sessions to one porter worker and prints that worker's resident memory.
Everything stays on 127.0.0.1; every process started here is stopped by PID.

Usage: bench/smtp.py [--messages 5000] [--size 4096] [--idle 10000]
"""
import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from harness import Porter, cpu_seconds, free_port, wait_port  # noqa: E402

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def drive(port, messages, size, concurrency, pids):
    """Run smtp-source against port; (messages/s, CPU ms per message of pids)."""
    before = cpu_seconds(pids)
    start = time.time()
    result = subprocess.run([SMTP_SOURCE, "-s", str(concurrency), "-m", str(messages), "-l", str(size),
                             "-f", "bench@example.org", "-t", "bench@example.com", "127.0.0.1:%d" % port],
                            capture_output=True, text=True, timeout=600)
    elapsed = time.time() - start
    used = cpu_seconds(pids) - before
    if result.returncode != 0:
        print("  smtp-source failed: %s" % result.stderr.strip()[:300])
    return messages / elapsed, used * 1000.0 / messages


def throughput(args):
    sink_port = free_port()
    sink = subprocess.Popen([SMTP_SINK] + (["-u", "nobody"] if os.geteuid() == 0 else []) + ["127.0.0.1:%d" % sink_port, "1000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    settings = {"max_connections_per_ip": "1000", "log_level": "warning",
                "max_messages_per_session": "100000"}
    porter = Porter(plugins="rcpt_ok rcpthosts=rcpthosts\nqueue_discard\n", settings=settings,
                    workers=os.cpu_count() or 2).start()
    try:
        wait_port(sink_port)
        porter_pids = [porter.process.pid] + porter.worker_pids()
        print("%-12s %-6s %12s %14s %12s %14s %8s" % ("messages", "conc", "porter msg/s", "porter cpu ms",
                                                       "sink msg/s", "sink cpu ms", "ratio"))
        for concurrency in (1, 10, 100):
            p_rate, p_cpu = drive(porter.port, args.messages, args.size, concurrency, porter_pids)
            s_rate, s_cpu = drive(sink_port, args.messages, args.size, concurrency, [sink.pid])
            print("%-12d %-6d %12.0f %14.3f %12.0f %14.3f %8.2f" % (args.messages, concurrency, p_rate, p_cpu,
                                                                   s_rate, s_cpu, s_rate / p_rate))
    finally:
        porter.stop()
        porter.__exit__(None, None, None)
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_open_files(wanted):
    """The open-file limit raised to wanted (within the hard limit, or the hard limit too when
    root may); False, after saying why, when it cannot be."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        print("idle sessions: cannot raise the open-file limit to %d (hard %d)" % (wanted, hard))
        return False
    return True


def hold_idle(port, worker, count, paced=False, seconds=120, warm_up=20, source="127.0.0.1"):
    """Open count sessions to port (at most for seconds) and leave them idle: a burst opens
    them all, then reads the greetings; paced reads each greeting before the next connect.
    (opened, greeted, worker RSS in KB before, and half a second after); the sessions are
    closed before it returns. First warm_up sessions come and go, so that what a worker sets up
    once, on its first session (a store opened, a resolver's socket, a plugin's table), is not
    counted as what each session holds. The sessions come from source (a loopback address)."""
    for _ in range(warm_up):
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
            greeting(s)
    time.sleep(0.2)
    sockets = []
    greeted = 0
    try:
        base = rss_kb(worker)
        deadline = time.time() + seconds
        for _ in range(count):
            if time.time() > deadline:
                break
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10,
                                                    source_address=(source, 0)))
            if paced:
                greeted += greeting(sockets[-1])
        if not paced:
            greeted = sum(greeting(s) for s in sockets)
        time.sleep(0.5)
        return len(sockets), greeted, base, rss_kb(worker)
    finally:
        for s in sockets:
            s.close()


def greeting(s):
    """1 when the session's first reply is a 220, else 0."""
    try:
        return 1 if s.recv(512).startswith(b"220") else 0
    except OSError:
        return 0


def idle_sessions(args):
    if not raise_open_files(args.idle + 1000):
        return
    settings = {"max_connections_per_ip": str(args.idle + 10), "max_connections": str(args.idle + 10),
                "log_level": "warning", "greeting_timeout": "10m", "command_timeout": "10m"}
    porter = Porter(plugins="rcpt_ok rcpthosts=rcpthosts\nqueue_discard\n", settings=settings, workers=1).start()
    try:
        opened, greeted, base, held = hold_idle(porter.port, porter.worker_pids()[0], args.idle)
        print("idle sessions: %d open, %d greeted, worker RSS %.1f MB (%.1f MB before), %.2f KB per session"
              % (opened, greeted, held / 1024.0, base / 1024.0, (held - base) / max(1, opened)))
    finally:
        porter.stop()
        porter.__exit__(None, None, None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--idle", type=int, default=10000)
    args = parser.parse_args()
    throughput(args)
    idle_sessions(args)


if __name__ == "__main__":
    main()

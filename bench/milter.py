#!/usr/bin/python3
"""bench/milter.py - what milters cost Porter: messages/s with no milter, through one no-op
libmilter milter, through a milter that asks for every stage, and through milter.test's chain
of two milters with a native plugin between.

Porters run side by side on loopback ports, each with its own plugins file (all end in
rcpt_ok + queue_discard):
  none          no milter
  noop          tests/milter/noop_milter: libmilter with no callback, so it negotiates every
                SMFIP_NO* flag and gets only the macros and end of message
  noop-reuse    the same with reuse_connections=256 (SMFIC_QUIT_NC: the milter connection and
                its negotiation outlive the SMTP session)
  every         tests/milter/test_milter without actions: a callback for every stage, each
                answered continue (connect, helo, mail, rcpt, data, each header, end of
                headers, body, end of message: 13 round trips for smtp-source's message)
  every-reuse   the same with reuse_connections=256
  chain         milter a (adds X-A and Date) + check_basicheaders + milter b (adds X-B,
                changes X-A) (tests/integration/milter.test's two-milter chain)
Postfix's smtp-source drives each in turn (MESSAGES messages of SIZE bytes at concurrency
CONCURRENCY, one message per SMTP session as smtp-source does by default, so every message
also costs a milter connection and negotiation, unless reuse_connections= keeps them), for
ROUNDS rounds interleaved so that all setups see the same machine state. It prints messages/s and CPU milliseconds per message of
porter and of the milters for each round, the median per setup, and the throughput cost of
the milters against "none". The issue's target: one no-op milter costs at most 30%.
Figures only: nothing is asserted. Everything stays on 127.0.0.1 and unix sockets in a
temporary directory; every process started here is stopped by its PID.

Two CPU layouts are measured (--layout both, the default): "shared", where every process
(porter, smtp-source, the milters) runs on every CPU, so the milters' own CPU comes out of
Porter's throughput; and "pinned", where porter and smtp-source run on CPU 0 and the milters
on CPU 1, as on a server where milters have cores of their own: the cost shown is then
Porter's own work for the milter and the waits for its replies.

Usage: bench/milter.py [--messages 3000] [--size 4096] [--concurrency 100] [--rounds 3]
                       [--socket unix|inet] [--workers N] [--layout shared|pinned|both]
"""
import argparse
import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from harness import Porter, TOP_BUILDDIR, cpu_seconds, free_port, wait_port  # noqa: E402

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
TASKSET = shutil.which("taskset") or "/usr/bin/taskset"
TEST_MILTER = os.path.join(TOP_BUILDDIR, "tests", "milter", "test_milter")
NOOP_MILTER = os.path.join(TOP_BUILDDIR, "tests", "milter", "noop_milter")
WORK = tempfile.mkdtemp(prefix="porter-bench-milter-")
PROCESSES = []


def start_milter(name, args, kind, program=TEST_MILTER):
    """test_milter (or program) on a unix socket in WORK or on a loopback port; (process, socket= value)."""
    if kind == "unix":
        path = os.path.join(WORK, "%s.sock" % name)
        listen, spec = "unix:" + path, "unix:" + path
    else:
        port = free_port()
        listen, spec = "inet:%d@127.0.0.1" % port, "inet:127.0.0.1:%d" % port
    command = [program, listen] if program != TEST_MILTER else [program, "-s", listen] + args
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCESSES.append(process)
    deadline = time.time() + 10
    if kind == "unix":
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
    else:
        wait_port(port)
    return process, spec


def milter_line(name, spec, extra=""):
    return "milter name=%s socket=%s command_timeout=30 content_timeout=60%s\n" % (
        name, spec, " " + extra if extra else "")


def setups(kind):
    """[(label, plugins file text, milter processes)]"""
    tail = "rcpt_ok rcpthosts=rcpthosts\nqueue_discard\n"
    reuse = "reuse_connections=256"
    noop, noop_spec = start_milter("noop", [], kind, NOOP_MILTER)
    noop_r, noop_r_spec = start_milter("noop-reuse", [], kind, NOOP_MILTER)
    every, every_spec = start_milter("every", [], kind)
    every_r, every_r_spec = start_milter("every-reuse", [], kind)
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    a, a_spec = start_milter("a", ["-H", "X-A:from milter A", "-H", "Date:" + date], kind)
    b, b_spec = start_milter("b", ["-H", "X-B:from milter B", "-C", "X-A:1:changed by B"], kind)
    return [
        ("none", tail, []),
        ("noop", milter_line("noop", noop_spec) + tail, [noop]),
        ("noop-reuse", milter_line("noop", noop_r_spec, reuse) + tail, [noop_r]),
        ("every", milter_line("every", every_spec) + tail, [every]),
        ("every-reuse", milter_line("every", every_r_spec, reuse) + tail, [every_r]),
        ("chain", milter_line("a", a_spec) + "check_basicheaders\n" + milter_line("b", b_spec) + tail,
         [a, b]),
    ]


def preflight(porter, label):
    """One message by smtplib: it must be accepted, or the figures would measure refusals."""
    try:
        with smtplib.SMTP("127.0.0.1", porter.port, timeout=30) as client:
            client.ehlo("bench.example")
            body = ("From: <bench@example.org>\r\nTo: <bench@example.com>\r\nSubject: preflight\r\n"
                    "Date: %s\r\n\r\nhello\r\n" % time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                                                 time.gmtime()))
            refused = client.sendmail("bench@example.org", ["bench@example.com"], body)
            return not refused
    except (smtplib.SMTPException, OSError) as error:
        print("  %s: preflight message refused: %s" % (label, error))
        return False


def drive(porter, args, porter_pids, milter_pids, prefix):
    """smtp-source against porter: (messages/s, porter CPU ms/msg, milter CPU ms/msg, ok).
    prefix goes before the smtp-source command (taskset in the pinned layout)."""
    porter_before, milter_before = cpu_seconds(porter_pids), cpu_seconds(milter_pids)
    start = time.time()
    result = subprocess.run(prefix + [SMTP_SOURCE, "-s", str(args.concurrency), "-m", str(args.messages),
                             "-l", str(args.size), "-M", "bench.example", "-f", "bench@example.org",
                             "-t", "bench@example.com", "127.0.0.1:%d" % porter.port],
                            capture_output=True, text=True, timeout=900)
    elapsed = time.time() - start
    porter_cpu = (cpu_seconds(porter_pids) - porter_before) * 1000.0 / args.messages
    milter_cpu = (cpu_seconds(milter_pids) - milter_before) * 1000.0 / args.messages
    if result.returncode != 0:
        print("  smtp-source failed: %s" % (result.stderr.strip() or result.stdout.strip())[:300])
    return args.messages / elapsed, porter_cpu, milter_cpu, result.returncode == 0


def pin(pids, cpus):
    """Every thread of each process onto the CPU list cpus (taskset)."""
    for pid in pids:
        subprocess.run([TASKSET, "-a", "-p", "-c", cpus, str(pid)], stdout=subprocess.DEVNULL,
                       check=False)


def measure(porters, args, layout):
    """ROUNDS rounds over every setup in one CPU layout; prints the rounds and the medians.
    shared: everything on every CPU, as the kernel places it. pinned: porter and smtp-source
    on CPU 0, the milters on CPU 1, so that the milters' own CPU does not come out of
    Porter's share and the cost shown is Porter's work for the milter (and the waits)."""
    every_cpu = "0-%d" % ((os.cpu_count() or 1) - 1)
    prefix = []
    for _, porter, milters in porters:
        porter_pids = [porter.process.pid] + porter.worker_pids()
        pin(porter_pids, "0" if layout == "pinned" else every_cpu)
        pin([m.pid for m in milters], "1" if layout == "pinned" else every_cpu)
    if layout == "pinned":
        prefix = [TASKSET, "-c", "0"]
    print()
    print("layout %s: %s" % (layout, "porter + smtp-source on CPU 0, milters on CPU 1"
                             if layout == "pinned" else "all processes share all CPUs"))
    rates = {label: [] for label, _, _ in porters}
    cpu = {label: [] for label, _, _ in porters}
    print("%-6s %-12s %10s %15s %15s %4s" % ("round", "setup", "msg/s", "porter cpu ms",
                                             "milter cpu ms", "ok"))
    for round_number in range(1, args.rounds + 1):
        for label, porter, milters in porters:
            porter_pids = [porter.process.pid] + porter.worker_pids()
            rate, porter_cpu, milter_cpu, ok = drive(porter, args, porter_pids,
                                                     [m.pid for m in milters], prefix)
            if ok:
                rates[label].append(rate)
                cpu[label].append((porter_cpu, milter_cpu))
            print("%-6d %-12s %10.0f %15.3f %15.3f %4s" % (round_number, label, rate,
                                                          porter_cpu, milter_cpu,
                                                          "yes" if ok else "NO"))
    print()
    print("%-12s %10s %15s %15s %12s" % ("setup", "median/s", "porter cpu ms",
                                         "milter cpu ms", "cost"))
    base = statistics.median(rates["none"]) if rates["none"] else 0
    medians = {}
    for label, _, _ in porters:
        if not rates[label]:
            print("%-12s %10s" % (label, "failed"))
            continue
        rate = statistics.median(rates[label])
        porter_cpu = statistics.median(c[0] for c in cpu[label])
        milter_cpu = statistics.median(c[1] for c in cpu[label])
        medians[label] = (rate, porter_cpu, milter_cpu)
        cost = "%.1f%%" % (100.0 * (1 - rate / base)) if base and label != "none" else "-"
        print("%-12s %10.0f %15.3f %15.3f %12s" % (label, rate, porter_cpu, milter_cpu, cost))
    if not base:
        return
    print()
    machine_ms = (os.cpu_count() or 1) * 1000.0 / base  # CPU time per message without milters
    for label in ("noop", "noop-reuse", "every", "every-reuse"):
        if label in medians:
            rate, porter_cpu, milter_cpu = medians[label]
            print("[%s] %-12s costs %5.1f%% of the throughput without milters (target for one "
                  "no-op milter: at most 30%%); porter %.3f ms CPU/message (%.3f without "
                  "milters), the milter process %.3f ms"
                  % (layout, label, 100.0 * (1 - rate / base), porter_cpu, medians["none"][1],
                     milter_cpu))
            if layout == "shared":
                print("[%s] %-12s with Porter's side free, the milter process's own CPU "
                      "alone would cost %.1f%% here (%.3f ms added to %.3f ms of machine time "
                      "per message)" % (layout, label,
                                        100.0 * milter_cpu / (machine_ms + milter_cpu),
                                        milter_cpu, machine_ms))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--socket", choices=("unix", "inet"), default="unix")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--layout", choices=("shared", "pinned", "both"), default="both")
    args = parser.parse_args()
    for program in (TEST_MILTER, NOOP_MILTER):
        if not os.access(program, os.X_OK):
            sys.exit("bench/milter.py: build %s first (make check, or make %s)"
                     % (program, os.path.relpath(program, TOP_BUILDDIR)))
    settings = {"max_connections_per_ip": "1000", "max_connections": "2000", "log_level": "warning",
                "max_messages_per_session": "100000"}
    porters = []
    try:
        for label, plugins, milters in setups(args.socket):
            porter = Porter(plugins=plugins, settings=settings, workers=args.workers).start()
            porters.append((label, porter, milters))
            deadline = time.time() + 10
            while len(porter.worker_pids()) < args.workers and time.time() < deadline:
                time.sleep(0.05)  # the master forks its workers after it listens
        print("%d messages of %d bytes, concurrency %d, %d porter workers, milters on %s sockets, "
              "%d CPUs" % (args.messages, args.size, args.concurrency, args.workers, args.socket,
                           os.cpu_count() or 0))
        for label, porter, _ in porters:
            if not preflight(porter, label):
                print("  %s: the setup refuses mail; its figures would mean nothing" % label)
        layouts = ("shared", "pinned") if args.layout == "both" else (args.layout,)
        for layout in layouts:
            if layout == "pinned" and (os.cpu_count() or 1) < 2:
                print("pinned layout skipped: it needs 2 CPUs")
                continue
            measure(porters, args, layout)
    finally:
        for _, porter, _ in porters:
            porter.stop()
            porter.__exit__(None, None, None)
        for process in PROCESSES:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in PROCESSES:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

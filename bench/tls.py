#!/usr/bin/python3
"""tls.py - TLS figures of a real porter: full STARTTLS handshakes per second, and messages per
second over STARTTLS, both at a given concurrency (default 100), printed; nothing is asserted.

Usage: bench/tls.py [--seconds S] [--concurrency N] [--processes P] [--workers W]
                    [--messages M] [--key rsa|ec]
  seconds      length of each measurement (default 10)
  concurrency  client connections open at once, over all client processes (default 100)
  processes    client processes (asyncio in each; default 2) so the client is not the limit
  workers      porter worker processes (default 1)
  messages     messages per session in the message run (default 20)
  key          the server key: RSA 2048 (default; what most MX hosts use) or EC P-256

Needs a built tree (./porter, native-plugins/rcpt_ok.so and queue_discard.so; top_builddir in
the environment overrides the tree). Certificates are made with openssl in a temporary
directory (tests/integration/certs.py); porter listens on a free loopback port and is stopped
by its PID at the end. Handshake run: connect, 220, EHLO, STARTTLS, TLS handshake (no session
reuse: every handshake is a full one), EHLO, QUIT. Message run: one STARTTLS per session, then
MAIL/RCPT/DATA of a 2 kB message, M times, then QUIT; queue_discard accepts every message.
The client runs on the same machine and competes with porter for the CPU: the figures are a
floor for porter and tell most when compared between runs on the same machine.
"""
import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("top_builddir", TOP)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import certs  # noqa: E402
from daemons import free_port  # noqa: E402

BODY = (b"From: bench@example.org\r\nTo: sink@example.com\r\nSubject: tls bench\r\n\r\n"
        + b"x" * 76 + b"\r\n") * 24



async def read_reply(reader):
    """One whole SMTP reply; returns its code."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


async def command(reader, writer, line, want):
    writer.write(line)
    code = await read_reply(reader)
    if code != want:
        raise RuntimeError("%r got %d, want %d" % (line, code, want))


async def starttls_session(port, context):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if await read_reply(reader) != 220:
        raise RuntimeError("no greeting")
    await command(reader, writer, b"EHLO bench.example\r\n", 250)
    await command(reader, writer, b"STARTTLS\r\n", 220)
    await writer.start_tls(context, server_hostname="mail.porter.test")
    await command(reader, writer, b"EHLO bench.example\r\n", 250)
    return reader, writer


async def close_session(reader, writer):
    try:
        await command(reader, writer, b"QUIT\r\n", 221)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


async def handshake_loop(port, context, deadline, counts):
    while time.monotonic() < deadline:
        try:
            reader, writer = await starttls_session(port, context)
            await close_session(reader, writer)
            counts["done"] += 1
        except (OSError, RuntimeError, ssl.SSLError, ConnectionError):
            counts["errors"] += 1


async def message_loop(port, context, deadline, counts, per_session):
    while time.monotonic() < deadline:
        try:
            reader, writer = await starttls_session(port, context)
            for _ in range(per_session):
                if time.monotonic() >= deadline:
                    break
                await command(reader, writer, b"MAIL FROM:<bench@example.org>\r\n", 250)
                await command(reader, writer, b"RCPT TO:<sink@example.com>\r\n", 250)
                await command(reader, writer, b"DATA\r\n", 354)
                writer.write(BODY + b".\r\n")
                if await read_reply(reader) != 250:
                    raise RuntimeError("message refused")
                counts["done"] += 1
            await close_session(reader, writer)
        except (OSError, RuntimeError, ssl.SSLError, ConnectionError):
            counts["errors"] += 1


def client_process(mode, port, ca, tasks, seconds, per_session, start_at, queue):
    async def run():
        context = certs.client_context(ca)
        context.maximum_version = ssl.TLSVersion.TLSv1_3
        counts = {"done": 0, "errors": 0}
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + seconds
        if mode == "handshakes":
            jobs = [handshake_loop(port, context, deadline, counts) for _ in range(tasks)]
        else:
            jobs = [message_loop(port, context, deadline, counts, per_session) for _ in range(tasks)]
        await asyncio.gather(*jobs)
        queue.put((counts["done"], counts["errors"]))
    asyncio.run(run())


def measure(mode, port, ca, args):
    queue = multiprocessing.Queue()
    start_at = time.time() + 1.0
    shares = [args.concurrency // args.processes + (1 if i < args.concurrency % args.processes else 0)
              for i in range(args.processes)]
    processes = [multiprocessing.Process(target=client_process,
                                         args=(mode, port, ca, share, args.seconds, args.messages,
                                               start_at, queue))
                 for share in shares if share > 0]
    for process in processes:
        process.start()
    done = errors = 0
    for _ in processes:
        d, e = queue.get(timeout=args.seconds + 120)
        done += d
        errors += e
    for process in processes:
        process.join(timeout=30)
    return done, errors


def main():
    parser = argparse.ArgumentParser(description="TLS handshakes/s and messages/s over STARTTLS")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--key", choices=("rsa", "ec"), default="rsa")
    args = parser.parse_args()
    porter = os.path.join(BUILD, "porter")
    plugins = os.path.join(BUILD, "native-plugins")
    for path in (porter, os.path.join(plugins, "rcpt_ok.so"), os.path.join(plugins, "queue_discard.so")):
        if not os.path.exists(path):
            sys.exit("tls.py: build %s first (make)" % path)
    work = tempfile.mkdtemp(prefix="porter-bench-tls-")
    process = None
    try:
        made = certs.make(os.path.join(work, "certs"))
        cert, key = (made["server"], made["server_key"]) if args.key == "rsa" else \
            (made["renewed"], made["renewed_key"])
        port = free_port()
        with open(os.path.join(work, "porter.conf"), "w") as f:
            f.write("hostname = bench.porter.test\nlisten = 127.0.0.1:%d smtp\nworkers = %d\n"
                    "plugin_dir = %s\nspool_dir = %s\nlog_level = warning\n"
                    "max_connections_per_ip = 100000\nmax_connections = 100000\n"
                    "tls_cert = %s\ntls_key = %s\n"
                    % (port, args.workers, plugins, os.path.join(work, "spool"), cert, key))
        with open(os.path.join(work, "plugins"), "w") as f:
            f.write("rcpt_ok rcpthosts=rcpthosts\nqueue_discard\n")
        with open(os.path.join(work, "rcpthosts"), "w") as f:
            f.write("example.com\n")
        log = open(os.path.join(work, "porter.log"), "wb")
        process = subprocess.Popen([porter, "run", "-f", "-c", work], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        print("porter %s, %d worker(s), %s key, client: %d connections in %d processes, %.0f s per run"
              % (porter, args.workers, "RSA 2048" if args.key == "rsa" else "EC P-256",
                 args.concurrency, args.processes, args.seconds))
        done, errors = measure("handshakes", port, made["ca"], args)
        print("STARTTLS handshakes: %d in %.0f s = %.1f/s (full handshakes, TLS 1.3), errors %d"
              % (done, args.seconds, done / args.seconds, errors))
        done, errors = measure("messages", port, made["ca"], args)
        print("messages over STARTTLS: %d in %.0f s = %.1f/s (%d per session, 2 kB), errors %d"
              % (done, args.seconds, done / args.seconds, args.messages, errors))
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

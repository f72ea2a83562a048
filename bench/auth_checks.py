#!/usr/bin/python3
"""bench/auth_checks.py - what DKIM verification, DMARC and DKIM signing cost per message.

Starts dnsmasq on a loopback port (a 2048-bit RSA DKIM key made by opendkim-genkey, an Ed25519
key made by openssl, a DMARC record, TTL 300) and one porter worker per chain, and drives each
with CONCURRENCY clients sending MESSAGES messages in total (python3-dkim signs the test message
once beforehand). Chains, all ending in queue_discard:
    baseline        rcpt_ok only
    verify+dmarc    dkim_verify + dmarc (DNS answers from the resolver's cache after the first)
    verify+dmarc, no cache   the same with dns_cache_size = 0 (every message asks dnsmasq)
    sign rsa-2048   dkim_sign with the RSA key (the client is a relay client)
    sign ed25519    dkim_sign with the Ed25519 key
Prints messages/s and the worker's CPU milliseconds per message. No assertions: figures only.
Everything stays on 127.0.0.1; every process started here is stopped by PID.

Usage: bench/auth_checks.py [--messages 2000] [--concurrency 10]
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from harness import Porter, cpu_seconds  # noqa: E402
from authdns import Dnsmasq, ed25519_key, keep_dir, rsa_key  # noqa: E402

import dkim  # noqa: E402

MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.com>\r\nSubject: bench\r\n"
           b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.org>\r\n\r\n" +
           b"A line of a message body, repeated to make about four kilobytes.\r\n" * 60)


def client(port, count, data, errors):
    """One connection sending count messages."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        f = s.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if not line or line[3:4] != b"-":
                    return line

        reply()
        s.sendall(b"EHLO bench.example\r\n")
        reply()
        for _ in range(count):
            s.sendall(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
            for _ in range(3):
                reply()
            s.sendall(data + b".\r\n")
            if not reply().startswith(b"250"):
                errors.append(1)
        s.sendall(b"QUIT\r\n")
        s.close()
    except OSError:
        errors.append(1)


def drive(p, data, messages, concurrency):
    """(messages/s, worker CPU ms per message, errors)."""
    workers = p.worker_pids()
    per_client = max(1, messages // concurrency)
    errors = []
    threads = [threading.Thread(target=client, args=(p.port, per_client, data, errors))
               for _ in range(concurrency)]
    before = cpu_seconds(workers)
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.time() - start
    total = per_client * concurrency
    return total / elapsed, (cpu_seconds(workers) - before) * 1000 / total, len(errors)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="porter-bench-auth-")
    rsa, rsa_record = rsa_key(directory, "sel", "example.org", 2048)
    ed, ed_record, _ = ed25519_key(directory, "ed")
    with open(rsa, "rb") as f:
        signed = dkim.sign(MESSAGE, b"sel", b"example.org", f.read(),
                           include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
                           canonicalize=(b"relaxed", b"relaxed")) + MESSAGE
    dns = Dnsmasq(txt={"sel._domainkey.example.org": [rsa_record], "ed._domainkey.example.org": [ed_record],
                       "_dmarc.example.org": ["v=DMARC1; p=reject"]},
                  domains=("example", "org"), ttl=300)
    dns.start()
    tail = "rcpt_ok rcpthosts=rcpthosts relayclients=%s\nqueue_discard\n"
    chains = [
        ("baseline", tail % "192.0.2.0/24", {}, signed),
        ("verify+dmarc", "dkim_verify\ndmarc\n" + tail % "192.0.2.0/24", {}, signed),
        ("verify+dmarc, no cache", "dkim_verify\ndmarc\n" + tail % "192.0.2.0/24",
         {"dns_cache_size": "0"}, signed),
        ("sign rsa-2048", tail % "127.0.0.0/8" + "", {}, MESSAGE, "example.org sel %s" % rsa),
        ("sign ed25519", tail % "127.0.0.0/8", {}, MESSAGE, "example.org ed %s" % ed),
    ]
    print("%-26s %10s %14s %7s" % ("chain", "msgs/s", "cpu ms/msg", "errors"))
    try:
        for entry in chains:
            name, plugins, extra, data = entry[:4]
            if len(entry) > 4:
                plugins = "dkim_sign keytable=keytable\n" + plugins
            settings = {"dns_servers": "127.0.0.1:%d" % dns.port, "workers": "1",
                        "max_connections_per_ip": "1000", "log_level": "warning"}
            settings.update(extra)
            p = Porter(plugins=plugins, settings=settings)
            if len(entry) > 4:
                with open(os.path.join(p.dir, "keytable"), "w") as f:
                    f.write(entry[4] + "\n")
            with p:
                drive(p, data, args.concurrency * 5, args.concurrency)  # warm up
                rate, cpu, errors = drive(p, data, args.messages, args.concurrency)
            print("%-26s %10.0f %14.3f %7d" % (name, rate, cpu, errors))
            sys.stdout.flush()
    finally:
        dns.stop()
        keep_dir(directory)


if __name__ == "__main__":
    main()

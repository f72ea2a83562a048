#!/usr/bin/python3
"""bench/milter_listener.py - what Porter-as-milter costs Postfix: messages/s that Postfix's
smtpd accepts with no milter, with Porter's milter listener running an empty chain, with Porter
running spf + dkim_verify + dmarc, and (where Debian's opendkim is installed) with opendkim as
the same kind of separate verifying milter, all in the same run.

Setups, each a private Postfix on a loopback port (smtpd_milters = inet:127.0.0.1:PORT,
milter_default_action = tempfail, every message discarded by the discard transport after it
is queued, so the figure is smtpd + cleanup + the milter, not delivery):
  postfix      no milter
  porter-empty Porter's milter listener, an empty chain (it negotiates every SMFIP_NO* flag:
               only the end of message is sent)
  porter-chain spf + dkim_verify + dmarc (DNS from a dnsmasq on a loopback port)
  opendkim     opendkim -x (Mode v), when /usr/sbin/opendkim exists (Debian's opendmarc is not
               installed here, so the separate-milter side is opendkim alone)
Postfix's smtp-source drives each (MESSAGES messages of SIZE bytes at CONCURRENCY, one message
per SMTP session, so each message is also one milter connection), ROUNDS rounds interleaved so
that every setup sees the same machine. It prints messages/s and Porter's CPU ms per message
for each round, the medians, and the cost against Postfix alone. The issue's target: an empty
chain costs at most 15% of Postfix's own throughput. Figures only: nothing is asserted.
Everything stays on 127.0.0.1; every process started here is stopped by PID (Postfix with
postfix -c DIR stop).

Usage: bench/milter_listener.py [--messages 1000] [--size 4096] [--concurrency 20] [--rounds 3]
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
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from harness import Porter, cpu_seconds, free_port, wait_port  # noqa: E402
from downstream import Postfix  # noqa: E402
from authdns import Dnsmasq  # noqa: E402

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
OPENDKIM = "/usr/sbin/opendkim"
WORK = tempfile.mkdtemp(prefix="porter-bench-milter-listener-")


def postfix_with(milter_port):
    settings = {"virtual_transport": "discard", "milter_default_action": "tempfail",
                "smtpd_client_connection_count_limit": "0", "smtpd_client_connection_rate_limit": "0",
                "default_process_limit": "200"}
    if milter_port:
        settings["smtpd_milters"] = "inet:127.0.0.1:%d" % milter_port
    return Postfix(users=("bench",), settings=settings)


def porter_milter(plugins, dns_port):
    port = free_port()
    p = Porter(plugins=plugins, settings={"listen": "127.0.0.1:%d milter" % port, "log_level": "warning",
                                          "dns_servers": "127.0.0.1:%d" % dns_port})
    p.port = port
    return p


def start_opendkim():
    """opendkim verifying on a loopback port with our DNS; (process, port) or (None, 0)."""
    if not os.access(OPENDKIM, os.X_OK):
        return None, 0
    port = free_port()
    conf = os.path.join(WORK, "opendkim.conf")
    with open(conf, "w") as f:
        # no Nameservers: libopendkim cannot take a port; smtp-source's mail carries no
        # signature, so opendkim looks nothing up (as dkim_verify, which finds none either)
        f.write("Mode v\nSocket inet:%d@127.0.0.1\nSyslog no\nUserID root\nPidFile %s\n"
                % (port, os.path.join(WORK, "opendkim.pid")))
    process = subprocess.Popen([OPENDKIM, "-f", "-x", conf], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    if not wait_port(port, timeout=10):
        process.kill()
        print("# opendkim did not start: %s" % process.stderr.read().decode()[-300:])
        return None, 0
    return process, port


def drive(postfix, args, pids):
    before = cpu_seconds(pids)
    start = time.time()
    result = subprocess.run([SMTP_SOURCE, "-s", str(args.concurrency), "-m", str(args.messages),
                             "-l", str(args.size), "-M", "bench.example", "-f", "bench@example.org",
                             "-t", "bench@example.com", "127.0.0.1:%d" % postfix.port],
                            capture_output=True, text=True, timeout=900)
    elapsed = time.time() - start
    cpu = (cpu_seconds(pids) - before) * 1000.0 / args.messages
    ok = result.returncode == 0 and "451" not in result.stderr
    if not ok:
        print("  smtp-source: %s" % (result.stderr.strip() or result.stdout.strip())[:300])
    return args.messages / elapsed, cpu, ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dns = Dnsmasq(txt={"example.org": ["v=spf1 ip4:127.0.0.0/8 -all"],
                       "_dmarc.example.org": ["v=DMARC1; p=none"]})
    started = []
    try:
        dns.start()
        started.append(dns)
        setups = []
        pf = postfix_with(0).start()
        started.append(pf)
        setups.append(("postfix", pf, []))
        for name, plugins in (("porter-empty", ""),
                              ("porter-chain", "spf\ndkim_verify\ndmarc\n")):
            p = porter_milter(plugins, dns.port).start()
            started.append(p)
            pfm = postfix_with(p.port).start()
            started.append(pfm)
            setups.append((name, pfm, p.worker_pids()))
        opendkim, port = start_opendkim()
        if opendkim is not None:
            pfo = postfix_with(port).start()
            started.append(pfo)
            setups.append(("opendkim", pfo, [opendkim.pid]))
        else:
            print("# opendkim is not installed: no opendkim figure")
        results = {name: [] for name, _, _ in setups}
        print("# %d messages of %d bytes at concurrency %d, %d rounds" %
              (args.messages, args.size, args.concurrency, args.rounds))
        for round_number in range(args.rounds):
            for name, postfix, pids in setups:
                rate, cpu, ok = drive(postfix, args, pids)
                results[name].append((rate, cpu, ok))
                print("round %d %-13s %8.1f msg/s  milter CPU %6.3f ms/msg%s" %
                      (round_number + 1, name, rate, cpu, "" if ok else "  (failures)"))
        base = statistics.median(r for r, _, _ in results["postfix"])
        print("# medians")
        for name, _, _ in setups:
            rate = statistics.median(r for r, _, _ in results[name])
            cpu = statistics.median(c for _, c, _ in results[name])
            cost = (1 - rate / base) * 100 if base else 0
            print("%-13s %8.1f msg/s  milter CPU %6.3f ms/msg  cost vs Postfix alone %5.1f%%" %
                  (name, rate, cpu, cost))
        if opendkim is not None:
            opendkim.send_signal(signal.SIGTERM)
            opendkim.wait(timeout=10)
    finally:
        for thing in reversed(started):
            thing.stop()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

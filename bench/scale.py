#!/usr/bin/python3
"""scale.py - messages/s through HAProxy (PROXY v2, option smtpchk) with one porter node and
with two, in the same run, relaying to smtp-sink; the nodes share one redis-server (store =
redis://...). Also the CPU the porter processes spent per message and the Redis commands per
message: nodes share nothing per message but the Redis calls their plugin chain makes, so a
second node must not raise either.

Usage: bench/scale.py [--messages N] [--sessions N] [--workers N] [--rounds N] [--chain bare|policy]
  --messages  messages per run (default 3000)
  --sessions  parallel smtp-source sessions (default 20)
  --workers   worker processes per node (default 1: one node is one core's worth)
  --rounds    runs per configuration; the median is printed (default 3)
  --chain     bare: rcpt_ok + queue_smtp; policy: greylist + ratelimit before them, on the
              shared Redis (needs those plugins; every triplet is whitelisted first)

Needs a built tree, Debian's haproxy and redis-server, Postfix's smtp-source and smtp-sink.
Load: smtp-source, one message of 4 KB per connection, one recipient. Everything runs on
127.0.0.1; every process started here is stopped by PID. Prints figures; asserts nothing.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
os.environ.setdefault("top_builddir", TOP)
from harness import Porter, cpu_seconds, free_port, wait_port  # noqa: E402
from scalelib import HAProxy  # noqa: E402
from storelib import RedisServer  # noqa: E402

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
TIMEOUT = 300


def chain(kind, sink_port):
    relay = "rcpt_ok rcpthosts=rcpthosts\nqueue_smtp host=127.0.0.1:%d tls=none pool=64\n" % sink_port
    if kind == "bare":
        return relay
    return ("greylist black=1s\nratelimit messages=1000000/1h connections=1000000/1m\n" + relay)


def redis_commands(redis):
    """Commands the Redis server has processed so far (INFO stats)."""
    for line in redis.command("INFO", "stats").splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":", 1)[1])
    return 0


def run(nodes, args, redis, sink_port):
    """One run: (messages/s, porter CPU ms per message, Redis commands per message) or Nones."""
    porters = []
    try:
        for n in range(nodes):
            p = Porter(plugins=chain(args.chain, sink_port), workers=args.workers, settings={
                "proxy_sources": "127.0.0.1/32", "store": redis.url(2), "log_level": "warning",
                "max_connections_per_ip": "5000", "max_connections": "5000"})
            p.settings["listen"] = "127.0.0.1:%d smtp proxy_protocol" % p.port
            p.write_config(chain(args.chain, sink_port))
            porters.append(p.start())
        servers = [("n%d" % i, p.port) for i, p in enumerate(porters)]
        with HAProxy(servers, proxy="v2", inter="1s") as h:
            for name, _ in servers:
                if not h.wait_state(name, "UP"):
                    sys.stderr.write("scale.py: %s never came up\n" % name)
                    return None, None, None
            pids = [p.process.pid for p in porters] + [pid for p in porters for pid in p.worker_pids()]
            if args.chain == "policy":
                # whitelist the one triplet smtp-source uses, then wait out the black period
                source(h.port, 1, 1)
                time.sleep(1.5)
                source(h.port, 1, 1)
            cpu_before = cpu_seconds(pids)
            commands_before = redis_commands(redis)
            start = time.time()
            ok = source(h.port, args.sessions, args.messages)
            took = time.time() - start
            cpu = cpu_seconds(pids) - cpu_before
            commands = redis_commands(redis) - commands_before - 1  # our own INFO
        if not ok:
            return None, None, None
        return args.messages / took, 1000.0 * cpu / args.messages, commands / args.messages
    finally:
        for p in porters:
            p.__exit__(None, None, None)


def source(port, sessions, messages):
    r = subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", "4096",
                        "-M", "bench.example", "-f", "sender@bench.example", "-t",
                        "rcpt@example.com", "127.0.0.1:%d" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    if r.returncode != 0:
        sys.stderr.write("smtp-source failed: %s\n" % r.stdout.decode(errors="replace")[-300:])
    return r.returncode == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chain", choices=("bare", "policy"), default="bare")
    args = parser.parse_args()
    for program in (SMTP_SOURCE, SMTP_SINK, os.path.join(TOP, "porter")):
        if not os.access(program, os.X_OK):
            sys.exit("scale.py: %s is missing" % program)
    sink_port = free_port()
    sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", "-m", "1000", "127.0.0.1:%d" % sink_port,
                             "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    figures = {1: [], 2: []}
    try:
        if not wait_port(sink_port):
            sys.exit("scale.py: smtp-sink did not start")
        with RedisServer() as redis:
            for round_number in range(args.rounds):
                for nodes in (1, 2):
                    rate, cpu, commands = run(nodes, args, redis, sink_port)
                    print("  %d node%s  %5d msgs  %s msg/s  %s porter CPU ms/msg  %s Redis "
                          "commands/msg" % (nodes, "s" if nodes > 1 else " ", args.messages,
                                            "%6.0f" % rate if rate else "FAILED",
                                            "%.3f" % cpu if cpu else "-",
                                            "%.2f" % commands if commands is not None else "-"))
                    sys.stdout.flush()
                    if rate:
                        figures[nodes].append((rate, cpu, commands))
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    print()
    print("chain=%s, %d worker(s) per node, %d sessions, 4 KB messages, %d cores" % (
        args.chain, args.workers, args.sessions, os.cpu_count()))
    medians = {}
    for nodes in (1, 2):
        if figures[nodes]:
            medians[nodes] = tuple(statistics.median(f[i] for f in figures[nodes]) for i in range(3))
            print("%d node%s: %6.0f msg/s, %.3f porter CPU ms/msg, %.2f Redis commands/msg" % (
                nodes, "s" if nodes > 1 else " ", *medians[nodes]))
    if 1 in medians and 2 in medians:
        print("ratio 2 nodes / 1 node: throughput %.2fx, CPU per message %.2fx, Redis commands "
              "per message %s" % (medians[2][0] / medians[1][0], medians[2][1] / medians[1][1],
                                  "%.2fx" % (medians[2][2] / medians[1][2]) if medians[1][2] else
                                  "0 and %.2f" % medians[2][2]))


if __name__ == "__main__":
    main()

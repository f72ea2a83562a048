#!/usr/bin/python3
"""bench/policy.py - what the policy plugins on the store cost: messages/s of the bare chain
(rcpt_ok + queue_discard) next to the same chain with dnsbl (answers cached), greylist
(whitelisted triplet) and ratelimit (limits never reached) in front, on LMDB and on Redis
(over TCP, as gateways sharing it reach it, and over its unix socket),
measured in the same run with Postfix's smtp-source (MESSAGES messages of SIZE bytes at
concurrency 1 and 10; one message per connection, so every connect, MAIL, RCPT and
disconnect counts), the chains interleaved for ROUNDS rounds on a shared machine (each round
runs every chain once, back to back, starting with a different chain each round). A chain's
figures: its best round (messages/s and the ratio of best rounds, "vs bare"), and the median
of its per-round ratios to the bare chain's round ("paired": a round's chains ran within
seconds of each other, so a slow spell of the machine touches both sides of its ratio);
every round is printed, and the CPU milliseconds per message of Porter (and of redis-server
for the Redis chains), the least of the rounds. Then the idle memory per session
of one worker, bare and with the policy chain, measured as bench/smtp.py does (RSS growth per
greeted session, after 20 sessions that came and went: a worker's one-time set-up is not per
session), for a burst of connections and for connections paced by their greetings; the policy
chain from the listed client (127.0.0.1; action=log keeps nothing once the listing is logged),
from a client no list names (127.0.0.2), and with dnsbl's action=deny from the listed client
(its listing is kept for the refusal at RCPT).

dnsmasq (a private instance on a loopback port) serves the DNS list; the client is listed
there (A and TXT, as a real list answers) with a long TTL and dnsbl runs with action=log, so
every message takes the cached answers. redis-server is a private instance too. Everything stays on 127.0.0.1; every process
started here is stopped by PID.

Usage: bench/policy.py [--messages 3000] [--size 4096] [--idle 2000] [--rounds 7] [--idle-only]
"""
import argparse
import os
import smtplib
import statistics
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from authdns import Dnsmasq  # noqa: E402
from harness import Porter  # noqa: E402
from smtp import drive, hold_idle, raise_open_files  # noqa: E402
from storelib import RedisServer  # noqa: E402

BARE = "rcpt_ok rcpthosts=rcpthosts\nqueue_discard\n"
POLICY = ("dnsbl zones=bl.example action=log\n"
          "greylist black=1s grey=1h white=36d\n"
          "ratelimit connections=10000000/1m messages=10000000/1h recipients=10000000/1h "
          "concurrent=100000\n" + BARE)


def whitelist(p):
    """Let the benchmark's one triplet through greylisting: a first try, then a retry after
    the black period (bounded)."""
    for _ in range(20):
        with smtplib.SMTP("127.0.0.1", p.port, timeout=10) as s:
            s.ehlo("bench.example")
            s.mail("bench@example.org")
            code, _ = s.rcpt("bench@example.com")
        if code == 250:
            return True
        time.sleep(0.3)
    return False


def start(plugins, settings, workers, whitelisted=True):
    base = {"max_connections_per_ip": "100000", "max_connections": "100000", "log_level": "warning",
            "max_messages_per_session": "100000"}
    base.update(settings)
    p = Porter(plugins=plugins, settings=base, workers=workers).start()
    if whitelisted and plugins is not BARE and not whitelist(p):
        print("  the triplet did not pass greylisting; figures below are of 451s")
    return p


def stop(p):
    p.stop()
    p.__exit__(None, None, None)


def throughput(args, dns_settings, redis):
    """Each chain ROUNDS times, interleaved, one daemon per chain kept for all rounds (the
    machine is shared: the best round of each is the figure; the spread is printed too)."""
    workers = os.cpu_count() or 2
    chains = [("bare", BARE, {}),
              ("policy/lmdb", POLICY, dns_settings),
              ("policy/redis", POLICY, dict(dns_settings, store=redis.url(0))),
              ("policy/redis-unix", POLICY,
               dict(dns_settings, store="redis+unix://%s?db=1" % redis.socket_path))]
    daemons = [start(plugins, settings, workers) for _, plugins, settings in chains]
    try:
        print("%-17s %-5s %10s %8s %7s %11s  %s" % ("chain", "conc", "best msg/s", "vs bare",
                                                   "paired", "cpu ms/msg", "rounds msg/s"))
        for concurrency in (1, 10):
            rates = [[] for _ in chains]
            cpus = [[] for _ in chains]
            for round_number in range(args.rounds):
                for k in range(len(chains)):
                    i = (round_number + k) % len(chains)
                    p = daemons[i]
                    pids = [p.process.pid] + p.worker_pids()
                    if "store" in chains[i][2]:
                        pids.append(redis.process.pid)
                    rate, cpu = drive(p.port, args.messages, args.size, concurrency, pids)
                    rates[i].append(rate)
                    cpus[i].append(cpu)
            bare = max(rates[0])
            for i, (name, _, _) in enumerate(chains):
                best = max(rates[i])
                paired = statistics.median(r / b for r, b in zip(rates[i], rates[0]))
                print("%-17s %-5d %10.0f %8.2f %7.2f %11.3f  %s" % (
                    name, concurrency, best, best / bare, paired, min(cpus[i]),
                    "/".join("%.0f" % r for r in rates[i])))
    finally:
        for p in daemons:
            stop(p)


def idle(args, plugins, settings, label, paced, source="127.0.0.1"):
    """Idle sessions of one worker: RSS growth per greeted session. A burst opens them all at
    once (their connect hooks' lookups and store requests all in flight together: the heap's
    high-water mark); paced reads each greeting before the next connect (what the sessions
    hold once idle)."""
    if not raise_open_files(args.idle + 1000):
        return
    p = start(plugins, dict(settings, greeting_timeout="10m", command_timeout="10m"), 1,
              whitelisted=False)  # idle sessions never reach RCPT
    try:
        opened, greeted, base, held = hold_idle(p.port, p.worker_pids()[0], args.idle, paced, 60,
                                                source=source)
        print("idle sessions %-36s %-6s %d open, %d greeted, %.2f KB per session" %
              (label + ":", "paced" if paced else "burst", opened, greeted,
               (held - base) / max(1, opened)))
    finally:
        stop(p)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--idle-only", action="store_true", help="only the idle memory figures")
    args = parser.parse_args()
    with Dnsmasq(hosts={"1.0.0.127.bl.example": ["127.0.0.2"]},
                 txt={"1.0.0.127.bl.example": ["Listed for the benchmark"]}, ttl=3600) as dns, \
            RedisServer() as redis:
        dns_settings = {"dns_servers": "127.0.0.1:%d" % dns.port}
        if not args.idle_only:
            throughput(args, dns_settings, redis)
        for paced in (False, True):
            idle(args, BARE, {}, "bare", paced)
            idle(args, POLICY, dns_settings, "policy/lmdb", paced)
            idle(args, POLICY, dns_settings, "policy/lmdb, client not listed", paced, "127.0.0.2")
            idle(args, POLICY.replace("action=log", "action=deny"), dns_settings,
                 "policy/lmdb, action=deny, listed", paced)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""bench/store.py - what one store request costs in the core (gateway/store.c, store_redis.c,
store_lmdb.c), apart from the SMTP session and the plugins: bench/store_bench (built by make)
sends COUNT requests (a rate counter's increment, then a get, as the policy chain does) through
store_submit at concurrency 1 and 10, on LMDB, on a private redis-server over TCP and over its
unix socket. Next to it, redis-benchmark's round trip for a plain GET and for EVALSHA of the
store's increment script on the same server: the floor a client library can reach.

Per line: the best of ROUNDS rounds (the machine is shared): requests/s, microseconds per
request (at concurrency 1: the round trip), and the CPU microseconds per request of the
benchmark's own process (the core's share; redis-server's is not in it). Figures only: nothing
is asserted. Everything stays on 127.0.0.1 and in a temporary directory; redis-server is
stopped by its PID.

Usage: bench/store.py [--count 20000] [--rounds 3]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from storelib import RedisServer  # noqa: E402

BENCH = os.path.join(TOP, "bench", "store_bench")
INCREMENT = ("local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
             "local t = redis.call('PTTL', KEYS[1]) "
             "if t < 0 and tonumber(ARGV[2]) > 0 then "
             "redis.call('PEXPIRE', KEYS[1], ARGV[2]) t = tonumber(ARGV[2]) end return {v, t}")


def store_bench(store, count, concurrency, spool):
    """One run; its figures as a dict of floats."""
    out = subprocess.run([BENCH, store, str(count), str(concurrency), spool], capture_output=True,
                         text=True, timeout=300)
    fields = dict(re.findall(r"(\w+)=([\d.]+)", out.stdout))
    if out.returncode != 0 or "rate" not in fields:
        print("  store_bench %s failed: %s %s" % (store, out.stdout.strip(), out.stderr.strip()[:300]))
        return None
    return {k: float(v) for k, v in fields.items()}


def redis_benchmark(redis, count, *command):
    """redis-benchmark -c 1: microseconds per round trip of one command."""
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(redis.port), "-c", "1",
                          "-n", str(count), "-q"] + list(command), capture_output=True, text=True,
                         timeout=300)
    m = re.findall(r"([\d.]+) requests per second", out.stdout)
    return 1e6 / float(m[-1]) if m else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.access(BENCH, os.X_OK):
        sys.exit("%s missing: run make first" % BENCH)
    spool = tempfile.mkdtemp(prefix="porter-store-bench-")
    try:
        with RedisServer() as redis:
            stores = [("lmdb", "lmdb"), ("redis tcp", redis.url(0)),
                      ("redis unix", "redis+unix://" + redis.socket_path)]
            print("%-12s %-5s %12s %14s %12s" % ("store", "conc", "requests/s", "us/request",
                                                 "cpu us/req"))
            for concurrency in (1, 10):
                for label, store in stores:
                    runs = [r for r in (store_bench(store, args.count, concurrency, spool)
                                        for _ in range(args.rounds)) if r]
                    if not runs:
                        continue
                    best = max(runs, key=lambda r: r["rate"])
                    print("%-12s %-5d %12.0f %14.1f %12.2f" % (
                        label, concurrency, best["rate"], 1e6 / best["rate"] * concurrency,
                        min(r["cpu_us"] for r in runs)))
            sha = redis.command("SCRIPT", "LOAD", INCREMENT)
            get = min(redis_benchmark(redis, args.count, "GET", "bench:k") or 1e9
                      for _ in range(args.rounds))
            evalsha = min(redis_benchmark(redis, args.count, "EVALSHA", sha, "1", "bench:k", "1",
                                          "60000") or 1e9 for _ in range(args.rounds))
            print("redis-benchmark -c 1 round trip: GET %.1f us, EVALSHA increment %.1f us"
                  % (get, evalsha))
    finally:
        shutil.rmtree(spool, ignore_errors=True)


if __name__ == "__main__":
    main()

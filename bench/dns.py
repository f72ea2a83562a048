#!/usr/bin/python3
"""bench/dns.py - Porter's own resolver (gateway/dns.c + dns_packet.c) against libunbound on the
same libevent loop (bench/dns_bench.c, built by make), the figures for docs/dns.md.

Setups, each run for both resolvers by bench/dns_bench:
  cold, warm  COUNT distinct A lookups against dnsmasq on a loopback port (every name of
              bench.example answers 10.0.0.1, TTL 300), CONCURRENCY at once; then the same
              names again (the answers come from the cache): lookups/s, CPU, resident memory
  flood       a hostile server on a loopback port: every query gets JUNK spoofed packets first,
              what an off-path attacker can send (random bytes, a header cut short, wrong ids
              and wrong questions that carry 6.6.6.6, a reply with QR clear), then the real
              answer: lookups/s, CPU, and how many answers came out wrong (must be 0)
  junk        the same server sending only the junk, never an answer: how long a lookup takes
              to fail, and the CPU spent reading junk meanwhile
  malformed   a server that first sends a reply with the right id and question but a
              compression loop in its answer (only the server or an on-path attacker can),
              then the real answer: does one broken reply end the try?
  blackhole   a UDP socket that never answers: how long a lookup takes to fail
Porter's resolver runs with dns_timeout=1 and dns_retries=1 (two tries of 1 s), libunbound
with its defaults (forwarding to the one server; it has no per-try timeout setting: its
retransmission timer starts at 376 ms and backs off). Figures only: nothing is asserted.
Everything stays on 127.0.0.1; every process started here is stopped by its PID.

Usage: bench/dns.py [--count 5000] [--concurrency 100] [--junk 20] [--rounds 3]
"""
import argparse
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(TOP, "bench", "dns_bench")
DNSMASQ = "/usr/sbin/dnsmasq"
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from authdns import free_udp_tcp_port  # noqa: E402


def encode_name(name):
    return b"".join(bytes([len(label)]) + label for label in name.split(b".")) + b"\0"


def answer_packet(qid, question, address, flags=0x8180):
    """A reply with one A record (compressed name pointing at the question)."""
    rdata = socket.inet_aton(address)
    return (struct.pack(">HHHHHH", qid, flags, 1, 1, 0, 0) + question +
            struct.pack(">HHHIH", 0xC00C, 1, 1, 300, len(rdata)) + rdata)


def loop_packet(qid, question):
    """A reply to qid/question whose answer's owner name is a compression pointer to itself."""
    return (struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question +
            struct.pack(">HHHHIH", 0xC000 | (12 + len(question)), 0, 1, 1, 300, 4) +
            b"\x06\x06\x06\x06")


def junk_packets(qid, question, count):
    """count spoofed packets for the query qid/question."""
    other = encode_name(b"evil.bench.example") + struct.pack(">HH", 1, 1)
    kinds = [
        lambda: os.urandom(random.randint(1, 600)),
        lambda: struct.pack(">HH", qid, 0x8180),                            # header cut short
        lambda: answer_packet((qid + 1 + random.randint(0, 65533)) & 0xFFFF, question, "6.6.6.6"),
        lambda: answer_packet(qid, other, "6.6.6.6"),                       # another question
        lambda: answer_packet(qid, question, "6.6.6.6", flags=0x0180),     # QR clear
    ]
    return [kinds[i % len(kinds)]() for i in range(count)]


def hostile_server(port, junk, mode):
    """Serve forever on 127.0.0.1:port (run as a child process)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    while True:
        data, peer = s.recvfrom(4096)
        if len(data) < 17:
            continue
        qid = struct.unpack(">H", data[:2])[0]
        end = 12
        while end < len(data) and data[end] != 0:
            end += data[end] + 1
        question = data[12:end + 5]
        packets = [loop_packet(qid, question)] if mode == "malformed" else \
            junk_packets(qid, question, junk)
        for packet in packets:
            try:
                s.sendto(packet, peer)
            except OSError:
                pass
        if mode != "junk":
            s.sendto(answer_packet(qid, question, "10.0.0.1"), peer)


def start_dnsmasq(port):
    return subprocess.Popen([DNSMASQ, "--no-daemon", "--port=%d" % port,
                             "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                             "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
                             "--local-ttl=300", "--cache-size=0", "--dns-forward-max=1000",
                             "--address=/bench.example/10.0.0.1", "--log-facility=-"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process):
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def run_bench(resolver, port, prefix, count, concurrency, phases):
    out = subprocess.run([BENCH, resolver, str(port), prefix, str(count), str(concurrency), phases],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900, text=True)
    rows = []
    for line in out.stdout.splitlines():
        rows.append(dict(item.split("=", 1) for item in line.split()))
    if not rows:
        sys.stderr.write(out.stderr)
    return rows


def wait_udp(port):
    deadline = time.time() + 10
    question = encode_name(b"probe.bench.example") + struct.pack(">HH", 1, 1)
    while time.time() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + question,
                         ("127.0.0.1", port))
                s.recv(4096)
                return
            except OSError:
                time.sleep(0.05)
    raise RuntimeError("server on port %d does not answer" % port)


def show(rows):
    for r in rows:
        print("  %-8s %-9s lookups=%-6s right=%-6s wrong=%-3s failed=%-5s %8s/s  cpu=%ss  "
              "rss=%s KiB (+%s)  fail_after=%ss" % (
                  r["resolver"], r["phase"], r["lookups"], r["right"], r["wrong"], r["failed"],
                  r["per_second"], r["cpu_seconds"], r["rss_kb"], r["rss_growth_kb"],
                  r["failed_mean_seconds"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--junk", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.access(BENCH, os.X_OK):
        sys.exit("bench/dns.py: build first (make builds bench/dns_bench)")
    processes = []
    try:
        dns_port = free_udp_tcp_port()
        dnsmasq = start_dnsmasq(dns_port)
        processes.append(dnsmasq)
        wait_udp(dns_port)
        ports = {}
        for mode in ("flood", "junk", "malformed"):
            ports[mode] = free_udp_tcp_port()
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-hostile",
                                  str(ports[mode]), str(args.junk), mode])
            processes.append(p)
            wait_udp(ports[mode])
        hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        hole.bind(("127.0.0.1", 0))
        hole_port = hole.getsockname()[1]

        results = {}
        for round_number in range(args.rounds):
            print("round %d" % (round_number + 1))
            for resolver in ("porter", "unbound"):
                prefix = "r%d%s" % (round_number, resolver)
                rows = run_bench(resolver, dns_port, prefix, args.count, args.concurrency,
                                 "cold,warm")
                rows += run_bench(resolver, ports["flood"], prefix + "f",
                                  max(args.count // 10, 1), min(args.concurrency, 20), "flood")
                show(rows)
                for r in rows:
                    results.setdefault((resolver, r["phase"]), []).append(r)
        for resolver in ("porter", "unbound"):
            rows = run_bench(resolver, ports["junk"], "junk" + resolver, 20, 20, "junk")
            rows += run_bench(resolver, ports["malformed"], "bad" + resolver, 20, 20, "malformed")
            rows += run_bench(resolver, hole_port, "hole" + resolver, 20, 20, "blackhole")
            show(rows)
            for r in rows:
                results.setdefault((resolver, r["phase"]), []).append(r)
        hole.close()
        print("\nmedians over %d rounds (%d lookups, concurrency %d; flood: %d lookups, %d junk "
              "packets before each answer)" % (args.rounds, args.count, args.concurrency,
                                               max(args.count // 10, 1), args.junk))
        print("| resolver | phase | lookups/s | CPU s | RSS KiB | wrong | failed | fail after s |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for (resolver, phase), rows in sorted(results.items(), key=lambda x: (x[0][1], x[0][0])):
            def median(key):
                return statistics.median(float(r[key]) for r in rows)
            print("| %s | %s | %.0f | %.3f | %.0f | %d | %d | %.2f |" % (
                resolver, phase, median("per_second"), median("cpu_seconds"), median("rss_kb"),
                sum(int(r["wrong"]) for r in rows), sum(int(r["failed"]) for r in rows),
                median("failed_mean_seconds")))
    finally:
        for p in processes:
            stop(p)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-hostile":
        hostile_server(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main()

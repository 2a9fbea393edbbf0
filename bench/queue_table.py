#!/usr/bin/env python3
"""Turns a bench/queue.sh result file into the Markdown table of docs/BENCHMARKS.md."""
import re
import statistics
import sys


def fields(line):
    return dict(re.findall(r"(\w+)=([^\s]+)", line))


def main(path):
    rows = [fields(l) for l in open(path) if "RESULT" in l]
    head = open(path).readline().strip("# \n")
    drains = {"bullmq": [], "moked": []}
    for r in rows:
        if r.get("mode", "drain") == "drain" and r.get("peer") in drains and "jobs_per_s" in r:
            drains[r["peer"]].append(r)
    print(f"Run: {head}\n")
    print("| drain (no-op jobs) | jobs | jobs/s median [min..max] | worker CPU ms/job | Redis CPU µs/job | × BullMQ |")
    print("|---|---|---|---|---|---|")
    med = {}
    for peer, rs in drains.items():
        if not rs:
            continue
        rate = sorted(float(r["jobs_per_s"]) for r in rs)
        med[peer] = statistics.median(rate)
        redis_us = statistics.median(1e6 * float(r["redis_cpu_s"]) / float(r["jobs"]) for r in rs)
        cpu = statistics.median(float(r["cpu_ms_per_job"]) for r in rs)
        ratio = f"{med[peer] / med['bullmq']:.2f}" if "bullmq" in med else "-"
        print(f"| {peer} | {rs[0]['jobs']} | {med[peer]:,.0f} [{rate[0]:,.0f}..{rate[-1]:,.0f}] | "
              f"{cpu:.3f} | {redis_us:.1f} | {ratio} |")
    raw = sorted(float(r["jobs_per_s"]) for r in rows if r.get("peer") == "moked-backend")
    if raw:
        m = statistics.median(raw)
        ratio = f"{m / med['bullmq']:.2f}" if "bullmq" in med else "-"
        print(f"| moked backend alone (fetch 50, concurrent acks, no runner) | {rows[0].get('jobs', '')} | "
              f"{m:,.0f} [{raw[0]:,.0f}..{raw[-1]:,.0f}] | - | - | {ratio} |")
    for r in rows:
        if r.get("mode") == "backlog":
            print(f"\nBacklog: {int(r['jobs']):,} due jobs drained: done={r['done']} in {r['drain_s']} s "
                  f"({float(r['jobs_per_s']):,.0f} jobs/s; fill {r['fill_s']} s).")
        if r.get("mode") == "pickup":
            print(f"\nIdle pickup ({r['samples']} jobs, {r['gap_ms']} ms apart): p50 {r['p50_ms']} ms, "
                  f"p90 {r['p90_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms.")


if __name__ == "__main__":
    main(sys.argv[1])

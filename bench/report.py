#!/usr/bin/env python3
"""Writes docs/BENCHMARKS.md and docs/bench.png from the raw results of one benchmark run.

    bench/report.py [--out-dir DIR] PATH...

Each PATH is one of (in any order):
  - a report folder written by bench/report.sh (machine.txt, queue.txt, intake/results.txt);
  - a bench/queue.sh result file (bench/results/queue-*.txt);
  - a harness run folder (bench/results/intake-*/, holding results.txt), or that
    results.txt itself;
  - a bench/floor.sh run folder (bench/results/floor-*/, holding floor-push/ and floor-verify/);
  - a report folder's drain.txt (bench/drain.sh: real call.started jobs into SQLite and Postgres).

Every figure, ratio and goal verdict in the document is computed here from those files; the
prose around them is the template below. Writes BENCHMARKS.md and bench.png into --out-dir
(default docs/). Needs matplotlib (bench/report.sh installs it into target/bench-venv).
"""
import argparse
import os
import re
import statistics
import sys
import textwrap
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The goals of the production-readiness issue, checked against every run. Each is
# (label, function of the figures returning (measured value text, met?) or None when the run
# did not measure it).
INTAKE_VS_AXUM = 0.5
INTAKE_VS_EXPRESS = 10.0
INTAKE_P99_MS = 5.0
WORKER_VS_BULLMQ = 1.5
WORKER_REDIS_CPU_VS_BULLMQ = 1.0
PICKUP_P99_MS = 250.0
# Real-job drains (bench/drain.sh): call.started jobs recorded in the store, jobs/s on the
# machine that ran the report.
REAL_DRAIN_GOALS = {"sqlite": 3000.0, "postgres": 5000.0}
# The lean-job-model goals, stated against the stack's floor (bench/floor.sh, push mode) and
# BullMQ in the same run.
INTAKE_VS_FLOOR = 0.9
INTAKE_P99_OVER_FLOOR_MS = 1.0
REDIS_US_PER_WEBHOOK = 10.0
INTAKE_US_OVER_FLOOR = 6.0
LIFECYCLE_REDIS_US = 25.0
NOOP_DRAIN_VS_BULLMQ = 3.0

PEER_NAMES = {
    "flask-rq": "Flask + RQ (gunicorn 2 sync)",
    "express-bullmq": "Express + BullMQ",
    "axum-hello": "bare axum (200, no work)",
    "ours": "moked-intake",
}
PEER_ORDER = ["flask-rq", "express-bullmq", "axum-hello", "ours"]
QUEUE_NAMES = {
    "bullmq": "BullMQ",
    "moked": "moked (the runner `moked-worker run` uses)",
    "moked-backend": "moked backend alone (fetch 50, concurrent acks, no runner)",
}
WORKER_NAMES = {
    "rq": "RQ (rq.worker.Worker, forks per job)",
    "rq-simple": "RQ SimpleWorker",
    "bullmq": "BullMQ",
    "ours": "moked-worker run (whole process)",
}


# ------------------------------------------------------------------------------ parsing

def kv(line):
    """key=value pairs of one line (the value runs to the next space)."""
    return dict(re.findall(r"([A-Za-z_][\w]*)=(\S+)", line))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class Stat:
    """median [min..max] of the repetitions of one figure."""

    def __init__(self, values):
        self.values = sorted(v for v in values if v is not None)

    def __bool__(self):
        return bool(self.values)

    @property
    def med(self):
        return statistics.median(self.values) if self.values else None

    @property
    def lo(self):
        return self.values[0] if self.values else None

    @property
    def hi(self):
        return self.values[-1] if self.values else None

    def fmt(self, digits=0, bold=False):
        if not self.values:
            return "–"
        f = f"{{:,.{digits}f}}"
        m = f.format(self.med)
        if bold:
            m = f"**{m}**"
        if len(self.values) == 1:
            return m
        return f"{m} [{f.format(self.lo)}..{f.format(self.hi)}]"


def fmt_num(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def fmt_ratio(r):
    if r is None:
        return "–"
    if r >= 100:
        return f"{r:,.0f}"
    if r >= 10:
        return f"{r:.1f}"
    if r >= 0.1:
        return f"{r:.2f}"
    return f"{r:.3f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


class Machine:
    def __init__(self):
        self.info = {}

    def read(self, path):
        for line in open(path, encoding="utf-8"):
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                self.info[k.strip()] = v.strip()

    def get(self, key, default=None):
        return self.info.get(key) or default


class Queue:
    """A bench/queue.sh result file."""

    def __init__(self, path):
        self.path = Path(path)
        self.header = ""
        self.drains = {"bullmq": [], "moked": [], "moked-backend": []}
        self.backlog = None
        self.pickup = None
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            if line.startswith("#"):
                self.header = self.header or line.lstrip("# ")
                continue
            if "RESULT" not in line:
                continue
            r = kv(line)
            peer = r.get("peer")
            mode = r.get("mode", "drain")
            if mode == "backlog":
                self.backlog = r
            elif mode == "pickup":
                self.pickup = r
            elif peer in self.drains and "jobs_per_s" in r:
                self.drains[peer].append(r)
        m = re.match(r"(\S+)\s+(\d+) cores, load (\S+), redis (\S+)", self.header)
        self.when, self.cores, self.load, self.redis = (m.groups() if m else (None,) * 4)
        if self.redis:
            self.redis = self.redis.removeprefix("v=")

    def rate(self, peer):
        return Stat(num(r.get("jobs_per_s")) for r in self.drains.get(peer, []))

    def jobs(self, peer):
        rs = self.drains.get(peer, [])
        return int(num(rs[0].get("jobs")) or 0) if rs else None

    def done(self, peer):
        return [int(num(r.get("done") or r.get("completed")) or 0) for r in self.drains.get(peer, [])]

    def cpu_ms_per_job(self, peer):
        return Stat(num(r.get("cpu_ms_per_job")) for r in self.drains.get(peer, []))

    def redis_us_per_job(self, peer):
        out = []
        for r in self.drains.get(peer, []):
            c, n = num(r.get("redis_cpu_s")), num(r.get("jobs"))
            out.append(1e6 * c / n if c is not None and n else None)
        return Stat(out)

    def reps(self):
        return max((len(v) for v in self.drains.values()), default=0)


class Intake:
    """A harness results.txt (bench/intake.sh's run folder)."""

    def __init__(self, path):
        path = Path(path)
        self.path = path / "results.txt" if path.is_dir() else path
        self.dir = self.path.parent
        self.head = {}
        self.rows = []
        for line in open(self.path, encoding="utf-8"):
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                body = line.lstrip("# ")
                for key in ("run", "cpu", "load at start", "load at end", "load", "versions"):
                    if body.startswith(key + " ") or body.startswith(key + ":"):
                        self.head.setdefault(key, body[len(key):].lstrip(": ").strip())
                        break
                continue
            self.rows.append(kv(line))
        self.knobs = kv(self.head.get("load", ""))
        m = re.search(r'PEERS="([^"]*)"', self.head.get("load", ""))
        if m:
            self.knobs["PEERS"] = m.group(1)
        self.peers = {}
        self.workers = {}
        self.redis = {}
        for r in self.rows:
            if r.get("phase") == "intake":
                self.peers.setdefault(r["peer"], []).append(r)
            elif r.get("phase") == "worker":
                self.workers.setdefault(r["peer"], []).append(r)
            elif r.get("phase") == "redis":
                self.redis.setdefault((r.get("test"), r.get("pipeline")), []).append(r)
        self.when = (self.head.get("run") or "").split(" ")[0] or None

    def order(self):
        known = [p for p in PEER_ORDER if p in self.peers]
        return known + [p for p in self.peers if p not in known]

    def stat(self, peer, key):
        return Stat(num(r.get(key)) for r in self.peers.get(peer, []))

    def per_req_us(self, peer, key):
        out = []
        for r in self.peers.get(peer, []):
            c, n = num(r.get(key)), num(r.get("requests"))
            out.append(1e6 * c / n if c is not None and n else None)
        return Stat(out)

    def total(self, peer, key):
        return sum(int(num(r.get(key)) or 0) for r in self.peers.get(peer, []))

    def enqueued(self, peer):
        """(enqueued, expected) per repetition, when the harness counted the queue."""
        out = []
        for r in self.peers.get(peer, []):
            a, b = num(r.get("enq")), num(r.get("enq_expected"))
            if a is not None and b is not None:
                out.append((int(a), int(b)))
        return out

    def redis_ops(self, test, pipeline):
        return Stat(num(r.get("rps")) for r in self.redis.get((test, pipeline), []))


FLOOR_MODES = {
    "push": "floor: verify + batched RPUSH, then answer",
    "verify": "floor: verify only, no Redis",
}


def floors_in(folder):
    """{mode: Intake} of the bench/floor.sh passes kept in `folder` (floor-<mode>/results.txt)."""
    return {mode: Intake(folder / f"floor-{mode}") for mode in FLOOR_MODES
            if (folder / f"floor-{mode}" / "results.txt").exists()}


class Drain:
    """bench/drain.sh's file: one `RESULT store=… jobs_per_s=…` line per store."""

    def __init__(self, path):
        self.head = ""
        self.runs = {}
        for line in Path(path).read_text().splitlines():
            if line.startswith("#"):
                self.head = line.lstrip("# ")
            elif line.startswith("RESULT"):
                r = kv(line)
                self.runs.setdefault(r.get("store"), []).append(r)

    def rate(self, store):
        return Stat([num(r.get("jobs_per_s")) for r in self.runs.get(store, [])])


def drain_in(folder):
    f = Path(folder) / "drain.txt"
    return Drain(f) if f.exists() else None


def classify(paths):
    queue = intake = None
    machine = Machine()
    floors = {}
    for p in map(Path, paths):
        if p.is_dir():
            floors.update(floors_in(p))
        if p.is_dir() and (p / "machine.txt").exists():
            machine.read(p / "machine.txt")
        if p.is_dir() and (p / "queue.txt").exists():
            queue = Queue(p / "queue.txt")
        if p.is_dir() and (p / "intake" / "results.txt").exists():
            intake = Intake(p / "intake")
        elif p.is_dir() and (p / "results.txt").exists():
            intake = Intake(p)
        elif p.is_file() and p.name == "results.txt":
            intake = Intake(p)
        elif p.is_file():
            queue = Queue(p)
        elif not p.exists():
            sys.exit(f"report.py: {p} does not exist")
    return machine, queue, intake, floors


# ------------------------------------------------------------------------------ goals

def floor_ratio(floors, mode):
    """The floor's rate over bare axum's in the same pass, or None."""
    f = floors.get(mode)
    return ratio(f.stat("ours", "rps").med, f.stat("axum-hello", "rps").med) if f else None


def goals(queue, intake, floors, drain=None):
    """[(goal, measured, met)] for what the run measured."""
    out = []
    floor = floors.get("push")
    if intake and floor and "ours" in intake.peers:
        ours, fl = intake.stat("ours", "rps").med, floor.stat("ours", "rps").med
        r = ratio(ours, fl)
        if r is not None:
            out.append((f"intake ≥ {INTAKE_VS_FLOOR}× the floor's rate (push)", f"{fmt_ratio(r)}×", r >= INTAKE_VS_FLOOR))
        p99, fp99 = intake.stat("ours", "p99_ms").med, floor.stat("ours", "p99_ms").med
        if p99 is not None and fp99 is not None:
            out.append((f"intake p99 ≤ the floor's + {INTAKE_P99_OVER_FLOOR_MS:g} ms",
                        f"{p99:.2f} ms (floor {fp99:.2f} ms)", p99 <= fp99 + INTAKE_P99_OVER_FLOOR_MS))
        redis_us = intake.per_req_us("ours", "cpu_redis_s").med
        if redis_us is not None:
            out.append((f"Redis CPU per enqueued webhook ≤ {REDIS_US_PER_WEBHOOK:g} µs", f"{redis_us:.1f} µs",
                        redis_us <= REDIS_US_PER_WEBHOOK))
        us, fus = intake.per_req_us("ours", "cpu_peer_s").med, floor.per_req_us("ours", "cpu_peer_s").med
        if us is not None and fus is not None:
            out.append((f"intake CPU per request ≤ the floor's + {INTAKE_US_OVER_FLOOR:g} µs",
                        f"{us:.1f} µs (floor {fus:.1f} µs)", us <= fus + INTAKE_US_OVER_FLOOR))
    if queue:
        r = ratio(queue.rate("moked").med, queue.rate("bullmq").med)
        if r is not None:
            out.append((f"no-op drain ≥ {NOOP_DRAIN_VS_BULLMQ:g}× BullMQ", f"{fmt_ratio(r)}×", r >= NOOP_DRAIN_VS_BULLMQ))
        rc = queue.redis_us_per_job("moked").med
        if rc is not None:
            out.append((f"claim + ack Redis CPU per no-op job ≤ {LIFECYCLE_REDIS_US:g} µs (enqueue not included)",
                        f"{rc:.1f} µs", rc <= LIFECYCLE_REDIS_US))
    if drain:
        for store, goal in REAL_DRAIN_GOALS.items():
            rate = drain.rate(store).med
            if rate is not None:
                out.append((f"real call.started drain on {store} ≥ {goal:,.0f} jobs/s", f"{rate:,.0f} jobs/s",
                            rate >= goal))
    if intake:
        ours = intake.stat("ours", "rps").med
        axum = intake.stat("axum-hello", "rps").med
        express = intake.stat("express-bullmq", "rps").med
        push = floor_ratio(floors, "push")
        r = ratio(ours, axum)
        if r is not None:
            floor_txt = f" (the stack's floor: {fmt_ratio(push)}×)" if push is not None else ""
            out.append((f"intake ≥ {INTAKE_VS_AXUM}× bare axum", f"{fmt_ratio(r)}×{floor_txt}", r >= INTAKE_VS_AXUM))
        r = ratio(ours, express)
        if r is not None:
            floor_txt = ""
            if push is not None and axum and express:
                floor_txt = f" (the stack's floor: {fmt_ratio(push * axum / express)}×)"
            out.append((f"intake ≥ {INTAKE_VS_EXPRESS:g}× Express+BullMQ", f"{fmt_ratio(r)}×{floor_txt}",
                        r >= INTAKE_VS_EXPRESS))
        p99 = intake.stat("ours", "p99_ms").med
        if p99 is not None:
            axum_p99 = intake.stat("axum-hello", "p99_ms").med
            ref = f" (bare axum's own: {axum_p99:.2f} ms)" if axum_p99 is not None else ""
            out.append((f"intake p99 < {INTAKE_P99_MS:g} ms (under saturation)", f"{p99:.2f} ms{ref}",
                        p99 < INTAKE_P99_MS))
        if "ours" in intake.peers:
            non2xx = intake.total("ours", "non2xx")
            out.append(("intake: no non-2xx answer", f"{non2xx:,}", non2xx == 0))
            enq = intake.enqueued("ours")
            if enq:
                short = sum(max(0, b - a) for a, b in enq)
                out.append(("intake: a job for every accepted webhook",
                            "missing " + f"{short:,}" if short else "none missing", short == 0))
    if queue:
        r = ratio(queue.rate("moked").med, queue.rate("bullmq").med)
        if r is not None:
            out.append((f"worker drain ≥ {WORKER_VS_BULLMQ}× BullMQ", f"{fmt_ratio(r)}×", r >= WORKER_VS_BULLMQ))
        r = ratio(queue.redis_us_per_job("moked").med, queue.redis_us_per_job("bullmq").med)
        if r is not None:
            out.append((f"worker Redis CPU per job ≤ {WORKER_REDIS_CPU_VS_BULLMQ:g}× BullMQ's", f"{fmt_ratio(r)}×",
                        r <= WORKER_REDIS_CPU_VS_BULLMQ))
        if queue.backlog:
            n, done = int(num(queue.backlog.get("jobs")) or 0), int(num(queue.backlog.get("done")) or 0)
            out.append((f"backlog of {n:,} due jobs drains completely", f"{done:,} done", done >= n > 0))
        if queue.pickup:
            p99 = num(queue.pickup.get("p99_ms"))
            if p99 is not None:
                out.append((f"idle pickup p99 < {PICKUP_P99_MS:g} ms", f"{p99:.2f} ms", p99 < PICKUP_P99_MS))
    return out


# ------------------------------------------------------------------------------ document

def machine_line(machine, queue, intake):
    cpu = machine.get("cpu") or re.sub(r" x \d+$", "", intake.head.get("cpu", "") if intake else "") or "?"
    cores = machine.get("cores") or (queue.cores if queue else None)
    parts = []
    virt = machine.get("virtualization")
    cores_txt = f"{cores}-core" if cores else ""
    parts.append(" ".join(x for x in (f"one {cores_txt}" if cores_txt else "one", f"{virt} guest" if virt else "machine") if x))
    detail = [cpu]
    if machine.get("memory"):
        detail.append(machine.get("memory"))
    if machine.get("os"):
        detail.append(machine.get("os"))
    return f"{parts[0]} ({', '.join(detail)})"


def versions_line(machine, queue, intake):
    v = []
    redis = machine.get("redis") or (queue.redis if queue else None)
    if redis:
        v.append(f"Redis {redis}")
    for key, label in (("rustc", None), ("node", "Node"), ("bullmq", "BullMQ"), ("python", None), ("wrk", None)):
        if machine.get(key):
            v.append(f"{label} {machine.get(key)}" if label else machine.get(key))
    if not machine.get("rustc") and intake and intake.head.get("versions"):
        v += [x.strip() for x in intake.head["versions"].split(" | ")
              if x.strip() and not (redis and re.match(r"redis[- ]server", x, re.I))]
    return ", ".join(v)


def queue_section(q, lines):
    jobs = q.jobs("moked") or q.jobs("bullmq") or 0
    reps = q.reps()
    bull, ours = q.rate("bullmq"), q.rate("moked")
    lines.append(f"## Queue (`bench/queue.sh`, {when_text(q.when)}, load {q.load or '?'})\n")
    lines.append(
        f"No-op jobs, {jobs:,} per drain, one worker process with concurrency "
        f"{q.drains['moked'][0].get('concurrency', '50') if q.drains['moked'] else '50'} against BullMQ's "
        "`drain.js` (one Worker, concurrency 50) on the same Redis; "
        f"{'one repetition' if reps == 1 else f'{reps} interleaved repetitions'}. Both are timed from the worker's start "
        "to the last job's completion (ours: done in the queue, checked every millisecond — that check's own "
        "Redis work is included in our Redis CPU).\n")
    lines.append("| drain (no-op jobs) | jobs | jobs done | jobs/s median [min..max] | worker CPU ms/job "
                 "| Redis CPU µs/job | × BullMQ |")
    lines.append("|---|---|---|---|---|---|---|")
    for peer in ("bullmq", "moked", "moked-backend"):
        if not q.drains[peer]:
            continue
        rate = q.rate(peer)
        mine = peer == "moked"
        name = QUEUE_NAMES[peer]
        if mine:
            name = f"**moked** (the runner `moked-worker run` uses)"
        done = q.done(peer)
        done_txt = ", ".join(f"{d:,}" for d in done) if peer != "moked-backend" else "–"
        cpu = q.cpu_ms_per_job(peer)
        rcpu = q.redis_us_per_job(peer)
        r = ratio(rate.med, bull.med)
        lines.append(
            f"| {name} | {q.jobs(peer) or 0:,} | {done_txt} | {rate.fmt(0, bold=mine)} | "
            f"{cpu.fmt(3) if cpu else '–'} | {rcpu.fmt(1, bold=mine) if rcpu else '–'} | "
            f"{('**' + fmt_ratio(r) + '**') if mine and r is not None else fmt_ratio(r)} |")
    lines.append("")
    r = ratio(ours.med, bull.med)
    rr = ratio(q.redis_us_per_job("moked").med, q.redis_us_per_job("bullmq").med)
    rc = ratio(q.cpu_ms_per_job("moked").med, q.cpu_ms_per_job("bullmq").med)
    if r is not None:
        txt = f"- **{fmt_ratio(r)}× BullMQ's throughput"
        if rr is not None:
            txt += f" at {fmt_ratio(rr)}× its Redis CPU per job"
        txt += "**"
        if rc is not None:
            txt += f" and {fmt_ratio(rc)}× its worker CPU per job"
        txt += f" (goals: ≥ {WORKER_VS_BULLMQ}× and ≤ {WORKER_REDIS_CPU_VS_BULLMQ:g}× Redis CPU)."
        lines.append(txt)
    b = q.backlog
    if b:
        n, done = int(num(b.get("jobs")) or 0), int(num(b.get("done")) or 0)
        verdict = "drained completely" if done >= n else f"**NOT drained: {done:,} of {n:,} done**"
        limit = promote_limit()
        batches = f", promoted in bounded batches of {limit}" if limit else ""
        lines.append(
            f"- **Backlog: {n:,} due jobs** (all in the delayed set, due at once — the path on which "
            f"apalis-redis 1.0 wedges past ~8,000) **{verdict} in {fmt_num(num(b.get('drain_s')), 1)} s "
            f"({fmt_num(num(b.get('jobs_per_s')))} jobs/s)**{batches}; worker CPU "
            f"{fmt_num(num(b.get('cpu_ms_per_job')), 3)} ms/job, Redis CPU "
            f"{fmt_num(num(b.get('redis_cpu_us_per_job')), 1)} µs/job.")
    p = q.pickup
    if p:
        lines.append(
            f"- **Idle pickup** ({p.get('samples')} jobs enqueued {p.get('gap_ms')} ms apart to an idle worker): "
            f"**p50 {p.get('p50_ms')} ms, p90 {p.get('p90_ms')} ms, p99 {p.get('p99_ms')} ms, max "
            f"{p.get('max_ms')} ms** (goal p99 < {PICKUP_P99_MS:g} ms)."
            + (" The idle worker blocks on `BLMOVE`, so a job is picked up when it is pushed, not at the next "
               "poll." if "BLMOVE" in source("jobs/src/queue/redis.rs").upper() else ""))
    lines.append(
        "- What limits the drain: each fetch costs one Redis round trip whatever its size, so the runner "
        "claims up to twice its concurrency at once (a prefetch of one concurrency); the backend-alone row "
        "is the queue's own ceiling without the runner's bookkeeping. The clock stops at the last "
        "completion for both moked and `drain.js`.")
    lines.append(
        "- The database backend is not part of this report (it is measured the same way with "
        "`DATABASE_URL=sqlite://… cargo bench -p moked-jobs --bench queue -- pickup`): across processes "
        "SQLite falls back to a 100 ms poll, Postgres wakes idle workers with `LISTEN/NOTIFY`.\n")


def source(path):
    """A file of this checkout ("" when missing): the prose states a mechanism only while the
    code still has it."""
    try:
        return (ROOT / path).read_text(encoding="utf-8")
    except OSError:
        return ""


def promote_limit():
    m = re.search(r"PROMOTE_LIMIT:\s*usize\s*=\s*([\d_]+)", source("jobs/src/queue/redis.rs"))
    return m.group(1).replace("_", "") if m else None


def when_text(iso):
    if not iso:
        return "date unknown"
    try:
        t = datetime.strptime(iso.rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
        return t.strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def intake_section(it, lines):
    k = it.knobs
    loads = Stat(num(r.get("load1")) for rs in it.peers.values() for r in rs)
    lines.append(f"## Intake (`bench/intake.sh`, harness `bench/harness/run.sh`, {when_text(it.when)}, "
                 f"load {loads.fmt(1) if loads else '?'})\n")
    reps = k.get("REPS", "?")
    lines.append(
        f"wrk, {k.get('THREADS', '?')} threads, {k.get('CONNS', '?')} connections, {k.get('DURATION', '?')} s × "
        f"{'one repetition' if reps == '1' else f'{reps} interleaved repetitions'} (after a {k.get('WARMUP', '?')} s warm-up), "
        "every request a signed Twilio webhook with a unique CallSid/MessageSid (mix call_status / "
        "whatsapp_status / incoming_call 1/1/1). moked-intake runs as in production: signature check over "
        "`PUBLIC_HOST`, durable enqueue to Redis (job hash, state indexes, dedupe key: one Lua script), TwiML "
        "answer; rate limits off because all load comes from one IP. Latency is wrk's, closed loop: latency "
        "under saturation, not at a fixed rate. CPU per request is read from /proc around each load and is "
        "the least noise-sensitive column.\n")
    lpush, lpop = it.redis_ops("LPUSH", "1"), it.redis_ops("LPOP", "1")
    if lpush:
        lines.append(
            f"Redis alone, measured in the same run (`redis-benchmark`, {k.get('CONNS', '?')} connections, no "
            f"pipelining): LPUSH {lpush.fmt(0)} ops/s, LPOP {lpop.fmt(0)} ops/s — the ceiling of anything that "
            "makes one Redis round trip per request.\n")
    axum = it.stat("axum-hello", "rps")
    express = it.stat("express-bullmq", "rps")
    lines.append("| peer | rps median [min..max] | p50 ms | p99 ms | × bare axum | × Express+BullMQ "
                 "| peer CPU µs/req | Redis CPU µs/req | wrk CPU µs/req | non-2xx | enqueued / expected |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for peer in it.order():
        mine = peer == "ours"
        name = PEER_NAMES.get(peer, peer)
        if peer == "express-bullmq" and it.knobs.get("EXPRESS_CLUSTER", "1") != "1":
            name += f" ({it.knobs['EXPRESS_CLUSTER']} processes)"
        if mine:
            name = f"**{name}**"
        rps = it.stat(peer, "rps")
        ra, re_ = ratio(rps.med, axum.med), ratio(rps.med, express.med)
        enq = it.enqueued(peer)
        enq_txt = ", ".join(f"{a:,}/{b:,}" for a, b in enq) if enq else "–"
        non2xx = it.total(peer, "non2xx")
        b = (lambda s: f"**{s}**") if mine else (lambda s: s)
        lines.append(
            f"| {name} | {rps.fmt(0, bold=mine)} | {it.stat(peer, 'p50_ms').fmt(2)} | {it.stat(peer, 'p99_ms').fmt(2)} | "
            f"{b(fmt_ratio(ra))} | {b(fmt_ratio(re_))} | {it.per_req_us(peer, 'cpu_peer_s').fmt(1)} | "
            f"{it.per_req_us(peer, 'cpu_redis_s').fmt(1) if peer != 'axum-hello' else '–'} | "
            f"{it.per_req_us(peer, 'cpu_wrk_s').fmt(1)} | {b(f'{non2xx:,}')} | {enq_txt} |")
    lines.append("")
    if "ours" not in it.peers:
        return
    ours = it.stat("ours", "rps")
    cpu = {p: it.per_req_us(p, "cpu_peer_s").med for p in it.peers}
    comparisons = []
    for peer, label in (("express-bullmq", "Express+BullMQ"), ("flask-rq", "Flask+RQ")):
        r = ratio(ours.med, it.stat(peer, "rps").med)
        if r is None:
            continue
        c = ratio(cpu.get(peer), cpu.get("ours"))
        comparisons.append((label, r, c))
    requests = sum(int(num(r.get("requests")) or 0) for r in it.peers["ours"])
    non2xx = it.total("ours", "non2xx")
    enq = it.enqueued("ours")
    if comparisons:
        txt = "- moked answers " + " and ".join(f"**{fmt_ratio(r)}× {label}**" for label, r, _ in comparisons)
        cs = [f"1/{c:.0f}" if c and c >= 1.5 else (f"{1 / c:.2f}×" if c else "?") for _, _, c in comparisons]
        if all(c for _, _, c in comparisons):
            txt += f" at {' and '.join(cs)} of their CPU per request"
        txt += f", with **{non2xx:,} non-2xx** out of {requests:,} signed webhooks"
        if enq:
            extra = sum(a - b for a, b in enq)
            short = sum(max(0, b - a) for a, b in enq)
            if short:
                txt += f" and **{short:,} accepted webhooks without a job** (the harness counts the queue after each run)"
            else:
                txt += (f" and one job per accepted webhook (the harness counts the queue after each run; the "
                        f"{extra:,} extra are the requests in flight when wrk stopped)")
        lines.append(txt + ".")
    # What limits it: the CPU budget per request on this box.
    peer_us = it.per_req_us("ours", "cpu_peer_s").med
    redis_us = it.per_req_us("ours", "cpu_redis_s").med
    wrk_us = it.per_req_us("ours", "cpu_wrk_s").med
    ncpu = os_cores(it)
    if None not in (peer_us, redis_us, wrk_us) and ncpu and ours.med:
        total = peer_us + redis_us + wrk_us
        cap = ncpu * 1e6 / total
        used = ours.med * total / 1e6
        cost = (f"intake {peer_us:.1f} µs + Redis {redis_us:.1f} µs + wrk {wrk_us:.1f} µs ≈ {total:.0f} µs of CPU "
                "per request")
        if used >= 0.85 * ncpu:
            txt = (f"- What limits it: the box is CPU-bound at this rate: {cost} → ~{cap:,.0f} requests/s on "
                   f"{ncpu} cores.")
            if axum.med:
                goal = INTAKE_VS_AXUM * axum.med
                txt += (f" Reaching {INTAKE_VS_AXUM}× bare axum (≈ {goal:,.0f}/s) needs the whole per-request "
                        f"total under ~{ncpu * 1e6 / goal:.0f} µs on this box.")
        else:
            txt = (f"- What limits it: {cost}; at {ours.med:,.0f} requests/s that is {used:.1f} of the {ncpu} "
                   "cores, so the load generator, the intake and Redis did not fill the box: the rest went "
                   f"to other processes (load average {loads.fmt(1)}) or to waiting. This run does not show "
                   "the intake's CPU-bound ceiling; compare the CPU-per-request columns rather than the rates.")
        lines.append(txt)
    lines.append("")


def floor_section(floors, intake, lines):
    """The intake floor (bench/floor.sh) beside bare axum, and moked's distance from it."""
    if not floors:
        return
    first = next(iter(floors.values()))
    lines.append(f"## The floor under the intake (`bench/floor.sh`, {when_text(first.when)})\n")
    lines.append(
        "How fast can *any* intake on this stack (axum, HMAC-SHA1, Redis) check a signed webhook and queue "
        "it, on this machine? `bench/floor/` is the least such program: it reads the form, checks the "
        "signature (one URL variant, one token) and, in `push` mode, appends a short line per webhook to a "
        "Redis list in batched `RPUSH`es (as moked batches its enqueues) before answering 204 or a fixed "
        "TwiML. It leaves out what moked must do: no deduplication of Twilio's redeliveries, no job record, "
        "no state indexes for workers and operators, no strict form errors, request ids, spans, metrics, "
        "rate limits or timeouts. Each mode is one harness pass with bare axum in the same pass, same "
        "load as the intake table.\n")
    lines.append("| program | rps median [min..max] | × bare axum (same pass) | p99 ms | program CPU µs/req "
                 "| Redis CPU µs/req | wrk CPU µs/req | non-2xx | enqueued / expected |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    rows = [(FLOOR_MODES[m], f) for m, f in floors.items()]
    if intake and "ours" in intake.peers:
        rows.insert(0, ("**moked-intake** (the intake table's pass)", intake))
    for name, it in rows:
        rps = it.stat("ours", "rps")
        enq = it.enqueued("ours")
        lines.append(
            f"| {name} | {rps.fmt(0)} | {fmt_ratio(ratio(rps.med, it.stat('axum-hello', 'rps').med))} | "
            f"{it.stat('ours', 'p99_ms').fmt(2)} | {it.per_req_us('ours', 'cpu_peer_s').fmt(1)} | "
            f"{it.per_req_us('ours', 'cpu_redis_s').fmt(1)} | {it.per_req_us('ours', 'cpu_wrk_s').fmt(1)} | "
            f"{it.total('ours', 'non2xx'):,} | {', '.join(f'{a:,}/{b:,}' for a, b in enq) if enq else '–'} |")
    lines.append("")
    push, verify = floor_ratio(floors, "push"), floor_ratio(floors, "verify")
    mine = ratio(intake.stat("ours", "rps").med, intake.stat("axum-hello", "rps").med) if intake else None
    if push is not None:
        txt = (f"- On this machine the floor of a durable intake is **{fmt_ratio(push)}× bare axum**"
               + (f" (reading and checking alone: {fmt_ratio(verify)}×)" if verify is not None else "") + ". ")
        if mine is not None:
            txt += (f"moked-intake's {fmt_ratio(mine)}× is {mine / push:.0%} of that floor; the rest of the distance "
                    "is what the floor leaves out: a deduplicated job record with its indexes in one Lua script "
                    "(most of moked's Redis CPU per request) and the request's id, span, metrics and strict "
                    "parsing in the intake. ")
        if push < INTAKE_VS_AXUM:
            txt += (f"**The goal of {INTAKE_VS_AXUM}× bare axum is above the floor itself here**: no intake that "
                    "checks and queues a webhook on this stack reaches it on this machine, where the load "
                    "generator shares the cores.")
        lines.append(txt)
    lines.append("")


def os_cores(it):
    m = re.search(r"x (\d+)\s*$", it.head.get("cpu", ""))
    return int(m.group(1)) if m else os.cpu_count()


def harness_workers_section(it, lines):
    if not it.workers:
        return
    lines.append("## Workers in the harness\n")
    lines.append(f"Drains of {fmt_num(num(it.knobs.get('WORKER_JOBS')))} no-op jobs (time cap {it.knobs.get('WORKER_MAX_S', '?')} s), "
                 "same Redis, same run as the intake table.\n")
    lines.append("| worker | jobs/s steady, median [min..max] | jobs/s incl. start-up | worker CPU ms/job "
                 "| Redis CPU µs/job | jobs done |")
    lines.append("|---|---|---|---|---|---|")
    for peer, rs in it.workers.items():
        steady = Stat(num(r.get("steady_jobs_per_s") or r.get("jobs_per_s")) for r in rs)
        whole = Stat(num(r.get("jobs_per_s")) for r in rs)
        cpu = Stat(num(r.get("cpu_ms_per_job")) for r in rs)
        rcpu = []
        for r in rs:
            c, d = num(r.get("redis_cpu_s") or r.get("cpu_redis_s")), num(r.get("done"))
            rcpu.append(1e6 * c / d if c is not None and d else None)
        done = ", ".join(f"{fmt_num(num(r.get('done')))}{'*' if r.get('partial') == '1' else ''}" for r in rs)
        lines.append(f"| {WORKER_NAMES.get(peer, peer)} | {steady.fmt(0)} | {whole.fmt(0)} | {cpu.fmt(3)} | "
                     f"{Stat(rcpu).fmt(1)} | {done} |")
    lines.append("\n`*` = stopped at the time cap before the queue was empty.\n")


def small_run(machine, queue, intake):
    why = []
    if machine.get("quick") == "1":
        why.append("QUICK=1")
    if intake:
        if num(intake.knobs.get("DURATION")) is not None and num(intake.knobs.get("DURATION")) < 20:
            why.append(f"{intake.knobs['DURATION']} s loads")
        if intake.knobs.get("REPS") == "1":
            why.append("one repetition")
    if queue:
        jobs = queue.jobs("moked") or queue.jobs("bullmq") or 0
        if jobs < 50_000:
            why.append(f"{jobs:,}-job drains")
    return why


def document(machine, queue, intake, floors, png_name, drain=None):
    lines = ["# Benchmarks", ""]
    lines.append("<!-- Generated by bench/report.sh (bench/report.py) from the raw results of one run; "
                 "edit the generator, not this file. -->\n")
    whens = [w for w in ((queue.when if queue else None), (intake.when if intake else None)) if w]
    small = small_run(machine, queue, intake)
    if small:
        lines.append(f"> **Smoke run ({', '.join(small)}): start-up dominates; these numbers are not for "
                     "comparison.**\n")
    started = machine.get("date") or (min(whens) if whens else None)
    lines.append(
        (f"Measured {when_text(started)} on " if started else "All figures: ")
        + f"{machine_line(machine, queue, intake)}, {versions_line(machine, queue, intake)}; "
        "Redis without persistence (as for every peer), release builds"
        + (f", moked at `{machine.get('commit')}`" if machine.get("commit") else "")
        + ". The load generator, Redis, the peer and the workers share the machine's cores, so **read the "
        "ratios between rows of one run**, not the absolute numbers"
        + (f" (load average {machine.get('load start')} at the start, {machine.get('load end')} at the end)"
           if machine.get("load start") else "")
        + ".\n")
    lines.append("Regenerate everything — both benchmarks, this page and its plot — with one command; it keeps "
                 "the raw results under `bench/results/` (not committed), and `--from` rebuilds this page from "
                 "a kept run without measuring again:\n")
    lines.append("```bash")
    lines.append("bench/report.sh                                  # queue, real-job drains, intake, floor, then docs/BENCHMARKS.md and docs/bench.png (~25 min)")
    lines.append("bench/report.sh --from bench/results/report-…    # the page again from a kept run, no measuring")
    lines.append("```\n")

    gs = goals(queue, intake, floors, drain)
    if gs:
        lines.append("## Goals\n")
        lines.append("| goal | measured | |")
        lines.append("|---|---|---|")
        for g, measured, met in gs:
            lines.append(f"| {g} | {measured} | {'met' if met else '**not met**'} |")
        lines.append("")
    lines.append(f"![Throughput and latency per peer, intake and queue]({png_name})\n")
    if queue:
        queue_section(queue, lines)
    if drain:
        drain_section(drain, queue, lines)
    if intake:
        intake_section(intake, lines)
    floor_section(floors, intake, lines)
    if intake:
        harness_workers_section(intake, lines)
    lines.append("## Not in this report\n")
    if not (intake and "ours" in intake.workers):
        lines.append("- CPU per job of the whole `moked-worker run` process tree (the harness's "
                     "`OURS_DRAIN` path); the queue table above times the runner inside the benchmark process.")
    lines.append("- The database queue backends (SQLite, Postgres) as queues (the real-job drains above queue in "
                 "Redis and store in the database), and runs under injected faults (killed workers, Redis "
                 "stopped): they have tests of their own, not figures here.")
    return wrap("\n".join(lines)) + "\n"


def drain_section(d, queue, lines):
    lines.append(f"## Real jobs (`bench/drain.sh`, {d.head})\n")
    lines.append(
        "What a worker does all day: signed incoming calls posted to `moked-intake` (queued in Redis, a "
        "CallSid each, callers from a pool of distinct numbers, three business numbers), then one "
        "`moked-worker run` with its default concurrency records each as a call, a customer and a timeline "
        "event in the store. Timed from the first job finished to the last (the done set's times); the rows "
        "are counted after. BullMQ's drain (above) runs no-op jobs: it is there for scale, not as a peer.\n")
    lines.append("| store | jobs | jobs/s | worker CPU µs/job | Postgres CPU µs/job | Redis CPU µs/job "
                 "| machine busy | calls | customers | events | × BullMQ no-op drain |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    bull = queue.rate("bullmq").med if queue else None
    limits = []
    m = re.search(r"(\d+) cores", d.head)
    cores = int(m.group(1)) if m else None
    for store, runs in d.runs.items():
        for r in runs:
            rate = num(r.get("jobs_per_s"))
            x = fmt_ratio(ratio(rate, bull)) + "×" if bull and rate else "–"
            db_cpu = r.get("db_cpu_us_per_job", "–") if store == "postgres" else "(in the worker)"
            busy = num(r.get("machine_busy"))
            lines.append(f"| {store} | {int(num(r.get('jobs')) or 0):,} | **{fmt_num(rate)}** | "
                         f"{r.get('worker_cpu_us_per_job', '–')} | {db_cpu} | "
                         f"{r.get('redis_cpu_us_per_job', '–')} | "
                         f"{f'{busy:.0%}' if busy is not None else '–'} | {int(num(r.get('calls')) or 0):,} | "
                         f"{int(num(r.get('customers')) or 0):,} | {int(num(r.get('events')) or 0):,} | {x} |")
            parts = [num(r.get(k)) for k in ("worker_cpu_us_per_job", "db_cpu_us_per_job",
                                              "redis_cpu_us_per_job")]
            if store == "postgres" and rate and cores and busy is not None and None not in parts:
                total = sum(parts)
                limits.append(
                    f"- **What limits the Postgres drain**: worker {parts[0]:.0f} + Postgres {parts[1]:.0f} + "
                    f"Redis {parts[2]:.0f} ≈ {total:.0f} µs of CPU per job, on a machine {busy:.0%} busy "
                    f"while it drained: the three share its {cores} cores, so at 100% they could "
                    f"finish at most ~{cores * 1e6 / total:,.0f} jobs/s. Postgres's own share "
                    "(three upserts with their foreign-key checks and a commit per job) is the largest."
                    + (" The machine, not a lock, is what the drain waits on." if busy >= 0.8 else ""))
            if busy is not None and busy < 0.8:
                limits.append(
                    f"- The {store} drain left the machine {1 - busy:.0%} idle: it waits on round trips "
                    "and commits (on SQLite, the fsync of each group commit), not on CPU.")
    lines.append("")
    lines.extend(limits)
    if limits:
        lines.append("")


def wrap(text, width=100):
    """Wraps prose paragraphs and list items at `width`; tables, code, headings, comments and
    images stay as they are."""
    out, in_code = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        if in_code or line.startswith(("```", "|", "#", "<!--", "![")) or len(line) <= width:
            out.append(line)
            continue
        indent = "  " if line.startswith("- ") else ("> " if line.startswith("> ") else "")
        # keep a number with its unit, and "≈ N", on one line
        glued = re.sub(r"(\d) (µs|ms|s|cores|ops/s|jobs/s|requests/s)\b", "\\1\x00\\2", line)
        glued = re.sub(r"([≈×<>≥≤]) (\S)", "\\1\x00\\2", glued)
        out.append(textwrap.fill(glued, width=width, subsequent_indent=indent, break_long_words=False,
                                 break_on_hyphens=False).replace("\x00", " "))
    return "\n".join(out)


# ------------------------------------------------------------------------------ plot

def plot(queue, intake, floors, out, subtitle=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ours_c, peer_c, goal_c = "#d1495b", "#8d99ae", "#2b2d42"
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    fig.suptitle("moked benchmarks — one machine, one run: read the ratios", fontsize=14, fontweight="bold")
    if subtitle:
        fig.text(0.5, 0.95, subtitle, ha="center", va="top", fontsize=10,
                 color="#d1495b" if subtitle.startswith("SMOKE") else "#444444")

    def hbars(ax, names, stats, colours, unit, log=True, notes=None):
        y = list(range(len(names)))
        meds = [s.med or 0 for s in stats]
        err = [[max(0, (s.med or 0) - (s.lo or 0)) for s in stats], [max(0, (s.hi or 0) - (s.med or 0)) for s in stats]]
        ax.barh(y, meds, xerr=err, color=colours, capsize=3, height=0.7)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        hi = max([s.hi or 0 for s in stats] + [1])
        lo = min((m for m in meds if m), default=1)
        for i, (m, s) in enumerate(zip(meds, stats)):
            if m:
                note = f"  {notes[i]}" if notes and notes[i] else ""
                x = (s.hi or m) * (1.12 if log else 1.0) + (0 if log else hi * 0.02)
                ax.text(x, i, f"{m:,.0f}{note}", va="center", fontsize=9)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(lo / 3, hi * 12)
        else:
            ax.set_xlim(0, hi * 1.65)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel(unit)
        ax.grid(axis="x", which="both", alpha=0.25)

    def latency(ax, names, series, colours_for):
        width = 0.8 / max(1, len(series))
        for j, (label, vals) in enumerate(series):
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, [v or 0 for v in vals], width, label=label, color=colours_for(j), edgecolor="white")
            for x, v in zip(xs, vals):
                if v:
                    ax.text(x, v * 1.1, f"{v:.3g}", ha="center", fontsize=8)
        ax.set_xticks(range(len(names)), names, fontsize=9)
        ax.set_yscale("log")
        ax.set_ylabel("ms (log)")
        ax.grid(axis="y", which="both", alpha=0.25)

    shades = ["#8ecae6", "#219ebc", "#023047", "#fb8500"]

    # Intake throughput
    ax = axes[0][0]
    if intake and intake.peers:
        order = intake.order()
        names = [PEER_NAMES.get(p, p).split(" (")[0] for p in order]
        stats = [intake.stat(p, "rps") for p in order]
        axum = intake.stat("axum-hello", "rps").med
        notes = [f"({fmt_ratio(ratio(s.med, axum))}× axum)" if axum and p != "axum-hello" else "" for p, s in zip(order, stats)]
        colours = [ours_c if p == "ours" else peer_c for p in order]
        # The floor passes have their own bare axum: their note gives that pass's ratio.
        for mode, f in floors.items():
            names.append(f"floor: {mode}")
            stats.append(f.stat("ours", "rps"))
            notes.append(f"({fmt_ratio(floor_ratio(floors, mode))}× axum, own pass)")
            colours.append("#c9ada7")
        hbars(ax, names, stats, colours, "requests/s (log scale); bar = median, whisker = min..max", notes=notes)
        express = intake.stat("express-bullmq", "rps").med
        for val, label, style in ((axum and INTAKE_VS_AXUM * axum, f"goal: {INTAKE_VS_AXUM}× bare axum", "--"),
                                  (express and INTAKE_VS_EXPRESS * express, f"goal: {INTAKE_VS_EXPRESS:g}× Express+BullMQ", ":")):
            if val:
                ax.axvline(val, color=goal_c, ls=style, lw=1.2, label=label)
        ax.legend(fontsize=8, loc="upper right")
        ax.set_title("Intake: signed webhooks answered per second")
    else:
        ax.set_axis_off()
        ax.set_title("Intake: not in this run")

    # Intake latency
    ax = axes[0][1]
    if intake and intake.peers:
        order = intake.order()
        names = [PEER_NAMES.get(p, p).split(" (")[0].replace(" + ", "+\n").replace("bare ", "bare\n") for p in order]
        series = [("p50", [intake.stat(p, "p50_ms").med for p in order]),
                  ("p99", [intake.stat(p, "p99_ms").med for p in order])]
        latency(ax, names, series, lambda j: shades[j + 1])
        ax.axhline(INTAKE_P99_MS, color=goal_c, ls="--", lw=1.2, label=f"goal: moked p99 < {INTAKE_P99_MS:g} ms")
        top = max([v for _, vs in series for v in vs if v] + [INTAKE_P99_MS])
        ax.set_ylim(top=top * 4)
        ax.legend(fontsize=8, loc="upper right", ncol=3)
        ax.set_title("Intake: latency under saturation (wrk, closed loop)")
    else:
        ax.set_axis_off()

    # Queue drain throughput
    ax = axes[1][0]
    if queue and any(queue.drains.values()):
        order = [p for p in ("bullmq", "moked", "moked-backend") if queue.drains[p]]
        names = [{"bullmq": "BullMQ", "moked": "moked runner", "moked-backend": "moked backend alone"}[p] for p in order]
        stats = [queue.rate(p) for p in order]
        colours = [ours_c if p == "moked" else ("#e9a3ae" if p == "moked-backend" else peer_c) for p in order]
        if queue.backlog and num(queue.backlog.get("jobs_per_s")):
            names.append(f"moked, {int(num(queue.backlog['jobs'])):,} backlog")
            stats.append(Stat([num(queue.backlog["jobs_per_s"])]))
            colours.append("#b5838d")
        bull = queue.rate("bullmq").med
        notes = [f"({fmt_ratio(ratio(s.med, bull))}× BullMQ)" if bull and n != "BullMQ" else "" for n, s in zip(names, stats)]
        hbars(ax, names, stats, colours, "jobs/s; bar = median, whisker = min..max", log=False, notes=notes)
        if bull:
            ax.axvline(WORKER_VS_BULLMQ * bull, color=goal_c, ls="--", lw=1.2, label=f"goal: {WORKER_VS_BULLMQ}× BullMQ")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_title(f"Queue: no-op jobs drained per second ({queue.jobs('moked') or queue.jobs('bullmq') or 0:,} per drain)")
    else:
        ax.set_axis_off()
        ax.set_title("Queue: not in this run")

    # Queue pickup latency
    ax = axes[1][1]
    if queue and queue.pickup:
        p = queue.pickup
        keys = ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
        vals = [num(p.get(k)) for k in keys]
        ax.bar(range(4), [v or 0 for v in vals], color=shades)
        for i, v in enumerate(vals):
            if v:
                ax.text(i, v * 1.1, f"{v:.3g}", ha="center", fontsize=9)
        ax.set_xticks(range(4), ["p50", "p90", "p99", "max"])
        ax.set_yscale("log")
        ax.axhline(PICKUP_P99_MS, color=goal_c, ls="--", lw=1.2, label=f"goal: p99 < {PICKUP_P99_MS:g} ms")
        top = max([v for v in vals if v] + [PICKUP_P99_MS])
        low = min([v for v in vals if v] + [PICKUP_P99_MS])
        ax.set_ylim(low / 3, top * 4)
        ax.set_ylabel("ms (log)")
        ax.grid(axis="y", which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="upper left")
        ax.set_title(f"Queue: idle pickup latency, moked ({p.get('samples')} jobs, {p.get('gap_ms')} ms apart)")
    else:
        ax.set_axis_off()

    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="report folder, queue-*.txt, harness run folder or results.txt")
    ap.add_argument("--out-dir", default=str(ROOT / "docs"), help="where BENCHMARKS.md and bench.png go")
    a = ap.parse_args()
    machine, queue, intake, floors = classify(a.paths)
    drain = next((d for d in map(drain_in, (p for p in a.paths if Path(p).is_dir())) if d), None)
    if not queue and not intake:
        sys.exit("report.py: no queue or intake results among the paths given")
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    whens = [w for w in ((queue.when if queue else None), (intake.when if intake else None)) if w]
    started = machine.get("date") or (min(whens) if whens else None)
    subtitle = f"{when_text(started)}, {machine_line(machine, queue, intake).split(' (')[0]}"
    if machine.get("cpu"):
        subtitle += f" ({machine.get('cpu')})"
    small = small_run(machine, queue, intake)
    if small:
        subtitle = f"SMOKE RUN ({', '.join(small)}): not for comparison\n{subtitle}"
    plot(queue, intake, floors, out / "bench.png", subtitle)
    (out / "BENCHMARKS.md").write_text(document(machine, queue, intake, floors, "bench.png", drain), encoding="utf-8")
    print(f"wrote {out / 'BENCHMARKS.md'} and {out / 'bench.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""RQ's worker side, for comparison with moked's runner: queue N no-op jobs, then run W
`rq worker --burst` processes until they are all finished or MAX_S seconds passed (the workers
are then stopped and the rate counts the jobs finished by then: partial=1).

usage: python drain.py [N=20000] [W=2] [WORKER_CLASS=rq.worker.Worker] [MAX_S=0, no limit]
env:   REDIS_URL (redis://127.0.0.1:6391/0)

Prints one line: RESULT jobs= workers= worker_class= fill_s= drain_s= jobs_per_s= done= failed=
partial= steady_jobs_per_s= worker_cpu_s= cpu_ms_per_job= redis_cpu_s=
(jobs_per_s from the workers' launch; steady_jobs_per_s from the first finished job;
worker_cpu_s: the worker processes and the work horses they fork; redis_cpu_s: Redis's
used_cpu_user+sys over the drain only).
"""

import os
import resource
import subprocess
import sys
import time

from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry

import jobs

HERE = os.path.dirname(os.path.abspath(__file__))


def redis_cpu(conn):
    info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    args = sys.argv[1:] + [None] * 4
    n = int(args[0] or 20000)
    workers = int(args[1] or 2)
    worker_class = args[2] or "rq.worker.Worker"
    max_s = float(args[3] or 0)
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6391/0")
    conn = Redis.from_url(url)
    queue = Queue("drain", connection=conn)
    queue.empty()
    finished, failed = FinishedJobRegistry(queue=queue), FailedJobRegistry(queue=queue)

    t0 = time.monotonic()
    for first in range(0, n, 1000):
        batch = [
            Queue.prepare_data(jobs.handle, args=("call_status", f"CA{i:032x}", "completed"))
            for i in range(first, min(n, first + 1000))
        ]
        with conn.pipeline() as pipe:
            queue.enqueue_many(batch, pipeline=pipe)
            pipe.execute()
    fill = time.monotonic() - t0

    redis0, cpu0 = redis_cpu(conn), children_cpu()
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rq.cli", "worker", "--burst", "--quiet", "-w", worker_class, "-u", url, "drain"],
            cwd=HERE,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    first_done, partial = None, 0
    while True:
        done = finished.count + failed.count
        now = time.monotonic()
        if first_done is None and done:
            first_done = now
        if done >= n or all(p.poll() is not None for p in procs):
            break
        if max_s and now - start > max_s:
            partial = 1
            for p in procs:
                p.terminate()
            break
        time.sleep(0.02)
    end = time.monotonic()
    for p in procs:
        p.wait()
    cpu = children_cpu() - cpu0
    done_ok, done_failed = finished.count, failed.count
    drain = end - start
    steady = (done_ok + done_failed - 1) / (end - first_done) if first_done and end > first_done else 0.0
    print(
        f"RESULT jobs={n} workers={workers} worker_class={worker_class} fill_s={fill:.3f} "
        f"drain_s={drain:.3f} jobs_per_s={(done_ok + done_failed) / drain:.1f} done={done_ok} "
        f"failed={done_failed} partial={partial} steady_jobs_per_s={steady:.1f} worker_cpu_s={cpu:.2f} "
        f"cpu_ms_per_job={1000 * cpu / max(done_ok, 1):.3f} redis_cpu_s={redis_cpu(conn) - redis0:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Prints the CPU seconds (user + system) used so far by the given PIDs and all their live
descendants, from /proc. The harness reads it before and after a load and charges the
difference to the peer (or to Redis).

usage: cpu.py PID [PID ...]
"""

import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """(ppid, utime + stime + cutime + cstime in ticks) of one process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    # utime, stime, cutime, cstime are fields 14-17 of the full line (11-14 here, 0-based).
    # Waited-for children (cutime, cstime) count too: gunicorn's and RQ's forks end that way.
    return ppid, sum(int(x) for x in fields[11:15])


def main():
    roots = {int(p) for p in sys.argv[1:] if p.strip()}
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = stat(int(name))
            if s:
                procs[int(name)] = s
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = set(), [p for p in roots if p in procs]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    print(f"{sum(procs[p][1] for p in seen) / TICK:.2f}")


if __name__ == "__main__":
    main()

"""How many CPU threads to give torch's kernels on the machine as it is now."""

import os
import time

import torch

SAMPLE_S = 0.25          # how long the cores are watched


def busy_cores(seconds=SAMPLE_S):
    """How many of the machine's cores other work keeps busy now: the share of CPU time not idle over
    the next ``seconds`` (Linux's /proc/stat), times the cores. None where /proc/stat cannot be read."""
    def times():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)              # idle + iowait
        return sum(fields[:8]), idle

    try:
        total, idle = times()
        time.sleep(seconds)
        total2, idle2 = times()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total2 - total
    if elapsed <= 0:
        return 0.0
    return (1 - (idle2 - idle) / elapsed) * (os.cpu_count() or 1)


def default_threads():
    """The cores that other work leaves free now, at least one, at most torch's own default: on a
    shared machine, a kernel split over more threads than there are free cores waits for the slowest of
    them, and a step can take many times longer. Measured over a quarter of a second, not from the load
    average, which lags by a minute: the tail of the previous command would count as busy for long after
    it ended. Where the kernel does not say (no /proc/stat), the 1-minute load average stands in."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = busy_cores()
    if busy is None:
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy *= cores / (os.cpu_count() or cores)                    # the share of the cores we may run on
    return max(1, min(torch.get_num_threads(), round(cores - busy)))

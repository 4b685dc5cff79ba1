"""How many CPU threads to give torch's kernels on the machine as it is now."""

import os

import torch


def default_threads():
    """The cores that other work leaves free (its 1-minute load average subtracted), at least one,
    at most torch's own default: on a shared machine, a kernel split over more threads than there
    are free cores waits for the slowest of them, and a step can take many times longer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(torch.get_num_threads(), int(cores - busy)))

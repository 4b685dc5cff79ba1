"""The timing harness: hand and built-in measured side by side in one process.

Timed comparisons alternate hand and built-in repetitions (swapping which goes first), after a
warm-up, and report the median time of each and the median of the per-pair ratios hand / built-in,
so that a machine slowing down or speeding up mid-run hits both sides alike. On CUDA, times come
from CUDA events followed by a synchronize; on the CPU from ``time.perf_counter``.
"""

import importlib.metadata
import math
import os
import platform
import statistics
import time

import torch


def timed(fn, device):
    """(seconds, result) of ``fn()``: CUDA events around it then a synchronize, or perf_counter."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        result = fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, result
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _repeat(fn, number):
    def run():
        for _ in range(number):
            fn()
    return run


def paired(hand, builtin, device, repeats, sample_s, warmup=3):
    """Time ``hand()`` against ``builtin()`` in alternating pairs; seconds per call.

    Each sample runs the callable ``number`` times, chosen so that the faster of the two takes at
    least ``sample_s`` per sample; both sides run the same number of calls.
    """
    for _ in range(warmup):
        hand()
        builtin()
    fastest = min(timed(_repeat(fn, 3), device)[0] / 3 for fn in (hand, builtin))
    number = max(1, math.ceil(sample_s / max(fastest, 1e-7)))
    return paired_samples(_repeat(hand, number), _repeat(builtin, number), device, repeats, per=number)


def paired_samples(hand, builtin, device, repeats, per=1):
    """Alternate ``hand()`` and ``builtin()`` ``repeats`` times each, hand first on even pairs."""
    samples = {"hand": [], "torch": []}
    for r in range(repeats):
        order = [("hand", hand), ("torch", builtin)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            samples[name].append(timed(fn, device)[0] / per)
    return summarise(samples) | {"calls_per_sample": per}


def summarise(samples):
    """Medians of each side and the median of the per-pair ratios hand / built-in."""
    ratios = [h / t for h, t in zip(samples["hand"], samples["torch"])]
    return {
        "hand_s": statistics.median(samples["hand"]),
        "torch_s": statistics.median(samples["torch"]),
        "ratio": statistics.median(ratios),
        "samples": samples,
    }


# ---------------------------------------------------------------------------------------- output

def print_table(title, header, rows):
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = lambda row: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
    print(f"\n{title}\n{line(header)}\n{line(['-' * w for w in widths])}")
    for row in cells[1:]:
        print(line(row))


def ms(seconds):
    return f"{seconds * 1e3:.3f}"


def machine(device):
    """The CPU, its cores, torch's threads and versions, and the GPU when one is used."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None

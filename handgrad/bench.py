"""Hand-derived gradients vs PyTorch's built-ins, measured side by side in one process.

    python -m handgrad.bench                         # the real measurement (several minutes)
    python -m handgrad.bench --quick                 # every section shortened: a minute or two
    python -m handgrad.bench --sections 1,3 --device cpu --json cpu.json

Sections:

1. each Function's forward + backward at the seed's sizes, ``handgrad.functional`` vs
   ``torch.nn.functional``;
2. one training step (zero_grad, forward, cross-entropy, backward, SGD step) of each seed network,
   ``models.build(net, "hand")`` vs ``models.build(net, "torch")`` holding identical weights;
3. bytes kept for backward per training step: the unique storages that autograd saves (parameters
   excluded), seen through ``torch.autograd.graph.saved_tensors_hooks``;
4. one epoch of train.py's data path (``TensorBatches`` over tensors on the device) vs the seed's
   ``DataLoader(FashionMNIST(transform=ToTensor()), batch_size=64)``, iteration only;
5. training seconds to 83 % and 88 % test accuracy with the default recipe (better network, Adam
   1e-3, cosine per step, batch 128, normalised input), evaluation every quarter epoch not counted;
6. whole-process wall time of ``train.py`` with the seed's quickstart config vs the seed's own
   quickstart code (``benchmarks/seed_quickstart.py``), both as subprocesses.

Timed comparisons alternate hand and built-in repetitions (swapping which goes first), after a
warm-up, and report the median time of each and the median of the per-pair ratios hand / built-in,
so that a machine slowing down or speeding up mid-run hits both sides alike. Section 5 trains both
runs interleaved, a quarter epoch at a time, for the same reason. On CUDA, times come from CUDA
events followed by a synchronize; on the CPU from ``time.perf_counter``. Every number, raw
samples included, is written to the JSON file.
"""

import argparse
import inspect
import itertools
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision.transforms import ToTensor

import handgrad.nn
from handgrad import functional
from handgrad.training import cli, models
from handgrad.training.data import FashionMNISTDataModule, TensorBatches
from handgrad.training.lit import LitClassifier, build_optimizer, build_scheduler

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("quickstart", "basic", "better")
BATCHES = (64, 1024)
IMPLS = ("hand", "torch")
THRESHOLDS = (0.83, 0.88)

# What each mode runs: repetition pairs, seconds per timed sample, and how much of each epoch-long job.
MODES = {
    "full": dict(repeats=30, sample_s=0.05, data_repeats=3, data_fraction=1.0, recipe_epochs=None,
                 process_warmup=1, process_repeats=3, process_epochs=3),
    "quick": dict(repeats=6, sample_s=0.01, data_repeats=1, data_fraction=0.1, recipe_epochs=1,
                  process_warmup=0, process_repeats=1, process_epochs=1),
}


def _defaults(cls):
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}


# `python train.py` with no arguments, read from the classes' own defaults.
RECIPE = {**_defaults(LitClassifier), **_defaults(FashionMNISTDataModule),
          "epochs": cli.DEFAULT_MAX_EPOCHS, "seed": cli.DEFAULT_SEED}


# ---------------------------------------------------------------------------------------- timing

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
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


# ------------------------------------------------------------------- 1. Functions, forward + backward

def _function_cases(device):
    """(name, size, inputs, grad_output, kwargs) at the seed's sizes; inputs needing grad marked."""
    def randn(*shape, grad=True):
        return torch.randn(*shape, device=device, requires_grad=grad)

    cases = []
    for batch, (n_in, n_out) in itertools.product(BATCHES, ((784, 512), (512, 512))):
        inputs = (randn(batch, n_in), randn(n_out, n_in), randn(n_out))
        cases.append(("linear", f"{n_in}->{n_out}, batch {batch}", inputs, randn(batch, n_out, grad=False), {}))
    for op, kwargs in (("sigmoid", {}), ("relu", {}), ("dropout", {"p": 0.2, "training": True})):
        size = "(1024, 512)" + (", p=0.2" if op == "dropout" else "")
        cases.append((op, size, (randn(1024, 512),), randn(1024, 512, grad=False), kwargs))
    target = torch.randint(0, 10, (1024,), device=device)
    cases.append(("cross_entropy", "(1024, 10) logits", (randn(1024, 10), target), None, {}))
    return cases


def _forward_backward(F, op, inputs, grad_output, kwargs):
    wrt = [t for t in inputs if t.requires_grad]

    def run():
        out = getattr(F, op)(*inputs, **kwargs)
        torch.autograd.grad(out, wrt, grad_output)
    return run


def bench_functions(device, mode):
    results = []
    for op, size, inputs, grad_output, kwargs in _function_cases(device):
        hand = _forward_backward(functional, op, inputs, grad_output, kwargs)
        builtin = _forward_backward(torch.nn.functional, op, inputs, grad_output, kwargs)
        results.append({"op": op, "size": size} | paired(hand, builtin, device, mode["repeats"], mode["sample_s"]))
    print_table(
        "1. Forward + backward per call (ms): handgrad.functional vs torch.nn.functional",
        ["op", "size", "hand", "torch", "hand/torch"],
        [[r["op"], r["size"], ms(r["hand_s"]), ms(r["torch_s"]), f"{r['ratio']:.2f}"] for r in results],
    )
    return results


# --------------------------------------------------------------------------- 2. training step

def twin_models(network, device):
    """The network from handgrad layers and from torch.nn layers, with identical weights."""
    torch.manual_seed(0)
    hand = models.build(network, "hand").to(device)
    builtin = models.build(network, "torch").to(device)
    builtin.load_state_dict(hand.state_dict())
    return {"hand": hand, "torch": builtin}


def loss_functions():
    return {"hand": handgrad.nn.CrossEntropyLoss(), "torch": torch.nn.CrossEntropyLoss()}


def fake_batch(batch, device):
    return torch.rand(batch, 1, 28, 28, device=device), torch.randint(0, 10, (batch,), device=device)


def _training_step(model, loss_fn, optimizer, x, y):
    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return step


def bench_training_step(device, mode):
    results = []
    for network, batch in itertools.product(NETWORKS, BATCHES):
        twins, losses = twin_models(network, device), loss_functions()
        x, y = fake_batch(batch, device)
        steps = {
            impl: _training_step(m, losses[impl], torch.optim.SGD(m.parameters(), lr=1e-3), x, y)
            for impl, m in twins.items()
        }
        timing = paired(steps["hand"], steps["torch"], device, mode["repeats"], mode["sample_s"])
        results.append({"network": network, "batch": batch} | timing)
    print_table(
        "2. Training step (ms): zero_grad, forward, cross-entropy, backward, SGD step",
        ["network", "batch", "hand", "torch", "hand/torch"],
        [[r["network"], r["batch"], ms(r["hand_s"]), ms(r["torch_s"]), f"{r['ratio']:.2f}"] for r in results],
    )
    return results


# ------------------------------------------------------------------ 3. bytes kept for backward

def saved_for_backward(model, loss_fn, x, y):
    """(bytes, tensors): unique storages autograd keeps for one step's backward, parameters excluded.

    The input batch counts when a layer saves it (the first Linear needs x for dL/dW = gᵀx).
    """
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    model.zero_grad()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(x), y)
    loss.backward()
    return sum(storages.values()), len(storages)


def bench_saved_bytes(device, mode):
    results = []
    for network, batch in itertools.product(NETWORKS, BATCHES):
        twins, losses = twin_models(network, device), loss_functions()
        x, y = fake_batch(batch, device)
        row = {"network": network, "batch": batch}
        for impl in IMPLS:
            row[f"{impl}_bytes"], row[f"{impl}_tensors"] = saved_for_backward(twins[impl], losses[impl], x, y)
        row["ratio"] = row["hand_bytes"] / row["torch_bytes"]
        results.append(row)
    print_table(
        "3. Saved for backward per training step (KiB, unique storages, parameters excluded)",
        ["network", "batch", "hand", "torch", "hand/torch", "tensors hand/torch"],
        [
            [r["network"], r["batch"], f"{r['hand_bytes'] / 1024:.1f}", f"{r['torch_bytes'] / 1024:.1f}",
             f"{r['ratio']:.3f}", f"{r['hand_tensors']}/{r['torch_tensors']}"]
            for r in results
        ],
    )
    return results


# ------------------------------------------------------------------------------ 4. data path

def _iterate(batches, n_batches, device):
    """Touch each of the first n_batches batches: move it to the device, as a training step would."""
    def run():
        for x, y in itertools.islice(batches, n_batches):
            x.to(device), y.to(device)
    return run


def bench_data(device, mode, data_dir):
    """One epoch (or mode's fraction of one, scaled up) of batch-64 iteration over 60,000 images."""
    datamodule = FashionMNISTDataModule(str(data_dir), batch_size=64, val_size=0, download=False)
    setup_s = {}
    setup_s["hand"], _ = timed(datamodule.setup, device)
    datamodule.train_set = tuple(t.to(device) for t in datamodule.train_set)
    ours = datamodule.train_dataloader()
    setup_s["torch"], seed_set = timed(
        lambda: torchvision.datasets.FashionMNIST(str(data_dir), train=True, transform=ToTensor()), device
    )
    seeds = DataLoader(seed_set, batch_size=64)
    n_batches = max(1, round(mode["data_fraction"] * len(seeds)))
    fraction = n_batches / len(seeds)
    for batches in (ours, seeds):                                   # warm-up
        _iterate(batches, 10, device)()
    timing = paired_samples(
        _iterate(ours, n_batches, device), _iterate(seeds, n_batches, device), device, mode["data_repeats"]
    )
    sides = {"hand": "train.py: TensorBatches on the device", "torch": "seed: DataLoader + ToTensor"}
    result = {
        "sides": sides,
        "epoch_fraction": fraction,
        "hand_epoch_s": timing["hand_s"] / fraction,
        "torch_epoch_s": timing["torch_s"] / fraction,
        "speedup": 1 / timing["ratio"],
        "setup_s": setup_s,
        "shuffle": datamodule.shuffle,
        "normalize": datamodule.normalize,
    } | timing
    print_table(
        f"4. Data path, seconds per epoch of 60,000 images at batch 64 "
        f"(measured on {fraction:.0%} of an epoch, scaled; setup once)",
        ["pipeline", "s / epoch", "setup s"],
        [[sides[impl], f"{result[impl + '_epoch_s']:.3f}", f"{setup_s[impl]:.2f}"] for impl in IMPLS],
    )
    print(f"speed-up (median of per-pair ratios): {result['speedup']:.1f}x")
    return result


# --------------------------------------------------------------------- 5. time to accuracy

class RecipeRun:
    """The default recipe's training loop for one impl, advanced a chunk of steps at a time."""

    def __init__(self, impl, datamodule, device):
        r = RECIPE
        torch.manual_seed(r["seed"])
        self.model = models.build(r["network"], impl, r["dropout"]).to(device)
        self.loss_fn = (handgrad.nn if impl == "hand" else torch.nn).CrossEntropyLoss(label_smoothing=r["label_smoothing"])
        self.epoch = 0
        self.batches = TensorBatches(
            *datamodule.train_set, batch_size=r["batch_size"], shuffle=r["shuffle"], seed=r["seed"],
            epoch=lambda: self.epoch, pad=True,
        )
        self.optimizer = build_optimizer(self.model.parameters(), r["optimizer"], r["lr"], r["momentum"], r["weight_decay"])
        total_steps = r["epochs"] * len(self.batches)               # the whole recipe's schedule
        self.scheduler = build_scheduler(self.optimizer, r["scheduler"], total_steps)
        self.x_test, self.y_test = datamodule.test_set
        self.train_s, self.curve, self.reached = 0.0, [], {}

    def start_epoch(self, epoch):
        self.epoch = epoch
        self._steps = iter(self.batches)

    def train(self, n_steps, device):
        def run():
            self.model.train()
            for x, y in itertools.islice(self._steps, n_steps):
                self.optimizer.zero_grad()
                loss = self.loss_fn(self.model(x), y)
                loss.backward()
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
        self.train_s += timed(run, device)[0]

    @torch.no_grad()
    def evaluate(self, epochs_done):
        self.model.eval()
        accuracy = (self.model(self.x_test).argmax(1) == self.y_test).float().mean().item()
        self.curve.append({"epochs": epochs_done, "train_s": self.train_s, "test_acc": accuracy})
        for threshold in THRESHOLDS:
            if accuracy >= threshold and threshold not in self.reached:
                self.reached[threshold] = {"train_s": self.train_s, "epochs": epochs_done}


def bench_time_to_accuracy(device, mode, data_dir):
    datamodule = FashionMNISTDataModule(
        str(data_dir), batch_size=RECIPE["batch_size"], val_size=RECIPE["val_size"],
        normalize=RECIPE["normalize"], download=False,
    )
    datamodule.setup()
    for name in ("train_set", "test_set"):
        setattr(datamodule, name, tuple(t.to(device) for t in getattr(datamodule, name)))
    runs = {impl: RecipeRun(impl, datamodule, device) for impl in IMPLS}
    steps = len(runs["hand"].batches)
    quarters = [round(steps * q / 4) for q in range(5)]
    epochs = mode["recipe_epochs"] or RECIPE["epochs"]        # full mode: the whole recipe
    for epoch in range(epochs):
        for run in runs.values():
            run.start_epoch(epoch)
        for q in range(4):
            order = IMPLS if (4 * epoch + q) % 2 == 0 else IMPLS[::-1]
            for impl in order:
                runs[impl].train(quarters[q + 1] - quarters[q], device)
                runs[impl].evaluate(epoch + (q + 1) / 4)
    results = {
        impl: {
            "reached": {f"{t:.0%}": run.reached.get(t) for t in THRESHOLDS},
            "final_test_acc": run.curve[-1]["test_acc"],
            "train_s": run.train_s,
            "curve": run.curve,
        }
        for impl, run in runs.items()
    }
    results["epochs_run"] = epochs
    results["recipe"] = RECIPE

    def reached(impl, t):
        hit = runs[impl].reached.get(t)
        return f"{hit['train_s']:.1f} s ({hit['epochs']:g} ep)" if hit else "not reached"

    print_table(
        f"5. Default recipe, training seconds to test accuracy (evaluation not counted; "
        f"{epochs} of {RECIPE['epochs']} epochs run)",
        ["impl", *(f"to {t:.0%}" for t in THRESHOLDS), "final acc", "train s"],
        [
            [impl, *(reached(impl, t) for t in THRESHOLDS), f"{runs[impl].curve[-1]['test_acc']:.2%}",
             f"{runs[impl].train_s:.1f}"]
            for impl in IMPLS
        ],
    )
    return results


# ------------------------------------------------------------------- 6. whole-process wall time

def _run_process(command):
    """(wall seconds, stdout) of a subprocess started from the repository root."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def _train_py(epochs, device, data_dir):
    def run():
        with tempfile.TemporaryDirectory() as root:
            seconds, _ = _run_process(
                [sys.executable, "train.py", "--config", "configs/seed_quickstart.yaml",
                 "--trainer.max_epochs", str(epochs), "--trainer.enable_progress_bar", "false",
                 "--trainer.accelerator", device.type, "--trainer.default_root_dir", root,
                 "--data.data_dir", str(data_dir)]
            )
            results = json.loads(next(Path(root).glob("*/results.json")).read_text())
            return seconds, results["test_acc"]
    return run


def _seed_script(epochs, device, data_dir):
    def run():
        seconds, out = _run_process(
            [sys.executable, "benchmarks/seed_quickstart.py", "--root", str(data_dir),
             "--epochs", str(epochs), "--device", device.type]
        )
        return seconds, float(re.findall(r"Accuracy: ([\d.]+)%", out)[-1]) / 100
    return run


def bench_whole_process(device, mode, data_dir):
    epochs = mode["process_epochs"]
    runs = {"hand": _train_py(epochs, device, data_dir), "torch": _seed_script(epochs, device, data_dir)}
    for _ in range(mode["process_warmup"]):                # disk cache, .pyc and font caches
        for run in runs.values():
            run()
    samples, accuracy = {"hand": [], "torch": []}, {}
    for r in range(mode["process_repeats"]):
        for impl in IMPLS if r % 2 == 0 else IMPLS[::-1]:
            seconds, accuracy[impl] = runs[impl]()
            samples[impl].append(seconds)
    sides = {"hand": "python train.py --config configs/seed_quickstart.yaml",
             "torch": "python benchmarks/seed_quickstart.py"}
    result = {"sides": sides, "epochs": epochs, "test_acc": accuracy} | summarise(samples)
    print_table(
        f"6. Whole process, {epochs} epoch(s) of the seed's quickstart then its test (wall seconds)",
        ["process", "wall s", "test acc"],
        [[sides[impl], f"{result[impl + '_s']:.1f}", f"{accuracy[impl]:.1%}"] for impl in IMPLS],
    )
    print(f"train.py / seed (median of per-pair ratios): {result['ratio']:.2f}")
    return result


# ------------------------------------------------------------------------------------- main

SECTIONS = {
    1: ("functions", lambda device, mode, data_dir: bench_functions(device, mode)),
    2: ("training_step", lambda device, mode, data_dir: bench_training_step(device, mode)),
    3: ("saved_bytes", lambda device, mode, data_dir: bench_saved_bytes(device, mode)),
    4: ("data_path", bench_data),
    5: ("time_to_accuracy", bench_time_to_accuracy),
    6: ("whole_process", bench_whole_process),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="shorten every section (a minute or two in all)")
    parser.add_argument("--sections", default=",".join(map(str, SECTIONS)), help="comma-separated, e.g. 1,2,5")
    parser.add_argument("--json", default="bench.json", help="where to write every number")
    parser.add_argument("--data-dir", default=str(ROOT / "data"), help="the root holding FashionMNIST/raw/")
    args = parser.parse_args(argv)
    names = {s.strip() for s in args.sections.split(",")}
    unknown = sorted(names - {str(n) for n in SECTIONS})
    if unknown:
        parser.error(f"--sections: no section {', '.join(unknown)}; choose from {sorted(SECTIONS)}")
    args.sections = sorted(int(s) for s in names)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    return args


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    mode_name = "quick" if args.quick else "full"
    mode = MODES[mode_name]
    report = {"machine": machine(device), "mode": mode_name, "settings": mode, "sections": {}, "section_s": {}}
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items() if v is not None))
    print(f"Mode: {mode_name}, sections {args.sections}; times are medians, ratios medians of per-pair ratios")
    start = time.perf_counter()
    for number in args.sections:
        name, bench = SECTIONS[number]
        section_start = time.perf_counter()
        report["sections"][name] = bench(device, mode, Path(args.data_dir))
        report["section_s"][name] = seconds = time.perf_counter() - section_start
        print(f"(section {number} took {seconds:.0f} s)")
    report["total_s"] = time.perf_counter() - start
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nAll numbers written to {args.json} ({report['total_s']:.0f} s)")


if __name__ == "__main__":
    main()

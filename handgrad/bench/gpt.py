"""Section 12: the GPT, on hand gradients plain and lean against the built-in, side by side.

At two sizes (nanoGPT's CPU recipe: 4 layers, 4 heads, width 128, context 64, batch 12; and nanoGPT's
GPU recipe's shape: 6 layers, 6 heads, width 384, context 256, at batch 4), ``handgrad.training.gpt.GPT``
built three times from one set of weights: on torch's built-ins, converted (``memory="plain"``) and
converted lean. For each:

- the bytes kept for backward by a training step's forward (``handgrad.testing.memory.Kept``: unique
  storages saved, parameters excluded), and which ops' outputs lean made again instead;
- the training step (zero_grad, forward with its loss, backward, AdamW step), timed against the
  built-in's in alternating pairs; lean's loss and gradients checked equal to plain's, bit for bit,
  and both to the built-in's, before anything is timed;
- the peak resident memory of a training step above the memory before it, each variant in a process of
  its own (Linux's VmHWM, reset before the step; glibc told to map blocks of 64 KiB and more one by one,
  so that resident memory follows what is live rather than what the allocator holds on to);
- with ``--nanogpt PATH`` (a checkout of karpathy/nanoGPT, not shipped here), the same for nanoGPT's
  own ``model.py`` at its CPU recipe.
"""

import copy
import json
import os
import subprocess
import sys

import torch

import handgrad.nn
from handgrad import _lean
from handgrad.bench.timing import ms, paired, print_table
from handgrad.testing.memory import Kept

SIZES = {  # name: (layers, heads, width, block, batch)
    "nanoGPT CPU recipe": (4, 4, 128, 64, 12),
    "nanoGPT GPU recipe's shape, batch 4": (6, 6, 384, 256, 4),
}
VOCAB = 65


def _models(size, nanogpt=None):
    """The built-in model and its loss function (model → loss), from one seed."""
    layers, heads, width, block, batch = SIZES[size]
    torch.manual_seed(0)
    if nanogpt is None:
        from handgrad.training.gpt import GPT

        model = GPT(VOCAB, block, layers, heads, width)
    else:
        sys.path.insert(0, nanogpt)
        try:
            from model import GPT as NanoGPT, GPTConfig
        finally:
            sys.path.remove(nanogpt)
        model = NanoGPT(GPTConfig(block_size=block, vocab_size=VOCAB, n_layer=layers, n_head=heads, n_embd=width,
                                  dropout=0.0, bias=False))
    idx = torch.randint(0, VOCAB, (batch, block))
    targets = torch.roll(idx, -1, 1)
    loss_of = (lambda m: m(idx, targets)) if nanogpt is None else (lambda m: m(idx, targets)[1])
    return model, loss_of


def variants(model):
    return {"torch": model, "plain": handgrad.nn.convert(copy.deepcopy(model)),
            "lean": handgrad.nn.convert(copy.deepcopy(model), memory="lean")}


def kept_bytes(model, loss_of):
    """(bytes kept for backward, {op: bytes lean made again instead})."""
    with _lean.recorded() as recomputed, Kept(exclude=list(model.parameters())) as kept:
        loss = loss_of(model)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return kept.bytes, recomputed


def _check_same_step(models, loss_of):
    grads = {}
    for name, m in models.items():
        m.zero_grad(set_to_none=True)
        loss_of(m).backward()
        grads[name] = [p.grad.clone() for p in m.parameters()]
        m.zero_grad(set_to_none=True)
    if not all(torch.equal(a, b) for a, b in zip(grads["lean"], grads["plain"])):
        raise AssertionError("section 12: lean's gradients differ from plain's")
    for a, b in zip(grads["plain"], grads["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg="section 12: the hand gradients differ from torch's")


def _repeats(mode, size):
    """Timed pairs at ``size``: a third of the mode's at the larger shape, whose step takes ten times longer."""
    return max(6, mode["repeats"] // (1 if "CPU" in size else 3))


def _step(model, loss_of, optimizer):
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_of(model).backward()
        optimizer.step()
    return step


_PEAK = r"""
import json, sys, torch
from handgrad.bench import gpt
size, variant, nanogpt, threads = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
torch.set_num_threads(threads)
model, loss_of = gpt._models(size, nanogpt)
model = gpt.variants(model)[variant]
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
step = gpt._step(model, loss_of, optimizer)
for _ in range(3):
    step()
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) * 1024
peaks = []
for _ in range(3):
    before = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                   # VmHWM back to VmRSS
    step()
    peaks.append(status("VmHWM:") - before)
print(json.dumps({"peak_rss": min(peaks), "rss_before": before}))
"""


def peak_rss(size, variant, nanogpt=None):
    """The peak resident memory of a training step above the memory before it, in a process of its own
    (None where Linux's /proc/self/clear_refs is not there)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    # Blocks of 64 KiB and more mapped and unmapped one by one (not kept by the allocator once freed), so
    # that the resident memory follows what is live.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run([sys.executable, "-c", _PEAK, size, variant, nanogpt or "", str(torch.get_num_threads())],
                            capture_output=True, text=True, timeout=900, env=env)
    if result.returncode:
        raise RuntimeError(f"section 12, peak memory of {variant} at {size}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_rss"]


def bench_gpt(device, mode, nanogpt=None):
    if device.type != "cpu":
        print("\n12. GPT: measured on the CPU only (the peak resident memory is a CPU measure)")
    rows = []
    cases = [(size, None) for size in SIZES] + ([("nanoGPT CPU recipe", nanogpt)] if nanogpt else [])
    for size, source in cases:
        label = size if source is None else f"{size}, nanoGPT's model.py"
        model, loss_of = _models(size, source)
        models = variants(model)
        _check_same_step(models, loss_of)
        row = {"size": label}
        for name, m in models.items():
            row[f"{name}_bytes"], recomputed = kept_bytes(m, loss_of)
            if name == "lean":
                row["recomputed"] = recomputed
        optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3) for name, m in models.items()}
        steps = {name: _step(m, loss_of, optimizers[name]) for name, m in models.items()}
        repeats = _repeats(mode, size)
        for name in ("plain", "lean"):
            timing = paired(steps[name], steps["torch"], device, repeats, mode["sample_s"])
            row[f"{name}_s"], row[f"{name}_ratio"], row["torch_s"] = timing["hand_s"], timing["ratio"], timing["torch_s"]
        for name in models:
            row[f"{name}_peak"] = peak_rss(size, name, source)
        rows.append(row)
    mib = lambda n: "n/a" if n is None else f"{n / 2**20:.1f}"             # noqa: E731
    print_table(
        "12. GPT training step: bytes kept for backward (MiB, parameters excluded), step time (ms) and its ratio "
        "to the built-in's, peak resident memory of a step above the memory before it (MiB)",
        ["size", "kept torch", "plain", "lean", "lean/torch", "step torch", "plain", "lean", "plain/torch",
         "lean/torch", "peak torch", "plain", "lean"],
        [[r["size"], mib(r["torch_bytes"]), mib(r["plain_bytes"]), mib(r["lean_bytes"]),
          f"{r['lean_bytes'] / r['torch_bytes']:.3f}", ms(r["torch_s"]), ms(r["plain_s"]), ms(r["lean_s"]),
          f"{r['plain_ratio']:.3f}", f"{r['lean_ratio']:.3f}", mib(r["torch_peak"]), mib(r["plain_peak"]),
          mib(r["lean_peak"])] for r in rows],
    )
    for r in rows:
        made = ", ".join(f"{k} {v / 2**20:.1f}" for k, v in sorted(r["recomputed"].items(), key=lambda kv: -kv[1]))
        print(f"  {r['size']}: lean made again instead of keeping (MiB): {made}")
    compiled = [compiled_step(device, mode, size) for size in SIZES]
    print_table(
        "12b. The same step compiled whole (torch.compile, Inductor), lean against the built-in compiled and eager: "
        "step time (ms) and bytes kept for backward (MiB; lean's recomputation traced as checkpoint regions, which "
        "the partitioner makes again in backward)",
        ["size", "step lean", "torch compiled", "torch eager", "lean/compiled", "lean/eager", "kept lean",
         "kept torch", "lean/torch"],
        [[row["size"], ms(row["lean_s"]), ms(row["torch_s"]), ms(row["torch eager_s"]), f"{row['ratio_torch']:.3f}",
          f"{row['ratio_torch eager']:.3f}", f"{row['lean_bytes'] / 2**20:.1f}", f"{row['torch_bytes'] / 2**20:.1f}",
          f"{row['lean_bytes'] / row['torch_bytes']:.3f}"] for row in compiled],
    )
    return {"eager": rows, "compiled": compiled}


def compiled_step(device, mode, size):
    """The whole step compiled (``torch.compile`` of the loss, Inductor), lean against the built-in, at
    ``size``: the step time against the built-in's compiled and eager steps, and the bytes kept for
    backward. The compiler's partitioner chooses them from the joint graph; lean's recomputable calls
    reach it as checkpoint regions, which it makes again in backward (``handgrad._lean``)."""
    model, loss_of = _models(size)
    eager = model
    models = {"torch": copy.deepcopy(model), "lean": handgrad.nn.convert(copy.deepcopy(model), memory="lean")}
    compiled = {name: torch.compile(loss_of, dynamic=False) for name in models}
    row = {"size": size}
    for name, m in models.items():
        compiled[name](m).backward()                                    # compiles, once
        with Kept(exclude=list(m.parameters())) as kept:
            loss = compiled[name](m)
        loss.backward()
        row[f"{name}_bytes"] = kept.bytes
    steps = {name: _step(m, compiled[name], torch.optim.AdamW(m.parameters(), lr=1e-3)) for name, m in models.items()}
    steps["torch eager"] = _step(eager, loss_of, torch.optim.AdamW(eager.parameters(), lr=1e-3))
    repeats = _repeats(mode, size)
    for against in ("torch", "torch eager"):
        timing = paired(steps["lean"], steps[against], device, repeats, mode["sample_s"])
        row["lean_s"], row[f"ratio_{against}"], row[f"{against}_s"] = timing["hand_s"], timing["ratio"], timing["torch_s"]
    return row

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

12b: the same step with the loss compiled whole (``compiled_step``), lean against the built-in
compiled and eager. 12c (where ``transformers`` is installed): the bytes kept by Hugging Face's
GPT-2 and Llama, eager and compiled (``kept_hugging_face``).
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
model = gpt.variants(model)[variant.split()[0]]
if variant.endswith(" compiled"):
    loss_of = torch.compile(loss_of, dynamic=False)
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
    (None where Linux's /proc/self/clear_refs is not there); ``variant`` "torch", "plain" or "lean",
    and "torch compiled" or "lean compiled" for the step with its loss compiled (section 12b)."""
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
    compiled = [compiled_step(device, mode, size, source) for size, source in cases]
    print_table(
        "12b. The same step compiled whole (torch.compile, Inductor), lean against the built-in compiled and eager: "
        "step time (ms), bytes kept for backward (MiB; lean's recomputation traced as checkpoint regions, which "
        "the partitioner makes again in backward) and peak resident memory of a step above the memory before it (MiB)",
        ["size", "step lean", "torch compiled", "torch eager", "lean/compiled", "lean/eager", "kept lean",
         "kept torch", "lean/torch", "peak lean", "peak torch"],
        [[row["size"], ms(row["lean_s"]), ms(row["torch_s"]), ms(row["torch eager_s"]), f"{row['ratio_torch']:.3f}",
          f"{row['ratio_torch eager']:.3f}", f"{row['lean_bytes'] / 2**20:.1f}", f"{row['torch_bytes'] / 2**20:.1f}",
          f"{row['lean_bytes'] / row['torch_bytes']:.3f}", mib(row["lean_peak"]), mib(row["torch_peak"])]
         for row in compiled],
    )
    hugging_face = [kept_hugging_face(kind) for kind in ("GPT-2", "Llama")] if _has("transformers") else []
    if hugging_face:
        print_table(
            "12c. Hugging Face's GPT-2 and Llama (4 layers, width 256, Llama's MLP 688, batch 8 x 256 tokens, random "
            "weights): bytes kept for backward (MiB), eager and compiled whole",
            ["model", "torch", "lean", "lean/torch", "torch compiled", "lean compiled", "lean/torch compiled"],
            [[r["model"], mib(r["torch"]), mib(r["lean"]), f"{r['lean'] / r['torch']:.3f}", mib(r["torch compiled"]),
              mib(r["lean compiled"]), f"{r['lean compiled'] / r['torch compiled']:.3f}"] for r in hugging_face],
        )
    return {"eager": rows, "compiled": compiled, "hugging_face": hugging_face}


def _has(package):
    import importlib.util

    return importlib.util.find_spec(package) is not None


def hugging_face(kind, layers, width, heads, positions, vocab, mlp=None, kv_heads=None):
    """Hugging Face's ``kind`` ("GPT-2" or "Llama", with ``mlp`` and ``kv_heads``) from a config, random
    weights, no dropout, attention through ``scaled_dot_product_attention`` (nothing downloaded)."""
    import transformers

    if kind == "GPT-2":
        config = transformers.GPT2Config(n_layer=layers, n_embd=width, n_head=heads, n_positions=positions,
                                         vocab_size=vocab, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                         bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.LlamaConfig(num_hidden_layers=layers, hidden_size=width, intermediate_size=mlp,
                                          num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                                          max_position_embeddings=positions, bos_token_id=0, eos_token_id=0)
        model = transformers.LlamaForCausalLM(config)
    model.config._attn_implementation = "sdpa"
    return model


def kept_hugging_face(kind):
    """Bytes kept for backward by Hugging Face's ``kind`` ("GPT-2" or "Llama"), built-in and converted
    lean, eager and with the loss compiled whole (``torch.compile``, Inductor)."""
    torch.manual_seed(0)
    model = hugging_face(kind, layers=4, width=256, heads=4, positions=256, vocab=1000, mlp=688, kv_heads=4)
    ids = torch.randint(0, 1000, (8, 256))
    loss_of = lambda m: m(input_ids=ids, labels=ids).loss                            # noqa: E731
    row = {"model": f"Hugging Face {kind}"}
    for name, m in (("torch", model), ("lean", handgrad.nn.convert(copy.deepcopy(model), memory="lean"))):
        row[name] = kept_bytes(m, loss_of)[0]
        compiled = torch.compile(loss_of, dynamic=False)
        compiled(m).backward()                                          # compiles, once
        m.zero_grad(set_to_none=True)
        row[f"{name} compiled"] = kept_bytes(m, compiled)[0]
    return row


def compiled_step(device, mode, size, nanogpt=None):
    """The whole step compiled (``torch.compile`` of the loss, Inductor), lean against the built-in, at
    ``size``: the step time against the built-in's compiled and eager steps, the bytes kept for
    backward and the peak resident memory of a step (``peak_rss``). The compiler's partitioner chooses them from the joint graph; lean's recomputable calls
    reach it as checkpoint regions, which it makes again in backward (``handgrad._lean``)."""
    model, loss_of = _models(size, nanogpt)
    eager = model
    models = {"torch": copy.deepcopy(model), "lean": handgrad.nn.convert(copy.deepcopy(model), memory="lean")}
    compiled = {name: torch.compile(loss_of, dynamic=False) for name in models}
    row = {"size": size if nanogpt is None else f"{size}, nanoGPT's model.py"}
    for name, m in models.items():
        compiled[name](m).backward()                                    # compiles, once
        with Kept(exclude=list(m.parameters())) as kept:
            loss = compiled[name](m)
        loss.backward()
        row[f"{name}_bytes"] = kept.bytes
        row[f"{name}_peak"] = peak_rss(size, f"{name} compiled", nanogpt)
    steps = {name: _step(m, compiled[name], torch.optim.AdamW(m.parameters(), lr=1e-3)) for name, m in models.items()}
    steps["torch eager"] = _step(eager, loss_of, torch.optim.AdamW(eager.parameters(), lr=1e-3))
    repeats = _repeats(mode, size)
    for against in ("torch", "torch eager"):
        timing = paired(steps["lean"], steps[against], device, repeats, mode["sample_s"])
        row["lean_s"], row[f"ratio_{against}"], row[f"{against}_s"] = timing["hand_s"], timing["ratio"], timing["torch_s"]
    return row

"""Section 10: a small vision transformer's layers, hand against built-in, at its sizes (batch 128,
50 tokens, width 128, 4 heads of 32, MLP 256: ``models.ViT``'s).

- forward + backward of each layer it runs: ``layer_norm``, ``gelu``, ``softmax`` (the attention
  weights' shape), ``scaled_dot_product_attention``, ``multi_head_attention_forward``;
- with each, the minor page faults a call (``page_faults``): where the allocator gives freed memory
  back to the system (glibc's does, for large blocks), every tensor made again costs them;
- one training step (zero_grad, forward, cross-entropy, backward, SGD) of torchvision's
  ``VisionTransformer`` at that size, ``handgrad.nn.convert``-ed against the built-in with the same
  weights, and the bytes each keeps for backward;
- peak memory and time of the language-model head fused with its loss at (N = 4096, d = 256,
  V = 32768): ``linear`` then ``cross_entropy`` (torch's reference path), torch's
  ``linear_cross_entropy`` with ``LinearCrossEntropyOptions()`` (its chunked path) and handgrad's
  ``linear_cross_entropy``, each in a fresh process: its peak memory during forward + backward over
  what it held just before (the inputs, the weights and torch itself): on the CPU the peak resident
  set (Linux's VmHWM, reset through /proc/self/clear_refs), on CUDA the allocator's peak.
"""

import copy
import json
import subprocess
import sys

import torch

import handgrad.functional as hf
import handgrad.nn
from handgrad.bench.ops import _forward_backward, _upstream
from handgrad.bench.timing import ms, paired, print_table
from handgrad.bench.training import check_same_step
from handgrad.testing import Tolerance

F = torch.nn.functional
BATCH, TOKENS, WIDTH, HEADS, MLP = 128, 50, 128, 4, 256
HEAD_SIZE = dict(rows=4096, features=256, classes=32768)
STEP_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-3)


def _randn(device, *shape):
    return torch.randn(*shape, device=device, requires_grad=True)


def layer_cases(device):
    """(name, size, hand, built-in, args, kwargs) of each layer at the ViT's sizes."""
    x = _randn(device, BATCH, TOKENS, WIDTH)
    h = _randn(device, BATCH, TOKENS, MLP)
    s = _randn(device, BATCH, HEADS, TOKENS, TOKENS)
    q, k, v = (_randn(device, BATCH, HEADS, TOKENS, WIDTH // HEADS) for _ in range(3))
    mha = torch.nn.MultiheadAttention(WIDTH, HEADS, batch_first=False, device=device)
    tokens = _randn(device, TOKENS, BATCH, WIDTH)
    mha_args = (tokens, tokens, tokens, WIDTH, HEADS, mha.in_proj_weight, mha.in_proj_bias, None, None, False,
                0.0, mha.out_proj.weight, mha.out_proj.bias)
    size = f"({BATCH}, {TOKENS}, {WIDTH})"
    return [
        ("layer_norm", size, hf.layer_norm, F.layer_norm,
         (x, (WIDTH,), _randn(device, WIDTH), _randn(device, WIDTH)), {}),
        ("gelu", f"({BATCH}, {TOKENS}, {MLP})", hf.gelu, F.gelu, (h,), {}),
        ("softmax", f"({BATCH}, {HEADS}, {TOKENS}, {TOKENS})", hf.softmax, F.softmax, (s,), {"dim": -1}),
        ("scaled_dot_product_attention", f"{HEADS} heads of ({BATCH}, {TOKENS}, {WIDTH // HEADS})",
         hf.scaled_dot_product_attention, F.scaled_dot_product_attention, (q, k, v), {}),
        ("multi_head_attention_forward", f"({TOKENS}, {BATCH}, {WIDTH}), {HEADS} heads",
         hf.multi_head_attention_forward, F.multi_head_attention_forward, mha_args, {"need_weights": False}),
    ]


def vit(device):
    """torchvision's VisionTransformer at the small ViT's size, on 28×28 one-channel images."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=28, patch_size=4, num_layers=4, num_heads=HEADS,
                                                 hidden_dim=WIDTH, mlp_dim=MLP, num_classes=10)
    model.conv_proj = torch.nn.Conv2d(1, WIDTH, 4, stride=4)        # one channel, as Fashion-MNIST's
    return model.to(device)


def page_faults(run, calls=5):
    """Minor page faults a call of ``run`` (the process's count, getrusage): memory the allocator had
    given back to the system and takes again, which the kernel maps in one 4 KiB page at a time."""
    try:
        import resource                                          # Unix only
    except ImportError:
        return float("nan")
    run()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        run()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def _step(model, loss_fn, optimizer, x, y):
    def step():
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return step


def _saved_bytes(model, loss_fn, x, y):
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in parameters:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(x), y)
    loss.backward()
    model.zero_grad()
    return sum(storages.values())


def bench_vit_step(device, mode):
    builtin = vit(device)
    models = {"hand": handgrad.nn.convert(copy.deepcopy(builtin), strict=True), "torch": builtin}
    losses = {"hand": handgrad.nn.CrossEntropyLoss(), "torch": torch.nn.CrossEntropyLoss()}
    x = torch.randn(BATCH, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)
    loss_of = {impl: (lambda x, y, m=m, loss=losses[impl]: loss(m(x), y)) for impl, m in models.items()}
    check_same_step(models, loss_of, x, y, "section 10: the converted ViT", STEP_TOLERANCE)
    steps = {impl: _step(m, losses[impl], torch.optim.SGD(m.parameters(), lr=1e-3), x, y) for impl, m in models.items()}
    timing = paired(steps["hand"], steps["torch"], device, mode["repeats"], mode["sample_s"])
    timing |= {f"{impl}_faults": page_faults(step) for impl, step in steps.items()}
    saved = {impl: _saved_bytes(m, losses[impl], x, y) for impl, m in models.items()}
    return timing | {f"{impl}_bytes": n for impl, n in saved.items()} | {"bytes_ratio": saved["hand"] / saved["torch"]}


# --------------------------------------------------------------------- the fused head's memory

_HEAD_PROCESS = r"""
import json, sys, time
import torch
import handgrad.functional as hf
device, variant, n, d, v = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
torch.manual_seed(0)
x = torch.randn(n, d, device=device, requires_grad=True)
w = (torch.randn(v, d, device=device) / d ** 0.5).requires_grad_()
t = torch.randint(0, v, (n,), device=device)
F = torch.nn.functional
if variant == "linear + cross_entropy":
    run = lambda: F.cross_entropy(F.linear(x, w), t)
elif variant == "torch chunked":
    run = lambda: F.linear_cross_entropy(x, w, t, options=torch.nn.LinearCrossEntropyOptions())
else:
    run = lambda: hf.linear_cross_entropy(x, w, t)
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
else:                     # the peak resident memory, reset to what is resident now (Linux: clear_refs 5)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
start = time.perf_counter()
loss = run()
loss.backward()
if device == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
held = torch.cuda.max_memory_allocated() if device == "cuda" else status("VmHWM")
print(json.dumps({"extra_bytes": held - before, "seconds": seconds, "loss": loss.item(),
                  "grad_x_norm": x.grad.norm().item(), "grad_w_norm": w.grad.norm().item()}))
"""

HEAD_VARIANTS = ("linear + cross_entropy", "torch chunked", "handgrad")


def bench_head_memory(device, mode):
    """Each variant in its own process: the peak over what it held before the call (the inputs)."""
    results = []
    for variant in HEAD_VARIANTS:
        if variant == "torch chunked" and not hasattr(torch.nn, "LinearCrossEntropyOptions"):
            continue
        runs = []
        for _ in range(mode["process_repeats"]):
            done = subprocess.run([sys.executable, "-c", _HEAD_PROCESS, device.type, variant,
                                   *map(str, HEAD_SIZE.values())], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"section 10, {variant}: the process failed:\n{done.stderr[-2000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        best = min(runs, key=lambda r: r["extra_bytes"])
        results.append({"variant": variant, "extra_bytes": best["extra_bytes"],
                        "seconds": min(r["seconds"] for r in runs), "loss": best["loss"],
                        "grad_x_norm": best["grad_x_norm"], "grad_w_norm": best["grad_w_norm"]})
    reference = results[0]
    for r in results[1:]:
        if abs(r["loss"] - reference["loss"]) > 1e-4 * abs(reference["loss"]) or \
                abs(r["grad_w_norm"] - reference["grad_w_norm"]) > 1e-3 * reference["grad_w_norm"]:
            raise RuntimeError(f"section 10: {r['variant']} gives loss {r['loss']}, |dL/dW| {r['grad_w_norm']}, "
                               f"linear + cross_entropy {reference['loss']}, {reference['grad_w_norm']}")
    return results


def bench_transformer(device, mode):
    layers = []
    for name, size, hand, builtin, args, kwargs in layer_cases(device):
        grad_outputs = _upstream(device)
        h, b = _forward_backward(hand, args, kwargs, grad_outputs), _forward_backward(builtin, args, kwargs, grad_outputs)
        h(), b()
        layers.append({"op": name, "size": size} | paired(h, b, device, mode["repeats"], mode["sample_s"])
                      | {"hand_faults": page_faults(h), "torch_faults": page_faults(b)})
    step = bench_vit_step(device, mode)
    print_table(
        f"10. A small ViT's layers and training step (ms), hand vs built-in: batch {BATCH}, {TOKENS} tokens, "
        f"width {WIDTH}, {HEADS} heads, MLP {MLP}",
        ["what", "size", "hand", "torch", "hand/torch", "page faults a call, hand / torch"],
        [[r["op"], r["size"], ms(r["hand_s"]), ms(r["torch_s"]), f"{r['ratio']:.2f}",
          f"{r['hand_faults']:.0f} / {r['torch_faults']:.0f}"] for r in layers]
        + [["VisionTransformer step (convert)", f"{BATCH} images", ms(step["hand_s"]), ms(step["torch_s"]),
            f"{step['ratio']:.2f}", f"{step['hand_faults']:.0f} / {step['torch_faults']:.0f}"],
           ["  bytes kept for backward (MiB)", "", f"{step['hand_bytes'] / 2**20:.1f}",
            f"{step['torch_bytes'] / 2**20:.1f}", f"{step['bytes_ratio']:.3f}", ""]],
    )
    head = bench_head_memory(device, mode)
    print_table(
        "10. The language-model head with its loss, forward + backward at (N {rows}, d {features}, V {classes}): "
        "peak memory over the inputs (MiB), each in its own process".format(**HEAD_SIZE),
        ["variant", "extra MiB", "seconds", "loss"],
        [[r["variant"], f"{r['extra_bytes'] / 2**20:.0f}", f"{r['seconds']:.2f}", f"{r['loss']:.5f}"] for r in head],
    )
    return {"layers": layers, "vit_step": step, "head": head}

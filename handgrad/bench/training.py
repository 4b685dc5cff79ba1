"""Sections 2 to 7: the seed's networks and train.py, hand against built-in (or against the seed's own
code), from one training step to the whole process. Needs the ``train`` extra."""

import functools
import inspect
import itertools
import json
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
from handgrad.nn import _parameters
from handgrad.ops._function import apply
from handgrad.ops.chain import LinearChainCrossEntropy
from handgrad.bench.timing import ms, paired, paired_samples, print_table, summarise, timed
from handgrad.testing import Tolerance, difference
from handgrad.training import cli, models
from handgrad.training.data import FashionMNISTDataModule, TensorBatches
from handgrad.training.lit import LitClassifier, build_optimizer, build_scheduler, compiled_loss

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = ("quickstart", "basic", "better")
BATCHES = (64, 1024)
# (network, batch, dropout, variant) of sections 2 and 3: the seed's networks and the CNN of
# configs/cnn.yaml and the ViT of configs/vit.yaml as train.py runs them (the hand side's top stack and loss as one Function:
# ``model.loss``), and two variants of the hand side against the same torch.nn side:
# "loss apart": ``loss_fn(model(x), y)``, the chain and the loss as two Functions;
# "unfused": handgrad modules inside a plain torch.nn.Sequential, a Function per layer and the loss
# apart, as a user who assembles the modules gets;
# "Function only": not a way to train, a measure of the way to the call: the same Function that
# ``model.loss`` runs, applied directly, without the hook and argument checks before it;
# "bare Function": not a way to train either, the floor of a Python Function (``BareQuickstart``).
STEPS = ([(network, batch, 0.0, "") for network in NETWORKS for batch in BATCHES]
         + [("quickstart", 64, 0.0, "Function only"), ("quickstart", 64, 0.0, "bare Function")]
         + [("better", batch, 0.0, "loss apart") for batch in BATCHES]
         + [("quickstart", batch, 0.0, "unfused") for batch in BATCHES] + [("cnn", 128, 0.3, ""), ("vit", 128, 0.0, "")])
IMPLS = ("hand", "torch")
# How close a row's loss and gradients must be to the built-in's before it is timed (float32).
STEP_TOLERANCE = Tolerance(atol=1e-6, rtol=1e-4)
THRESHOLDS = (0.83, 0.88)


def _defaults(cls):
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}


# `python train.py` with no arguments, read from the classes' own defaults.
RECIPE = {**_defaults(LitClassifier), **_defaults(FashionMNISTDataModule),
          "epochs": cli.DEFAULT_MAX_EPOCHS, "seed": cli.DEFAULT_SEED}


# --------------------------------------------------------------------------- 2. training step

def twin_models(network, device, dropout=0.0, fused=True):
    """The network from handgrad layers and from torch.nn layers, with identical weights; with
    ``fused=False`` the handgrad layers sit in plain torch.nn.Sequential containers (no fusion)."""
    torch.manual_seed(0)
    hand = models.build(network, "hand", dropout).to(device)
    if not fused:
        for name, child in hand.named_children():
            if isinstance(child, handgrad.nn.Sequential):
                setattr(hand, name, torch.nn.Sequential(*child))
    builtin = models.build(network, "torch", dropout).to(device)
    builtin.load_state_dict(hand.state_dict())
    return {"hand": hand, "torch": builtin}


def loss_functions():
    return {"hand": handgrad.nn.CrossEntropyLoss(), "torch": torch.nn.CrossEntropyLoss()}


def fake_batch(batch, device):
    return torch.rand(batch, 1, 28, 28, device=device), torch.randint(0, 10, (batch,), device=device)


class BareQuickstart(torch.autograd.Function):
    """The floor of a Python Function, for the benchmark only: the quickstart's loss
    L = cross_entropy(relu(relu(x W¹ᵀ + b¹) W²ᵀ + b²) W³ᵀ + b³, t), 'mean', with the formulas of
    ``LinearChainCrossEntropy`` and nothing more.

    What it leaves out is what handgrad's Function keeps, so the difference between the two rows is
    the price of the guarantees: no check of the arguments or of the target's range; L the only
    output (handgrad's returns log p and the hidden layers too, so that double backward
    differentiates through them); no forward mode, no vmap rule, no torch.compile twin; NaN rows not
    treated as PyTorch treats them; the old style's one ``forward(ctx, ...)``.
    """

    @staticmethod
    def forward(ctx, x, t, W1, b1, W2, b2, W3, b3):
        l1 = torch.addmm(b1, x, W1.t()).relu_()
        l2 = torch.addmm(b2, l1, W2.t()).relu_()
        log_p = torch.log_softmax(torch.addmm(b3, l2, W3.t()), 1)
        ctx.save_for_backward(x, W2, W3, l1, l2, log_p, t)
        return torch.nn.functional.nll_loss(log_p, t)

    @staticmethod
    def backward(ctx, g):
        x, W2, W3, l1, l2, log_p, t = ctx.saved_tensors
        r = g / t.shape[0]                                                       # r = g / M
        g3 = log_p.exp().mul_(r)                                                 # r p
        g3.scatter_add_(1, t.unsqueeze(1), (-r).expand(t.shape[0], 1))           # g³ = r (p − onehot(t))
        g2 = g3.mm(W3).mul_(l2.sign())                                           # g³ W³ ∘ 1[z² > 0]
        g1 = g2.mm(W2).mul_(l1.sign())                                           # g² W² ∘ 1[z¹ > 0]
        # dL/dWⁱ = gⁱᵀ lⁱ⁻¹, dL/dbⁱ = Σ gⁱ (l⁰ = x)
        return None, None, g1.t().mm(x), g1.sum(0), g2.t().mm(l1), g2.sum(0), g3.t().mm(l2), g3.sum(0)


def training_loss(model, loss_fn, x, y, variant=""):
    """The loss as train.py computes it (``model.loss``), or for "loss apart", ``loss_fn(model(x), y)``,
    or for "Function only", ``LinearChainCrossEntropy`` applied (``ops._function.apply``) to the
    network's features, or for "bare Function", ``BareQuickstart`` (the quickstart network only)."""
    if variant == "loss apart":
        return loss_fn(model(x), y)
    if variant == "bare Function":
        _, layers, _ = model._head()._top_stack(loss_fn)
        return BareQuickstart.apply(model._features(x), y, *_parameters(layers))
    if variant == "Function only":
        start, layers, activations = model._head()._top_stack(loss_fn)
        features = model._head()[:start](model._features(x))
        return apply(LinearChainCrossEntropy, features, y, None, 0.0, "mean", activations, *_parameters(layers))[0]
    return model.loss(x, y, loss_fn)


def step_name(network, variant):
    return f"{network} {variant}".strip()


def _training_step(loss, optimizer, x, y):
    """One step: zero_grad, ``loss(x, y)``, backward, the optimiser's step."""
    def step():
        optimizer.zero_grad()
        loss(x, y).backward()
        optimizer.step()
    return step


def check_same_step(twins, loss_of, x, y, what, tolerance=STEP_TOLERANCE):
    """Before timing a row: its hand side gives the built-in's loss and gradients; ``what`` names the
    row in the error."""
    grads = {}
    for impl, model in twins.items():
        model.zero_grad()
        loss = loss_of[impl](x, y)
        loss.backward()
        grads[impl] = [loss.detach()] + [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
    names = ["loss"] + [name for name, _ in twins["torch"].named_parameters()]
    for name, hand, builtin in zip(names, grads["hand"], grads["torch"]):
        diff = difference(name, hand, builtin, tolerance)
        if not diff.ok:
            raise RuntimeError(f"{what}: {diff.name} differs from the built-in's "
                               f"(max abs {diff.max_abs:.3g}, max rel {diff.max_rel:.3g})")


def bench_training_step(device, mode):
    results = []
    for network, batch, dropout, variant in STEPS:
        twins, losses = twin_models(network, device, dropout, fused=variant != "unfused"), loss_functions()
        x, y = fake_batch(batch, device)
        loss_of = {impl: functools.partial(training_loss, m, losses[impl],
                                           variant=variant if impl == "hand" else "loss apart")
                   for impl, m in twins.items()}
        if not dropout:                                      # with dropout the two sides draw different masks
            check_same_step(twins, loss_of, x, y, f"section 2, {variant or 'model.loss'}")
        steps = {impl: _training_step(loss_of[impl], torch.optim.SGD(m.parameters(), lr=1e-3), x, y)
                 for impl, m in twins.items()}
        timing = paired(steps["hand"], steps["torch"], device, mode["repeats"], mode["sample_s"])
        results.append({"network": step_name(network, variant), "batch": batch} | timing)
    print_table(
        "2. Training step (ms): zero_grad, forward, cross-entropy, backward, SGD step "
        "(hand: model.loss as train.py runs it, unless the row says otherwise)",
        ["network", "batch", "hand", "torch", "hand/torch"],
        [[r["network"], r["batch"], ms(r["hand_s"]), ms(r["torch_s"]), f"{r['ratio']:.2f}"] for r in results],
    )
    return results


# ------------------------------------------------------------------ 3. bytes kept for backward

def saved_for_backward(model, loss_fn, x, y, variant="loss apart"):
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
        loss = training_loss(model, loss_fn, x, y, variant)
    loss.backward()
    return sum(storages.values()), len(storages)


def bench_saved_bytes(device, mode):
    results = []
    for network, batch, dropout, variant in STEPS:
        twins, losses = twin_models(network, device, dropout, fused=variant != "unfused"), loss_functions()
        x, y = fake_batch(batch, device)
        row = {"network": step_name(network, variant), "batch": batch}
        for impl in IMPLS:
            row[f"{impl}_bytes"], row[f"{impl}_tensors"] = saved_for_backward(
                twins[impl], losses[impl], x, y, variant if impl == "hand" else "loss apart")
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
                loss = self.model.loss(x, y, self.loss_fn)           # as train.py computes it
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


# ------------------------------------------------- 7. train.py's training seconds, hand vs built-in

# (name, train.py arguments): the seed's quickstart recipe, the default recipe and the CNN's, each for
# the mode's number of epochs, not the recipe's (the CNN: the first 100 steps of each epoch, enough
# for a steady rate).
RECIPES = [
    ("seed_quickstart", ["--config", "configs/seed_quickstart.yaml"]),
    ("default", []),
    ("cnn", ["--config", "configs/cnn.yaml", "--trainer.limit_train_batches", "100"]),
]


def _train_py_epochs(arguments, impl, epochs, device, data_dir):
    """Seconds of training per epoch (results.json, validation excluded) of one train.py run."""
    def run():
        with tempfile.TemporaryDirectory() as root:
            _run_process(
                [sys.executable, "train.py", *arguments, "--model.impl", impl, "--trainer.max_epochs", str(epochs),
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                 "--trainer.accelerator", device.type, "--trainer.default_root_dir", root,
                 "--data.data_dir", str(data_dir)]
            )
            results = json.loads(next(Path(root).glob("*/results.json")).read_text())
            return [e["seconds"] for e in results["epochs"]]
    return run


def bench_train_py(device, mode, data_dir):
    """Training seconds per epoch that train.py records, --model.impl hand against torch, runs
    alternating; the first epoch of each run (warm-up) is left out when there are more."""
    results = []
    for name, arguments in RECIPES:
        epochs = mode["recipe_epochs_train_py"]
        samples = {"hand": [], "torch": []}
        for r in range(mode["train_py_repeats"]):
            for impl in IMPLS if r % 2 == 0 else IMPLS[::-1]:
                seconds = _train_py_epochs(arguments, impl, epochs, device, data_dir)()
                samples[impl].append(statistics.median(seconds[1:] or seconds))
        results.append({"recipe": name, "epochs": epochs} | summarise(samples))
    print_table(
        "7. train.py, training seconds per epoch (results.json; median over epochs after the first)",
        ["recipe", "hand s", "torch s", "hand/torch"],
        [[r["recipe"], f"{r['hand_s']:.2f}", f"{r['torch_s']:.2f}", f"{r['ratio']:.2f}"] for r in results],
    )
    return results


# ----------------------------------------------------------------------- 8. compiled training step

# (network, batch): the quickstart at the two batch sizes and the default recipe's network and batch.
COMPILED_STEPS = (("quickstart", 64), ("quickstart", 1024), ("better", 128))


def bench_compiled_step(device, mode):
    """Section 2's step with train.py's ``--model.compile``: ``reduce-overhead`` on CUDA (CUDA graphs),
    ``default`` on the CPU; each side compiled and eager, hand against built-in."""
    compile_mode = "reduce-overhead" if device.type == "cuda" else "default"
    results = []
    for network, batch in COMPILED_STEPS:
        twins, losses = twin_models(network, device), loss_functions()
        x, y = fake_batch(batch, device)
        steps, compile_s = {}, {}
        for impl, m in twins.items():
            optimizer = torch.optim.SGD(m.parameters(), lr=1e-3)
            steps[impl] = _training_step(compiled_loss(m, losses[impl]), optimizer, x, y)
            compiled = _training_step(compiled_loss(m, losses[impl], compile_mode), optimizer, x, y)
            compile_s[impl], _ = timed(lambda: [compiled() for _ in range(3)], device)   # compile, record, replay
            steps[impl + " compiled"] = compiled
        row = {"network": network, "batch": batch, "mode": compile_mode, "compile_s": compile_s}
        pairs = {"eager": ("hand", "torch"), "compiled": ("hand compiled", "torch compiled"),
                 "compiled_vs_eager": ("hand compiled", "torch")}
        for name, (a, b) in pairs.items():
            row[name] = paired(steps[a], steps[b], device, mode["repeats"], mode["sample_s"])
        results.append(row)
    print_table(
        f"8. Training step (ms) compiled with train.py's --model.compile {compile_mode} "
        "(both sides; compile s: the first three steps)",
        ["network", "batch", "hand", "torch", "hand/torch", "hand c", "torch c", "hand c/torch c",
         "hand c/torch", "compile s hand/torch"],
        [[r["network"], r["batch"], ms(r["eager"]["hand_s"]), ms(r["eager"]["torch_s"]), f"{r['eager']['ratio']:.2f}",
          ms(r["compiled"]["hand_s"]), ms(r["compiled"]["torch_s"]), f"{r['compiled']['ratio']:.2f}",
          f"{r['compiled_vs_eager']['ratio']:.2f}",
          f"{r['compile_s']['hand']:.0f}/{r['compile_s']['torch']:.0f}"] for r in results],
    )
    return results

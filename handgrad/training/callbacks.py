"""Lightning plumbing that a run needs and Lightning does not provide as is.

- ``RunReport`` writes what a run leaves behind besides checkpoints and metrics: ``results.json``,
  the learning curve and the per-class accuracy table.
- ``AtomicCheckpointIO`` makes checkpoint writes atomic on the local filesystem.
- ``LastCheckpoint`` writes ``last.ckpt`` at the end of every epoch.
"""

import json
import math
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside its destination, then renames it over.

    A rename within one directory is atomic, so a run killed at any moment (SIGKILL included)
    leaves either the previous checkpoint or the new one, never half of one. (Lightning's own save
    goes through a temporary file in the system's temp directory, which is a plain copy, not a
    rename, when that directory is on another filesystem.)
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            with open(partial, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt``, overwritten at the end of every training epoch: the state ``--ckpt_path last``
    resumes from.

    Since Lightning 2.6, ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only in the
    epochs where it also saves a top-k checkpoint, so with a monitored metric that stops improving
    ``last.ckpt`` falls behind the run. Being a subclass, this callback has a state key of its own
    and sits beside the ``ModelCheckpoint`` that keeps the best checkpoints.
    """

    def __init__(self):
        super().__init__(filename=self.CHECKPOINT_NAME_LAST, monitor=None, save_top_k=1,
                         save_on_train_epoch_end=True, enable_version_counter=False)


class RunReport(L.Callback):
    """Times each epoch and, after testing, writes into the run's log directory:

    - ``results.json``: hyperparameters, test_acc, test_loss, per-class test accuracy, the audit of
      the training loss's autograd graph (``gradients``: whether every gradient was hand-derived) and, per
      epoch, training wall time, samples/s, mean train_loss, val_loss and val_acc, and the seconds since the
      process started when the epoch (its validation included) ended (``process_s``, the time a run takes to
      reach a validation loss, imports and compiling included); for a language
      model, the text it generated (``sample``);
    - ``learning_curve.png``: loss and validation accuracy per epoch, and the test accuracy;
    - ``per_class_accuracy.md``: test accuracy for each Fashion-MNIST class (a classifier's);
    - ``sample.txt``: the generated text (a language model's).

    The per-epoch history is kept in checkpoints, so a resumed run reports every epoch.
    """

    def __init__(self):
        self.epochs = []
        self.run_dir = None
        self._start = None

    def state_dict(self):
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict):
        self.epochs = list(state_dict["epochs"])

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()
        self._validating = 0.0
        self._loss_sum, self._samples, self._steps = 0.0, 0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._loss_sum = outputs["loss"].detach() + self._loss_sum      # stays on the device: no sync
        self._samples += len(batch[1]) * trainer.world_size
        self._steps += 1

    def on_validation_start(self, trainer, pl_module):
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if trainer.state.fn == "fit" and not trainer.sanity_checking and self._start is not None:
            self._validating += time.perf_counter() - self._validation_start

    def on_train_epoch_end(self, trainer, pl_module):
        seconds = time.perf_counter() - self._start - self._validating     # training only
        metrics = trainer.callback_metrics
        self.epochs.append(
            {
                "epoch": trainer.current_epoch,
                "seconds": round(seconds, 3),
                "samples_per_s": round(self._samples / seconds, 1) if seconds > 0 else None,
                "train_loss": float(self._loss_sum) / max(1, self._steps),
                "val_loss": _number(metrics.get("val_loss")),
                "val_acc": _number(metrics.get("val_acc")),
                "process_s": round(process_seconds(), 1),
            }
        )

    def on_test_end(self, trainer, pl_module):
        out = self.run_dir = Path(trainer.log_dir or trainer.default_root_dir)   # a collective: every rank
        if not trainer.is_global_zero:
            return
        out.mkdir(parents=True, exist_ok=True)
        metrics = trainer.callback_metrics
        results = {
            "hyperparameters": {
                "model": _public(pl_module.hparams),
                "data": _public(trainer.datamodule.hparams) if trainer.datamodule is not None else {},
                "trainer": {
                    "max_epochs": trainer.max_epochs,
                    "precision": str(trainer.precision),
                    "accelerator": type(trainer.accelerator).__name__,
                    "devices": trainer.num_devices,
                    "strategy": type(trainer.strategy).__name__,
                },
            },
            "test_acc": _number(metrics.get("test_acc")),
            "test_loss": _number(metrics.get("test_loss")),
            "per_class_accuracy": pl_module.per_class_accuracy,
            "gradients": getattr(pl_module, "gradient_audit", None),
            "epochs": self.epochs,
        }
        sample = getattr(pl_module, "sample", None)
        if sample is not None:
            results["sample"] = sample
            (out / "sample.txt").write_text(sample + "\n")
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        if pl_module.per_class_accuracy:
            (out / "per_class_accuracy.md").write_text(per_class_table(pl_module.per_class_accuracy))
        if self.epochs:
            plot_learning_curve(self.epochs, results["test_acc"], out / "learning_curve.png")


_IMPORTED = time.monotonic()


def process_seconds():
    """Seconds since this process started (Linux's /proc: the start time in clock ticks since boot),
    else since this module was imported."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            return float(uptime.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def _public(hparams):
    return {k: v for k, v in hparams.items() if not k.startswith("_")}


def _number(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def per_class_table(per_class):
    rows = "\n".join(f"| {name} | {acc * 100:.1f} % |" for name, acc in per_class.items())
    return f"| class | test accuracy |\n| --- | --- |\n{rows}\n"


def learning_curve(epochs, test_acc=None):
    """The figure of ``learning_curve.png``: training (and validation) loss per epoch on the left;
    validation accuracy per epoch and the final test accuracy on the right; epochs counted from 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    x = [e["epoch"] + 1 for e in epochs]
    accuracy = test_acc is not None or any(e["val_acc"] is not None for e in epochs)
    if not accuracy:                                          # a language model: its losses alone
        fig, ax_loss = plt.subplots(1, 1, figsize=(5, 4))
        ax_loss.plot(x, [e["train_loss"] for e in epochs], marker="o", label="train_loss")
        if any(e["val_loss"] is not None for e in epochs):
            ax_loss.plot(x, [e["val_loss"] for e in epochs], marker="o", label="val_loss")
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy (nats per token)", title="loss")
        ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax_loss.set_xlim(0.5, x[-1] + 0.5)
        ax_loss.grid(alpha=0.3)
        ax_loss.legend()
        fig.tight_layout()
        return fig
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(x, [e["train_loss"] for e in epochs], marker="o", label="train_loss")
    if any(e["val_loss"] is not None for e in epochs):
        ax_loss.plot(x, [e["val_loss"] for e in epochs], marker="o", label="val_loss")
        ax_acc.plot(x, [e["val_acc"] for e in epochs], marker="o", color="tab:green", label="val_acc")
    if test_acc is not None:
        ax_acc.plot([x[-1]], [test_acc], marker="*", markersize=14, linestyle="none", color="tab:red",
                    label=f"test_acc {test_acc:.4f}")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy (test: after the last epoch)")
    ax_acc.set_ylim(top=min(ax_acc.get_ylim()[1], 1.005))        # no room above 100 %
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(0.5, x[-1] + 0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_learning_curve(epochs, test_acc, path):
    import matplotlib.pyplot as plt

    fig = learning_curve(epochs, test_acc)
    fig.savefig(path, dpi=100)
    plt.close(fig)

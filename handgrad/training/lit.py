"""The LightningModule: one of the seed's networks, its loss and optimiser, and torchmetrics.

The network itself is a plain ``nn.Module`` from ``handgrad.training.models``; this class only wires it to
Lightning. With ``impl="hand"`` every layer and the loss run hand-derived backward passes; with
``impl="torch"`` the same network runs on torch.nn's built-ins, for comparison.
"""

import functools
import math
from typing import Literal

import lightning as L
import torch
import torchmetrics

import handgrad.nn
from handgrad.training import models
from handgrad.training.data import CLASSES

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine")
# torch.compile's modes for --model.compile; "none" trains eagerly. "reduce-overhead" also records the
# step's kernels as CUDA graphs (on a GPU), replayed with one launch each: the step of a small network
# is bound by the CPU that launches its kernels there.
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
FIT_METRICS = ("train_loss", "val_loss", "val_acc")            # what a checkpoint can monitor


class LitClassifier(L.LightningModule):
    """Classify Fashion-MNIST images with one of the seed's 784-512-512-10 networks or a small CNN.

    Args:
        network: ``quickstart`` (ReLU, PyTorch's init), ``basic`` (linear, no bias) or ``better``
            (sigmoid + bias), the seed's three networks; or ``cnn``, two convolution, batch-norm and
            max-pooling blocks and a 3136-128-10 classifier (``models.CNN``); or ``vit``, a small
            vision transformer, 50 tokens of width 64, 4 pre-norm blocks of 4 heads (``models.ViT``)
        impl: ``hand`` (handgrad's hand-derived layers) or ``torch`` (torch.nn built-ins)
        optimizer: ``sgd``, ``adam`` or ``adamw``
        lr: learning rate
        momentum: SGD momentum, ≥ 0 (0 is the seed's plain SGD; only ``sgd`` has one)
        weight_decay: L2 penalty, ≥ 0 (decoupled for adamw)
        scheduler: ``none`` (constant lr, the seed's) or ``cosine`` (decay to 0 over the run, per step)
        dropout: dropout probability after each hidden activation (cnn: before its last layer; vit: in
            its blocks), in
            [0, 1) (0: none, as in the seed)
        label_smoothing: ε of the training cross-entropy, in [0, 1] (0: the seed's loss)
        compile: ``none`` (eager, the default) or a ``torch.compile`` mode (``default``,
            ``reduce-overhead``, ``max-autotune``) for the training loss and its backward: the hand
            backward is traced into the compiled graph as written (a Function's ``backward``), so the
            gradients stay hand-derived. Validation and test run eagerly.

    Raises:
        ValueError: for an option out of its range, or one that would do nothing (momentum without
            sgd, dropout in the basic network), naming the option and what it accepts.
    """

    def __init__(
        self,
        network: Literal["quickstart", "basic", "better", "cnn", "vit"] = "better",
        impl: Literal["hand", "torch"] = "hand",
        optimizer: Literal["sgd", "adam", "adamw"] = "adam",
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        scheduler: Literal["none", "cosine"] = "cosine",
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
        compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none",
    ):
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if not 0 < lr < math.inf:
            raise ValueError(f"lr must be a positive number, got {lr}")
        if not 0 <= momentum < math.inf:
            raise ValueError(f"momentum must be a number >= 0, got {momentum}")
        if momentum and optimizer != "sgd":
            raise ValueError(f"momentum is an option of sgd only, got momentum={momentum} with {optimizer}")
        if not 0 <= weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay}")
        if not 0 <= label_smoothing <= 1:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {compile!r}")
        self.save_hyperparameters()
        self.model = models.build(network, impl, dropout)
        layers = handgrad.nn if impl == "hand" else torch.nn
        self.train_loss = layers.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.eval_loss = layers.CrossEntropyLoss()
        n = len(CLASSES)
        self.val_loss_mean, self.test_loss_mean = torchmetrics.MeanMetric(), torchmetrics.MeanMetric()
        self.val_acc = torchmetrics.classification.MulticlassAccuracy(n, average="micro")
        self.test_acc = torchmetrics.classification.MulticlassAccuracy(n, average="micro")
        self.test_per_class = torchmetrics.classification.MulticlassAccuracy(n, average=None)
        self.per_class_accuracy = None
        self._training_loss = None        # made on the first training step: compiled_loss
        self.gradient_audit = None        # handgrad.nn.audit of the first training step's loss, as a dict

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        first = self._training_loss is None
        if first:
            self._training_loss = compiled_loss(self.model, self.train_loss, self.hparams.compile)
        loss = self._training_loss(x, y)          # the network's top and the loss: one Function
        if first:
            self.gradient_audit = self._audit(loss, x, y)
        if self._logger_writes(batch_idx):
            self.log("train_loss", loss, prog_bar=True)
        return loss

    def _audit(self, loss, x, y):
        """``handgrad.nn.audit`` of the training loss's autograd graph, as a dict. A compiled step's
        graph is one opaque node, so that of an eager step on the same batch is read instead, its
        random draws and batch statistics put back, so that training goes on as if it never ran."""
        if self.hparams.compile != "none":
            buffers = {name: b.clone() for name, b in self.model.named_buffers()}
            with torch.random.fork_rng(devices=[] if x.device.type == "cpu" else [x.device]):
                loss = self.model.loss(x, y, self.train_loss)
            with torch.no_grad():
                for name, b in self.model.named_buffers():
                    b.copy_(buffers[name])
        report = handgrad.nn.audit(loss)
        return {"summary": report.summary(), **report.as_dict()}

    def _logger_writes(self, batch_idx):
        """Whether this training step's ``train_loss`` reaches the logger: every ``log_every_n_steps``
        steps (when Lightning writes on-step values), the last step of an epoch (so that
        ``callback_metrics`` holds it for a checkpoint monitoring train_loss), and a stopping step.
        ``self.log`` cost 1.1 ms a step on a 2-core CPU, about a seventh of train.py's step there;
        a value logged on the steps in between would be overwritten before anything reads it."""
        trainer = self._trainer                              # None: stepped by hand, outside a Trainer
        if trainer is None:
            return True
        every = trainer.log_every_n_steps
        return ((every and (self.global_step + 1) % every == 0) or batch_idx + 1 >= trainer.num_training_batches
                or trainer.should_stop)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.val_loss_mean.update(self.eval_loss(logits, y), weight=len(y))
        self.val_acc.update(logits, y)
        self.log("val_loss", self.val_loss_mean, prog_bar=True)
        self.log("val_acc", self.val_acc, prog_bar=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.test_loss_mean.update(self.eval_loss(logits, y), weight=len(y))
        self.test_acc.update(logits, y)
        self.test_per_class.update(logits, y)
        self.log("test_loss", self.test_loss_mean)
        self.log("test_acc", self.test_acc)

    def on_test_epoch_end(self):
        self.per_class_accuracy = dict(zip(CLASSES, self.test_per_class.compute().tolist()))
        self.test_per_class.reset()

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = build_optimizer(self.model.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
        scheduler = build_scheduler(optimizer, hp.scheduler, self.trainer.estimated_stepping_batches)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def compiled_loss(model, loss_fn, mode="none", loss_of=None):
    """``(x, target) -> model.loss(x, target, loss_fn)`` (or ``loss_of(x, target)``), eager (``mode="none"``) or compiled with
    ``torch.compile(mode=mode)``, one graph per batch shape (``dynamic=False``: a last, smaller batch
    compiles once more rather than making every kernel shape-generic).

    Compiled, each call marks a new step for CUDA graphs and returns a copy of the loss: a graph's
    outputs live in memory its next replay overwrites, and Lightning keeps the loss past the step."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {COMPILE_MODES}, got {mode!r}")
    eager = loss_of or functools.partial(model.loss, loss_fn=loss_fn)
    if mode == "none":
        return eager
    step = torch.compile(eager, mode=mode, dynamic=False)

    def loss(x, target):
        torch.compiler.cudagraph_mark_step_begin()
        return step(x, target).clone()
    return loss


def build_optimizer(params, optimizer, lr, momentum=0.0, weight_decay=0.0):
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_scheduler(optimizer, scheduler, total_steps):
    """None for a constant learning rate; for ``cosine``, a decay to 0 over ``total_steps`` steps."""
    if scheduler == "none":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))

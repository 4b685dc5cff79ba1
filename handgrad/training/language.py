"""The LightningModule of the character-level GPT: its loss, AdamW with warm-up and cosine decay, and
a generated sample.

The network is ``handgrad.training.gpt.GPT``, a plain ``nn.Module``; with ``impl="hand"`` it is
converted (``handgrad.nn.convert``), every gradient then hand-derived, ``memory="lean"`` keeping fewer
bytes for backward than autograd.
"""

import functools
import math
from typing import Literal, Optional

import lightning as L
import torch
import torchmetrics
from lightning.pytorch.plugins.precision import MixedPrecision

import handgrad.nn
from handgrad.training.gpt import GPT
from handgrad.training.lit import COMPILE_MODES, compiled_loss


class LitLanguageModel(L.LightningModule):
    """Predict each next character of a text with a GPT (``handgrad.training.gpt.GPT``).

    Args:
        network: ``gpt``, the only language network
        impl: ``hand`` (the GPT converted to handgrad, every gradient hand-derived) or ``torch``
            (the same GPT on torch's built-ins)
        memory: ``lean`` (handgrad makes the outputs of norms, activations and output projections again
            in backward instead of keeping them twice) or ``plain``; ``hand`` only
        vocab_size: tokens of the vocabulary (set from the data)
        block_size: the context, in tokens (set from the data)
        layers, heads, width: the GPT's blocks, attention heads and width
        dropout: the GPT's dropout, in [0, 1)
        bias: biases in the Linear layers and layer norms
        lr: the peak learning rate, reached after ``warmup_steps``, then decayed along a cosine to
            ``min_lr`` at ``decay_steps`` (None: the run's last step), constant after
        min_lr: the learning rate at the end of the decay, in [0, lr]
        warmup_steps: steps of linear warm-up from 0, ≥ 0
        decay_steps: the step at which the cosine reaches min_lr, or None for the run's last step
        weight_decay: AdamW's decoupled weight decay of the matrices (embeddings included), ≥ 0; the
            biases and the norms' weights have none, as in nanoGPT
        beta1, beta2: AdamW's betas, in [0, 1)
        compile: ``none`` or a ``torch.compile`` mode for the training loss and its backward
        sample_length: characters generated after training, printed and saved with the run, ≥ 0
        temperature: the sample's softmax temperature, > 0
        top_k: draw the sample's characters among the top_k most likely only (None: among all)

    Raises:
        ValueError: for an option out of its range, naming it and what it accepts.
    """

    def __init__(
        self,
        network: Literal["gpt"] = "gpt",
        impl: Literal["hand", "torch"] = "hand",
        memory: Literal["lean", "plain"] = "lean",
        vocab_size: int = 65,
        block_size: int = 64,
        layers: int = 4,
        heads: int = 4,
        width: int = 128,
        dropout: float = 0.0,
        bias: bool = False,
        lr: float = 1e-3,
        min_lr: float = 1e-4,
        warmup_steps: int = 100,
        decay_steps: Optional[int] = None,
        weight_decay: float = 0.1,
        beta1: float = 0.9,
        beta2: float = 0.99,
        compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none",
        sample_length: int = 500,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
    ):
        super().__init__()
        if network != "gpt":
            raise ValueError(f"network must be 'gpt' for text, got {network!r}")
        if impl not in ("hand", "torch"):
            raise ValueError(f"impl must be one of ('hand', 'torch'), got {impl!r}")
        if memory not in ("lean", "plain"):
            raise ValueError(f"memory must be one of ('lean', 'plain'), got {memory!r}")
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size), ("layers", layers),
                            ("heads", heads), ("width", width)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if width % heads:
            raise ValueError(f"width must be a multiple of heads, got width={width} and heads={heads}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not 0 < lr < math.inf:
            raise ValueError(f"lr must be a positive number, got {lr}")
        if not 0 <= min_lr <= lr:
            raise ValueError(f"min_lr must be in [0, lr={lr}], got {min_lr}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be at least 0, got {warmup_steps}")
        if decay_steps is not None and decay_steps <= warmup_steps:
            raise ValueError(f"decay_steps must be after warmup_steps={warmup_steps}, got {decay_steps}")
        if not 0 <= weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay}")
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {compile!r}")
        if sample_length < 0:
            raise ValueError(f"sample_length must be at least 0, got {sample_length}")
        if not 0 < temperature < math.inf:
            raise ValueError(f"temperature must be a positive number, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1 (or None), got {top_k}")
        self.save_hyperparameters()
        self.model = GPT(vocab_size, block_size, layers, heads, width, dropout, bias)
        if impl == "hand":
            handgrad.nn.convert(self.model, memory=memory)
        self.val_loss_mean, self.test_loss_mean = torchmetrics.MeanMetric(), torchmetrics.MeanMetric()
        self._training_loss = None        # made on the first training step: compiled_loss
        self.gradient_audit = None        # handgrad.nn.audit of the first training step's loss, as a dict
        self.per_class_accuracy = None    # (a classifier's; RunReport reads it)
        self.sample = None                # the text generated after testing

    def forward(self, idx, targets=None):
        return self.model(idx, targets)

    def training_step(self, batch, batch_idx):
        x, y = batch
        first = self._training_loss is None
        if first:
            # A partial, not the network itself: a module in an attribute would be a second copy in the state dict.
            self._training_loss = compiled_loss(self.model, None, self.hparams.compile,
                                                loss_of=functools.partial(self.model))
        loss = self._training_loss(x, y)
        if first and self.hparams.impl == "hand":
            self.gradient_audit = self._audit(loss, x, y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def _audit(self, loss, x, y):
        """``handgrad.nn.audit`` of the training loss's graph, as a dict (for a compiled step, an eager
        step's on the same batch, its random draws put back)."""
        if self.hparams.compile != "none":
            with torch.random.fork_rng(devices=[] if x.device.type == "cpu" else [x.device]):
                loss = self.model(x, y)
        report = handgrad.nn.audit(loss)
        return {"summary": report.summary(), **report.as_dict()}

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_loss_mean.update(self.model(x, y), weight=y.numel())
        self.log("val_loss", self.val_loss_mean, prog_bar=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.test_loss_mean.update(self.model(x, y), weight=y.numel())
        self.log("test_loss", self.test_loss_mean)

    def on_test_epoch_end(self):
        if self.hparams.sample_length and self.trainer.is_global_zero:
            self.sample = self.generate_text(self.hparams.sample_length)

    def generate_text(self, length, prompt="\n", seed=0):
        """``length`` characters continuing ``prompt``, drawn with the module's temperature and top_k
        from a generator seeded with ``seed`` (the data module's vocabulary decodes them)."""
        data = self.trainer.datamodule
        idx = data.encode(prompt).unsqueeze(0).to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(idx, length, self.hparams.temperature, self.hparams.top_k, generator)
        finally:
            self.model.train(was_training)
        return data.decode(out[0, idx.shape[1]:].tolist())

    def configure_optimizers(self):
        hp = self.hparams
        matrices = [p for p in self.model.parameters() if p.dim() >= 2]
        others = [p for p in self.model.parameters() if p.dim() < 2]
        # fused: one kernel for the whole update where torch has it (CPU and CUDA), 0.8 ms a step where the
        # default (foreach) takes 2.1 at nanoGPT's CPU recipe on one thread; not under mixed precision
        # (16-mixed, bf16-mixed), where Lightning refuses to clip the gradients of a fused optimizer
        fused = (all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in self.model.parameters())
                 and not isinstance(self.trainer.precision_plugin, MixedPrecision))
        optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": hp.weight_decay},
                                       {"params": others, "weight_decay": 0.0}], lr=hp.lr,
                                      betas=(hp.beta1, hp.beta2), fused=fused or None)
        total = hp.decay_steps or max(self.trainer.estimated_stepping_batches, hp.warmup_steps + 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(hp.warmup_steps, total, hp.min_lr / hp.lr))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warmup_cosine(warmup, total, floor):
    """The learning rate's multiplier at step s: s / warmup during the warm-up (from step 1, as
    nanoGPT's (s + 1) / warmup), then ½ (1 + cos π t) from 1 down to ``floor`` as t goes from 0 to 1
    at step ``total``, ``floor`` after."""
    def factor(step):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    return factor

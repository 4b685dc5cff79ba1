"""Dropout: y = x ∘ m with m = keep / (1 − p), keep ~ Bernoulli(1 − p) elementwise, in training.

The mask is drawn by the functional face and handed to the Function as an input that needs no
gradient, so the derivation sees a product with a constant: dL/dx = g ∘ m.

Stochastic depth (torchvision's, for the residual branches of a network) is the same product with a
mask that keeps or drops a whole sample (m of shape (N, 1, …, 1), mode "row") or the whole batch
(one number, mode "batch"), broadcast over the rest: dL/dx = g ∘ m still, m broadcast as forward did.
"""

import warnings

import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register


class Dropout(HandFunction):
    """y = x ∘ m with m = keep / (1 − p) a given scaled keep-mask."""

    recomputable = True

    @staticmethod
    def forward(x, m, inplace=False):
        if inplace:
            x.mul_(m)
            return x                                   # x itself, as torch.compile requires of a dirty input
        return x * m

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, m, inplace = inputs
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(m)
        ctx.save_for_forward(m)
        ctx.inplace = inplace

    @staticmethod
    def backward(ctx, g):
        (m,) = ctx.saved_tensors
        return g * m, None, None                             # dL/dx = g ∘ m = g keep / (1 − p), (*)

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: dy = dx ∘ m, the forward on the tangent (in place, into dx)."""
        (m,) = ctx.saved_tensors
        return multilinear_jvp(Dropout.forward, (None, m, ctx.inplace), (dx, None, None))


def dropout(input, p=0.5, training=True, inplace=False):
    """y = x ∘ m / (1 − p), m ~ Bernoulli(1 − p) elementwise, in training; y = x otherwise.

    As ``torch.nn.functional.dropout``. On the CPU the mask is drawn and scaled exactly as the
    built-in does it, so the same seed drops the same elements and gives the same numbers; CUDA's
    built-in uses a fused kernel whose random stream differs, so there the masks differ (their
    distribution does not).
    """
    check_tensor("dropout", "input", input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if not input.is_floating_point():
        raise TypeError(f"dropout: input must be floating point, got {input.dtype}")
    if p == 1.0:
        m = input.new_zeros(())                              # drops everything, draws nothing: one 0
    else:
        # On the CPU in x's memory order, as the built-in draws it (the same seed, its very mask);
        # elsewhere in logical order, so that a transposed x drops the same elements as a contiguous
        # one (PyTorch's CUDA dropout does not).
        cpu = input.device.type == "cpu"
        m = torch.empty_like(input) if cpu else torch.empty(input.shape, dtype=input.dtype, device=input.device)
        m = m.bernoulli_(1.0 - p).div_(1.0 - p)                         # keep / (1 − p)
    return apply(Dropout, input, m, inplace)


register(Op(
    "dropout", dropout, (Dropout,),
    Derivative("y = x ∘ m, m = keep / (1 − p)", "dL/dx = g ∘ m", "(*)"),
    modules={torch.nn.Dropout: Module(lambda self, input: dropout(input, self.p, self.training, self.inplace))},
))


def feature_dropout(name, input, p, training, inplace):
    """y = x ∘ m, m = keep / (1 − p) with keep ~ Bernoulli(1 − p) drawn once per channel: m of shape
    (N, C, 1, …, 1), broadcast over the channel's positions. The mask is drawn as torch's
    ``feature_dropout`` draws it (``new_empty`` of m's shape, ``bernoulli_``, ``div_``), so the same seed
    drops the same channels; the derivation is dropout's, dL/dx = g ∘ m."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if not input.is_floating_point():
        raise TypeError(f"{name}: input must be floating point, got {input.dtype}")
    if input.dim() < 2:
        raise RuntimeError(f"{name}: feature dropout needs at least 2 dimensions (N, C, ...), got shape "
                           f"{tuple(input.shape)}")
    if p == 1.0:
        m = input.new_zeros(())                              # drops everything, draws nothing: one 0
    else:
        m = input.new_empty(input.shape[:2] + (1,) * (input.dim() - 2)).bernoulli_(1.0 - p).div_(1.0 - p)
    return apply(Dropout, input, m, inplace)


def _unbatched(input, inplace, run):
    """``run`` on ``input`` with a batch dimension of 1 put in front, then taken off again (in place
    where ``inplace``, as torch does), for an input without one."""
    x = input.unsqueeze_(0) if inplace else input.unsqueeze(0)
    y = run(x)
    return y.squeeze_(0) if inplace else y.squeeze(0)


def _warn(message):
    """torch's warning of an input form it means to refuse, where Dynamo can follow (it cannot trace
    ``warnings.warn``)."""
    if not torch.compiler.is_compiling():
        warnings.warn(message, stacklevel=3)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """y = x ∘ m / (1 − p), m ~ Bernoulli(1 − p) once per channel of x (N, C, L) or (C, L), in
    training; y = x otherwise. As ``torch.nn.functional.dropout1d``."""
    check_tensor("dropout1d", "input", input)
    if input.dim() not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D input: (N, C, L) "
                           f"or (C, L)")
    def run(x):
        return feature_dropout("dropout1d", x, p, training, inplace)
    return run(input) if input.dim() == 3 else _unbatched(input, inplace, run)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """y = x ∘ m / (1 − p), m ~ Bernoulli(1 − p) once per channel of x (N, C, H, W), in training;
    y = x otherwise. As ``torch.nn.functional.dropout2d``, which takes a 3-D input for (N, C, L)
    (warning that this will change) and warns of any other but 4-D."""
    check_tensor("dropout2d", "input", input)
    if input.dim() == 3:
        _warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior is "
              "desired - input is interpreted as shape (N, C, L); use dropout1d for that")
    elif input.dim() != 4:
        _warn(f"dropout2d: Received a {input.dim()}-D input to dropout2d, which is deprecated; dropout2d takes "
              f"(N, C, H, W) or (C, H, W)")
    return feature_dropout("dropout2d", input, p, training, inplace)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """y = x ∘ m / (1 − p), m ~ Bernoulli(1 − p) once per channel of x (N, C, D, H, W) or
    (C, D, H, W), in training; y = x otherwise. As ``torch.nn.functional.dropout3d`` (which warns of
    an input of other dimensions and takes it as batched)."""
    check_tensor("dropout3d", "input", input)
    if input.dim() not in (4, 5):
        _warn(f"dropout3d: Received a {input.dim()}-D input to dropout3d, which is deprecated; dropout3d takes "
              f"(N, C, D, H, W) or (C, D, H, W)")
    def run(x):
        return feature_dropout("dropout3d", x, p, training, inplace)
    return run(input) if input.dim() == 5 else _unbatched(input, inplace, run)


_FEATURE_SHAPES = {1: "x (N, C, L), m (N, C, 1)", 2: "x (N, C, H, W), m (N, C, 1, 1)",
                   3: "x (N, C, D, H, W), m (N, C, 1, 1, 1)"}

for _n, _face in ((1, dropout1d), (2, dropout2d), (3, dropout3d)):
    register(Op(
        f"dropout{_n}d", _face, (Dropout,),
        Derivative("y = x ∘ m, m = keep / (1 − p) per channel", "dL/dx = g ∘ m, m broadcast over each channel",
                   _FEATURE_SHAPES[_n]),
        modules={getattr(torch.nn, f"Dropout{_n}d"): Module(
            lambda self, input, face=_face: face(input, self.p, self.training, self.inplace))},
    ))


def stochastic_depth(input, p, mode, training=True):
    """y = x ∘ m, m = keep / (1 − p) with keep ~ Bernoulli(1 − p) drawn once per sample (``mode="row"``,
    m of shape (N, 1, …, 1)) or once for the batch (``mode="batch"``), in training; y = x otherwise.

    As ``torchvision.ops.stochastic_depth``, the mask drawn as it draws it (an empty tensor of m's
    shape, ``bernoulli_``, then divided by 1 − p unless p = 1), so the same seed keeps the same samples.
    """
    check_tensor("stochastic_depth", "input", input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"stochastic_depth: drop probability p has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise ValueError(f"stochastic_depth: mode has to be either 'batch' or 'row', but got {mode!r}")
    if not training or p == 0.0:
        return input
    if not input.is_floating_point():
        raise TypeError(f"stochastic_depth: input must be floating point, got {input.dtype}")
    if mode == "row" and input.dim() == 0:
        raise ValueError("stochastic_depth: mode 'row' needs a batch dimension (N, ...), got a 0-d input")
    size = [input.shape[0]] + [1] * (input.dim() - 1) if mode == "row" else [1] * input.dim()
    m = torch.empty(size, dtype=input.dtype, device=input.device).bernoulli_(1.0 - p)
    if p < 1.0:
        m.div_(1.0 - p)                                                 # keep / (1 − p)
    return apply(Dropout, input, m, False)


register(Op(
    "stochastic_depth", stochastic_depth, (Dropout,),
    Derivative("y = x ∘ m, m = keep / (1 − p) per sample (row) or per batch",
               "dL/dx = g ∘ m, m broadcast over each sample", "x (N, *), m (N, 1, …) or (1, …)"),
    modules={"torchvision.ops.StochasticDepth":
             Module(lambda self, input: stochastic_depth(input, self.p, self.mode, self.training))},
))

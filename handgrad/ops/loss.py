"""Losses. The seed's cross-entropy L = −log softmax(l)_y, generalised to all of PyTorch's options,
and beside it nll_loss (the same after log softmax), mse_loss and binary_cross_entropy_with_logits.

Notation: g = dL/dL, the upstream gradient: () for 'mean' and 'sum', one per term for 'none'; r how
much each term moves L: g, or g / D for 'mean', D the number of terms or the sum of their weights.
Cross-entropy and nll_loss: x the logits or log-probabilities (M, C) (one row per prediction, C
classes), p = softmax(x), a the target distribution (M, C), t the class indices (M,), w the class
weights (C,), ε the label smoothing. mse_loss and binary_cross_entropy_with_logits: x the input
and t the target, elementwise (*), w the weights, p the positive-class weights (pos_weight).
"""

import types
import warnings

import numpy as np
import torch

from handgrad.ops._checks import (FLOAT32, FLOAT32_ON_CUDA, REDUCTIONS, autocast, can_inspect_values, check_reduction,
                                  check_same_dtype_and_device, check_tensor)
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, ModuleSample, Op, register
from handgrad.ops.linear import (RULES, RULES_NAN_ROWS, LinearChain, _chain_bench, _chain_reference, _plain_chain,
                                 _sum_to, chain_backward, linear_chain, linear_chain_numpy)
from handgrad.ops.softmax import log_softmax_backward, log_softmax_numpy
from handgrad.testing import ErrorInput, Sample, TOLERANCES, Tolerance, randn


class SoftmaxCrossEntropy(HandFunction):
    """L = −Σ_c a_c log softmax(x)_c per row, reduced; the cross-entropy of ``torch.nn.functional``.

    Inputs are already flattened by ``cross_entropy``:

    - ``x`` (M, C) logits, one row per prediction;
    - ``target`` (M,) class indices (int64) or (M, C) class probabilities (x's dtype);
    - ``weight`` (C,) class weights or None;
    - ``ignore_index`` (int, or None when no target is known to equal it: the faces pass None after
      their range check, and backward skips the masks), ``label_smoothing`` ε in [0, 1],
      ``reduction`` 'none' | 'mean' | 'sum'.

    The target distribution row by row is a (M, C), the seed's one-hot generalised:

    - class index t: a = (1 − ε) w_t onehot(t) + (ε / C) w, and a = 0 on rows with t = ignore_index;
    - probabilities q: a = w ∘ ((1 − ε) q + ε / C).

    'mean' divides the sum by D = Σ_rows w_t over rows not ignored (class indices) or by M
    (probabilities), exactly as PyTorch does.

    For class indices without smoothing this is ``nll_loss(log_softmax(x, 1), t)``: the gradient
    −r w_t onehot(t) of ``NegativeLogLikelihood`` taken back through log softmax
    (``log_softmax_backward``), in one Function that never builds the dense one-hot.

    Returns ``(loss, log_p)``: log_p = log softmax(x), (M, C), is what backward needs; it is returned
    rather than kept aside so that double backward differentiates through it (see ``backward``).
    """

    @staticmethod
    def forward(x, target, weight, ignore_index, label_smoothing, reduction):
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        log_p = torch.log_softmax(xf, 1)                     # x − max − log Σ exp(x − max): no overflow
        eps, n_classes = label_smoothing, x.shape[1]
        if target.is_floating_point():
            rows = -(_probability_target(target, weight, eps, log_p.dtype) * log_p).sum(1)     # (M,)
            loss = _reduce(rows, reduction, x.shape[0])
        else:
            w = None if weight is None else _as(weight, log_p.dtype)
            # nll_loss(log p): −w_t log p_t, summed or averaged over the rows not ignored (D = Σ w_t).
            loss = NegativeLogLikelihood.forward(log_p, target, w, ignore_index, reduction)
            if eps > 0:                                      # −Σ_c a_c log p_c = (1 − ε) nll + (ε / C) smooth
                kept, _, w_t = _class_index_rows(target, weight, ignore_index, log_p.dtype)
                # Only on kept rows, as PyTorch does: a NaN or −inf logit in an ignored row must
                # not turn 0 · (−inf) into NaN.
                smooth = (-(log_p if w is None else log_p * w).sum(1)).where(kept, 0)
                loss = (1 - eps) * loss + eps / n_classes * _reduce(smooth, reduction, w_t.sum())
        return _as(loss, x.dtype), log_p

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, target, weight, ignore_index, label_smoothing, reduction = inputs
        _, log_p = output
        ctx.save_for_backward(log_p, target, weight)
        ctx.save_for_forward(log_p, target, weight)
        ctx.ignore_index, ctx.label_smoothing, ctx.reduction = ignore_index, label_smoothing, reduction
        ctx.x_dtype = x.dtype
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_log_p):
        """``cross_entropy_backward`` on what forward kept: log p, the target and the class weight."""
        log_p, target, weight = ctx.saved_tensors
        grad_x, grad_target = cross_entropy_backward(g, g_log_p, log_p, target, weight, ctx.ignore_index,
                                                     ctx.label_smoothing, ctx.reduction, ctx.x_dtype,
                                                     *ctx.needs_input_grad[:2])
        return grad_x, grad_target, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, dq, *_):
        """Forward mode: d log p = dx − Σ_c p dx (per row), dL_row = −Σ_c (a d log p + da log p),
        da = (1 − ε) w dq for probability targets; then reduced as the loss is."""
        log_p, target, weight = ctx.saved_tensors
        eps, n_classes = ctx.label_smoothing, log_p.shape[1]
        if dx is None:
            d_log_p = torch.zeros_like(log_p)
        else:
            dx = _as(dx, log_p.dtype)
            d_log_p = dx - (log_p.exp() * dx).sum(1, keepdim=True)          # (M, C)
        if target.is_floating_point():
            d_rows = -(_probability_target(target, weight, eps, log_p.dtype) * d_log_p).sum(1)
            if dq is not None:
                da = (1 - eps) * _as(dq, log_p.dtype)
                d_rows = d_rows - ((da if weight is None else da * weight) * log_p).sum(1)
            denominator = log_p.shape[0]
        else:
            kept, t, w_t = _class_index_rows(target, weight, ctx.ignore_index, log_p.dtype)
            d_rows = -(1 - eps) * w_t * d_log_p.gather(1, t.unsqueeze(1)).squeeze(1)
            if eps > 0:
                w = 1 if weight is None else _as(weight, log_p.dtype)
                d_rows = d_rows - eps / n_classes * (d_log_p * w).sum(1)
            d_rows = d_rows.where(kept, 0)
            denominator = w_t.sum()
        return _as(_reduce(d_rows, ctx.reduction, denominator), ctx.x_dtype), d_log_p


def cross_entropy_backward(g, g_log_p, log_p, target, weight, ignore_index, eps, reduction, x_dtype, needs_x,
                           needs_target):
    """The backward of ``SoftmaxCrossEntropy``, and of the loss inside ``LinearChainCrossEntropy``:
    dL/dx = r ∘ (s p − a) with p = softmax(x), s = Σ_c a (per row), r = g, g / D or g_row.

    L_row = −Σ_c a_c log p_c gives dL/d(log p) = −r a, and through log softmax
    (``log_softmax_backward``) dL/dx = −r a + p Σ_c r a = r (s p − a). For an unweighted class
    index without smoothing, s = 1 and a = onehot(t): the seed's dL/dlogits = softmax − onehot.
    Shapes: x, p, a (M, C); s, r (M, 1); g () or (M,).
    For probability targets also dL/dq = −r (1 − ε) w ∘ log p, (M, C).

    g_log_p, the gradient reaching the log-probability output, is non-zero only when this
    backward is itself differentiated; it goes through log softmax the same way.
    """
    n_classes = log_p.shape[1]
    grad_x = grad_target = None
    if g is not None and target.is_floating_point():
        a = _probability_target(target, weight, eps, log_p.dtype)                # (M, C)
        r = _row_scale(_as(g, log_p.dtype), reduction, log_p.shape[0], log_p.shape[0])
        if needs_x:
            grad_x = log_softmax_backward(-r * a, log_p.exp(), 1)               # r (s p − a), (M, C)
        if needs_target:
            w = 1 if weight is None else _as(weight, log_p.dtype)
            grad_target = -r * (1 - eps) * w * log_p                             # dL/dq, (M, C)
    elif g is not None and needs_x and ignore_index is None and weight is None and eps == 0:
        # The seed's case: every row kept, a = onehot(t), s = 1, D = M: dL/dx = r (p − onehot(t)).
        r = _as(g, log_p.dtype)
        r = r.unsqueeze(1) if reduction == "none" else (r / log_p.shape[0] if reduction == "mean" else r)
        grad_x = log_p.exp() * r                                         # r p, (M, C)
        grad_x.scatter_add_(1, target.unsqueeze(1), (-r).expand(log_p.shape[0], 1))    # − r onehot(t)
    elif g is not None and needs_x:
        # The same r (s p − a), without building the dense (M, C) a: a is one entry per row
        # (plus ε/C w everywhere when smoothing), scattered in at the end.
        kept, t, w_t = _class_index_rows(target, weight, ignore_index, log_p.dtype)
        r = _row_scale(_as(g, log_p.dtype), reduction, w_t.sum(), log_p.shape[0])
        r = r * kept.unsqueeze(1)                                        # ignored rows: no gradient
        rw = r if weight is None else r * w_t.unsqueeze(1)               # r w_t, (M, 1)
        p = log_p.exp()                                                  # softmax(x), (M, C)
        if eps == 0:
            grad_x = p * rw                                              # r s p, s = w_t ...
        else:
            w = 1 if weight is None else _as(weight, log_p.dtype)
            w_sum = n_classes if weight is None else w.sum()
            s = (1 - eps) * rw + (eps / n_classes) * w_sum * r           # r s, (M, 1)
            grad_x = p * s - (eps / n_classes) * r * w                   # ... − r (ε / C) w
        grad_x = grad_x.scatter_add(1, t.unsqueeze(1), -(1 - eps) * rw)  # ... − r (1 − ε) w_t onehot(t)
    if g_log_p is not None and needs_x:
        through_log_p = log_softmax_backward(g_log_p, log_p.exp(), 1)    # (M, C)
        grad_x = through_log_p if grad_x is None else grad_x + through_log_p
    if grad_x is not None:
        grad_x = _as(grad_x, x_dtype)
    if grad_target is not None:
        grad_target = _as(grad_target, target.dtype)
    return grad_x, grad_target


def _reduce(rows, reduction, denominator):
    """The loss terms (per row, or per element) reduced: summed, summed / D ('mean'), or kept ('none')."""
    if reduction == "none":
        return rows
    return rows.sum() if reduction == "sum" else rows.sum() / denominator


def _as(t, dtype):
    """t in dtype, without a call when it already is (float32 and float64: always)."""
    return t if t.dtype == dtype else t.to(dtype)


def _probability_target(q, weight, eps, dtype):
    """a = w ∘ ((1 − ε) q + ε / C), (M, C)."""
    q = _as(q, dtype)
    if eps > 0:
        q = q * (1 - eps) + eps / q.shape[1]
    return q if weight is None else q * _as(weight, dtype)


def _class_index_rows(target, weight, ignore_index, dtype):
    """kept (M,) rows that count, t (M,) their class (0 where ignored), w_t (M,) their weight (0 where
    ignored). ``ignore_index=None``: every row is known to count."""
    if ignore_index is None:                                 # known: no row is ignored
        w_t = torch.ones_like(target, dtype=dtype) if weight is None else _as(weight, dtype).gather(0, target)
        return torch.ones_like(target, dtype=torch.bool), target, w_t
    kept = target != ignore_index
    t = target.where(kept, 0)
    w_t = _as(kept, dtype) if weight is None else _as(weight, dtype).gather(0, t).where(kept, 0)
    return kept, t, w_t


def _scale(g, reduction, denominator):
    """r: how much each term of the loss moves L: g ('sum'; for 'none', one per term) or g / D ('mean')."""
    return g / denominator if reduction == "mean" else g


def _row_scale(g, reduction, denominator, n_rows):
    """r (M, 1): how much each row's loss moves L (g, g / D or g_row)."""
    if reduction == "none":
        return g.unsqueeze(1)
    if reduction == "mean" and isinstance(denominator, torch.Tensor):
        # D = 0 only when every row is ignored, and then every r is masked away: dividing by 1
        # instead keeps 0/0 out of the graph (double backward would see NaN) and changes nothing.
        denominator = denominator.where(denominator != 0, 1)
    return _scale(g, reduction, denominator).expand(n_rows).unsqueeze(1)


# -- functional face -------------------------------------------------------------------------------


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0.0,
):
    """L = −Σ_c a_c log softmax(input)_c, as ``torch.nn.functional.cross_entropy``.

    Shapes: input (C), (N, C) or (N, C, d1, ..., dK); target of class indices (), (N) or
    (N, d1, ..., dK) (int64, or uint8), or of class probabilities with input's shape and dtype.
    Output: a scalar for 'mean' and 'sum', the target's shape (indices) or input's shape without
    the class dimension (probabilities) for 'none'. ``size_average`` and ``reduce`` are PyTorch's
    deprecated spellings of ``reduction`` and are honoured the same way.
    """
    plain = _plain_rows(input, target, weight, size_average, reduce, reduction, ignore_index)
    if plain and 0.0 <= label_smoothing <= 1.0:
        return apply(SoftmaxCrossEntropy, input, target, None, plain.ignore, label_smoothing, reduction)[0]
    reduction = check_reduction("cross_entropy", reduction, size_average, reduce)
    check_tensor("cross_entropy", "input", input)
    check_tensor("cross_entropy", "target", target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if not input.is_floating_point():
        raise NotImplementedError(f"cross_entropy: input (logits) must be floating point, got {input.dtype}")
    class_dim, n_classes = _classes("cross_entropy", input, zero_dim_error=RuntimeError)
    _check_class_weight("cross_entropy", weight, n_classes)
    probabilities = target.is_floating_point()
    input, weight, *probability_target = autocast(FLOAT32, input, weight, *((target,) if probabilities else ()))
    target = probability_target[0] if probabilities else target
    if probabilities:
        _check_probability_target(input, target, class_dim, ignore_index)
    else:
        every_row_kept = _check_class_target("cross_entropy", input, target, class_dim, n_classes, ignore_index)
    check_same_dtype_and_device(
        "cross_entropy", {"input": input, "weight": weight, **({"target": target} if probabilities else {})}
    )
    x, t = _as_rows(input, target, class_dim)
    ignore = None if not probabilities and every_row_kept else ignore_index
    loss, _ = apply(SoftmaxCrossEntropy, x, t, weight, ignore, label_smoothing, reduction)
    return _from_rows(loss, input, class_dim, reduction)


class _Plain:
    """The answer of ``_plain_rows``: ``ignore`` is what the Function takes as ignore_index."""

    __slots__ = ("ignore",)

    def __init__(self, ignore):
        self.ignore = ignore


def _plain_rows(input, target, weight, size_average, reduce, reduction, ignore_index):
    """The common case of cross_entropy and nll_loss, which needs no reshaping, cast or further check:
    input (N, C) float32 or float64 (autocast leaves both alone), target (N,) int64 on its device,
    every index in [0, C) or equal to ignore_index, no class weight, no legacy reduction. Returns a
    ``_Plain`` (ignore None when every row is kept), or None: the general path then checks everything
    and names what is wrong."""
    if weight is not None or size_average is not None or reduce is not None or reduction not in REDUCTIONS:
        return None
    if not isinstance(input, torch.Tensor) or input.dim() != 2 or input.dtype not in (torch.float32, torch.float64):
        return None
    return _plain_class_target(target, input.shape[0], input.shape[1], input.device, ignore_index)


def _plain_class_target(target, n_rows, n_classes, device, ignore_index):
    """``_plain_rows``'s question about the target: (N,) int64 on ``device``, each index in [0, C)."""
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long or target.dim() != 1 or target.shape[0] != n_rows:
        return None
    if not n_rows or not n_classes or target.device != device or not can_inspect_values(target):
        return None
    low, high = (int(v) for v in torch.aminmax(target))
    if low < 0 or high >= n_classes:
        return None                                          # ignored rows, or an index out of range
    return _Plain(None if not 0 <= ignore_index < n_classes else ignore_index)


def _classes(fn, input, zero_dim_error):
    """(class dimension, C) of input (C), (N, C) or (N, C, d1, ..., dK). A 0-d input raises
    ``zero_dim_error``: RuntimeError from cross_entropy, ValueError from nll_loss, as in PyTorch."""
    if input.dim() == 0:
        raise zero_dim_error(f"{fn}: input must be (C), (N, C) or (N, C, d1, ..., dK); got a 0-d tensor")
    class_dim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[class_dim]
    if n_classes == 0:
        raise IndexError(f"{fn}: input of shape {tuple(input.shape)} has no classes (C = 0)")
    return class_dim, n_classes


def _check_class_weight(fn, weight, n_classes):
    """A class weight is (C,) and a constant: PyTorch differentiates neither loss with respect to it."""
    if weight is None:
        return
    check_tensor(fn, "weight", weight)
    if weight.shape != (n_classes,):
        raise RuntimeError(
            f"{fn}: weight must hold one value per class, shape ({n_classes},), got shape {tuple(weight.shape)}"
        )
    if weight.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(
            f"{fn}: the loss is not differentiable with respect to weight (as in PyTorch); "
            "pass weight.detach() or a weight that does not require grad"
        )


def _check_probability_target(input, target, class_dim, ignore_index):
    """A floating-point target of cross_entropy: class probabilities, with the input's shape."""
    if target.shape != input.shape:
        raise RuntimeError(
            f"cross_entropy: a floating-point target is read as class probabilities and must have "
            f"the input's shape {tuple(input.shape)}, got {tuple(target.shape)}; for class indices "
            f"of shape {_class_free_shape(input, class_dim)} use an int64 (torch.long) target"
        )
    if ignore_index != -100:
        raise RuntimeError(
            "cross_entropy: ignore_index applies to class-index targets only; "
            "it is not supported with class-probability targets"
        )


def _check_same_device(fn, input, *others):
    """Every tensor of ``others`` (None skipped) on input's device."""
    for name, t in zip(("target", "weight", "pos_weight"), others):
        if t is not None and t.device != input.device:
            raise RuntimeError(f"{fn}: {name} is on {t.device} but input is on {input.device}; "
                               f"move them to the same device")


def _class_free_shape(input, class_dim):
    return tuple(input.shape[:class_dim] + input.shape[class_dim + 1:])


def _check_class_target(fn, input, target, class_dim, n_classes, ignore_index):
    """A target of class indices: int64 (or uint8), the input's shape without the class dimension
    (a (C) input also takes a target of shape (1,), as in PyTorch), each index in [0, C) or ignore_index.

    Returns True when it is known that no row is ignored (every index in [0, C), ignore_index
    outside it): the Functions then take ``ignore_index=None`` and skip the masks."""
    class_free_shape = _class_free_shape(input, class_dim)
    if target.dtype not in (torch.long, torch.uint8):
        raise RuntimeError(
            f"{fn}: class-index target must have dtype torch.long (or torch.uint8), got {target.dtype}"
        )
    if target.shape != class_free_shape and not (input.dim() == 1 and target.shape == (1,)):
        # torch raises ValueError when the batch sizes differ and RuntimeError otherwise.
        mismatch = ValueError if target.shape[:1] != class_free_shape[:1] else RuntimeError
        raise mismatch(
            f"{fn}: target of shape {tuple(target.shape)} does not match input of shape "
            f"{tuple(input.shape)}: class-index targets must have shape {class_free_shape} "
            f"(input without its class dimension {class_dim})"
        )
    if target.device != input.device:
        raise RuntimeError(f"{fn}: target is on {target.device} but input is on {input.device}")
    if target.numel() and can_inspect_values(target):
        low, high = (int(v) for v in torch.aminmax(target))   # one pass; the exact test only if needed
        if low >= 0 and high < n_classes:
            return not 0 <= ignore_index < n_classes          # no target can equal ignore_index
        bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
        if bad.any():
            value = target[bad].flatten()[0].item()
            raise IndexError(
                f"{fn}: target {value} is out of bounds: class indices must lie in "
                f"[0, {n_classes - 1}] for {n_classes} classes, or equal ignore_index={ignore_index}"
            )


def _as_rows(input, target, class_dim):
    """One row per prediction: input as (M, C), target as (M,) int64 class indices or (M, C) probabilities."""
    t = target if target.is_floating_point() or target.dtype == torch.long else target.long()
    if input.dim() == 2:
        return input, t
    n_classes = input.shape[class_dim]
    x = input.movedim(class_dim, -1).reshape(-1, n_classes)
    return x, t.movedim(class_dim, -1).reshape(-1, n_classes) if t.is_floating_point() else t.reshape(-1)


def _from_rows(loss, input, class_dim, reduction):
    """The loss in input's layout: for 'none', (M,) back to the input's shape without the class dimension."""
    if reduction == "none" and input.dim() != 2:
        return loss.reshape(_class_free_shape(input, class_dim))
    return loss


# -- NumPy oracle ----------------------------------------------------------------------------------


def _target_distribution(target, n_rows, n_classes, weight, ignore_index, label_smoothing):
    """Per-row target distribution A (M, C) with L_row = −Σ_c A log p, and the 'mean' divisor."""
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    if np.issubdtype(target.dtype, np.floating):
        return ((1 - eps) * target + eps / n_classes) * w, n_rows
    A = np.zeros((n_rows, n_classes))
    divisor = 0.0
    for m, t in enumerate(target):
        if t == ignore_index:
            continue
        A[m, t] += (1 - eps) * w[t]
        A[m] += eps / n_classes * w
        divisor += w[t]
    return A, divisor


def cross_entropy_rows_numpy(logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """The seed's −log softmax(l)_y for rows of logits (M, C), generalised: (L, vjp)."""
    A, divisor = _target_distribution(target, *logits.shape, weight, ignore_index, label_smoothing)
    log_p, _ = log_softmax_numpy(logits, 1)
    # Only the classes the target puts weight on count: a −inf logit elsewhere (masking) or NaN
    # logits in an ignored row must not turn 0 · (−inf) into NaN.
    with np.errstate(invalid="ignore"):
        rows = -np.where(A != 0, A * log_p, 0.0).sum(axis=1)
    probabilities = np.issubdtype(target.dtype, np.floating)

    def vjp(g):
        r = _row_scale_numpy(g, reduction, divisor, logits.shape[0])
        dlogits = r * (A.sum(axis=1, keepdims=True) * np.exp(log_p) - A)     # r (s softmax − A)
        if not probabilities:
            return dlogits, None
        w = np.ones(logits.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)
        return dlogits, -r * (1 - label_smoothing) * w * log_p

    return _reduce_numpy(rows, reduction, divisor), vjp


def _reduce_numpy(terms, reduction, divisor):
    with np.errstate(invalid="ignore", divide="ignore"):     # a mean over nothing is NaN, as in torch
        return terms if reduction == "none" else terms.sum() if reduction == "sum" else terms.sum() / divisor


def _row_scale_numpy(g, reduction, divisor, n_rows):
    """r (M, 1) from g: g_row, g, or g / D (0 when D = 0: no row counts)."""
    g = np.asarray(g, dtype=np.float64)
    if reduction == "none":
        return g.reshape(-1, 1)
    scale = float(g) if reduction == "sum" else (float(g) / divisor if divisor else 0.0)
    return np.full((n_rows, 1), scale)


def _legacy_reduction(size_average, reduce, reduction):
    """PyTorch's deprecated spellings: reduce=False is 'none', else size_average=False is 'sum'."""
    if size_average is None and reduce is None:
        return reduction
    return "none" if reduce is False else "sum" if size_average is False else "mean"


def _class_rows_numpy(x, target, reduction, rows_oracle):
    """``rows_oracle(x2, t2)`` on one row per prediction, for input (C), (N, C) or (N, C, d1, ..., dK):
    the class dimension moved last and the rest flattened, then the loss and gradients moved back."""
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    x2 = np.moveaxis(x, class_dim, -1).reshape(-1, n_classes)
    probabilities = np.issubdtype(target.dtype, np.floating)
    t2 = np.moveaxis(target, class_dim, -1).reshape(-1, n_classes) if probabilities else target.reshape(-1)
    loss, rows_vjp = rows_oracle(x2, t2)
    class_free = x.shape[:class_dim] + x.shape[class_dim + 1:]
    if reduction == "none":
        loss = loss.reshape(class_free)

    def unflatten(a):
        return None if a is None else np.moveaxis(a.reshape(class_free + (n_classes,)), -1, class_dim)

    def vjp(g):
        return tuple(unflatten(a) for a in rows_vjp(g.reshape(-1) if g.ndim else g))

    return loss, vjp


def cross_entropy_numpy(x, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                        label_smoothing=0.0):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _class_rows_numpy(x, target, reduction, lambda x2, t2: cross_entropy_rows_numpy(
        x2, t2, weight, ignore_index, reduction, label_smoothing))


# -- samples and registration ----------------------------------------------------------------------


def _cross_entropy_samples(gen):
    def sample(name, shape, reduction, probabilities=False, weight=False, ignore=None, smoothing=0.0, scale=1.0,
               offset=0.0, all_ignored=False, **sample_options):
        x = (randn(gen, *shape, requires_grad=False) * scale + offset).requires_grad_()
        class_dim = 0 if len(shape) == 1 else 1
        n_classes = shape[class_dim]
        kwargs = {"reduction": reduction, "label_smoothing": smoothing}
        if weight:
            kwargs["weight"] = torch.rand(n_classes, generator=gen, dtype=torch.float64) + 0.1
        if probabilities:
            target = torch.softmax(randn(gen, *shape, requires_grad=False), class_dim).requires_grad_()
        else:
            target_shape = shape[:class_dim] + shape[class_dim + 1:]
            target = torch.randint(0, n_classes, target_shape, generator=gen)
            if ignore is not None:
                kwargs["ignore_index"] = ignore
                drop = torch.rand(target_shape, generator=gen) < 0.3
                target = torch.full_like(target, ignore) if all_ignored else target.masked_fill(drop, ignore)
        return Sample((x, target), kwargs, f"{name}, {reduction}", **sample_options)

    forms = {
        "(N, C) indices": dict(shape=(8, 5)),
        "(N, C) indices, weight": dict(shape=(8, 5), weight=True),
        "(N, C) indices, ignore_index": dict(shape=(8, 5), ignore=-100),
        "(N, C) indices, ignore_index=2": dict(shape=(8, 5), ignore=2),
        "(N, C) indices, label_smoothing": dict(shape=(8, 5), smoothing=0.2),
        "(N, C) indices, weight, ignore_index, label_smoothing": dict(shape=(8, 5), weight=True, ignore=-100,
                                                                       smoothing=0.3),
        "(C,) unbatched index": dict(shape=(5,)),
        "(N, C, d1, d2) indices, weight, ignore_index": dict(shape=(2, 4, 3, 2), weight=True, ignore=-100),
        "(N, C) probabilities": dict(shape=(8, 5), probabilities=True),
        "(N, C, d1) probabilities, weight, label_smoothing": dict(shape=(2, 4, 3), probabilities=True, weight=True,
                                                                   smoothing=0.1),
        "(C,) unbatched probabilities": dict(shape=(5,), probabilities=True),
        "(0, C) empty batch": dict(shape=(0, 5)),
        "all targets ignored": dict(shape=(4, 5), ignore=-100, all_ignored=True),
        "logits 1e4 + N(0, 1)": dict(shape=(8, 5), offset=1e4),
        "logits ~ N(0, 1e4)": dict(shape=(8, 5), scale=1e4),
        "logits ~ N(0, 1e-8)": dict(shape=(8, 5), scale=1e-8),
    }
    nan_means = {"(0, C) empty batch", "all targets ignored"}      # a mean over no rows is NaN by definition
    no_half = tuple(d for d in TOLERANCES if d != torch.float16)    # losses near 1e4 summed pass 65504
    samples = []
    for name, form in forms.items():
        for reduction in ("mean", "sum", "none"):
            options = {}
            if name in nan_means and reduction == "mean":
                options["gradcheck"] = False
            if name == "logits ~ N(0, 1e4)" and reduction != "none":
                options["dtypes"] = no_half
            samples.append(sample(name, reduction=reduction, **form, **options))
    return samples + _extreme_samples(gen)


def _extreme_samples(gen):
    """Valid extreme input: ignored rows, empty batches, NaN and −inf logits, huge and tiny logits."""
    nan, inf = float("nan"), float("inf")

    def logits(*shape, scale=1.0, offset=0.0, at=None):
        t = torch.randn(shape, generator=gen, dtype=torch.float64) * scale + offset
        for index, value in (at or {}).items():
            t[index] = value
        return t.requires_grad_()

    def probabilities(*shape):
        return torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), 1).requires_grad_()

    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.1], dtype=torch.float64)
    forms = {  # name: (logits, target, options)
        "(N, C), one row ignored": (logits(4, 5), _idx(1, -100, 3, 0), {}),
        "(N, C), ignore_index=2 on two rows, weight, label_smoothing":
            (logits(4, 5), _idx(1, 2, 3, 2), {"ignore_index": 2, "label_smoothing": 0.2, "weight": weight}),
        "(N, C, d1), one sample all ignored": (logits(2, 4, 3), torch.tensor([[-100, -100, -100], [0, 3, 1]]), {}),
        "(0, C) indices, weight, label_smoothing":
            (logits(0, 5), _idx(), {"weight": torch.ones(5, dtype=torch.float64), "label_smoothing": 0.1}),
        "(0, C) probabilities": (logits(0, 5), probabilities(0, 5), {}),
        "(0, C, d1) indices": (logits(0, 5, 2), torch.zeros(0, 2, dtype=torch.long), {}),
        "NaN logit": (logits(4, 5, at={(1, 2): nan}), _idx(1, 2, 3, 0), {}),
        "NaN logit, label_smoothing": (logits(4, 5, at={(0, 0): nan}), _idx(1, 2, 3, 0), {"label_smoothing": 0.1}),
        "NaN logit, probabilities": (logits(4, 5, at={(2, 4): nan}), probabilities(4, 5), {}),
        "NaN logits in an ignored row": (logits(4, 5, at={(1, 2): nan}), _idx(1, -100, 3, 0), {}),
        "-inf logit of a non-target class (masking)": (logits(4, 5, at={(0, 3): -inf}), _idx(1, 2, 3, 0), {}),
        "logits ~ N(0, 1e-8), probabilities": (logits(8, 5, scale=1e-8), probabilities(8, 5), {}),
    }
    finite = {"(N, C), one row ignored", "(N, C), ignore_index=2 on two rows, weight, label_smoothing",
              "(N, C, d1), one sample all ignored", "logits ~ N(0, 1e-8), probabilities"}
    return [
        Sample((x.detach().clone().requires_grad_(), t.detach().clone().requires_grad_(t.requires_grad)),
               {"reduction": reduction, **options}, f"{name}, {reduction}",
               dtypes=(torch.float64, torch.float32), gradcheck=name in finite)
        for name, (x, t, options) in forms.items()
        for reduction in ("mean", "sum", "none")
    ]


def _x(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype)


def _idx(*values):
    return torch.tensor(values, dtype=torch.long)


_ERRORS = (
    # -- cross_entropy: target ---------------------------------------------------------------------
    ErrorInput(
        "logits/target batch mismatch", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2, 3)),
        ValueError, r"target of shape \(4,\) does not match input of shape \(3, 5\).*shape \(3,\)"),
    ErrorInput(
        "(N, C, d1) logits, wrong target spatial shape",
        lambda F, nn: F.cross_entropy(_x(2, 5, 3), torch.zeros(2, 4, dtype=torch.long)),
        RuntimeError, r"target of shape \(2, 4\) does not match input of shape \(2, 5, 3\).*shape \(2, 3\)"),
    ErrorInput(
        "probability target of the wrong shape", lambda F, nn: F.cross_entropy(_x(3, 5), torch.rand(3, 4)),
        RuntimeError, r"must have the input's shape \(3, 5\), got \(3, 4\)"),
    ErrorInput(
        "target above the last class", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 10, 1)),
        IndexError, r"target 10 is out of bounds.*\[0, 4\] for 5 classes"),
    ErrorInput(
        "negative target other than ignore_index", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, -3, 1)),
        IndexError, r"target -3 is out of bounds.*ignore_index=-100"),
    ErrorInput(
        "negative target with ignore_index=-1", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(-1, -2, 1), ignore_index=-1),
        IndexError, r"target -2 is out of bounds.*ignore_index=-1"),
    ErrorInput(
        "float class indices of shape (N,)", lambda F, nn: F.cross_entropy(_x(3, 5), torch.tensor([0.0, 1.0, 2.0])),
        RuntimeError, r"floating-point target .*input's shape \(3, 5\), got \(3,\).*int64"),
    ErrorInput(
        "int32 target", lambda F, nn: F.cross_entropy(_x(3, 5), torch.tensor([0, 1, 2], dtype=torch.int32)),
        RuntimeError, r"target must have dtype torch\.long .*got torch\.int32"),
    ErrorInput(
        "bool target", lambda F, nn: F.cross_entropy(_x(3, 5), torch.tensor([True, False, True])),
        RuntimeError, r"target must have dtype torch\.long .*got torch\.bool"),
    ErrorInput(
        "list target", lambda F, nn: F.cross_entropy(_x(3, 5), [0, 1, 2]),
        TypeError, r"target must be a torch\.Tensor, got list"),
    ErrorInput(
        "ignore_index with probability targets",
        lambda F, nn: F.cross_entropy(_x(3, 5), torch.rand(3, 5), ignore_index=1),
        RuntimeError, r"ignore_index .*not supported with class-probability targets"),
    # -- cross_entropy: options --------------------------------------------------------------------
    ErrorInput(
        "reduction 'avg'", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), reduction="avg"),
        ValueError, r"reduction must be one of .*got 'avg'"),
    ErrorInput(
        "label_smoothing 1.5", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), label_smoothing=1.5),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got 1\.5"),
    ErrorInput(
        "label_smoothing -0.1", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), label_smoothing=-0.1),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got -0\.1", torch_accepts=True),
    ErrorInput(
        "weight of the wrong length", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(4)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(4,\)"),
    ErrorInput(
        "2-D weight", lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(1, 5)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(1, 5\)"),
    ErrorInput(
        "float64 weight, float32 logits",
        lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(5, dtype=torch.float64)),
        RuntimeError, r"weight has dtype torch\.float64 but input has dtype torch\.float32"),
    ErrorInput(
        "weight requiring grad",
        lambda F, nn: F.cross_entropy(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(5, requires_grad=True)),
        RuntimeError, r"not differentiable with respect to weight"),
    # -- cross_entropy: logits ---------------------------------------------------------------------
    ErrorInput(
        "int64 logits", lambda F, nn: F.cross_entropy(torch.ones(3, 5, dtype=torch.long), _idx(0, 1, 2)),
        NotImplementedError, r"input \(logits\) must be floating point, got torch\.int64"),
    ErrorInput(
        "0-d logits", lambda F, nn: F.cross_entropy(_x(), torch.tensor(0)),
        RuntimeError, r"input must be \(C\), \(N, C\) or \(N, C, d1, \.\.\., dK\); got a 0-d tensor"),
    ErrorInput(
        "zero classes", lambda F, nn: F.cross_entropy(_x(3, 0), _idx(0, 0, 0)),
        IndexError, r"input of shape \(3, 0\) has no classes"),
    # -- cross_entropy through nn.CrossEntropyLoss -------------------------------------------------
    ErrorInput(
        "nn.CrossEntropyLoss target above the last class",
        lambda F, nn: nn.CrossEntropyLoss()(_x(3, 5), _idx(0, 7, 1)),
        IndexError, r"target 7 is out of bounds"),
    ErrorInput(
        "nn.CrossEntropyLoss weight of the wrong length",
        lambda F, nn: nn.CrossEntropyLoss(weight=torch.ones(4))(_x(3, 5), _idx(0, 1, 2)),
        RuntimeError, r"weight must hold one value per class, shape \(5,\), got shape \(4,\)"),
    ErrorInput(
        "nn.CrossEntropyLoss reduction 'avg'",
        lambda F, nn: nn.CrossEntropyLoss(reduction="avg")(_x(3, 5), _idx(0, 1, 2)),
        ValueError, r"reduction must be one of .*got 'avg'"),
    ErrorInput(
        "nn.CrossEntropyLoss ignore_index with probability targets",
        lambda F, nn: nn.CrossEntropyLoss(ignore_index=0)(_x(3, 5), torch.rand(3, 5)),
        RuntimeError, r"ignore_index .*not supported with class-probability targets"),
    ErrorInput(
        "nn.CrossEntropyLoss label_smoothing 1.5",
        lambda F, nn: nn.CrossEntropyLoss(label_smoothing=1.5)(_x(3, 5), _idx(0, 1, 2)),
        RuntimeError, r"label_smoothing must be in \[0, 1\], got 1\.5"),
)


def _module_samples():
    """CrossEntropyLoss with every option, on (N, C) and (N, C, d1, d2) logits, indices and probabilities."""
    def indices(shape, ignore=None):
        def input(gen):
            target = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=gen)
            if ignore is not None:
                target = target.masked_fill(torch.rand(target.shape, generator=gen) < 0.3, ignore)
            return randn(gen, *shape), target
        return input

    def probabilities(gen):
        return randn(gen, 8, 4), torch.softmax(randn(gen, 8, 4, requires_grad=False), 1)

    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    options = {
        "default": ({}, None), "weight": ({"weight": weight}, None), "ignore_index=-100": ({}, -100),
        "ignore_index=2": ({"ignore_index": 2}, 2), "label_smoothing": ({"label_smoothing": 0.2}, None),
        "all options": ({"weight": weight, "ignore_index": 1, "label_smoothing": 0.3}, 1),
    }
    samples = [
        ModuleSample(f"{name}, {reduction}, {shape}", indices(shape, ignore), (), {**kwargs, "reduction": reduction})
        for name, (kwargs, ignore) in options.items() for reduction in ("mean", "sum", "none")
        for shape in ((9, 4), (2, 4, 3, 2))
    ]
    samples += [ModuleSample(f"probabilities, {reduction}", probabilities, (),
                             {"weight": weight, "reduction": reduction, "label_smoothing": 0.1})
                for reduction in ("mean", "sum", "none")]
    return tuple(samples)


def _bench(device):
    x = torch.randn(1024, 10, device=device, requires_grad=True)
    return [("(1024, 10) logits", (x, torch.randint(0, 10, (1024,), device=device)), {})]


register(Op(
    "cross_entropy", cross_entropy, torch.nn.functional.cross_entropy, _cross_entropy_samples, cross_entropy_numpy,
    (SoftmaxCrossEntropy,),
    Derivative("L = −Σ_c a_c log softmax(x)_c", "dL/dx = r (s · softmax(x) − a); one-hot a: softmax − onehot",
               "x (M, C), a (M, C), s = Σ_c a_c, r (M, 1)"),
    modules={torch.nn.CrossEntropyLoss: Module(
        lambda self, input, target: cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                                  reduction=self.reduction, label_smoothing=self.label_smoothing),
        _module_samples())},
    bench=_bench,
    errors=_ERRORS,
))


# -- the chain and its cross-entropy as one Function -----------------------------------------------


class LinearChainCrossEntropy(HandFunction):
    """The seed's whole training computation as one Function: the chain lⁱ = φⁱ(lⁱ⁻¹ Wⁱᵀ + bⁱ) of
    ``LinearChain`` and the cross-entropy L of its logits lᴸ (``SoftmaxCrossEntropy``), as the seed's
    ``update_weights`` runs from dL/dlᴸ = softmax − onehot down to dL/dW¹ in one place.

    Inputs: x (N, in), target (N,) class indices, ignore_index (None: no row ignored),
    label_smoothing, reduction, activations (the last one None: the logits have no φ), W¹, b¹, ...,
    Wᴸ, bᴸ. Returns (L, log p, l¹, ..., lᴸ⁻¹): what the two Functions return apart, so that double
    backward differentiates through the same outputs. lᴸ itself is needed by neither backward.
    """

    @staticmethod
    def forward(x, target, ignore_index, label_smoothing, reduction, activations, *params):
        logits, *hidden = LinearChain.forward(x, activations, *params)
        loss, log_p = SoftmaxCrossEntropy.forward(logits, target, None, ignore_index, label_smoothing, reduction)
        return (loss, log_p, *hidden)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, target, ignore_index, label_smoothing, reduction, activations, *params = inputs
        _, log_p, *hidden = output
        ctx.save_for_backward(x, *params[::2], *hidden, log_p, target)
        ctx.save_for_forward(x, *params[::2], *hidden, log_p, target)
        ctx.activations = activations
        ctx.bias_shapes = [None if b is None else b.shape for b in params[1::2]]
        ctx.ignore_index, ctx.label_smoothing, ctx.reduction = ignore_index, label_smoothing, reduction
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_log_p, *g_hidden):
        """The chain rule across the two, literally: the cross-entropy's backward turns g into
        dL/dlᴸ = r (p − onehot(t)), and the chain's takes it from the top layer down."""
        x, Ws, hidden, log_p, target = _saved(ctx)
        # Backward runs only when x or a parameter wants a gradient: dL/dlᴸ is always wanted.
        g_logits, _ = cross_entropy_backward(g, g_log_p, log_p, target, None, ctx.ignore_index, ctx.label_smoothing,
                                             ctx.reduction, x.dtype, True, False)
        # When g reaches the hidden layers only from lᴸ, a NaN row of lⁱ has a NaN row of g.
        rules = RULES_NAN_ROWS if all(h is None for h in g_hidden) else RULES
        needs = ctx.needs_input_grad
        grad_x, grad_params = chain_backward(g_logits, g_hidden, x, Ws, hidden, ctx.activations, ctx.bias_shapes,
                                             needs[0], needs[6:], rules)
        return (grad_x, None, None, None, None, None, *grad_params)

    @staticmethod
    def jvp(ctx, dx, _target, _ignore, _eps, _reduction, _activations, *dparams):
        """Forward mode, from the bottom up: the chain's tangent dlᴸ, then the cross-entropy's."""
        chain, loss = _split_contexts(ctx)
        d_logits, *d_hidden = LinearChain.jvp(chain, dx, None, *dparams)
        d_loss, d_log_p = SoftmaxCrossEntropy.jvp(loss, d_logits, None)
        return (d_loss, d_log_p, *d_hidden)


def _saved(ctx):
    """x, [W¹, ..., Wᴸ], [l¹, ..., lᴸ⁻¹], log p and the target: what the fused Function kept."""
    n = len(ctx.activations)
    x, *rest = ctx.saved_tensors
    return x, rest[:n], rest[n:2 * n - 1], rest[2 * n - 1], rest[2 * n]


def _split_contexts(ctx):
    """What LinearChain's and SoftmaxCrossEntropy's jvp read from their ctx, taken from the fused
    Function's: saved tensors, options, and which inputs want a gradient."""
    x, Ws, hidden, log_p, target = _saved(ctx)
    needs = ctx.needs_input_grad
    chain_needs = (needs[0], False, *needs[6:])
    chain = types.SimpleNamespace(saved_tensors=(x, *Ws, *hidden), needs_input_grad=chain_needs,
                                  activations=ctx.activations, bias_shapes=ctx.bias_shapes)
    loss = types.SimpleNamespace(saved_tensors=(log_p, target, None), needs_input_grad=(any(chain_needs), False),
                                 ignore_index=ctx.ignore_index, label_smoothing=ctx.label_smoothing,
                                 reduction=ctx.reduction, x_dtype=x.dtype)
    return chain, loss


def linear_chain_cross_entropy(input, target, activations, *params, weight=None, ignore_index=-100, reduction="mean",
                               label_smoothing=0.0):
    """``cross_entropy(linear_chain(input, activations, *params), target, ...)``, as one Function
    (``LinearChainCrossEntropy``) in the common case: input (N, in) and parameters of one dtype
    (float32 or float64) and device, target (N,) int64 with every index a class or ignore_index, no
    class weight, no activation on the logits, autocast off. Any other case runs the two apart,
    with the same result and the same checks. ``handgrad.nn.Sequential.loss`` calls this.

    Args:
        input: (N, in)
        target: (N,) class indices
        activations: one name per layer, "sigmoid", "relu" or None (as ``linear_chain``)
        params: W¹, b¹, ..., Wᴸ, bᴸ (as ``linear_chain``)
        weight: (C,) class weights or None (as ``cross_entropy``)
        ignore_index: a target value whose rows count for nothing (as ``cross_entropy``)
        reduction: 'mean', 'sum' or 'none' (as ``cross_entropy``)
        label_smoothing: ε in [0, 1] (as ``cross_entropy``)
    """
    if (weight is None and type(activations) is tuple and activations and activations[-1] is None
            and reduction in REDUCTIONS and 0.0 <= label_smoothing <= 1.0
            and _plain_chain(input, activations, params) and input.dim() == 2
            and input.dtype in (torch.float32, torch.float64)):
        plain = _plain_class_target(target, input.shape[0], params[-2].shape[0], input.device, ignore_index)
        if plain:
            return apply(LinearChainCrossEntropy, input, target, plain.ignore, label_smoothing, reduction,
                         activations, *params)[0]
    return cross_entropy(linear_chain(input, activations, *params), target, weight=weight, ignore_index=ignore_index,
                         reduction=reduction, label_smoothing=label_smoothing)


def _chain_cross_entropy_reference(input, target, activations, *params, **options):
    return torch.nn.functional.cross_entropy(_chain_reference(input, activations, *params), target, **options)


def linear_chain_cross_entropy_numpy(x, target, activations, *params, **options):
    """The chain's oracle, then the cross-entropy's on its logits; vjp the other way round."""
    logits, chain_vjp = linear_chain_numpy(x, activations, *params)
    loss, loss_vjp = cross_entropy_numpy(logits, target, **options)

    def vjp(g):
        grad_x, _, *grad_params = chain_vjp(loss_vjp(g)[0])
        return (grad_x, None, None, *grad_params)

    return loss, vjp


def _chain_cross_entropy_samples(gen):
    def sample(name, x_shape, sizes, activations, bias=True, **kwargs):
        params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            params += [randn(gen, n_out, n_in), randn(gen, n_out) if bias else None]
        target = torch.randint(0, sizes[-1], x_shape[:1], generator=gen)
        if "ignore_index" in kwargs:
            target[::3] = kwargs["ignore_index"]
        return Sample((randn(gen, *x_shape), target, activations, *params), kwargs, name=name)

    return [
        sample("better: sigmoid, sigmoid, none", (8, 5), (5, 7, 6, 4), ("sigmoid", "sigmoid", None)),
        sample("quickstart: relu, relu, none", (8, 5), (5, 7, 6, 4), ("relu", "relu", None)),
        sample("basic: no activation, no bias", (8, 5), (5, 7, 6, 4), (None, None, None), bias=False),
        sample("one layer", (8, 5), (5, 4), (None,)),
        sample("reduction sum", (8, 5), (5, 6, 4), ("sigmoid", None), reduction="sum"),
        sample("reduction none", (8, 5), (5, 6, 4), ("relu", None), reduction="none"),
        sample("label_smoothing 0.1", (8, 5), (5, 6, 4), ("sigmoid", None), label_smoothing=0.1),
        sample("ignore_index=-100 on some rows: run apart", (9, 5), (5, 6, 4), ("relu", None), ignore_index=-100),
        sample("ignore_index=2, a class", (9, 5), (5, 6, 4), ("relu", None), ignore_index=2),
        sample("class weight: run apart", (8, 5), (5, 6, 4), ("relu", None),
               weight=torch.rand(4, generator=gen, dtype=torch.float64) + 0.1),
        sample("ends on an activation: run apart", (8, 5), (5, 6, 4), ("relu", "sigmoid")),
    ]


def _chain_cross_entropy_bench(device):
    """linear_chain's sizes, with a target for each row."""
    return [(label, (x, torch.randint(0, 10, (x.shape[0],), device=device), *rest), kwargs)
            for label, (x, *rest), kwargs in _chain_bench(device)]


register(Op(
    "linear_chain_cross_entropy", linear_chain_cross_entropy, _chain_cross_entropy_reference,
    _chain_cross_entropy_samples, linear_chain_cross_entropy_numpy, (LinearChainCrossEntropy,),
    Derivative("L = cross_entropy(lᴸ, t), lᴸ the chain's logits, in one Function",
               "dL/dlᴸ = r (softmax − onehot), then the chain's rows from the top down (the seed's update_weights)",
               "as `linear_chain` and `cross_entropy`"),
    bench=_chain_cross_entropy_bench,
    fused_by="`Sequential.loss` fuses",
    tolerances={torch.bfloat16: Tolerance(atol=0.25, rtol=3e-2), torch.float16: Tolerance(atol=3e-2, rtol=4e-3)},
))


# -- nll_loss --------------------------------------------------------------------------------------


class NegativeLogLikelihood(HandFunction):
    """L = −w_t x_t per row, reduced: ``torch.nn.functional.nll_loss`` on rows of log-probabilities.

    Inputs are already flattened by ``nll_loss``: ``x`` (M, C) log-probabilities, one row per
    prediction; ``target`` (M,) class indices (int64); ``weight`` (C,) class weights or None;
    ``ignore_index`` (int, or None: no row ignored); ``reduction`` 'none' | 'mean' | 'sum'. A row whose target is
    ignore_index counts for nothing, and 'mean' divides by D = Σ w_t over the rows kept.
    """

    @staticmethod
    def forward(x, target, weight, ignore_index, reduction):
        ignore_index = -100 if ignore_index is None else ignore_index      # None: no target equals it
        return torch.nn.functional.nll_loss(x, target, weight, ignore_index=ignore_index, reduction=reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, target, weight, ignore_index, reduction = inputs
        ctx.save_for_backward(target, weight)                # L is linear in x: x itself is not needed
        ctx.save_for_forward(target, weight)
        ctx.ignore_index, ctx.reduction, ctx.x_shape = ignore_index, reduction, x.shape

    @staticmethod
    def backward(ctx, g):
        """dL/dx = −r w_t onehot(t), r = g, g / D or g_row: each row's loss −w_t x_t moves with its
        target's entry only. Shapes: x (M, C); t, w_t (M,); r (M, 1); g () or (M,)."""
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        target, weight = ctx.saved_tensors
        n_rows = target.shape[0]
        if ctx.ignore_index is None and weight is None:                              # w_t = 1, D = M
            t, entries = target, (-g if ctx.reduction != "mean" else -g / n_rows).expand(n_rows)
        else:
            _, t, w_t = _class_index_rows(target, weight, ctx.ignore_index, g.dtype)    # w_t = 0 where ignored
            r = _row_scale(g, ctx.reduction, w_t.sum(), n_rows)[:, 0]                   # (M,)
            entries = -r * w_t                                                           # −r w_t, (M,)
        rows = torch.arange(n_rows, device=target.device)
        # In place into zeros of its own (an out-of-place scatter would copy them), with index_put_,
        # which vmap batches (scatter_ it runs one sample at a time). From entries, so that the zeros
        # are batched whenever the entries are.
        grad_x = entries.new_zeros(ctx.x_shape).index_put_((rows, t), entries)      # −r w_t onehot(t), (M, C)
        return grad_x, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: dL = −w_t dx_t per row kept, reduced as L is."""
        target, weight = ctx.saved_tensors
        kept, t, w_t = _class_index_rows(target, weight, ctx.ignore_index, dx.dtype)
        d_rows = (-w_t * dx.gather(1, t.unsqueeze(1)).squeeze(1)).where(kept, 0)    # (M,)
        return _reduce(d_rows, ctx.reduction, w_t.sum())


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """L = −w_t input_t, the negative log-likelihood of the target class, as
    ``torch.nn.functional.nll_loss``; ``cross_entropy(x, t)`` is ``nll_loss(log_softmax(x, 1), t)``.

    Shapes: input (C), (N, C) or (N, C, d1, ..., dK) of log-probabilities; target of class indices
    (), (N) or (N, d1, ..., dK) (int64, or uint8); weight (C). Output: a scalar for 'mean' and
    'sum', the target's shape for 'none'. ``size_average`` and ``reduce`` are PyTorch's deprecated
    spellings of ``reduction`` and are honoured the same way.
    """
    plain = _plain_rows(input, target, weight, size_average, reduce, reduction, ignore_index)
    if plain:
        return apply(NegativeLogLikelihood, input, target, None, plain.ignore, reduction)
    reduction = check_reduction("nll_loss", reduction, size_average, reduce)
    check_tensor("nll_loss", "input", input)
    check_tensor("nll_loss", "target", target)
    if not input.is_floating_point():
        raise NotImplementedError(f"nll_loss: input (log-probabilities) must be floating point, got {input.dtype}")
    class_dim, n_classes = _classes("nll_loss", input, zero_dim_error=ValueError)
    _check_class_weight("nll_loss", weight, n_classes)
    input, weight = autocast(FLOAT32, input, weight)
    every_row_kept = _check_class_target("nll_loss", input, target, class_dim, n_classes, ignore_index)
    check_same_dtype_and_device("nll_loss", {"input": input, "weight": weight})
    x, t = _as_rows(input, target, class_dim)
    ignore = None if every_row_kept else ignore_index
    return _from_rows(apply(NegativeLogLikelihood, x, t, weight, ignore, reduction), input, class_dim, reduction)


def nll_loss_rows_numpy(x, target, weight=None, ignore_index=-100, reduction="mean"):
    """L_row = −Σ_c A_c x_c with A = w_t onehot(t) (0 on ignored rows): the seed's −log p_y, log p given."""
    A, divisor = _target_distribution(target, *x.shape, weight, ignore_index, 0.0)
    with np.errstate(invalid="ignore"):                      # NaN in an ignored row stays out
        rows = -np.where(A != 0, A * x, 0.0).sum(axis=1)
    return _reduce_numpy(rows, reduction, divisor), lambda g: (-_row_scale_numpy(g, reduction, divisor, len(x)) * A,
                                                              None)


def nll_loss_numpy(x, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _class_rows_numpy(x, target, reduction,
                             lambda x2, t2: nll_loss_rows_numpy(x2, t2, weight, ignore_index, reduction))


def _log_probabilities(gen, *shape, scale=1.0):
    """Log-probabilities along dimension 1 (0 for a (C) input), a leaf requiring grad."""
    logits = randn(gen, *shape, requires_grad=False) * scale
    return torch.log_softmax(logits, 0 if len(shape) == 1 else 1).requires_grad_()


def _nll_loss_samples(gen):
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.1], dtype=torch.float64)

    def targets(*shape, ignore=None, every=False):
        t = torch.randint(0, 5, shape, generator=gen)
        if ignore is not None:
            t = torch.full_like(t, ignore) if every else t.masked_fill(torch.rand(shape, generator=gen) < 0.3, ignore)
        return t

    forms = {  # name: (input, target, options)
        "(N, C)": (_log_probabilities(gen, 8, 5), targets(8), {}),
        "(N, C), weight": (_log_probabilities(gen, 8, 5), targets(8), {"weight": weight}),
        "(N, C), ignore_index=-100": (_log_probabilities(gen, 8, 5), targets(8, ignore=-100), {}),
        "(N, C), ignore_index=2, weight": (_log_probabilities(gen, 8, 5), targets(8, ignore=2),
                                           {"ignore_index": 2, "weight": weight}),
        "(C,) unbatched, target ()": (_log_probabilities(gen, 5), torch.tensor(3), {}),
        "(C,) unbatched, weight": (_log_probabilities(gen, 5), torch.tensor(1), {"weight": weight}),
        "(N, C, d1), weight": (_log_probabilities(gen, 2, 5, 3), targets(2, 3), {"weight": weight}),
        # Not (N, C, d1, d2): torch's nll_loss2d backward refuses the strided check's non-contiguous
        # input ("grad_input must be contiguous"); the module samples run that shape.
        "(N, C, d1, d2, d3), weight, ignore_index": (_log_probabilities(gen, 2, 5, 3, 2, 2),
                                                     targets(2, 3, 2, 2, ignore=-100), {"weight": weight}),
        "(N, C), uint8 target": (_log_probabilities(gen, 6, 5), targets(6).to(torch.uint8), {}),
        "(N, C), scores, not log-probabilities": (randn(gen, 6, 5, scale=3.0), targets(6), {}),
        "(N, C), log-probabilities down to -1e4": (_log_probabilities(gen, 6, 5, scale=1e4), targets(6), {}),
        "(0, C) empty batch": (_log_probabilities(gen, 0, 5), targets(0), {}),
        "(N, C, 0) no positions": (_log_probabilities(gen, 2, 5, 0), targets(2, 0), {}),
        "all targets ignored": (_log_probabilities(gen, 4, 5), targets(4, ignore=-100, every=True), {}),
    }
    nothing_counts = {"(0, C) empty batch", "(N, C, 0) no positions", "all targets ignored"}   # a mean of nothing: NaN
    samples = [
        Sample((x, t), {**options, "reduction": reduction}, f"{name}, {reduction}",
               gradcheck=not (name in nothing_counts and reduction == "mean"),
               dtypes=tuple(d for d in TOLERANCES if d != torch.float16) if "1e4" in name else None)
        for name, (x, t, options) in forms.items() for reduction in ("mean", "sum", "none")
    ]
    # A NaN in a row that is ignored does not reach the loss or the gradient.
    x = _log_probabilities(gen, 4, 5).detach()
    x[1, 2] = float("nan")
    samples += [Sample((x.clone().requires_grad_(), _idx(0, -100, 3, 1)), {"reduction": reduction},
                       f"NaN in an ignored row, {reduction}", gradcheck=False) for reduction in ("mean", "sum", "none")]
    return samples


def _nll_loss_module_samples():
    def input(shape, ignore=None):
        def draw(gen):
            target = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=gen)
            if ignore is not None:
                target = target.masked_fill(torch.rand(target.shape, generator=gen) < 0.3, ignore)
            return _log_probabilities(gen, *shape), target
        return draw

    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    options = {"default": ({}, None), "weight": ({"weight": weight}, None), "ignore_index=-100": ({}, -100),
               "weight, ignore_index=1": ({"weight": weight, "ignore_index": 1}, 1)}
    return tuple(
        ModuleSample(f"{name}, {reduction}, {shape}", input(shape, ignore), (), {**kwargs, "reduction": reduction})
        for name, (kwargs, ignore) in options.items() for reduction in ("mean", "sum", "none")
        for shape in ((9, 4), (2, 4, 3, 2))
    )


_NLL_LOSS_ERRORS = (
    ErrorInput("target above the last class", lambda F, nn: F.nll_loss(_x(3, 5), _idx(0, 5, 1)),
               IndexError, r"nll_loss: target 5 is out of bounds.*\[0, 4\] for 5 classes"),
    ErrorInput("negative target other than ignore_index", lambda F, nn: F.nll_loss(_x(3, 5), _idx(0, -1, 1)),
               IndexError, r"nll_loss: target -1 is out of bounds.*ignore_index=-100"),
    ErrorInput("input/target batch mismatch", lambda F, nn: F.nll_loss(_x(3, 5), _idx(0, 1, 2, 3)),
               ValueError, r"nll_loss: target of shape \(4,\) does not match input of shape \(3, 5\).*shape \(3,\)"),
    ErrorInput("(N, C, d1) input, wrong target positions",
               lambda F, nn: F.nll_loss(_x(2, 5, 3), torch.zeros(2, 4, dtype=torch.long)),
               RuntimeError, r"nll_loss: target of shape \(2, 4\) does not match input of shape \(2, 5, 3\)"),
    ErrorInput("(C) input, two targets", lambda F, nn: F.nll_loss(_x(5), _idx(1, 2)),
               ValueError, r"nll_loss: target of shape \(2,\) does not match input of shape \(5,\).*shape \(\)"),
    ErrorInput("float target", lambda F, nn: F.nll_loss(_x(3, 5), torch.tensor([0.0, 1.0, 2.0])),
               RuntimeError, r"nll_loss: class-index target must have dtype torch\.long .*got torch\.float32"),
    ErrorInput("int32 target", lambda F, nn: F.nll_loss(_x(3, 5), torch.tensor([0, 1, 2], dtype=torch.int32)),
               RuntimeError, r"nll_loss: class-index target must have dtype torch\.long .*got torch\.int32"),
    ErrorInput("list target", lambda F, nn: F.nll_loss(_x(3, 5), [0, 1, 2]),
               TypeError, r"nll_loss: target must be a torch\.Tensor, got list"),
    ErrorInput("list input", lambda F, nn: F.nll_loss([[0.0, 1.0]], _idx(0)),
               TypeError, r"nll_loss: input must be a torch\.Tensor, got list"),
    ErrorInput("0-d input", lambda F, nn: F.nll_loss(_x(), torch.tensor(0)),
               ValueError, r"nll_loss: input must be \(C\), \(N, C\) or \(N, C, d1, \.\.\., dK\); got a 0-d tensor"),
    ErrorInput("zero classes", lambda F, nn: F.nll_loss(_x(3, 0), _idx(0, 0, 0)),
               IndexError, r"nll_loss: input of shape \(3, 0\) has no classes"),
    ErrorInput("int64 input", lambda F, nn: F.nll_loss(torch.ones(3, 5, dtype=torch.long), _idx(0, 1, 2)),
               NotImplementedError, r"nll_loss: input \(log-probabilities\) must be floating point, got torch\.int64"),
    ErrorInput("reduction 'avg'", lambda F, nn: F.nll_loss(_x(3, 5), _idx(0, 1, 2), reduction="avg"),
               ValueError, r"nll_loss: reduction must be one of .*got 'avg'"),
    ErrorInput("weight of the wrong length", lambda F, nn: F.nll_loss(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(4)),
               RuntimeError, r"nll_loss: weight must hold one value per class, shape \(5,\), got shape \(4,\)"),
    ErrorInput("float64 weight, float32 input",
               lambda F, nn: F.nll_loss(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(5, dtype=torch.float64)),
               RuntimeError, r"nll_loss: weight has dtype torch\.float64 but input has dtype torch\.float32"),
    ErrorInput("weight requiring grad",
               lambda F, nn: F.nll_loss(_x(3, 5), _idx(0, 1, 2), weight=torch.ones(5, requires_grad=True)),
               RuntimeError, r"nll_loss: the loss is not differentiable with respect to weight"),
    ErrorInput("nn.NLLLoss target above the last class", lambda F, nn: nn.NLLLoss()(_x(3, 5), _idx(0, 7, 1)),
               IndexError, r"nll_loss: target 7 is out of bounds"),
    ErrorInput("nn.NLLLoss weight of the wrong length",
               lambda F, nn: nn.NLLLoss(weight=torch.ones(4))(_x(3, 5), _idx(0, 1, 2)),
               RuntimeError, r"nll_loss: weight must hold one value per class, shape \(5,\), got shape \(4,\)"),
    ErrorInput("nn.NLLLoss reduction 'avg'", lambda F, nn: nn.NLLLoss(reduction="avg")(_x(3, 5), _idx(0, 1, 2)),
               ValueError, r"nll_loss: reduction must be one of .*got 'avg'"),
)


def _nll_loss_bench(device):
    """The seed's size, where a call's fixed cost is most of it, and a wide one, where it is not."""
    def log_probabilities(n, c):
        x = torch.randn(n, c, device=device).log_softmax(1).requires_grad_()
        return x, torch.randint(0, c, (n,), device=device)
    return [("(1024, 10) log-probabilities", log_probabilities(1024, 10), {}),
            ("(4096, 1000) log-probabilities", log_probabilities(4096, 1000), {})]


register(Op(
    "nll_loss", nll_loss, torch.nn.functional.nll_loss, _nll_loss_samples, nll_loss_numpy, (NegativeLogLikelihood,),
    Derivative("L = −w_t x_t", "dL/dx = −r w_t onehot(t)", "x (M, C), t and w_t (M,), r (M, 1)"),
    modules={torch.nn.NLLLoss: Module(
        lambda self, input, target: nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                             reduction=self.reduction),
        _nll_loss_module_samples())},
    bench=_nll_loss_bench,
    errors=_NLL_LOSS_ERRORS,
))


# -- mse_loss --------------------------------------------------------------------------------------


class SquaredError(HandFunction):
    """L = Σ w (x − t)² over the terms, reduced: ``torch.nn.functional.mse_loss``.

    ``x`` and ``t`` broadcast together to the shape (B) of the terms; ``w`` is None (w = 1) or has
    x's shape; ``reduction`` 'none' | 'mean' | 'sum'. 'mean' divides by the number of terms n, or by
    Σ w when weighted, as PyTorch does.
    """

    @staticmethod
    def forward(x, t, w, reduction):
        if w is None:
            return torch.nn.functional.mse_loss(*torch.broadcast_tensors(x, t), reduction=reduction)
        return _reduce((x - t).square() * w, reduction, w.sum())

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, t, w, reduction = inputs
        ctx.save_for_backward(x, t, w, output)               # L: the weighted mean's dL/dw needs it
        ctx.save_for_forward(x, t, w, output)
        ctx.reduction = reduction

    @staticmethod
    def backward(ctx, g):
        """dL/dx = 2 r w (x − t) = −dL/dt and dL/dw = r (x − t)², less r L for the weighted mean.

        From each term w (x − t)², with r = g ('sum'; one per term for 'none'), g / n ('mean') or
        g / Σ w (weighted 'mean', where L = S / Σ w moves with w through Σ w as well:
        dL/dw = (dS/dw − L) / Σ w). Each gradient is summed back over the dimensions its input was
        broadcast along. Shapes: d = x − t (B); x, t, w broadcast to (B); g () or (B).
        """
        x, t, w, L = ctx.saved_tensors
        d = x - t                                                            # (B)
        r = _scale(g, ctx.reduction, d.numel() if w is None else w.sum())
        grad_x = grad_t = grad_w = None
        if w is not None and ctx.needs_input_grad[2]:
            grad_w = (r * d * d).sum_to_size(w.shape)                        # dL/dw = r (x − t)², (x's shape)
            if ctx.reduction == "mean":
                grad_w = grad_w - r * L                                      # ... − r L
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            # Unweighted, d serves nothing else and is scaled in place.
            d_L = d.mul_(2 * r) if w is None else d * (2 * r) * w            # 2 r w (x − t), (B)
            if ctx.needs_input_grad[0]:
                grad_x = d_L.sum_to_size(x.shape)                            # dL/dx, x's shape
            if ctx.needs_input_grad[1]:
                grad_t = d_L.neg().sum_to_size(t.shape)                      # dL/dt = −dL/dx, t's shape
        return grad_x, grad_t, grad_w, None

    @staticmethod
    def jvp(ctx, dx, dt, dw, _):
        """Forward mode: dL = reduce(2 w (x − t)(dx − dt) + dw (x − t)²), less L Σ dw / Σ w for the
        weighted mean."""
        x, t, w, L = ctx.saved_tensors
        d = x - t
        n = d.numel() if w is None else w.sum()
        d_terms = 0
        if dx is not None or dt is not None:
            d_diff = (0 if dx is None else dx) - (0 if dt is None else dt)     # d(x − t)
            d_terms = 2 * d * d_diff * (1 if w is None else w)
        if dw is not None:
            d_terms = d_terms + dw * d * d
        d_L = _reduce(d_terms, ctx.reduction, n)
        if dw is not None and ctx.reduction == "mean":
            d_L = d_L - L * dw.sum() / n
        return d_L


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """L = mean((input − target)²), their sum ('sum') or the squares themselves ('none'), each
    square weighted by ``weight`` when given, as ``torch.nn.functional.mse_loss``.

    Shapes: input and target broadcast together (PyTorch warns when their shapes differ, and so
    does this); weight has input's shape, and 'mean' then divides by Σ weight. Output: a scalar
    for 'mean' and 'sum', the broadcast shape for 'none'. Mixed dtypes are promoted as in PyTorch.
    Differentiable with respect to input, target and weight, as PyTorch's is.
    ``size_average`` and ``reduce`` are PyTorch's deprecated spellings of ``reduction``.
    """
    check_tensor("mse_loss", "input", input)
    check_tensor("mse_loss", "target", target)
    if target.shape != input.shape and not torch.compiler.is_compiling():    # Dynamo cannot trace a warning
        warnings.warn(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=2,
        )
    reduction = check_reduction("mse_loss", reduction, size_average, reduce)
    try:
        torch.broadcast_shapes(input.shape, target.shape)
    except RuntimeError:
        raise RuntimeError(
            f"mse_loss: target of shape {tuple(target.shape)} does not broadcast with input of shape "
            f"{tuple(input.shape)}; give them the same shape"
        ) from None
    # Weighted, PyTorch's loss is a composite of elementwise ops, of which autocast moves only pow to
    # float32, and only on CUDA.
    input, target = autocast(FLOAT32 if weight is None else FLOAT32_ON_CUDA, input, target)
    if weight is not None:
        check_tensor("mse_loss", "weight", weight)
        if weight.shape != input.shape:
            raise ValueError(
                f"mse_loss: weight must have the input's shape {tuple(input.shape)}, got {tuple(weight.shape)}"
            )
    dtype = torch.promote_types(input.dtype, target.dtype)
    dtype = dtype if weight is None else torch.promote_types(dtype, weight.dtype)
    if not dtype.is_floating_point:
        raise NotImplementedError(
            f"mse_loss: input and target must be floating point, got {input.dtype} and {target.dtype}"
        )
    # Half precision is computed in float32, as PyTorch's kernels do inside: one rounding at the end,
    # not one per operation (and none in the sums over broadcast dimensions).
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    input, target = _as(input, compute), _as(target, compute)
    weight = None if weight is None else _as(weight, compute)
    _check_same_device("mse_loss", input, target, weight)
    return _as(apply(SquaredError, input, target, weight, reduction), dtype)


def mse_loss_numpy(x, t, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    d = x - t                                                # broadcast
    w = 1.0 if weight is None else weight
    n = d.size if weight is None else np.sum(weight)
    L = _reduce_numpy(w * d * d, reduction, n)

    def vjp(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = g / n if reduction == "mean" else g
        dx = 2 * r * w * d
        dw = None if weight is None else _sum_to(r * d * d, weight.shape) - (r * L if reduction == "mean" else 0)
        return _sum_to(dx, x.shape), _sum_to(-dx, t.shape), None, None, None, dw

    return L, vjp


def _mse_loss_samples(gen):
    def pair(x_shape, t_shape, t_grad=True, scale=1.0):
        return randn(gen, *x_shape, scale=scale), randn(gen, *t_shape, scale=scale, requires_grad=t_grad)

    def positive(*shape, requires_grad=False):
        return (torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1).requires_grad_(requires_grad)

    forms = {  # name: (args, kwargs)
        "(N, D)": (pair((6, 7), (6, 7)), {}),
        "(N, D), constant target": (pair((6, 7), (6, 7), t_grad=False), {}),
        "(B, C, H, W)": (pair((2, 3, 4, 5), (2, 3, 4, 5)), {}),
        "0-d": (pair((), ()), {}),
        "(N, D) input, (D,) target": (pair((6, 7), (7,)), {}),
        "(N, D) input, (N, 1) target": (pair((6, 7), (6, 1)), {}),
        "(D,) input, (N, D) target": (pair((7,), (6, 7)), {}),
        "(0, D) empty": (pair((0, 7), (0, 7)), {}),
        "|x − t| ~ 1e3": (pair((6, 7), (6, 7), scale=1e3), {}),
        "(N, D), constant weight": (pair((6, 7), (6, 7)), {"weight": positive(6, 7)}),
        "(N, D), weight differentiated": (pair((6, 7), (6, 7)) + (None, None, None, positive(6, 7, requires_grad=True)),
                                          {}),
        "(D,) input, (N, D) target, weight differentiated":
            (pair((7,), (6, 7)) + (None, None, None, positive(7, requires_grad=True)), {}),
    }
    # Over a broadcast dimension PyTorch sums gradients already rounded to bfloat16 / float16, one per
    # term; computed in float32 and rounded once, ours is nearer the NumPy oracle than the tolerance
    # allows PyTorch's to be. Those are compared in float64 and float32 only.
    broadcasting = {name for name, (args, _) in forms.items() if args[0].shape != args[1].shape}
    samples = []
    for name, (args, kwargs) in forms.items():
        dtypes = None
        if name in broadcasting:
            dtypes = (torch.float64, torch.float32)
        elif "1e3" in name:
            dtypes = tuple(d for d in TOLERANCES if d != torch.float16)             # squares of 1e3 pass 65504
        for reduction in ("mean", "sum", "none"):
            if len(args) > 2:                                # reduction is positional before weight
                call, options = args[:4] + (reduction,) + args[5:], kwargs
            else:
                call, options = args, {**kwargs, "reduction": reduction}
            samples.append(Sample(
                tuple(a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a
                      for a in call), options, f"{name}, {reduction}", dtypes=dtypes,
                gradcheck=not (name == "(0, D) empty" and reduction == "mean")))        # a mean of nothing: NaN
    return samples


def _mse_loss_module_samples():
    def input(x_shape, t_shape):
        return lambda gen: (randn(gen, *x_shape), randn(gen, *t_shape))
    return tuple(
        ModuleSample(f"{kwargs}, {shapes}", input(*shapes), (), kwargs)
        for kwargs in ({}, {"reduction": "sum"}, {"reduction": "none"}, {"size_average": False},
                       {"reduce": False})
        for shapes in (((9, 4), (9, 4)), ((2, 3, 4), (2, 3, 4)), ((9, 4), (4,)))
    )


_MSE_LOSS_ERRORS = (
    ErrorInput("shapes that do not broadcast", lambda F, nn: F.mse_loss(_x(3, 4), _x(5)),
               RuntimeError, r"mse_loss: target of shape \(5,\) does not broadcast with input of shape \(3, 4\)"),
    ErrorInput("int64 input and target",
               lambda F, nn: F.mse_loss(torch.ones(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)),
               NotImplementedError, r"mse_loss: input and target must be floating point, got torch\.int64 and "
                                    r"torch\.int64"),
    ErrorInput("bool input and target",
               lambda F, nn: F.mse_loss(torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)),
               NotImplementedError, r"mse_loss: input and target must be floating point, got torch\.bool"),
    ErrorInput("reduction 'avg'", lambda F, nn: F.mse_loss(_x(3), _x(3), reduction="avg"),
               ValueError, r"mse_loss: reduction must be one of .*got 'avg'"),
    ErrorInput("weight of another shape", lambda F, nn: F.mse_loss(_x(3, 4), _x(3, 4), weight=_x(4)),
               ValueError, r"mse_loss: weight must have the input's shape \(3, 4\), got \(4,\)"),
    ErrorInput("weighted, reduction 'avg'", lambda F, nn: F.mse_loss(_x(3), _x(3), reduction="avg", weight=_x(3)),
               ValueError, r"mse_loss: reduction must be one of .*got 'avg'"),
    # torch's AttributeError comes from calling list.size: an accident, not an API.
    ErrorInput("list input", lambda F, nn: F.mse_loss([1.0, 2.0], _x(2)), TypeError,
               r"mse_loss: input must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("list target", lambda F, nn: F.mse_loss(_x(2), [1.0, 2.0]), TypeError,
               r"mse_loss: target must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("nn.MSELoss shapes that do not broadcast", lambda F, nn: nn.MSELoss()(_x(3, 4), _x(3, 5)),
               RuntimeError, r"mse_loss: target of shape \(3, 5\) does not broadcast with input of shape \(3, 4\)"),
    ErrorInput("nn.MSELoss reduction 'avg'", lambda F, nn: nn.MSELoss(reduction="avg")(_x(3), _x(3)),
               ValueError, r"mse_loss: reduction must be one of .*got 'avg'"),
)


def _mse_loss_bench(device):
    x = torch.randn(1024, 512, device=device, requires_grad=True)
    return [("(1024, 512)", (x, torch.randn(1024, 512, device=device)), {})]


register(Op(
    "mse_loss", mse_loss, torch.nn.functional.mse_loss, _mse_loss_samples, mse_loss_numpy, (SquaredError,),
    Derivative("L = Σ w (x − t)², / n or / Σ w for 'mean'",
               "dL/dx = 2 r w (x − t), dL/dt = −dL/dx, dL/dw = r (x − t)² (− r L, weighted mean)",
               "x, t, w broadcast to (B); r = g, g / n or g / Σ w"),
    modules={torch.nn.MSELoss: Module(lambda self, input, target: mse_loss(input, target, reduction=self.reduction),
                                      _mse_loss_module_samples())},
    bench=_mse_loss_bench,
    errors=_MSE_LOSS_ERRORS,
))


# -- binary_cross_entropy_with_logits --------------------------------------------------------------


class SigmoidBinaryCrossEntropy(HandFunction):
    """ℓ = −w [p t log σ(x) + (1 − t) log(1 − σ(x))] per element, reduced: the binary cross-entropy
    of logits, ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``x`` logits and ``t`` targets (*); ``w`` (weight) and ``p`` (pos_weight) None or broadcastable
    to (*); ``reduction`` 'none' | 'mean' | 'sum', 'mean' dividing by the number of elements n.
    With ls = log σ(x) = −softplus(−x), finite for every finite x, and log(1 − σ(x)) = log σ(−x)
    = ls − x, each term is ℓ = w [(1 − t) x − (p t + 1 − t) ls].

    Returns ``(loss, ls)``: ls is what backward needs; it is returned rather than kept aside so
    that double backward differentiates through it (as ``SoftmaxCrossEntropy`` returns log p).
    """

    @staticmethod
    def forward(x, t, w, p, reduction):
        ls = torch.nn.functional.logsigmoid(x)                              # log σ(x) = −softplus(−x)
        weighted = ls if p is None else ls * ((p - 1) * t + 1)               # (p t + 1 − t) ls
        if torch.compiler.is_compiling():    # no output made in place there: see linear._activate
            terms = (1 - t) * x - weighted
        else:
            terms = (1 - t).mul_(x).sub_(weighted)                           # (1 − t) x − (p t + 1 − t) ls
        if w is not None:
            terms = terms * w
        return _reduce(terms, reduction, terms.numel()), ls

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, t, w, p, reduction = inputs
        _, ls = output
        ctx.save_for_backward(x, t, w, p, ls)
        ctx.save_for_forward(x, t, w, p, ls)
        ctx.reduction = reduction
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_ls):
        """dL/dx = r w [(p t + 1 − t) σ(x) − p t], dL/dt = −r w [p log σ(x) − log(1 − σ(x))].

        From ℓ = w [(1 − t) x − (p t + 1 − t) ls] with dls/dx = 1 − σ(x):
        dℓ/dx = w [(1 − t) − (p t + 1 − t)(1 − σ)] = w [(p t + 1 − t) σ − p t] (σ − t when p = 1), and
        dℓ/dt = w [−x − (p − 1) ls] = −w [p ls − (ls − x)]; r = g (one per element for 'none') or
        g / n ('mean'). σ = exp(ls), so no built-in sigmoid (whose derivative is a backward
        kernel) enters the graph that double backward differentiates.
        g_ls, the gradient reaching ls, is non-zero only when this backward is itself
        differentiated: dL/dx += g_ls (1 − σ).
        Shapes: x, t, σ, ls (*); w, p broadcastable to (*); r () or (*).
        """
        x, t, w, p, ls = ctx.saved_tensors
        s = ls.exp()                                                         # σ(x), (*)
        grad_x = grad_t = None
        if g is not None:
            r = _scale(g, ctx.reduction, x.numel())
            rw = r if w is None else r * w
            if ctx.needs_input_grad[0]:
                grad_x = _bce_slope_x(t, p, s).mul_(rw)                       # r w [(p t + 1 − t) σ − p t]
            if ctx.needs_input_grad[1]:
                grad_t = _bce_slope_t(x, p, ls).mul_(rw)                      # −r w [(p − 1) ls + x]
        if g_ls is not None and ctx.needs_input_grad[0]:
            through_ls = g_ls * (1 - s)                                      # g_ls dls/dx
            grad_x = through_ls if grad_x is None else grad_x + through_ls
        return grad_x, grad_t, None, None, None

    @staticmethod
    def jvp(ctx, dx, dt, *_):
        """Forward mode: dℓ = w [((p t + 1 − t) σ − p t) dx − ((p − 1) ls + x) dt], reduced; dls = (1 − σ) dx."""
        x, t, w, p, ls = ctx.saved_tensors
        s = ls.exp()
        d_terms = 0
        if dx is not None:
            d_terms = _bce_slope_x(t, p, s) * dx
        if dt is not None:
            d_terms = d_terms + _bce_slope_t(x, p, ls) * dt
        if w is not None:
            d_terms = d_terms * w
        d_ls = torch.zeros_like(ls) if dx is None else (1 - s) * dx
        return _reduce(d_terms, ctx.reduction, x.numel()), d_ls


def _bce_slope_x(t, p, s):
    """dℓ/dx / w = (p t + 1 − t) σ(x) − p t, (*); σ(x) − t without pos_weight. A new tensor."""
    if p is None:
        return s - t
    pt = p * t
    return (pt + 1 - t) * s - pt


def _bce_slope_t(x, p, ls):
    """dℓ/dt / w = −(x + (p − 1) log σ(x)), (*); −x without pos_weight. A new tensor."""
    return x.neg() if p is None else -(x + (p - 1) * ls)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """ℓ = −weight [pos_weight target log σ(input) + (1 − target) log(1 − σ(input))] elementwise,
    averaged ('mean'), summed or kept ('none'), as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Shapes: input and target (*), the same; weight and pos_weight broadcastable to (*) (e.g. (C,)
    for the last dimension, (C, 1, 1) for the channels of (N, C, H, W)). Output: a scalar for 'mean'
    and 'sum', (*) for 'none'. Differentiable with respect to input and target, not the weights.
    ``size_average`` and ``reduce`` are PyTorch's deprecated spellings of ``reduction``.
    """
    fn = "binary_cross_entropy_with_logits"
    reduction = check_reduction(fn, reduction, size_average, reduce)
    check_tensor(fn, "input", input)
    check_tensor(fn, "target", target)
    if target.shape != input.shape:
        raise ValueError(f"{fn}: target must have the input's shape {tuple(input.shape)}, got {tuple(target.shape)}")
    if not input.is_floating_point():
        raise NotImplementedError(f"{fn}: input (logits) must be floating point, got {input.dtype}")
    if not target.is_floating_point():
        raise RuntimeError(
            f"{fn}: target must be floating point (probabilities in [0, 1]), got {target.dtype}; "
            f"convert it with target.to(input.dtype)"
        )
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            continue
        check_tensor(fn, name, value)
        try:
            broadcasts = torch.broadcast_shapes(value.shape, input.shape) == input.shape
        except RuntimeError:
            broadcasts = False
        if not broadcasts:
            raise RuntimeError(
                f"{fn}: {name} of shape {tuple(value.shape)} does not broadcast to the input's shape "
                f"{tuple(input.shape)}"
            )
        if value.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(
                f"{fn}: the loss is not differentiable with respect to {name} (as in PyTorch); "
                f"pass {name}.detach() or a {name} that does not require grad"
            )
    input, target, weight, pos_weight = autocast(FLOAT32, input, target, weight, pos_weight)
    dtype = torch.promote_types(input.dtype, target.dtype)  # PyTorch's result type; the weights are cast to it
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype      # as in mse_loss
    input, target = _as(input, compute), _as(target, compute)
    weight, pos_weight = (None if v is None else _as(v, compute) for v in (weight, pos_weight))
    _check_same_device(fn, input, target, weight, pos_weight)
    loss, _ = apply(SigmoidBinaryCrossEntropy, input, target, weight, pos_weight, reduction)
    return _as(loss, dtype)


def binary_cross_entropy_with_logits_numpy(x, t, weight=None, size_average=None, reduce=None, reduction="mean",
                                           pos_weight=None):
    """The definition, with log σ(x) = −log(1 + e⁻ˣ) and log(1 − σ(x)) = −log(1 + eˣ) from logaddexp."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    w = 1.0 if weight is None else weight
    p = 1.0 if pos_weight is None else pos_weight
    log_s, log_1ms = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    terms = -w * (p * t * log_s + (1 - t) * log_1ms)
    L = _reduce_numpy(terms, reduction, x.size)

    def vjp(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = g / x.size if reduction == "mean" else g
        s = np.exp(log_s)
        return r * w * ((p * t + 1 - t) * s - p * t), -r * w * (p * log_s - log_1ms)

    return L, vjp


def _bce_samples(gen):
    def logits(*shape, scale=1.0):
        return randn(gen, *shape, scale=scale)

    def probabilities(*shape, requires_grad=True):
        return torch.rand(shape, generator=gen, dtype=torch.float64).requires_grad_(requires_grad)

    def labels(*shape):
        return (torch.rand(shape, generator=gen) < 0.5).double()

    def positive(*shape):
        return torch.rand(shape, generator=gen, dtype=torch.float64) + 0.25

    huge = torch.tensor([[1e4, -1e4, 1e4, -1e4, 30.0, -30.0]], dtype=torch.float64)
    forms = {  # name: (input, target, options)
        "(N, D), probabilities": (logits(6, 5), probabilities(6, 5), {}),
        "(N, D), labels 0/1": (logits(6, 5), labels(6, 5), {}),
        "(N, D), weight (D,)": (logits(6, 5), probabilities(6, 5), {"weight": positive(5)}),
        "(N, D), weight (N, 1)": (logits(6, 5), probabilities(6, 5), {"weight": positive(6, 1)}),
        "(N, D), pos_weight (D,)": (logits(6, 5), probabilities(6, 5), {"pos_weight": positive(5)}),
        "(N, D), pos_weight (N, D)": (logits(6, 5), labels(6, 5), {"pos_weight": positive(6, 5)}),
        "(N, C, H, W), weight (C, 1, 1), pos_weight (C, 1, 1)":
            (logits(2, 3, 2, 2), probabilities(2, 3, 2, 2), {"weight": positive(3, 1, 1), "pos_weight": positive(3, 1, 1)}),
        "(N, D), weight and pos_weight 0-d": (logits(6, 5), probabilities(6, 5),
                                              {"weight": positive(), "pos_weight": positive()}),
        "(D,) unbatched, pos_weight": (logits(5), probabilities(5), {"pos_weight": positive(5)}),
        "0-d": (logits(), probabilities(), {}),
        "(0, D) empty": (logits(0, 5), probabilities(0, 5), {"pos_weight": positive(5)}),
        "logits ~ N(0, 50²)": (logits(6, 5, scale=50.0), probabilities(6, 5), {"pos_weight": positive(5)}),
        "logits ±1e4, ±30": (huge.clone().requires_grad_(), labels(1, 6).requires_grad_(), {}),
        "logits ±1e4, ±30, pos_weight": (huge.clone().requires_grad_(), probabilities(1, 6), {"pos_weight": positive(6)}),
    }
    dtypes = {
        "logits ±1e4, ±30": tuple(d for d in TOLERANCES if d != torch.float16),     # 1e4s summed pass 65504
        # PyTorch rounds (1 − t) x and (p t + 1 − t) log σ(x) to bfloat16 before subtracting them,
        # and for |x| ~ 100 loses more than the tolerance where they cancel; ours rounds once.
        "logits ~ N(0, 50²)": (torch.float64, torch.float32),
    }
    dtypes["logits ±1e4, ±30, pos_weight"] = dtypes["logits ±1e4, ±30"]
    return [
        Sample((x.detach().clone().requires_grad_(), t.detach().clone().requires_grad_(t.requires_grad)),
               {**options, "reduction": reduction}, f"{name}, {reduction}", dtypes=dtypes.get(name),
               gradcheck=not (name == "(0, D) empty" and reduction == "mean"))           # a mean of nothing: NaN
        for name, (x, t, options) in forms.items() for reduction in ("mean", "sum", "none")
    ]


def _bce_module_samples():
    def input(*shape):
        return lambda gen: (randn(gen, *shape), torch.rand(shape, generator=gen, dtype=torch.float64).requires_grad_())

    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    pos_weight = torch.tensor([3.0, 1.0, 0.5, 2.0], dtype=torch.float64)
    options = ({}, {"weight": weight}, {"pos_weight": pos_weight}, {"weight": weight, "pos_weight": pos_weight})
    samples = [ModuleSample(f"{', '.join(o) or 'default'}, {reduction}", input(9, 4), (), {**o, "reduction": reduction})
               for o in options for reduction in ("mean", "sum", "none")]
    samples.append(ModuleSample("pos_weight (C, 1, 1) on (N, C, H, W)", input(2, 4, 3, 2), (),
                                {"pos_weight": pos_weight.reshape(4, 1, 1)}))
    samples.append(ModuleSample("size_average=False", input(9, 4), (), {"size_average": False}))
    return tuple(samples)


_BCE_ERRORS = (
    ErrorInput("target of another shape", lambda F, nn: F.binary_cross_entropy_with_logits(_x(3, 4), _x(4)),
               ValueError, r"binary_cross_entropy_with_logits: target must have the input's shape \(3, 4\), got \(4,\)"),
    ErrorInput("weight that does not broadcast",
               lambda F, nn: F.binary_cross_entropy_with_logits(_x(3, 4), _x(3, 4), weight=_x(5)),
               RuntimeError, r"weight of shape \(5,\) does not broadcast to the input's shape \(3, 4\)"),
    ErrorInput("weight broadcasting past the input's shape",
               lambda F, nn: F.binary_cross_entropy_with_logits(_x(3, 4), _x(3, 4), weight=_x(2, 3, 4)),
               RuntimeError, r"weight of shape \(2, 3, 4\) does not broadcast to the input's shape \(3, 4\)"),
    ErrorInput("pos_weight that does not broadcast",
               lambda F, nn: F.binary_cross_entropy_with_logits(_x(3, 4), _x(3, 4), pos_weight=_x(3)),
               RuntimeError, r"pos_weight of shape \(3,\) does not broadcast to the input's shape \(3, 4\)"),
    ErrorInput("int64 target",
               lambda F, nn: F.binary_cross_entropy_with_logits(_x(3), torch.tensor([0, 1, 1])),
               RuntimeError, r"target must be floating point \(probabilities in \[0, 1\]\), got torch\.int64"),
    ErrorInput("int64 input",
               lambda F, nn: F.binary_cross_entropy_with_logits(torch.tensor([0, 1, 1]), _x(3)),
               NotImplementedError, r"input \(logits\) must be floating point, got torch\.int64"),
    ErrorInput("weight requiring grad",
               lambda F, nn: F.binary_cross_entropy_with_logits(_x(3), _x(3), weight=torch.ones(3, requires_grad=True)),
               RuntimeError, r"not differentiable with respect to weight"),
    ErrorInput("pos_weight requiring grad",
               lambda F, nn: F.binary_cross_entropy_with_logits(_x(3), _x(3), pos_weight=torch.ones(3, requires_grad=True)),
               RuntimeError, r"not differentiable with respect to pos_weight"),
    ErrorInput("reduction 'avg'", lambda F, nn: F.binary_cross_entropy_with_logits(_x(3), _x(3), reduction="avg"),
               ValueError, r"binary_cross_entropy_with_logits: reduction must be one of .*got 'avg'"),
    # torch's AttributeError comes from calling list.size: an accident, not an API.
    ErrorInput("list input", lambda F, nn: F.binary_cross_entropy_with_logits([1.0], _x(1)), TypeError,
               r"input must be a torch\.Tensor, got list", torch_class=AttributeError),
    ErrorInput("nn.BCEWithLogitsLoss pos_weight that does not broadcast",
               lambda F, nn: nn.BCEWithLogitsLoss(pos_weight=torch.ones(5))(_x(3, 4), _x(3, 4)),
               RuntimeError, r"pos_weight of shape \(5,\) does not broadcast to the input's shape \(3, 4\)"),
    ErrorInput("nn.BCEWithLogitsLoss target of another shape",
               lambda F, nn: nn.BCEWithLogitsLoss()(_x(3, 4), _x(3, 1)),
               ValueError, r"target must have the input's shape \(3, 4\), got \(3, 1\)"),
)


def _bce_bench(device):
    x = torch.randn(1024, 512, device=device, requires_grad=True)
    return [("(1024, 512)", (x, torch.rand(1024, 512, device=device)), {})]


register(Op(
    "binary_cross_entropy_with_logits", binary_cross_entropy_with_logits,
    torch.nn.functional.binary_cross_entropy_with_logits, _bce_samples, binary_cross_entropy_with_logits_numpy,
    (SigmoidBinaryCrossEntropy,),
    Derivative("ℓ = −w [p t log σ(x) + (1 − t) log(1 − σ(x))]",
               "dL/dx = r w [(p t + 1 − t) σ(x) − p t], dL/dt = −r w [p log σ(x) − log(1 − σ(x))]",
               "x, t (*); w, p broadcast to (*); r = g or g / n"),
    modules={torch.nn.BCEWithLogitsLoss: Module(
        lambda self, input, target: binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction),
        _bce_module_samples())},
    bench=_bce_bench,
    errors=_BCE_ERRORS,
))

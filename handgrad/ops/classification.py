"""Classification losses: the seed's cross-entropy L = −log softmax(l)_y, generalised to all of
PyTorch's options, and nll_loss, the same loss given the log-probabilities.

Notation: x the logits (cross_entropy) or log-probabilities (nll_loss), (M, C): one row per
prediction, C classes; p = softmax(x); t the class indices (M,); w the class weights (C,), 1 when
none are given; ε the label smoothing; a the target distribution (M, C), the seed's one-hot
generalised:

- class index t: a = (1 − ε) w_t onehot(t) + (ε / C) w, and a = 0 on rows with t = ignore_index;
- class probabilities q: a = w ∘ ((1 − ε) q + ε / C).

Each row's loss is L_row = −Σ_c a_c log p_c (nll_loss: −w_t x_t). g = dL/dL is () for 'mean' and
'sum', one per row for 'none'; r (M, 1) is how much each row's loss moves L: g ('sum'), g_row
('none') or g / D ('mean'), D = Σ w_t over the rows kept (class indices) or M (probabilities),
exactly as PyTorch divides.
"""

import torch

from handgrad.ops._checks import (FLOAT32, REDUCTIONS, as_dtype, autocast, can_inspect_values, check_reduction,
                                  check_same_device, check_same_dtype_and_device, check_tensor, computed_in)
from handgrad.ops._function import HandFunction, apply, derivation, multilinear_jvp
from handgrad.ops._reduction import reduce, scale
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops.softmax import log_softmax_backward

# -- the target distribution a and the row scale r ------------------------------------------------


def class_index_rows(target, weight, ignore_index, dtype):
    """kept (M,) the rows that count, t (M,) their class (0 where ignored), w_t (M,) their weight (0
    where ignored). ``ignore_index=None``: every row is known to count."""
    if ignore_index is None:
        w_t = torch.ones_like(target, dtype=dtype) if weight is None else as_dtype(weight, dtype).gather(0, target)
        return torch.ones_like(target, dtype=torch.bool), target, w_t
    kept = target != ignore_index
    t = target.where(kept, 0)
    w_t = as_dtype(kept, dtype) if weight is None else as_dtype(weight, dtype).gather(0, t).where(kept, 0)
    return kept, t, w_t


def probability_target(q, weight, eps, dtype):
    """a = w ∘ ((1 − ε) q + ε / C) for class probabilities q, (M, C)."""
    q = as_dtype(q, dtype)
    if eps > 0:
        q = q * (1 - eps) + eps / q.shape[1]
    return q if weight is None else q * as_dtype(weight, dtype)


def class_weight(weight, n_classes, dtype, device):
    """w (C,): the class weights, ones when none are given."""
    return torch.ones(n_classes, dtype=dtype, device=device) if weight is None else as_dtype(weight, dtype)


def target_distribution(target, weight, ignore_index, eps, n_classes, dtype):
    """(a, D): the target distribution a (M, C) and the divisor D of 'mean'."""
    if target.is_floating_point():
        return probability_target(target, weight, eps, dtype), target.shape[0]
    kept, t, w_t = class_index_rows(target, weight, ignore_index, dtype)
    a = torch.zeros(target.shape[0], n_classes, dtype=dtype, device=target.device)
    a = a.scatter(1, t.unsqueeze(1), ((1 - eps) * w_t).unsqueeze(1))            # (1 − ε) w_t onehot(t)
    if eps > 0:
        w = class_weight(weight, n_classes, dtype, target.device)
        a = a + (eps / n_classes) * w * kept.unsqueeze(1)                         # + (ε / C) w, rows kept
    return a, w_t.sum()


def row_scale(g, reduction, denominator, n_rows):
    """r (M, 1): how much each row's loss moves L (g, g / D or g_row)."""
    if reduction == "none":
        return g.unsqueeze(1)
    if reduction == "mean" and isinstance(denominator, torch.Tensor):
        # D = 0 only when every row is ignored, and then every a is 0: dividing by 1 instead keeps
        # 0/0 out of the graph (double backward would see NaN) and changes nothing.
        denominator = denominator.where(denominator != 0, 1)
    return scale(g, reduction, denominator).expand(n_rows).unsqueeze(1)


# -- nll_loss ------------------------------------------------------------------------------------


class NegativeLogLikelihood(HandFunction):
    """L = −w_t x_t per row, reduced: ``torch.nn.functional.nll_loss`` on rows of log-probabilities.

    Inputs are already flattened by ``nll_loss``: ``x`` (M, C) log-probabilities, one row per
    prediction; ``target`` (M,) class indices (int64); ``weight`` (C,) class weights or None;
    ``ignore_index`` (int, or None: no row ignored); ``reduction`` 'none' | 'mean' | 'sum'. A row whose
    target is ignore_index counts for nothing, and 'mean' divides by D = Σ w_t over the rows kept.
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
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        target, weight = ctx.saved_tensors
        return nll_loss_backward(g, target, weight, ctx.ignore_index, ctx.reduction, ctx.x_shape), None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: L is linear in x, so dL = −w_t dx_t per row, reduced: the forward on dx."""
        target, weight = ctx.saved_tensors
        return multilinear_jvp(NegativeLogLikelihood.forward, (None, target, weight, ctx.ignore_index, ctx.reduction),
                               (dx, None, None, None, None))


def nll_loss_backward(g, target, weight, ignore_index, reduction, x_shape):
    """dL/dx = −r w_t onehot(t), (M, C): each row's loss −w_t x_t moves with its target's entry only.
    Shapes: t, w_t (M,); r (M, 1); g () or (M,)."""
    n_rows = target.shape[0]
    _, t, w_t = class_index_rows(target, weight, ignore_index, g.dtype)     # w_t = 0 where ignored
    r = row_scale(g, reduction, w_t.sum(), n_rows)                           # (M, 1)
    rows = torch.arange(n_rows, device=target.device)
    # index_put_ into zeros made from r, so that vmap batches them whenever it batches r (it runs
    # scatter_ one sample at a time).
    return r.new_zeros(x_shape).index_put_((rows, t), -r.squeeze(1) * w_t)     # −r w_t onehot(t), (M, C)


# -- cross_entropy ---------------------------------------------------------------------------------


class SoftmaxCrossEntropy(HandFunction):
    """L = −Σ_c a_c log softmax(x)_c per row, reduced; the cross-entropy of ``torch.nn.functional``.

    Inputs are already flattened by ``cross_entropy``: ``x`` (M, C) logits; ``target`` (M,) class
    indices (int64) or (M, C) class probabilities (x's dtype); ``weight`` (C,) or None;
    ``ignore_index`` (int, or None when no target is known to equal it: the faces pass None after
    their range check), ``label_smoothing`` ε in [0, 1], ``reduction`` 'none' | 'mean' | 'sum'.

    For class indices without smoothing this is ``nll_loss(log_softmax(x, 1), t)``, and forward
    computes it so: ``NegativeLogLikelihood.forward`` on log p.

    Returns ``(loss, log_p)``: log p = log softmax(x), (M, C), is what backward needs; it is
    returned rather than kept aside so that double backward differentiates through it.
    """

    @staticmethod
    def forward(x, target, weight, ignore_index, label_smoothing, reduction):
        log_p = torch.log_softmax(as_dtype(x, computed_in(x.dtype)), 1)    # x − max − log Σ exp(x − max)
        eps, n_classes = label_smoothing, x.shape[1]
        if target.is_floating_point():
            rows = -(probability_target(target, weight, eps, log_p.dtype) * log_p).sum(1)     # L_row, (M,)
            loss = reduce(rows, reduction, x.shape[0])
        else:
            w = as_dtype(weight, log_p.dtype)
            loss = NegativeLogLikelihood.forward(log_p, target, w, ignore_index, reduction)  # −w_t log p_t
            if eps > 0:                                      # −Σ_c a_c log p_c = (1 − ε) nll + (ε / C) smooth
                kept, _, w_t = class_index_rows(target, weight, ignore_index, log_p.dtype)
                # Only on kept rows, as PyTorch does: a NaN or −inf logit in an ignored row must
                # not turn 0 · (−inf) into NaN.
                smooth = (-(log_p if w is None else log_p * w).sum(1)).where(kept, 0)
                loss = (1 - eps) * loss + eps / n_classes * reduce(smooth, reduction, w_t.sum())
        return as_dtype(loss, x.dtype), log_p

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, target, weight, ignore_index, label_smoothing, reduction = inputs
        _, log_p = output
        ctx.save_for_backward(log_p, target if ctx.needs_input_grad[0] else None, weight)   # dL/dq reads no q
        ctx.save_for_forward(log_p, target, weight)
        ctx.ignore_index, ctx.label_smoothing, ctx.reduction = ignore_index, label_smoothing, reduction
        ctx.x_dtype, ctx.target_dtype = x.dtype, target.dtype
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_log_p):
        """dL/dx = r (s p − a) (``cross_entropy_backward``); for probability targets dL/dq too.

        g_log_p, the gradient reaching the log-probability output, is not None only when this
        backward is itself differentiated; it goes back through log softmax."""
        log_p, target, weight = ctx.saved_tensors
        options = (target, weight, ctx.ignore_index, ctx.label_smoothing, ctx.reduction)
        grad_x = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_x = cross_entropy_backward(g, g_log_p, log_p, *options)
            grad_x = None if grad_x is None else as_dtype(grad_x, ctx.x_dtype)
        if ctx.needs_input_grad[1] and g is not None:
            grad_target = as_dtype(cross_entropy_target_backward(g, log_p, weight, ctx.label_smoothing, ctx.reduction),
                                   ctx.target_dtype)
        return grad_x, grad_target, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, dq, *_):
        log_p, target, weight = ctx.saved_tensors
        return cross_entropy_jvp(dx, dq, log_p, target, weight, ctx.ignore_index, ctx.label_smoothing, ctx.reduction,
                                 ctx.x_dtype)


def cross_entropy_jvp(dx, dq, log_p, target, weight, ignore_index, eps, reduction, x_dtype):
    """Forward mode: d log p = dx − Σ_c p dx per row (log softmax's), then
    dL_row = −Σ_c (a d log p + da log p) with da = (1 − ε) w dq, reduced as the loss is.
    Returns (dL, d log p)."""
    n_classes = log_p.shape[1]
    d_log_p = torch.zeros_like(log_p)
    if dx is not None:
        dx = as_dtype(dx, log_p.dtype)
        d_log_p = dx - (log_p.exp() * dx).sum(1, keepdim=True)                    # (M, C)
    a, D = target_distribution(target, weight, ignore_index, eps, n_classes, log_p.dtype)
    # Only where a puts weight, as in forward: a NaN or −inf logit elsewhere must not turn 0 · NaN into NaN.
    d_rows = -torch.where(a != 0, a * d_log_p, 0).sum(1)                         # −Σ_c a d log p, (M,)
    if dq is not None:
        da = (1 - eps) * class_weight(weight, n_classes, log_p.dtype, log_p.device) * as_dtype(dq, log_p.dtype)
        d_rows = d_rows - (da * log_p).sum(1)                                     # − Σ_c da log p
    return as_dtype(reduce(d_rows, reduction, D), x_dtype), d_log_p


def cross_entropy_backward(g, g_log_p, log_p, target, weight, ignore_index, eps, reduction):
    """dL/dx from g, the gradient reaching L, and g_log_p, the gradient reaching log p (either may
    be None): ``softmax_cross_entropy_backward`` plus log softmax's backward of g_log_p."""
    grad_x = None
    if g is not None:
        grad_x = softmax_cross_entropy_backward(as_dtype(g, log_p.dtype), log_p, target, weight, ignore_index, eps,
                                                reduction)
    if g_log_p is not None:
        through_log_p = log_softmax_backward(g_log_p, log_p.exp(), 1)                # (M, C)
        grad_x = through_log_p if grad_x is None else grad_x + through_log_p
    return grad_x


@derivation
def softmax_cross_entropy_backward(g, log_p, target, weight, ignore_index, eps, reduction):
    """dL/dx = r (s p − a), s = Σ_c a_c per row: the seed's softmax − onehot, generalised.

    L_row = −Σ_c a_c log p_c gives dL/d(log p) = −r a, and log softmax's backward
    (``log_softmax_backward``: g − p Σ g) takes it to dL/dx = −r a + p Σ_c r a = r (s p − a). For an
    unweighted class index without smoothing, s = 1 and a = onehot(t): dL/dx = r (p − onehot(t)).
    Shapes: x, p, a (M, C); s, r (M, 1); g () or (M,).
    """
    n_rows, n_classes = log_p.shape
    a, D = target_distribution(target, weight, ignore_index, eps, n_classes, log_p.dtype)   # (M, C)
    r = row_scale(g, reduction, D, n_rows)                                                   # (M, 1)
    s = a.sum(1, keepdim=True)                                                               # (M, 1)
    return r * (s * log_p.exp() - a)                                                         # r (s p − a)


@softmax_cross_entropy_backward.faster
def _softmax_cross_entropy_backward_sparse(g, log_p, target, weight, ignore_index, eps, reduction):
    """The same r (s p − a) for class indices without the dense (M, C) a: a is one entry per row
    (plus ε/C w everywhere when smoothing), scattered in at the end; in the seed's case (every row
    kept, no weight, no smoothing) that is r p − r onehot(t), written into r p's buffer. Forward +
    backward of cross_entropy on (1024, 10) logits in 0.71× the reference's time, of the better
    network's chain with its loss at batch 64 in 0.96× (bench section 9)."""
    if target.is_floating_point():
        return softmax_cross_entropy_backward.reference(g, log_p, target, weight, ignore_index, eps, reduction)
    return sparse_target_backward_(g, log_p.exp(), target, weight, ignore_index, eps, reduction)


def sparse_target_backward_(g, p, target, weight, ignore_index, eps, reduction):
    """r (s p − a) for class indices, written into p = softmax(x) (M, C), which it overwrites."""
    n_rows, n_classes = p.shape
    if ignore_index is None and weight is None and eps == 0:             # a = onehot(t), s = 1, D = M
        r = row_scale(g, reduction, n_rows, n_rows)                      # (M, 1)
        return p.mul_(r).scatter_add_(1, target.unsqueeze(1), -r)        # r p − r onehot(t)
    kept, t, w_t = class_index_rows(target, weight, ignore_index, p.dtype)
    r = row_scale(g, reduction, w_t.sum(), n_rows) * kept.unsqueeze(1)   # ignored rows: no gradient
    rw = r * w_t.unsqueeze(1)                                            # r w_t, (M, 1)
    if eps == 0:
        grad_x = p.mul_(rw)                                              # r s p, s = w_t ...
    else:
        w = class_weight(weight, n_classes, p.dtype, p.device)
        s = (1 - eps) * rw + (eps / n_classes) * w.sum() * r             # r s, (M, 1)
        grad_x = p.mul_(s).sub_((eps / n_classes) * r * w)               # ... − r (ε / C) w
    return grad_x.scatter_add_(1, t.unsqueeze(1), -(1 - eps) * rw)       # ... − r (1 − ε) w_t onehot(t)


def cross_entropy_target_backward(g, log_p, weight, eps, reduction):
    """dL/dq = −r (1 − ε) w ∘ log p, (M, C), for class probabilities q: a = w ((1 − ε) q + ε/C) is
    linear in q, and L_row = −Σ_c a_c log p_c."""
    r = row_scale(as_dtype(g, log_p.dtype), reduction, log_p.shape[0], log_p.shape[0])
    w = class_weight(weight, log_p.shape[1], log_p.dtype, log_p.device)
    return -r * (1 - eps) * w * log_p


# -- functional faces ------------------------------------------------------------------------------

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
    check_same_device(fn, {"input": input, "target": target})
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


# -- registration ----------------------------------------------------------------------------------

register(Op(
    "cross_entropy", cross_entropy, (SoftmaxCrossEntropy,),
    Derivative("L = −Σ_c a_c log softmax(x)_c", "dL/dx = r (s · softmax(x) − a); one-hot a: softmax − onehot",
               "x (M, C), a (M, C), s = Σ_c a_c, r (M, 1)"),
    modules={torch.nn.CrossEntropyLoss: Module(
        lambda self, input, target: cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                                  reduction=self.reduction, label_smoothing=self.label_smoothing))},
))

register(Op(
    "nll_loss", nll_loss, (NegativeLogLikelihood,),
    Derivative("L = −w_t x_t", "dL/dx = −r w_t onehot(t)", "x (M, C), t and w_t (M,), r (M, 1)"),
    modules={torch.nn.NLLLoss: Module(
        lambda self, input, target: nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                             reduction=self.reduction))},
))

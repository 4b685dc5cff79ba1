"""Losses. The seed's cross-entropy L = −log softmax(l)_y, generalised to all of PyTorch's options.

Notation: x the logits (M, C) (one row per prediction, C classes), p = softmax(x), a the target
distribution (M, C), w the class weights (C,), ε the label smoothing, g = dL/dL (the upstream
gradient: () for 'mean' and 'sum', (M,) for 'none').
"""

import numpy as np
import torch

from handgrad.ops._checks import (FLOAT32, autocast, can_inspect_values, check_reduction,
                                  check_same_dtype_and_device, check_tensor)
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, ModuleSample, Op, register
from handgrad.ops.softmax import log_softmax_backward, log_softmax_numpy
from handgrad.testing import ErrorInput, Sample, TOLERANCES, randn


class SoftmaxCrossEntropy(HandFunction):
    """L = −Σ_c a_c log softmax(x)_c per row, reduced; the cross-entropy of ``torch.nn.functional``.

    Inputs are already flattened by ``cross_entropy``:

    - ``x`` (M, C) logits, one row per prediction;
    - ``target`` (M,) class indices (int64) or (M, C) class probabilities (x's dtype);
    - ``weight`` (C,) class weights or None;
    - ``ignore_index`` (int), ``label_smoothing`` ε in [0, 1], ``reduction`` 'none' | 'mean' | 'sum'.

    The target distribution row by row is a (M, C), the seed's one-hot generalised:

    - class index t: a = (1 − ε) w_t onehot(t) + (ε / C) w, and a = 0 on rows with t = ignore_index;
    - probabilities q: a = w ∘ ((1 − ε) q + ε / C).

    'mean' divides the sum by D = Σ_rows w_t over rows not ignored (class indices) or by M
    (probabilities), exactly as PyTorch does.

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
            # −w_t log p_t, summed or averaged over the rows that are not ignored (D = Σ w_t).
            loss = torch.nn.functional.nll_loss(log_p, target, w, ignore_index=ignore_index, reduction=reduction)
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
        """dL/dx = r ∘ (s p − a) with p = softmax(x), s = Σ_c a (per row), r = g, g / D or g_row.

        L_row = −Σ_c a_c log p_c gives dL/d(log p) = −r a, and through log softmax
        (``log_softmax_backward``) dL/dx = −r a + p Σ_c r a = r (s p − a). For an unweighted class
        index without smoothing, s = 1 and a = onehot(t): the seed's dL/dlogits = softmax − onehot.
        Shapes: x, p, a (M, C); s, r (M, 1); g () or (M,).
        For probability targets also dL/dq = −r (1 − ε) w ∘ log p, (M, C).

        g_log_p, the gradient reaching the log-probability output, is non-zero only when this
        backward is itself differentiated; it goes through log softmax the same way.
        """
        log_p, target, weight = ctx.saved_tensors
        eps, n_classes = ctx.label_smoothing, log_p.shape[1]
        grad_x = grad_target = None
        if g is not None and target.is_floating_point():
            a = _probability_target(target, weight, eps, log_p.dtype)                # (M, C)
            r = _row_scale(_as(g, log_p.dtype), ctx.reduction, log_p.shape[0], log_p.shape[0])
            if ctx.needs_input_grad[0]:
                grad_x = log_softmax_backward(-r * a, log_p.exp(), 1)               # r (s p − a), (M, C)
            if ctx.needs_input_grad[1]:
                w = 1 if weight is None else _as(weight, log_p.dtype)
                grad_target = -r * (1 - eps) * w * log_p                             # dL/dq, (M, C)
        elif g is not None and ctx.needs_input_grad[0]:
            # The same r (s p − a), without building the dense (M, C) a: a is one entry per row
            # (plus ε/C w everywhere when smoothing), scattered in at the end.
            kept, t, w_t = _class_index_rows(target, weight, ctx.ignore_index, log_p.dtype)
            r = _row_scale(_as(g, log_p.dtype), ctx.reduction, w_t.sum(), log_p.shape[0])
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
        if g_log_p is not None and ctx.needs_input_grad[0]:
            through_log_p = log_softmax_backward(g_log_p, log_p.exp(), 1)    # (M, C)
            grad_x = through_log_p if grad_x is None else grad_x + through_log_p
        if grad_x is not None:
            grad_x = _as(grad_x, ctx.x_dtype)
        if grad_target is not None:
            grad_target = _as(grad_target, target.dtype)
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


def _reduce(rows, reduction, denominator):
    """The per-row losses (M,) reduced: summed, summed / D ('mean'), or kept ('none')."""
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
    """kept (M,) rows that count, t (M,) their class (0 where ignored), w_t (M,) their weight (0 where ignored)."""
    kept = target != ignore_index
    t = target.where(kept, 0)
    w_t = _as(kept, dtype) if weight is None else _as(weight, dtype).gather(0, t).where(kept, 0)
    return kept, t, w_t


def _row_scale(g, reduction, denominator, n_rows):
    """r (M, 1): how much each row's loss moves L (g, g / D or g_row)."""
    if reduction == "none":
        return g.unsqueeze(1)
    if reduction == "mean":
        # D = 0 only when every row is ignored, and then every r is masked away: dividing by 1
        # instead keeps 0/0 out of the graph (double backward would see NaN) and changes nothing.
        if isinstance(denominator, torch.Tensor):
            denominator = denominator.where(denominator != 0, 1)
        g = g / denominator
    return g.expand(n_rows).unsqueeze(1)


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
    reduction = check_reduction("cross_entropy", reduction, size_average, reduce)
    check_tensor("cross_entropy", "input", input)
    check_tensor("cross_entropy", "target", target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if not input.is_floating_point():
        raise NotImplementedError(f"cross_entropy: input (logits) must be floating point, got {input.dtype}")
    if input.dim() == 0:
        raise RuntimeError("cross_entropy: input must be (C), (N, C) or (N, C, d1, ..., dK); got a 0-d tensor")
    class_dim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[class_dim]
    if n_classes == 0:
        raise IndexError(f"cross_entropy: input of shape {tuple(input.shape)} has no classes (C = 0)")
    if weight is not None:
        check_tensor("cross_entropy", "weight", weight)
        if weight.shape != (n_classes,):
            raise RuntimeError(
                f"cross_entropy: weight must hold one value per class, shape ({n_classes},), "
                f"got shape {tuple(weight.shape)}"
            )
        if weight.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(
                "cross_entropy: the loss is not differentiable with respect to weight (as in PyTorch); "
                "pass weight.detach() or a weight that does not require grad"
            )
    probabilities = target.is_floating_point()
    input, weight, *probability_target = autocast(FLOAT32, input, weight, *((target,) if probabilities else ()))
    target = probability_target[0] if probabilities else target
    _check_target(input, target, class_dim, n_classes, ignore_index)
    check_same_dtype_and_device(
        "cross_entropy", {"input": input, "weight": weight, **({"target": target} if probabilities else {})}
    )
    if target.device != input.device:
        raise RuntimeError(f"cross_entropy: target is on {target.device} but input is on {input.device}")
    x, t = input, target if probabilities or target.dtype == torch.long else target.long()
    if input.dim() != 2:                                     # to one row per prediction: (M, C)
        x = input.movedim(class_dim, -1).reshape(-1, n_classes)
        t = t.movedim(class_dim, -1).reshape(-1, n_classes) if probabilities else t.reshape(-1)
    loss, _ = apply(SoftmaxCrossEntropy, x, t, weight, ignore_index, label_smoothing, reduction)
    if reduction == "none" and input.dim() != 2:
        return loss.reshape(input.shape[:class_dim] + input.shape[class_dim + 1:])
    return loss


def _check_target(input, target, class_dim, n_classes, ignore_index):
    """Validate target against input (class probabilities when floating point)."""
    class_free_shape = input.shape[:class_dim] + input.shape[class_dim + 1:]
    if target.is_floating_point():
        if target.shape != input.shape:
            raise RuntimeError(
                f"cross_entropy: a floating-point target is read as class probabilities and must have "
                f"the input's shape {tuple(input.shape)}, got {tuple(target.shape)}; for class indices "
                f"of shape {tuple(class_free_shape)} use an int64 (torch.long) target"
            )
        if ignore_index != -100:
            raise RuntimeError(
                "cross_entropy: ignore_index applies to class-index targets only; "
                "it is not supported with class-probability targets"
            )
        return
    if target.dtype not in (torch.long, torch.uint8):
        raise RuntimeError(
            f"cross_entropy: class-index target must have dtype torch.long (or torch.uint8), "
            f"got {target.dtype}"
        )
    if target.shape != class_free_shape:
        # torch raises ValueError when the batch sizes differ and RuntimeError otherwise.
        mismatch = ValueError if target.shape[:1] != class_free_shape[:1] else RuntimeError
        raise mismatch(
            f"cross_entropy: target of shape {tuple(target.shape)} does not match input of shape "
            f"{tuple(input.shape)}: class-index targets must have shape {tuple(class_free_shape)} "
            f"(input without its class dimension {class_dim})"
        )
    if target.numel() and can_inspect_values(target):
        low, high = (int(v) for v in torch.aminmax(target))   # one pass; the exact test only if needed
        if low >= 0 and high < n_classes:
            return
        bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
        if bad.any():
            value = target[bad].flatten()[0].item()
            raise IndexError(
                f"cross_entropy: target {value} is out of bounds: class indices must lie in "
                f"[0, {n_classes - 1}] for {n_classes} classes, or equal ignore_index={ignore_index}"
            )


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
    with np.errstate(invalid="ignore", divide="ignore"):     # a mean over no rows is NaN, as in torch
        loss = rows if reduction == "none" else rows.sum() if reduction == "sum" else rows.sum() / divisor
    probabilities = np.issubdtype(target.dtype, np.floating)

    def vjp(g):
        g = np.asarray(g, dtype=np.float64)
        if reduction == "none":
            r = g.reshape(-1, 1)
        else:
            scale = float(g) if reduction == "sum" else (float(g) / divisor if divisor else 0.0)
            r = np.full((logits.shape[0], 1), scale)
        dlogits = r * (A.sum(axis=1, keepdims=True) * np.exp(log_p) - A)     # r (s softmax − A)
        if not probabilities:
            return dlogits, None
        w = np.ones(logits.shape[1]) if weight is None else np.asarray(weight, dtype=np.float64)
        return dlogits, -r * (1 - label_smoothing) * w * log_p

    return loss, vjp


def cross_entropy_numpy(x, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                        label_smoothing=0.0):
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    x2 = np.moveaxis(x, class_dim, -1).reshape(-1, n_classes)
    probabilities = np.issubdtype(target.dtype, np.floating)
    t2 = np.moveaxis(target, class_dim, -1).reshape(-1, n_classes) if probabilities else target.reshape(-1)
    loss, rows_vjp = cross_entropy_rows_numpy(x2, t2, weight, ignore_index, reduction, label_smoothing)
    class_free = x.shape[:class_dim] + x.shape[class_dim + 1:]
    if reduction == "none":
        loss = loss.reshape(class_free)

    def unflatten(a):
        return np.moveaxis(a.reshape(class_free + (n_classes,)), -1, class_dim)

    def vjp(g):
        dx2, dt2 = rows_vjp(g.reshape(-1) if g.ndim else g)
        return unflatten(dx2), None if dt2 is None else unflatten(dt2)

    return loss, vjp


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

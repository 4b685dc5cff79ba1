"""The derivations as code: ``torch.autograd.Function`` subclasses with hand-written backward.

Notation follows the seed: ``x`` is a layer's input, ``W`` its weight stored (out, in) as in
``torch.nn.Linear``, ``b`` its bias, ``z`` a pre-activation, ``y`` an output and ``g = dL/dy`` the
gradient arriving from the layer above. Every backward is made of plain tensor arithmetic (never the
built-in op's autograd or its ``*_backward`` kernel), so it is itself differentiable: double
backward and ``torch.func`` transforms (``grad``, ``vmap``, ``jacrev``) work through it. Each
Function also has a hand-written ``jvp`` (forward mode: ``jacfwd``, ``hessian``).

Forward is split from ``setup_context`` as ``torch.func`` requires, and only inputs and outputs are
saved; a quantity backward needs that is neither (the log-probabilities of the cross-entropy) is
returned as an extra output, which is also what makes its second derivative flow back through the
same hand-written backward.
"""

import inspect
import math
import types

import torch
from torch.autograd import Function


def _matrix(t):
    """View ``(*, n)`` as ``(prod(*), n)``: every leading dimension acts as a batch dimension."""
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


class Linear(Function):
    """y = x Wᵀ + b for ``x`` of shape (*, in), ``W`` (out, in), ``b`` broadcastable to (*, out)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, W, b=None):
        # The output must not be a view of a tensor made in here, or in-place ops on it (an
        # in-place ReLU after the layer) would be refused: hence no reshape of a 2-D product.
        if x.dim() == 2 and b is not None and b.dim() <= 1:
            return torch.addmm(b, x, W.t())                  # one fused kernel: b + x Wᵀ, (N, out)
        y = x.matmul(W.t())                                  # (*, out), folds * into one mm
        return y if b is None else y + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        ctx.save_for_backward(x, W)
        ctx.save_for_forward(x, W)
        ctx.bias_shape = None if b is None else b.shape

    @staticmethod
    def backward(ctx, g):
        """dL/dx = g W, dL/dW = gᵀ x, dL/db = Σ g (see ``_linear_backward``)."""
        x, W = ctx.saved_tensors
        return _linear_backward(ctx, g, x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        """Forward mode: dy = dx Wᵀ + x dWᵀ + db, (*, out)."""
        x, W = ctx.saved_tensors
        return _linear_jvp(x, W, dx, dW, db)


def _linear_backward(ctx, g, x, W):
    """dL/dx = g W, dL/dW = gᵀ x, dL/db = Σ g, each only if asked for.

    Shapes: g (*, out), x (*, in), W (out, in). The leading dimensions * are flattened into one
    batch dimension N, so gᵀ x sums the outer products of all N rows, and Σ g sums g over every
    dimension along which b was broadcast.
    """
    grad_x = grad_W = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_x = g.matmul(W)                                 # dL/dx = g W, (*, in)
    if ctx.needs_input_grad[1]:
        grad_W = _matrix(g).t().mm(_matrix(x))               # dL/dW = gᵀ x, (out, in)
    if ctx.bias_shape is not None and ctx.needs_input_grad[2]:
        grad_b = g.sum_to_size(ctx.bias_shape)               # dL/db = Σ g, b's shape
    return grad_x, grad_W, grad_b


def _linear_jvp(x, W, dx, dW, db):
    terms = []
    if dx is not None:
        terms.append(Linear.forward(dx, W))
    if dW is not None:
        terms.append(Linear.forward(x, dW))
    if db is not None:
        terms.append(db)
    return sum(terms[1:], terms[0])


class Sigmoid(Function):
    """y = σ(z) = 1 / (1 + e⁻ᶻ), elementwise."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z):
        return torch.sigmoid(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)                        # σ' is a function of σ itself
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, g):
        """dL/dz = g · σ(z)(1 − σ(z)) = g · y(1 − y); g, y and dL/dz all of shape (*)."""
        (y,) = ctx.saved_tensors
        return _sigmoid_backward(g, y)

    @staticmethod
    def jvp(ctx, dz):
        """Forward mode: dy = y (1 − y) dz, (*)."""
        (y,) = ctx.saved_tensors
        return dz * y * (1 - y)


def _sigmoid_backward(g, y):
    gy = g * y
    if torch.is_grad_enabled():                              # this backward is being differentiated
        return torch.addcmul(gy, gy, y, value=-1)
    return gy.addcmul_(gy, y, value=-1)                      # dL/dz = g y − g y y = g y (1 − y), (*)


class ReLU(Function):
    """y = max(z, 0), elementwise; with ``inplace=True`` z itself is overwritten and returned."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z, inplace=False):
        return z.relu_() if inplace else torch.relu(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, inplace = inputs
        if inplace:
            ctx.mark_dirty(z)
        ctx.save_for_backward(output)                        # z > 0 exactly where y > 0
        ctx.save_for_forward(output)
        ctx.inplace = inplace

    @staticmethod
    def backward(ctx, g):
        """dL/dz = g · 1[z > 0]; g, y and dL/dz all of shape (*)."""
        (y,) = ctx.saved_tensors
        return _relu_backward(g, y), None

    @staticmethod
    def jvp(ctx, dz, _):
        """Forward mode: dy = dz · 1[z > 0], (*); in place when the op was."""
        (y,) = ctx.saved_tensors
        return dz.mul_(_on(y)) if ctx.inplace else dz * _on(y)


def _relu_backward(g, y):
    if torch.is_grad_enabled():                              # this backward is being differentiated
        return g * _on(y)
    return _on(y).mul_(g)                                    # dL/dz = g · 1[z > 0], (*)


def _on(y):
    """1[z > 0] from y = max(z, 0), as a float tensor: y ≥ 0, so sign(y) is 1 exactly where z > 0.
    A NaN input gives a NaN output, counted as on so that its gradient passes, as in PyTorch.

    Plain float arithmetic on purpose: on the CPU the boolean-mask ops (masked_fill, where) run
    without vector instructions and cost ~25× a multiplication (2.2 ms against 0.07 ms on a
    (1024, 512) tensor, one thread, on the README's machine).
    The one difference from PyTorch: an infinite or NaN g at a unit that is off gives NaN, not 0.
    """
    return y.nan_to_num(nan=1.0).sign_()


class _LinearThenActivation(Function):
    """What the fused Functions share: they keep x and W for the linear part, y for the activation."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        ctx.save_for_backward(x, W, output)
        ctx.save_for_forward(x, W, output)
        ctx.bias_shape = None if b is None else b.shape


class LinearSigmoid(_LinearThenActivation):
    """y = σ(x Wᵀ + b): the seed's hidden layer lⁱ = φ(lⁱ⁻¹ Wⁱ + bⁱ) as one Function.

    The same derivatives as ``Linear`` then ``Sigmoid``, in one call with one output tensor (the
    sigmoid is applied in place to the product), which is what ``handgrad.training.models`` runs.
    """

    @staticmethod
    def forward(x, W, b=None):
        return Linear.forward(x, W, b).sigmoid_()

    @staticmethod
    def backward(ctx, g):
        """dL/dz = g · y(1 − y), then dL/dx = (dL/dz) W, dL/dW = (dL/dz)ᵀ x, dL/db = Σ dL/dz."""
        x, W, y = ctx.saved_tensors
        return _linear_backward(ctx, _sigmoid_backward(g, y), x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        """Forward mode: dy = y (1 − y) (dx Wᵀ + x dWᵀ + db)."""
        x, W, y = ctx.saved_tensors
        return _linear_jvp(x, W, dx, dW, db) * y * (1 - y)


class LinearReLU(_LinearThenActivation):
    """y = max(x Wᵀ + b, 0): the quickstart's hidden layer as one Function (see ``LinearSigmoid``)."""

    @staticmethod
    def forward(x, W, b=None):
        return Linear.forward(x, W, b).relu_()

    @staticmethod
    def backward(ctx, g):
        """dL/dz = g · 1[z > 0], then dL/dx = (dL/dz) W, dL/dW = (dL/dz)ᵀ x, dL/db = Σ dL/dz."""
        x, W, y = ctx.saved_tensors
        return _linear_backward(ctx, _relu_backward(g, y), x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        """Forward mode: dy = 1[z > 0] (dx Wᵀ + x dWᵀ + db)."""
        x, W, y = ctx.saved_tensors
        return _linear_jvp(x, W, dx, dW, db) * _on(y)


class Dropout(Function):
    """y = x ∘ m with m = keep / (1 − p) a given scaled keep-mask (drawn by ``handgrad.functional.dropout``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, m, inplace=False):
        return x.mul_(m) if inplace else x * m

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
        """dL/dx = g ∘ m, m = keep / (1 − p); g, m and dL/dx all of shape (*)."""
        (m,) = ctx.saved_tensors
        return g * m, None, None                             # dL/dx = g keep / (1 − p), (*)

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: dy = dx ∘ m, (*)."""
        (m,) = ctx.saved_tensors
        return dx.mul_(m) if ctx.inplace else dx * m


class SoftmaxCrossEntropy(Function):
    """L = −Σ_c a_c log softmax(x)_c per row, reduced; the cross-entropy of ``torch.nn.functional``.

    Inputs are already flattened by ``handgrad.functional.cross_entropy``:

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

    generate_vmap_rule = True

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

        For an unweighted class index without smoothing, s = 1 and a = onehot(t): the seed's
        dL/dlogits = softmax − onehot. Shapes: x, p, a (M, C); s, r (M, 1); g () or (M,).
        For probability targets also dL/dq = −r (1 − ε) w ∘ log p, (M, C).

        g_log_p, the gradient reaching the log-probability output, is non-zero only when this
        backward is itself differentiated: log p = x − lse(x) contributes g_log_p − p Σ_c g_log_p.
        """
        log_p, target, weight = ctx.saved_tensors
        eps, n_classes = ctx.label_smoothing, log_p.shape[1]
        grad_x = grad_target = None
        if g is not None and target.is_floating_point():
            a = _probability_target(target, weight, eps, log_p.dtype)                # (M, C)
            r = _row_scale(_as(g, log_p.dtype), ctx.reduction, log_p.shape[0], log_p.shape[0])
            if ctx.needs_input_grad[0]:
                grad_x = r * (a.sum(1, keepdim=True) * log_p.exp() - a)    # dL/dx = r (s p − a), (M, C)
            if ctx.needs_input_grad[1]:
                w = 1 if weight is None else _as(weight, log_p.dtype)
                grad_target = -r * (1 - eps) * w * log_p                     # dL/dq, (M, C)
        elif g is not None and ctx.needs_input_grad[0]:
            kept, t, w_t = _class_index_rows(target, weight, ctx.ignore_index, log_p.dtype)
            r = _row_scale(_as(g, log_p.dtype), ctx.reduction, w_t.sum(), log_p.shape[0])
            r = r * kept.unsqueeze(1)                                        # ignored rows: no gradient
            rw = r if weight is None else r * w_t.unsqueeze(1)               # r w_t, (M, 1)
            p = log_p.exp()                                                  # softmax(x), (M, C)
            if eps == 0:
                grad_x = p * rw                                              # r w_t p ...
            else:
                w = 1 if weight is None else _as(weight, log_p.dtype)
                w_sum = n_classes if weight is None else w.sum()
                s = (1 - eps) * rw + (eps / n_classes) * w_sum * r           # r s, (M, 1)
                grad_x = p * s - (eps / n_classes) * r * w                   # ... − r (ε / C) w
            grad_x = grad_x.scatter_add(1, t.unsqueeze(1), -(1 - eps) * rw)  # ... − r (1 − ε) w_t onehot(t)
        if g_log_p is not None and ctx.needs_input_grad[0]:
            p = log_p.exp()
            through_log_p = g_log_p - p * g_log_p.sum(1, keepdim=True)     # d log p / dx, (M, C)
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


def _without_jvp(function):
    """The same Function without its ``jvp``, applied while ``torch.compile`` traces.

    Dynamo refuses to trace a Function that defines ``jvp`` (forward mode), yet forward mode is what
    ``torch.func.jacfwd`` and ``hessian`` need; so each Function keeps its ``jvp`` and carries this
    twin in ``handgrad.autograd.traceable``, which ``handgrad.functional`` uses while compiling. Forward,
    setup_context and backward are the very same functions.
    """
    own = function.__mro__[: function.__mro__.index(Function)]      # the class and its handgrad bases
    body = {k: v for cls in reversed(own) for k, v in vars(cls).items() if k not in ("jvp", "__dict__", "__weakref__")}
    return type(function.__name__, (Function,), body)


traceable = types.ModuleType(__name__ + ".traceable", "The Functions without jvp, for torch.compile.")
for _function in (Linear, Sigmoid, ReLU, LinearSigmoid, LinearReLU, Dropout, SoftmaxCrossEntropy):
    setattr(traceable, _function.__name__, _without_jvp(_function))
    # With setup_context, Function.apply binds its arguments to forward's signature on every call,
    # and building that signature was a third of the cost of a call; build it once instead.
    _function.forward.__signature__ = inspect.signature(_function.forward)

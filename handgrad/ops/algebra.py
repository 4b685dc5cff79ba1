"""The tensor algebra, by hand: the rules every model composes between its layers.

Each elementwise op is one ``Pointwise`` class: its forward, and one rule per input,
``rule(g, *inputs, y) = g ∘ ∂y/∂input``, in the seed's notation (g = dL/dy). Backward sums each
input's rule back to the input's shape, forward mode adds the rules applied to the tangents
(``handgrad.ops._function.Pointwise``). The reductions and matmul, which are not elementwise, have
a backward of their own each, a few lines under their forward.

Broadcasting. ``a`` of shape (N, L, E) plus ``b`` of shape (L, E) (or (E), or a number) adds the same
b to every row: y_nlj = a_nlj + b_lj. So dL/da_nlj = g_nlj, and b_lj, used N times, receives
dL/db_lj = Σ_n g_nlj: each input's gradient is g summed over the dimensions it was broadcast along
(``sum_to``), the same for every broadcasting op.

In place. ``a += b``, ``a.add_(b)``, ``a.mul_(b)`` write y into a, as torch's do: the Function marks
a dirty, so autograd counts a as y from then on; a rule that reads the old a gets a copy of it taken
before (``_in_place``).
"""

import functools
import math

import torch

from handgrad.ops._checks import LOWER, autocast, check_tensor
from handgrad.ops._function import HandFunction, Pointwise, apply, multilinear_jvp, sum_to
from handgrad.ops._registry import Derivative, Op, register

Tensor = torch.Tensor
NUMBER = (int, float, bool)


# -- elementwise, the inputs broadcast ----------------------------------------------------------------


class Add(Pointwise):
    """y = a + α b."""

    @staticmethod
    def forward(a, b, alpha):
        return torch.add(a, b, alpha=alpha)

    rules = (lambda g, a, b, alpha, y: g,                                  # dL/da = g
             lambda g, a, b, alpha, y: g if alpha == 1 else g * alpha)     # dL/db = α g


class Sub(Pointwise):
    """y = a − α b (a may be a number: ``2 - x``)."""

    @staticmethod
    def forward(a, b, alpha):
        return torch.sub(a, b, alpha=alpha) if isinstance(a, Tensor) else torch.rsub(b, a, alpha=alpha)

    rules = (lambda g, a, b, alpha, y: g,                                  # dL/da = g
             lambda g, a, b, alpha, y: -g if alpha == 1 else g * -alpha)   # dL/db = −α g


class Mul(Pointwise):
    """y = a b."""

    saves = (0, 1)

    @staticmethod
    def forward(a, b):
        return torch.mul(a, b)

    rules = (lambda g, a, b, y: g * b,                                     # dL/da = g b
             lambda g, a, b, y: g * a)                                     # dL/db = g a


class Div(Pointwise):
    """y = a / b (a may be a number: ``1 / x``); with a rounding mode, a step function of both."""

    saves = (1, "y")

    @staticmethod
    def forward(a, b, rounding_mode):
        if not isinstance(a, Tensor):
            return torch.reciprocal(b) * a if rounding_mode is None else torch.div(torch.full_like(b, a), b,
                                                                                  rounding_mode=rounding_mode)
        return torch.div(a, b, rounding_mode=rounding_mode)

    rules = (lambda g, a, b, mode, y: g / b if mode is None else torch.zeros_like(g),        # dL/da = g / b
             lambda g, a, b, mode, y: -g * y / b if mode is None else torch.zeros_like(g))   # dL/db = −g a/b² = −g y/b


def _pow_base(g, a, b, y):
    """dL/da = g b a^(b−1); zero for b = 0, where y = 1 whatever a (torch's convention, even at a = 0)."""
    if isinstance(b, Tensor):
        return torch.where(b == 0, 0.0, g * b * a.pow(b - 1))
    return torch.zeros_like(g) if b == 0 else g * b * a.pow(b - 1)


def _pow_exponent(g, a, b, y):
    """dL/db = g y log a; zero where a = 0 and b ≥ 0 (y is 0 or 1 there, flat in b from the right)."""
    if isinstance(a, Tensor):
        return torch.where((a == 0) & (b >= 0), 0.0, g * y * a.log())
    return g * y * torch.log(torch.tensor(a, dtype=y.dtype, device=y.device))


class Pow(Pointwise):
    """y = a^b, a or b a number or both tensors."""

    saves = (0, 1, "y")

    @staticmethod
    def forward(a, b):
        return torch.pow(a, b)

    rules = (_pow_base, _pow_exponent)


class Maximum(Pointwise):
    """y = max(a, b) elementwise; at a tie each input receives g / 2, as torch splits it."""

    saves = (0, 1)

    @staticmethod
    def forward(a, b):
        return torch.maximum(a, b)

    rules = (lambda g, a, b, y: torch.where(a < b, 0.0, torch.where(a == b, g / 2, g)),    # dL/da = g 1[a > b] (½ at a = b)
             lambda g, a, b, y: torch.where(b < a, 0.0, torch.where(a == b, g / 2, g)))    # dL/db = g 1[b > a] (½ at a = b)


class Minimum(Pointwise):
    """y = min(a, b) elementwise; at a tie each input receives g / 2, as torch splits it."""

    saves = (0, 1)

    @staticmethod
    def forward(a, b):
        return torch.minimum(a, b)

    rules = (lambda g, a, b, y: torch.where(a > b, 0.0, torch.where(a == b, g / 2, g)),    # dL/da = g 1[a < b] (½ at a = b)
             lambda g, a, b, y: torch.where(b > a, 0.0, torch.where(a == b, g / 2, g)))    # dL/db = g 1[b < a] (½ at a = b)


class Where(Pointwise):
    """y = a where c, else b: g goes to a where c holds and to b elsewhere."""

    saves = (0,)

    @staticmethod
    def forward(c, a, b):
        return torch.where(c, a, b)

    rules = (None,
             lambda g, c, a, b, y: torch.where(c, g, 0.0),     # dL/da = g 1[c]
             lambda g, c, a, b, y: torch.where(c, 0.0, g))     # dL/db = g 1[¬c]


class MaskedFill(Pointwise):
    """y = v where m, else x (v a number or a 0-d tensor)."""

    saves = (1,)

    @staticmethod
    def forward(x, mask, value):
        return torch.masked_fill(x, mask, value)

    rules = (lambda g, x, m, v, y: g.masked_fill(m, 0.0),     # dL/dx = g 1[¬m]
             None,
             lambda g, x, m, v, y: torch.where(m, g, 0.0))    # dL/dv = Σ g 1[m] (summed to v's 0-d shape)


# -- elementwise, one input ---------------------------------------------------------------------------


class Neg(Pointwise):
    """y = −x."""

    @staticmethod
    def forward(x):
        return torch.neg(x)

    rules = (lambda g, x, y: -g,)                                   # dL/dx = −g


class Exp(Pointwise):
    """y = eˣ."""

    saves = ("y",)

    @staticmethod
    def forward(x):
        return torch.exp(x)

    rules = (lambda g, x, y: g * y,)                                # dL/dx = g eˣ = g y


class Log(Pointwise):
    """y = log x."""

    saves = (0,)

    @staticmethod
    def forward(x):
        return torch.log(x)

    rules = (lambda g, x, y: g / x,)                                # dL/dx = g / x


class Sqrt(Pointwise):
    """y = √x."""

    saves = ("y",)

    @staticmethod
    def forward(x):
        return torch.sqrt(x)

    rules = (lambda g, x, y: g / (2 * y),)                          # dL/dx = g / (2√x) = g / 2y


class Rsqrt(Pointwise):
    """y = 1/√x."""

    saves = ("y",)

    @staticmethod
    def forward(x):
        return torch.rsqrt(x)

    rules = (lambda g, x, y: -0.5 * g * y.pow(3),)                  # dL/dx = −½ g x^(−3/2) = −½ g y³


class Abs(Pointwise):
    """y = |x|; at x = 0 the gradient is 0, the sign's value there."""

    saves = (0,)

    @staticmethod
    def forward(x):
        return torch.abs(x)

    rules = (lambda g, x, y: g * x.sgn(),)                          # dL/dx = g sign(x)


def _clamp_rule(g, x, lo, hi, y):
    """dL/dx = g 1[lo < x < hi]: the gradient passes where x is strictly inside the bounds; at a bound
    (and at NaN) it is 0, as torch's for number bounds."""
    kept = torch.ones_like(x, dtype=torch.bool)
    kept = kept if lo is None else kept & (x > lo)
    kept = kept if hi is None else kept & (x < hi)
    return torch.where(kept, g, 0.0)


class Clamp(Pointwise):
    """y = min(max(x, lo), hi), the bounds numbers (either None)."""

    saves = (0,)

    @staticmethod
    def forward(x, lo, hi):
        return torch.clamp(x, lo, hi)

    rules = (_clamp_rule,)


# -- reductions ---------------------------------------------------------------------------------------


def _dims(dim, ndim):
    """The reduced dimensions, non-negative and sorted: all of them for None or (), and for a 0-d
    tensor, whose dim 0 or -1 names no dimension to put back in backward."""
    if dim is None or dim == () or dim == [] or ndim == 0:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(d % max(ndim, 1) for d in dims))


def unreduce(g, shape, dims, keepdim):
    """g of a reduction's output, back at every position of its input of ``shape``: the reduced
    dimensions put back (size 1) if they were dropped, then g expanded along them."""
    if not keepdim:
        for d in dims:
            g = g.unsqueeze(d)
    return g.expand(shape)


def terms(x, y):
    """n, the number of elements of x reduced into each element of y (0 for an empty x)."""
    return x.numel() // max(y.numel(), 1) if x.numel() else 0


class Sum(HandFunction):
    """y = Σ x over ``dims``: every x it sums moves y one for one, so dL/dx = g, put back and
    expanded along the summed dimensions."""

    @staticmethod
    def forward(x, dims, keepdim, dtype):
        return torch.sum(x, dims, keepdim=keepdim, dtype=dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, dims, keepdim, _ = inputs
        ctx.shape, ctx.dtype, ctx.dims, ctx.keepdim = x.shape, x.dtype, dims, keepdim

    @staticmethod
    def backward(ctx, g):
        return unreduce(g, ctx.shape, ctx.dims, ctx.keepdim).to(ctx.dtype), None, None, None   # dL/dx = g

    @staticmethod
    def jvp(ctx, dx, *_):
        return torch.sum(dx, ctx.dims, keepdim=ctx.keepdim)       # dy = Σ dx: the sum is linear


class Mean(HandFunction):
    """y = (1/n) Σ x over ``dims``, n the number of terms: dL/dx = g / n, expanded."""

    @staticmethod
    def forward(x, dims, keepdim, dtype):
        return torch.mean(x, dims, keepdim=keepdim, dtype=dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, dims, keepdim, _ = inputs
        ctx.shape, ctx.dtype, ctx.dims, ctx.keepdim = x.shape, x.dtype, dims, keepdim
        ctx.n = terms(x, output)

    @staticmethod
    def backward(ctx, g):
        return (unreduce(g / ctx.n, ctx.shape, ctx.dims, ctx.keepdim).to(ctx.dtype),   # dL/dx = g / n
                None, None, None)

    @staticmethod
    def jvp(ctx, dx, *_):
        return torch.mean(dx, ctx.dims, keepdim=ctx.keepdim)      # dy = mean dx: linear


class Amax(HandFunction):
    """y = max x over ``dims``. g goes to the maxima, split evenly between ties, as torch splits it:
    dL/dx = g 1[x = y] / (number of x equal to y)."""

    @staticmethod
    def forward(x, dims, keepdim):
        return torch.amax(x, dims, keepdim=keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, dims, keepdim = inputs
        ctx.save_for_backward(x, output)
        ctx.save_for_forward(x, output)
        ctx.dims, ctx.keepdim = dims, keepdim

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return amax_backward(g, x, y, ctx.dims, ctx.keepdim), None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        x, y = ctx.saved_tensors
        share = _max_share(x, y, ctx.dims, ctx.keepdim)
        return (dx * share).sum(ctx.dims, keepdim=ctx.keepdim)  # dy = the maxima's mean change


class Amin(Amax):
    """y = min x over ``dims``: g goes to the minima, split evenly between ties (the rule of ``Amax``,
    whose share 1[x = y] / count(x = y) reads the extremum whichever it is)."""

    @staticmethod
    def forward(x, dims, keepdim):
        return torch.amin(x, dims, keepdim=keepdim)


class MaxDim(HandFunction):
    """(y, i) = the maximum of x along ``dim`` and where it is (the minimum with ``smallest``): g goes
    to that one element, the index torch returns, and nothing to the others: dL/dx = g at i, else 0."""

    @staticmethod
    def forward(x, dim, keepdim, smallest):
        # A plain tuple, not torch.return_types.max: vmap's generated rule matches the outputs' pytree to
        # their batch dims, and a structseq unpacked on the way no longer matches its own spec.
        return tuple((torch.min if smallest else torch.max)(x, dim, keepdim=keepdim))

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, ctx.keepdim, _ = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])
        ctx.save_for_forward(output[1])
        ctx.shape = x.shape

    @staticmethod
    def backward(ctx, g, _):
        (i,) = ctx.saved_tensors
        if not ctx.keepdim:
            g, i = g.unsqueeze(ctx.dim), i.unsqueeze(ctx.dim)
        return g.new_zeros(ctx.shape).scatter(ctx.dim, i, g), None, None, None     # dL/dx = g at i, 0 elsewhere

    @staticmethod
    def jvp(ctx, dx, *_):
        (i,) = ctx.saved_tensors
        index = i if ctx.keepdim else i.unsqueeze(ctx.dim)
        dy = dx.gather(ctx.dim, index)                                               # dy = dx at i
        return (dy if ctx.keepdim else dy.squeeze(ctx.dim)), None


class Var(HandFunction):
    """σ² = Σ (x − μ)² / (n − c) over ``dims``, c the correction (1: Bessel's)."""

    @staticmethod
    def forward(x, dims, correction, keepdim):
        return torch.var(x, dims, correction=correction, keepdim=keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dims, ctx.correction, ctx.keepdim = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        ctx.n = terms(x, output)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return var_backward(g, x, ctx.dims, ctx.correction, ctx.keepdim, ctx.n), None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        (x,) = ctx.saved_tensors
        slope = var_backward(torch.ones((), dtype=x.dtype, device=x.device), x, ctx.dims, ctx.correction, True, ctx.n)
        return (slope * dx).sum(ctx.dims, keepdim=ctx.keepdim)


def var_backward(g, x, dims, correction, keepdim, n):
    """dL/dx = g · 2 (x − μ) / (n − c). The term through μ vanishes: ∂σ²/∂μ = −2 Σ (x − μ) / (n − c) = 0."""
    centred = x - x.mean(dims, keepdim=True)
    scale = 2 / (n - correction) if n != correction else math.inf   # n = c: torch's 2.0 / 0, NaN or ±inf
    return unreduce(g, x.shape, dims, keepdim) * centred * scale


def _max_share(x, y, dims, keepdim):
    """1[x = y] / (number of x equal to y): each maximum's share of g."""
    at_max = (x == unreduce(y, x.shape, dims, keepdim)).to(x.dtype)
    return at_max / at_max.sum(dims, keepdim=True)


def amax_backward(g, x, y, dims, keepdim):
    """dL/dx = g 1[x = y] / count(x = y)."""
    return unreduce(g, x.shape, dims, keepdim) * _max_share(x, y, dims, keepdim)


# -- matrix products ----------------------------------------------------------------------------------


class Matmul(HandFunction):
    """y = a b, a (*, n, k), b (*, k, m), the batch dimensions * broadcast.

    y_ij = Σ_k a_ik b_kj, so dL/da_ik = Σ_j g_ij b_kj = (g bᵀ)_ik and dL/db_kj = Σ_i a_ik g_ij = (aᵀ g)_kj:
    the seed's dL/dx = g Wᵀ and dL/dW = xᵀ g, for every matrix of the batch, summed over the batch
    dimensions an input was broadcast along.
    """

    @staticmethod
    def forward(a, b):
        return torch.matmul(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        grad_a = sum_to(g @ b.mT, a.shape) if ctx.needs_input_grad[0] else None     # dL/da = g bᵀ, (*, n, k)
        grad_b = sum_to(a.mT @ g, b.shape) if ctx.needs_input_grad[1] else None     # dL/db = aᵀ g, (*, k, m)
        return grad_a, grad_b

    @staticmethod
    def jvp(ctx, da, db):
        return multilinear_jvp(torch.matmul, ctx.saved_tensors, (da, db))            # dy = da b + a db


class VectorNorm(HandFunction):
    """y = ‖x‖_p = (Σ |x|ᵖ)^(1/p) over ``dims`` (p = inf: max |x|)."""

    @staticmethod
    def forward(x, p, dims, keepdim):
        return torch.linalg.vector_norm(x, p, dims, keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.p, ctx.dims, ctx.keepdim = inputs
        ctx.save_for_backward(x, output)
        ctx.save_for_forward(x, output)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return norm_backward(g, x, y, ctx.p, ctx.dims, ctx.keepdim), None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        x, y = ctx.saved_tensors
        slope = norm_backward(torch.ones_like(y), x, y, ctx.p, ctx.dims, ctx.keepdim)
        return (slope * dx).sum(ctx.dims, keepdim=ctx.keepdim)               # dy = Σ ∂y/∂x dx


def norm_backward(g, x, y, p, dims, keepdim):
    """dL/dx = g ∂‖x‖/∂x: from y = (Σ |x|ᵖ)^(1/p), ∂y/∂x = sign(x) |x|ᵖ⁻¹ / yᵖ⁻¹ = sign(x) (|x| / y)ᵖ⁻¹.
    p = 2: g x / y; p = 1: g sign(x); p = inf: g sign(x) at the largest |x|, split between ties;
    where y = 0 the gradient is 0 (torch's choice of subgradient)."""
    g, y_ = unreduce(g, x.shape, dims, keepdim), unreduce(y, x.shape, dims, keepdim)
    if p == 0:
        return torch.zeros_like(x)
    if p == 1:
        return g * x.sgn()                                                  # dL/dx = g sign(x)
    if p == float("inf"):
        return g * x.sgn() * _max_share(x.abs(), y, dims, keepdim)          # g sign(x) 1[|x| = y] / count
    if p == 2:
        return torch.where(y_ == 0, 0.0, g * x / y_)                        # dL/dx = g x / ‖x‖
    return torch.where(y_ == 0, 0.0, g * x.sgn() * (x.abs() / y_).pow(p - 1))


def _einsum_parts(equation, shapes):
    """The equation with ``...`` spelled out and the output explicit: (input subscripts, output)."""
    equation = equation.replace(" ", "")
    lhs, arrow, out = equation.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum: the equation names {len(inputs)} operand(s), {len(shapes)} given")
    used = set(equation) - set(".,->")
    free = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
    ranks = [len(shape) - len(s.replace("...", "")) for s, shape in zip(inputs, shapes)]
    batch = "".join(free[:max([r for s, r in zip(inputs, ranks) if "..." in s] + [0])])
    inputs = [s.replace("...", batch[len(batch) - r:] if r else "") for s, r in zip(inputs, ranks)]
    if arrow:
        out = out.replace("...", batch)
    else:
        letters = "".join(inputs)
        out = batch + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in batch))
    return inputs, out


class Einsum(HandFunction):
    """y = einsum(inputs → out, A, B, ...): y is a sum of products, one factor from each operand.

    Each operand enters y linearly, so dL/dA is the same sum with A's place taken by g: for
    y_ik = Σ_j A_ij B_jk, dL/dA_ij = Σ_k g_ik B_jk = einsum(ik, jk → ij) (matmul's g Bᵀ). In
    general dL/dA = einsum(out, the other operands → A's subscripts), with A's indices that appear
    nowhere else (summed over A alone) expanded back, every element receiving the same g.
    """

    @staticmethod
    def forward(inputs, out, *operands):
        return torch.einsum(f"{','.join(inputs)}->{out}", *operands)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.inputs, ctx.out, *operands = inputs
        ctx.save_for_backward(*operands)
        ctx.save_for_forward(*operands)

    @staticmethod
    def backward(ctx, g):
        operands = ctx.saved_tensors
        return (None, None, *(einsum_backward(g, ctx.inputs, ctx.out, operands, i) if ctx.needs_input_grad[i + 2]
                              else None for i in range(len(operands))))

    @staticmethod
    def jvp(ctx, _, __, *tangents):
        equation = f"{','.join(ctx.inputs)}->{ctx.out}"                               # dy = Σ_i y(…, dAᵢ, …)
        return multilinear_jvp(functools.partial(torch.einsum, equation), ctx.saved_tensors, tangents)


def einsum_backward(g, inputs, out, operands, i):
    """dL/d operand i = einsum(out, the others → its subscripts), its lone indices expanded back."""
    mine, others = inputs[i], inputs[:i] + inputs[i + 1:]
    reachable = "".join(c for c in mine if c in out or any(c in o for o in others))
    grad = torch.einsum(f"{','.join([out, *others])}->{reachable}", g, *operands[:i], *operands[i + 1:])
    shape = operands[i].shape
    for axis, c in enumerate(mine):
        if c not in reachable:
            grad = grad.unsqueeze(axis)
    lone = [shape[axis] if c not in reachable else -1 for axis, c in enumerate(mine)]
    return sum_to(grad.expand(lone), shape)                  # a size-1 index broadcast in y: summed back


# -- the faces, as torch's ----------------------------------------------------------------------------


def _check(fn, input, other=None, other_name="other"):
    check_tensor(fn, "input", input)
    if other is not None and not isinstance(other, (Tensor, *NUMBER)):
        raise TypeError(f"{fn}: {other_name} must be a torch.Tensor or a number, got {type(other).__name__}")
    if isinstance(other, Tensor):
        try:
            torch.broadcast_shapes(input.shape, other.shape)
        except RuntimeError:
            raise RuntimeError(f"{fn}: input of shape {tuple(input.shape)} and {other_name} of shape "
                               f"{tuple(other.shape)} do not broadcast (each dimension, from the last, must be "
                               f"equal or 1)") from None


def add(input, other, *, alpha=1):
    """y = input + alpha · other, broadcasting, as ``torch.add``; ``other`` may be a number."""
    _check("add", input, other)
    return apply(Add, input, other, alpha)


def sub(input, other, *, alpha=1):
    """y = input − alpha · other, broadcasting, as ``torch.sub``."""
    _check("sub", input, other)
    return apply(Sub, input, other, alpha)


def mul(input, other):
    """y = input · other elementwise, broadcasting, as ``torch.mul``."""
    _check("mul", input, other)
    return apply(Mul, input, other)


def div(input, other, *, rounding_mode=None):
    """y = input / other elementwise, broadcasting, as ``torch.div``."""
    _check("div", input, other)
    if rounding_mode not in (None, "trunc", "floor"):
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    return apply(Div, input, other, rounding_mode)


def pow(input, exponent):
    """y = input ** exponent elementwise, broadcasting, as ``torch.pow``."""
    _check("pow", input, exponent, "exponent")
    return apply(Pow, input, exponent)


def maximum(input, other):
    """y = max(input, other) elementwise, as ``torch.maximum``."""
    check_tensor("maximum", "other", other)
    _check("maximum", input, other)
    return apply(Maximum, input, other)


def minimum(input, other):
    """y = min(input, other) elementwise, as ``torch.minimum``."""
    check_tensor("minimum", "other", other)
    _check("minimum", input, other)
    return apply(Minimum, input, other)


def where(condition, input, other):
    """y = input where condition, else other, as ``torch.where`` (input or other may be a number)."""
    check_tensor("where", "condition", condition)
    if condition.dtype != torch.bool:
        raise RuntimeError(f"where: condition must be a bool tensor, got {condition.dtype}")
    for name, value in (("input", input), ("other", other)):
        if not isinstance(value, (Tensor, *NUMBER)):
            raise TypeError(f"where: {name} must be a torch.Tensor or a number, got {type(value).__name__}")
    return apply(Where, condition, input, other)


def masked_fill(input, mask, value):
    """y = value where mask, else input, as ``torch.masked_fill``."""
    check_tensor("masked_fill", "input", input)
    check_tensor("masked_fill", "mask", mask)
    if mask.dtype != torch.bool:
        raise RuntimeError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}")
    if isinstance(value, Tensor) and value.dim() != 0:
        raise RuntimeError(f"masked_fill: value must be a number or a 0-d tensor, got a tensor of shape "
                           f"{tuple(value.shape)}")
    return apply(MaskedFill, input, mask, value)


def _unary(name, function):
    def face(input):
        check_tensor(name, "input", input)
        return apply(function, input)

    face.__name__ = face.__qualname__ = name
    face.__doc__ = f"y = {function.__doc__.strip()[2:]} elementwise, as ``torch.{name}``."
    return face


neg, exp, log, sqrt, rsqrt, abs = (_unary(name, f) for name, f in
                                   (("neg", Neg), ("exp", Exp), ("log", Log), ("sqrt", Sqrt), ("rsqrt", Rsqrt),
                                    ("abs", Abs)))


def clamp(input, min=None, max=None):
    """y = min(max(input, min), max) elementwise, as ``torch.clamp``, the bounds numbers."""
    check_tensor("clamp", "input", input)
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not isinstance(bound, NUMBER):
            raise TypeError(f"clamp: handgrad's {name} must be a number or None, got {type(bound).__name__} "
                            f"(for tensor bounds, handgrad.functional.maximum and minimum)")
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    return apply(Clamp, input, min, max)


def _reduction_dims(fn, input, dim):
    check_tensor(fn, "input", input)
    dims = _dims(dim, input.dim())
    bad = [d for d in ((dim,) if isinstance(dim, int) else dim or ()) if not -max(input.dim(), 1) <= d < max(input.dim(), 1)]
    if bad:
        raise IndexError(f"{fn}: dim {bad[0]} is out of range for a tensor of {input.dim()} dimension(s)")
    return dims


def sum(input, dim=None, keepdim=False, *, dtype=None):
    """y = Σ input over ``dim`` (every dimension by default), as ``torch.sum``."""
    return apply(Sum, input, _reduction_dims("sum", input, dim), keepdim, dtype)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    """y = the mean of input over ``dim`` (every dimension by default), as ``torch.mean``."""
    dims = _reduction_dims("mean", input, dim)
    if not (input.is_floating_point() or input.is_complex() or dtype is not None):
        raise RuntimeError(f"mean: input must be a floating-point tensor, got {input.dtype}")
    return apply(Mean, input, dims, keepdim, dtype)


def amax(input, dim=None, keepdim=False):
    """y = the maximum of input over ``dim`` (every dimension by default), as ``torch.amax``."""
    dims = _reduction_dims("amax", input, dim)
    empty = [d for d in dims if input.shape[d] == 0]
    if empty:
        raise IndexError(f"amax: input of shape {tuple(input.shape)} is empty along dim {empty[0]}: the maximum of "
                         f"no elements is undefined")
    return apply(Amax, input, dims, keepdim)


def amin(input, dim=None, keepdim=False):
    """y = the minimum of input over ``dim`` (every dimension by default), as ``torch.amin``."""
    dims = _reduction_dims("amin", input, dim)
    empty = [d for d in dims if input.shape[d] == 0]
    if empty:
        raise IndexError(f"amin: input of shape {tuple(input.shape)} is empty along dim {empty[0]}: the minimum of "
                         f"no elements is undefined")
    return apply(Amin, input, dims, keepdim)


def _extremum(fn, input, dim, keepdim, smallest):
    check_tensor(fn, "input", input)
    if isinstance(dim, Tensor):
        return (minimum if smallest else maximum)(input, dim)       # torch.max(a, b): elementwise
    if dim is None:
        if input.numel() == 0:
            raise RuntimeError(f"{fn}: input of shape {tuple(input.shape)} is empty: the {fn}imum of no elements is "
                               f"undefined (give dim to reduce along a dimension of size > 0)")
        return (amin if smallest else amax)(input)                  # all elements: g split between ties
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{fn}: dim must be an int, or other a tensor; got {type(dim).__name__}")
    d = (_reduction_dims(fn, input, dim) or (0,))[0]               # a 0-d input: dim 0 or -1, () here
    if input.dim() and input.shape[d] == 0:
        raise IndexError(f"{fn}: input of shape {tuple(input.shape)} is empty along dim {d}")
    values, indices = apply(MaxDim, input, d, keepdim, smallest)
    return (torch.return_types.min if smallest else torch.return_types.max)((values, indices))


def max_(input, dim=None, keepdim=False):
    """As ``torch.max``: the maximum of all elements (``max(x)``), the maximum along ``dim`` and its
    index (``max(x, dim)``, a ``(values, indices)`` pair), or the elementwise maximum (``max(x, y)``)."""
    return _extremum("max", input, dim, keepdim, False)


def min_(input, dim=None, keepdim=False):
    """As ``torch.min``: ``max``'s counterpart."""
    return _extremum("min", input, dim, keepdim, True)


def var(input, dim=None, *, correction=1, keepdim=False):
    """σ² of input over ``dim`` (every dimension by default), as ``torch.var``; ``correction`` 1
    divides by n − 1 (Bessel's), 0 by n."""
    dims = _reduction_dims("var", input, dim)
    if not input.is_floating_point():
        raise RuntimeError(f"var: input must be a floating-point tensor, got {input.dtype}")
    return apply(Var, input, dims, 1 if correction is None else correction, keepdim)


def _add_product(fn, dims, input, batch1, batch2, beta, alpha):
    """y = β input + α (batch1 @ batch2): the matmul, mul and add rules composed (dL/d input = β g
    summed to its shape, dL/d batch1 = α g batch2ᵀ, dL/d batch2 = α batch1ᵀ g)."""
    for name, t in (("input", input), ("mat1" if dims == 2 else "batch1", batch1),
                    ("mat2" if dims == 2 else "batch2", batch2)):
        check_tensor(fn, name, t)
    if batch1.dim() != dims or batch2.dim() != dims:
        raise RuntimeError(f"{fn}: the factors must be {dims}-D, got shapes {tuple(batch1.shape)} and "
                           f"{tuple(batch2.shape)}")
    input, batch1, batch2 = autocast(LOWER, input, batch1, batch2)     # autocast casts all three, as torch's
    product = matmul(batch1, batch2)
    try:
        torch.broadcast_shapes(input.shape, product.shape)
    except RuntimeError:
        raise RuntimeError(f"{fn}: input of shape {tuple(input.shape)} does not broadcast to the product's "
                           f"{tuple(product.shape)}") from None
    return add(product if alpha == 1 else mul(product, alpha), input, alpha=beta)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """y = β input + α mat1 mat2, as ``torch.addmm`` (input broadcast to (n, m))."""
    return _add_product("addmm", 2, input, mat1, mat2, beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """y = β input + α batch1 batch2, matrix by matrix, as ``torch.baddbmm``."""
    return _add_product("baddbmm", 3, input, batch1, batch2, beta, alpha)


def _var_call(input, *args, **kwargs):
    """torch.var's call forms: (input, dim, unbiased, keepdim), (input, unbiased), keywords."""
    if args and isinstance(args[0], bool):
        kwargs["unbiased"], args = args[0], args[1:]
    names = ["dim", "unbiased", "keepdim"]
    kwargs.update(zip(names, args))
    unbiased = kwargs.pop("unbiased", None)
    if unbiased is not None:
        kwargs["correction"] = int(unbiased)
    return var(input, **kwargs)


def matmul(input, other):
    """y = input @ other, as ``torch.matmul``: a matrix product, batched and broadcast over leading
    dimensions; a 1-D operand is a row (on the left) or a column (on the right), its dimension removed
    from the result."""
    check_tensor("matmul", "input", input)
    check_tensor("matmul", "other", other)
    if input.dim() == 0 or other.dim() == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got {input.dim()}D and {other.dim()}D")
    if input.shape[-1] != other.shape[-2 if other.dim() > 1 else -1]:
        raise RuntimeError(f"matmul: input of shape {tuple(input.shape)} and other of shape {tuple(other.shape)}: "
                           f"input's last dimension ({input.shape[-1]}) must equal other's "
                           f"{'second-to-last' if other.dim() > 1 else 'only'} ({other.shape[-2 if other.dim() > 1 else -1]})")
    input, other = autocast(LOWER, input, other)
    a = input.unsqueeze(0) if input.dim() == 1 else input          # a row (1, k)
    b = other.unsqueeze(-1) if other.dim() == 1 else other         # a column (k, 1)
    y = apply(Matmul, a, b)
    y = y.squeeze(-1) if other.dim() == 1 else y
    return y.squeeze(-2 if other.dim() > 1 else -1) if input.dim() == 1 else y


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """y = ‖input‖_p over ``dim`` (every dimension by default), as ``torch.norm`` for vector norms:
    p a number, inf, or "fro" (p = 2)."""
    check_tensor("norm", "input", input)
    p = 2 if p == "fro" else p
    if isinstance(p, str) or not isinstance(p, NUMBER) or p < 0:
        raise ValueError(f"norm: handgrad derives the vector norms, p a number ≥ 0, inf or 'fro'; got p={p!r}")
    if not input.is_floating_point():
        raise RuntimeError(f"norm: input must be a floating-point tensor, got {input.dtype}")
    dims = _reduction_dims("norm", input, dim)
    x = input if dtype is None else input.to(dtype)
    return apply(VectorNorm, x, p, dims, keepdim)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """y = x / max(‖x‖_p, ε) along ``dim``, as ``torch.nn.functional.normalize``: three rules (the
    norm, the clamp, the division) composed."""
    check_tensor("normalize", "input", input)
    return div(input, clamp(norm(input, p, dim, keepdim=True), eps))


def einsum(*args):
    """y = einsum(equation, *operands), as ``torch.einsum`` (the equation as a string; operands given
    one by one or as one list)."""
    if not args or not isinstance(args[0], str):
        raise TypeError("einsum: handgrad takes the equation as a string first: einsum('ij,jk->ik', a, b)")
    equation, operands = args[0], args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for i, t in enumerate(operands):
        check_tensor("einsum", f"operand {i}", t)
    inputs, out = _einsum_parts(equation, [t.shape for t in operands])
    repeated = [s for s in inputs if len(set(s)) != len(s)]
    if repeated:
        raise NotImplementedError(f"einsum: an index repeated within one operand ({repeated[0]!r}, a diagonal) "
                                  f"is not derived by handgrad")
    if any(len([s for s in inputs if c in s]) > 1 and c not in out for c in set("".join(inputs))):
        operands = autocast(LOWER, *operands)      # a contraction: torch runs it as bmm, which autocast casts
    return apply(Einsum, tuple(inputs), out, *operands)


def _einsum_accepts(*args):
    if not args or not isinstance(args[0], str):
        return False
    equation = args[0].replace(" ", "").partition("->")[0].replace("...", "")
    return all(len(set(s)) == len(s) for s in equation.split(","))


# -- in place: y written into the first input ---------------------------------------------------------


def _in_place(of, method, write):
    """``a.<method>(b, ...)``: ``of``'s op written into a, with ``of``'s rules. a is marked dirty; a rule
    that reads the old a gets it from the last input, a copy the face took before forward (None when
    no rule will need it)."""

    def forward(a, *rest):
        write(a, *rest[:-1])
        return a                                   # a itself: the output of an in-place op is its input

    def setup_context(ctx, inputs, output):
        a, *rest, original = inputs
        ctx.mark_dirty(a)
        of.setup_context(ctx, (a if original is None else original, *rest), output)

    def backward(ctx, g):
        return (*of.backward(ctx, g), None)

    def jvp(ctx, da, *tangents):
        dy = of.jvp(ctx, da, *tangents[:-1])
        return dy if da is None else da.copy_(dy)

    name = f"{of.__name__}InPlace"
    body = {key: staticmethod(f) for key, f in (("forward", forward), ("setup_context", setup_context),
                                                ("backward", backward), ("jvp", jvp))}
    return type(name, (HandFunction,), {**body, "__module__": __name__, "__qualname__": name,
                                       "__doc__": f"a.{method}(...) in place: {of.__doc__}"})


AddInPlace = _in_place(Add, "add_", lambda a, b, alpha: a.add_(b, alpha=alpha))
SubInPlace = _in_place(Sub, "sub_", lambda a, b, alpha: a.sub_(b, alpha=alpha))
MulInPlace = _in_place(Mul, "mul_", lambda a, b: a.mul_(b))
DivInPlace = _in_place(Div, "div_", lambda a, b, mode: a.div_(b, rounding_mode=mode))


def _apply_in_place(function, reads_a, a, *rest):
    """Apply an in-place Function; ``reads_a``: whether a rule reads the old a (then kept as a copy)."""
    original = a.clone() if reads_a and any(isinstance(t, Tensor) and t.requires_grad for t in rest) else None
    return apply(function, a, *rest, original)


def add_(input, other, *, alpha=1):
    """input += alpha · other, in place, as ``Tensor.add_``."""
    _check("add_", input, other)
    return _apply_in_place(AddInPlace, False, input, other, alpha)


def sub_(input, other, *, alpha=1):
    """input −= alpha · other, in place, as ``Tensor.sub_``."""
    _check("sub_", input, other)
    return _apply_in_place(SubInPlace, False, input, other, alpha)


def mul_(input, other):
    """input *= other, in place, as ``Tensor.mul_``."""
    _check("mul_", input, other)
    return _apply_in_place(MulInPlace, True, input, other)


def div_(input, other, *, rounding_mode=None):
    """input /= other, in place, as ``Tensor.div_``."""
    _check("div_", input, other)
    return _apply_in_place(DivInPlace, False, input, other, rounding_mode)


# -- the table ----------------------------------------------------------------------------------------

BROADCAST = "a, b broadcastable; y their broadcast shape"
SAME = "(*) → (*)"


def _swapped(function, *options):
    """``other ∘ self``, for the reflected operators (``2 - x`` calls ``x.__rsub__(2)``)."""
    return lambda self, other: apply(function, other, self, *options)


register(Op(
    "add", add, (Add, AddInPlace),
    Derivative("y = a + α b", "dL/da = g, dL/db = α g, each summed over the dimensions it was broadcast along",
               BROADCAST),
    fused_by="the tensor algebra",
    intercepts={torch.add: None, Tensor.add: None, Tensor.__add__: None, Tensor.__radd__: None,
                Tensor.add_: add_, Tensor.__iadd__: add_},
))
register(Op(
    "sub", sub, (Sub, SubInPlace),
    Derivative("y = a − α b", "dL/da = g, dL/db = −α g, summed as for add", BROADCAST),
    fused_by="the tensor algebra",
    intercepts={torch.sub: None, torch.subtract: None, Tensor.sub: None, Tensor.__sub__: None,
                Tensor.__rsub__: _swapped(Sub, 1), Tensor.sub_: sub_, Tensor.__isub__: sub_},
))
register(Op(
    "mul", mul, (Mul, MulInPlace),
    Derivative("y = a b", "dL/da = g b, dL/db = g a, summed as for add", BROADCAST),
    fused_by="the tensor algebra",
    intercepts={torch.mul: None, torch.multiply: None, Tensor.mul: None, Tensor.__mul__: None,
                Tensor.__rmul__: None, Tensor.mul_: mul_, Tensor.__imul__: mul_},
))
register(Op(
    "div", div, (Div, DivInPlace),
    Derivative("y = a / b", "dL/da = g / b, dL/db = −g y / b, summed as for add", BROADCAST),
    fused_by="the tensor algebra",
    intercepts={torch.div: None, torch.divide: None, torch.true_divide: None, Tensor.div: None,
                Tensor.__truediv__: None, Tensor.__rtruediv__: _swapped(Div, None), Tensor.div_: div_,
                Tensor.__itruediv__: div_},
))
register(Op(
    "pow", pow, (Pow,),
    Derivative("y = aᵇ", "dL/da = g b aᵇ⁻¹, dL/db = g y log a", BROADCAST),
    fused_by="the tensor algebra",
    intercepts={torch.pow: None, Tensor.pow: None, Tensor.__pow__: None, Tensor.__rpow__: _swapped(Pow)},
))
register(Op(
    "maximum", maximum, (Maximum,),
    Derivative("y = max(a, b)", "dL/da = g 1[a > b], dL/db = g 1[b > a], g / 2 each at a tie", BROADCAST),
    fused_by="the tensor algebra", intercepts={torch.maximum: None, Tensor.maximum: None},
))
register(Op(
    "minimum", minimum, (Minimum,),
    Derivative("y = min(a, b)", "dL/da = g 1[a < b], dL/db = g 1[b < a], g / 2 each at a tie", BROADCAST),
    fused_by="the tensor algebra", intercepts={torch.minimum: None, Tensor.minimum: None},
))
register(Op(
    "where", where, (Where,),
    Derivative("y = a where c, else b", "dL/da = g 1[c], dL/db = g 1[¬c]", "c, a, b broadcastable"),
    fused_by="the tensor algebra",
    intercepts={torch.where: None, Tensor.where: lambda self, condition, other: where(condition, self, other)},
))
register(Op(
    "masked_fill", masked_fill, (MaskedFill,),
    Derivative("y = v where m, else x", "dL/dx = g 1[¬m], dL/dv = Σ g 1[m]", "x (*), m broadcastable to (*)"),
    fused_by="the tensor algebra", intercepts={torch.masked_fill: None, Tensor.masked_fill: None},
))
for _name, _face, _function, _forward, _backward in (
        ("neg", neg, Neg, "y = −x", "dL/dx = −g"),
        ("exp", exp, Exp, "y = eˣ", "dL/dx = g y"),
        ("log", log, Log, "y = log x", "dL/dx = g / x"),
        ("sqrt", sqrt, Sqrt, "y = √x", "dL/dx = g / 2y"),
        ("rsqrt", rsqrt, Rsqrt, "y = 1/√x", "dL/dx = −½ g y³"),
        ("abs", abs, Abs, "y = |x|", "dL/dx = g sign(x)")):
    register(Op(_name, _face, (_function,), Derivative(_forward, _backward, SAME), fused_by="the tensor algebra",
                intercepts={getattr(torch, _name): None, getattr(Tensor, _name): None,
                            **({Tensor.__neg__: None} if _name == "neg" else {}),
                            **({Tensor.__abs__: None} if _name == "abs" else {})}))
register(Op(
    "clamp", clamp, (Clamp,),
    Derivative("y = min(max(x, lo), hi)", "dL/dx = g 1[lo < x < hi]", SAME),
    fused_by="the tensor algebra",
    intercepts={torch.clamp: None, torch.clip: None, Tensor.clamp: None, Tensor.clip: None,
                **dict.fromkeys((torch.clamp_min, Tensor.clamp_min), lambda input, min: clamp(input, min)),
                **dict.fromkeys((torch.clamp_max, Tensor.clamp_max), lambda input, max: clamp(input, None, max))},
    accepts=lambda *args, **kwargs: all(isinstance(b, (*NUMBER, type(None))) for b in (*args[1:], *kwargs.values())),
))
register(Op(
    "sum", sum, (Sum,),
    Derivative("y = Σ x", "dL/dx = g, expanded along the summed dimensions", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.sum: None, Tensor.sum: None},
))
register(Op(
    "mean", mean, (Mean,),
    Derivative("y = Σ x / n", "dL/dx = g / n, expanded along the averaged dimensions", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.mean: None, Tensor.mean: None},
))
register(Op(
    "amax", amax, (Amax,),
    Derivative("y = max x", "dL/dx = g 1[x = y] / count(x = y)", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.amax: None, Tensor.amax: None},
))
register(Op(
    "amin", amin, (Amin,),
    Derivative("y = min x", "dL/dx = g 1[x = y] / count(x = y)", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.amin: None, Tensor.amin: None},
))
register(Op(
    "max", max_, (Amax, MaxDim, Maximum),
    Derivative("y = max x, along dim with its index i, or max(a, b)",
               "dL/dx = g at i along dim; g 1[x = y] / count(x = y) over all; as maximum for two tensors",
               "(*) → (), (*) without dim, or broadcast"),
    fused_by="the tensor algebra", intercepts={torch.max: None, Tensor.max: None},
))
register(Op(
    "min", min_, (Amin, MaxDim, Minimum),
    Derivative("y = min x, along dim with its index i, or min(a, b)", "as max's, at the minimum",
               "(*) → (), (*) without dim, or broadcast"),
    fused_by="the tensor algebra", intercepts={torch.min: None, Tensor.min: None},
))
register(Op(
    "addmm", addmm, (Matmul, Mul, Add),
    Derivative("y = β c + α a b", "dL/dc = β g, dL/da = α g bᵀ, dL/db = α aᵀ g: matmul's, mul's and add's rules",
               "c broadcast to (n, m), a (n, k), b (k, m)"),
    fused_by="the tensor algebra", intercepts={torch.addmm: None, Tensor.addmm: None},
))
register(Op(
    "baddbmm", baddbmm, (Matmul, Mul, Add),
    Derivative("y = β c + α a b, per matrix", "as addmm's, for each matrix of the batch",
               "c broadcast to (B, n, m), a (B, n, k), b (B, k, m)"),
    fused_by="the tensor algebra", intercepts={torch.baddbmm: None, Tensor.baddbmm: None},
))
register(Op(
    "var", var, (Var,),
    Derivative("σ² = Σ (x − μ)² / (n − c)", "dL/dx = g · 2 (x − μ) / (n − c)", "(*) → (*) without dim"),
    fused_by="the tensor algebra", intercepts={torch.var: _var_call, Tensor.var: _var_call},
))
register(Op(
    "matmul", matmul, (Matmul,),
    Derivative("y = a b", "dL/da = g bᵀ, dL/db = aᵀ g, summed over broadcast batch dimensions",
               "a (*, n, k), b (*, k, m) → (*, n, m)"),
    fused_by="the tensor algebra",
    intercepts={torch.matmul: None, Tensor.matmul: None, Tensor.__matmul__: None,
                Tensor.__rmatmul__: lambda self, other: matmul(other, self),
                torch.mm: None, Tensor.mm: None, torch.bmm: None, Tensor.bmm: None},
))
register(Op(
    "norm", norm, (VectorNorm,),
    Derivative("y = ‖x‖ₚ = (Σ |x|ᵖ)^(1/p)", "dL/dx = g sign(x) (|x| / y)ᵖ⁻¹ (p = 2: g x / y)", "(*) → (*) without dim"),
    fused_by="the tensor algebra",
    intercepts={torch.norm: None, Tensor.norm: None,
                torch.linalg.vector_norm: lambda x, ord=2, dim=None, keepdim=False, *, dtype=None:
                    norm(x, ord, dim, keepdim, dtype)},
    accepts=lambda input, p="fro", *args, **kwargs: p == "fro" or isinstance(p, NUMBER),
))
register(Op(
    "normalize", normalize, (VectorNorm, Clamp, Div),
    Derivative("y = x / max(‖x‖ₚ, ε)", "the norm's, the clamp's and the division's rules, composed", "(*) → (*)"),
    fused_by="the tensor algebra",
    intercepts={torch.nn.functional.normalize: lambda input, p=2.0, dim=1, eps=1e-12, out=None:
                normalize(input, p, dim, eps)},
    accepts=lambda *args, out=None, **kwargs: out is None,
))
register(Op(
    "einsum", einsum, (Einsum,),
    Derivative("y = einsum(A, B, ...)", "dL/dA = einsum(g, the other operands → A's indices)", "as the equation says"),
    fused_by="the tensor algebra", intercepts={torch.einsum: None}, accepts=_einsum_accepts,
))

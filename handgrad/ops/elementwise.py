"""The elementwise algebra, by hand: the rules every model composes between its layers.

Each elementwise op is one ``Pointwise`` class: its forward, and one rule per input,
``rule(g, *inputs, y) = g ∘ ∂y/∂input``, in the seed's notation (g = dL/dy). Backward sums each
input's rule back to the input's shape, forward mode adds the rules applied to the tangents
(``handgrad.ops._function.Pointwise``).

Broadcasting. ``a`` of shape (N, L, E) plus ``b`` of shape (L, E) (or (E), or a number) adds the same
b to every row: y_nlj = a_nlj + b_lj. So dL/da_nlj = g_nlj, and b_lj, used N times, receives
dL/db_lj = Σ_n g_nlj: each input's gradient is g summed over the dimensions it was broadcast along
(``sum_to``), the same for every broadcasting op.

In place. ``a += b``, ``a.add_(b)``, ``a.mul_(b)`` write y into a, as torch's do: the Function marks
a dirty, so autograd counts a as y from then on; a rule that reads the old a gets a copy of it taken
before (``_in_place``).
"""

import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import HandFunction, Pointwise, apply
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

    saves = (0, 1)

    @staticmethod
    def forward(a, b, rounding_mode):
        if not isinstance(a, Tensor):
            return torch.reciprocal(b) * a if rounding_mode is None else torch.div(torch.full_like(b, a), b,
                                                                                  rounding_mode=rounding_mode)
        return torch.div(a, b, rounding_mode=rounding_mode)

    rules = (lambda g, a, b, mode, y: g / b if mode is None else torch.zeros_like(g),        # dL/da = g / b
             lambda g, a, b, mode, y: -g * a / (b * b) if mode is None else torch.zeros_like(g))  # dL/db = −g a / b²


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


class Reciprocal(Pointwise):
    """y = 1/x."""

    saves = ("y",)

    @staticmethod
    def forward(x):
        return torch.reciprocal(x)

    rules = (lambda g, x, y: -g * y * y,)                           # dL/dx = −g / x² = −g y²


class Square(Pointwise):
    """y = x², mul's rule with x in both places (one Function applied to one tensor twice is what
    torch.compile refuses, so not mul(x, x))."""

    saves = (0,)

    @staticmethod
    def forward(x):
        return torch.square(x)

    rules = (lambda g, x, y: 2 * g * x,)                            # dL/dx = g x + x g = 2 g x


class Step(Pointwise):
    """A step function (sign, floor, ceil, round, trunc): flat between its jumps, so dL/dx = 0 (torch's
    value at a jump too)."""

    rules = (lambda g, x, *options: torch.zeros_like(g),)           # dL/dx = 0


def _step(name, *options):
    """The Step of ``torch.<name>``."""
    function = getattr(torch, name)
    return type(name.capitalize(), (Step,), {"forward": staticmethod(lambda x, *o: function(x, *o)),
                                             "__module__": __name__, "__qualname__": name.capitalize(),
                                             "__doc__": f"y = {name}(x), a step: dL/dx = 0."})


Sign, Floor, Ceil, Trunc = (_step(name) for name in ("sign", "floor", "ceil", "trunc"))


class Round(Step):
    """y = x rounded to ``decimals`` decimal places (half to even), a step: dL/dx = 0."""

    @staticmethod
    def forward(x, decimals):
        return torch.round(x, decimals=decimals)


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


def _bound_shares(x, lo, hi):
    """(w_lo, w_hi, crossed): how much of g each tensor bound takes, as torch's clamp divides it. A bound
    the output equals takes g, x beyond it; at x equal to a bound (the bounds apart), half each; where
    lo > hi the output is hi whatever x, which takes all of it. A None bound takes nothing."""
    apart = True if lo is None or hi is None else lo < hi
    w_lo = 0.0 if lo is None else (x < lo).to(x.dtype) + 0.5 * ((x == lo) & apart).to(x.dtype)
    w_hi = 0.0 if hi is None else (x > hi).to(x.dtype) + 0.5 * ((x == hi) & apart).to(x.dtype)
    crossed = None if lo is None or hi is None else lo > hi
    return w_lo, w_hi, crossed


def _clamp_bounds_rule(which):
    def rule(g, x, lo, hi, y):
        w_lo, w_hi, crossed = _bound_shares(x, lo, hi)
        share = {"x": 1 - w_lo - w_hi, "lo": w_lo, "hi": w_hi}[which]
        if crossed is not None:
            share = torch.where(crossed, 1.0 if which == "hi" else 0.0, share)
        return g * share
    rule.__name__ = f"clamp_{which}_rule"
    return rule


class ClampBounds(Pointwise):
    """y = min(max(x, lo), hi), the bounds tensors (either None), broadcast: g goes to whichever of
    x, lo and hi the output is (dL/dx = g 1[lo < x < hi], dL/dlo = g 1[x < lo], dL/dhi = g 1[x > hi]),
    halved between x and a bound it equals, all of it to hi where lo > hi."""

    saves = (0, 1, 2)

    @staticmethod
    def forward(x, lo, hi):
        return torch.clamp(x, lo, hi)

    rules = (_clamp_bounds_rule("x"), _clamp_bounds_rule("lo"), _clamp_bounds_rule("hi"))


# -- the faces, as torch's ----------------------------------------------------------------------------


def check_operands(fn, input, other=None, other_name="other"):
    """input a tensor; other (when given) a tensor or a number that broadcasts with it."""
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


def check_tensor_operands(fn, input, other):
    """input and other both tensors that broadcast together: the binary ops that take no number."""
    check_tensor(fn, "other", other)
    check_operands(fn, input, other)


def add(input, other, *, alpha=1):
    """y = input + alpha · other, broadcasting, as ``torch.add``; ``other`` may be a number."""
    check_operands("add", input, other)
    return apply(Add, input, other, alpha)


def sub(input, other, *, alpha=1):
    """y = input − alpha · other, broadcasting, as ``torch.sub``."""
    check_operands("sub", input, other)
    return apply(Sub, input, other, alpha)


def mul(input, other):
    """y = input · other elementwise, broadcasting, as ``torch.mul``."""
    check_operands("mul", input, other)
    return apply(Mul, input, other)


def div(input, other, *, rounding_mode=None):
    """y = input / other elementwise, broadcasting, as ``torch.div``."""
    check_operands("div", input, other)
    if rounding_mode not in (None, "trunc", "floor"):
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    return apply(Div, input, other, rounding_mode)


def pow(input, exponent):
    """y = input ** exponent elementwise, broadcasting, as ``torch.pow``."""
    check_operands("pow", input, exponent, "exponent")
    return apply(Pow, input, exponent)


def maximum(input, other):
    """y = max(input, other) elementwise, as ``torch.maximum``."""
    check_tensor_operands("maximum", input, other)
    return apply(Maximum, input, other)


def minimum(input, other):
    """y = min(input, other) elementwise, as ``torch.minimum``."""
    check_tensor_operands("minimum", input, other)
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


neg, exp, log, sqrt, rsqrt, abs, reciprocal, square, sign, floor, ceil, trunc = (
    _unary(name, f) for name, f in (("neg", Neg), ("exp", Exp), ("log", Log), ("sqrt", Sqrt), ("rsqrt", Rsqrt),
                                    ("abs", Abs), ("reciprocal", Reciprocal), ("square", Square), ("sign", Sign),
                                    ("floor", Floor), ("ceil", Ceil), ("trunc", Trunc)))


def round(input, *, decimals=0):
    """y = input rounded to ``decimals`` decimal places (half to even), as ``torch.round``."""
    check_tensor("round", "input", input)
    if not isinstance(decimals, int) or isinstance(decimals, bool):
        raise TypeError(f"round: decimals must be an int, got {type(decimals).__name__}")
    return apply(Round, input, decimals)


# -- compositions: a line each, their gradients the rules above -----------------------------------------


def addcmul(input, tensor1, tensor2, *, value=1):
    """y = input + value · tensor1 · tensor2, broadcasting, as ``torch.addcmul``: add ∘ mul."""
    for name, t in (("input", input), ("tensor1", tensor1), ("tensor2", tensor2)):
        check_tensor("addcmul", name, t)
    return add(input, mul(tensor1, tensor2), alpha=value)


def addcdiv(input, tensor1, tensor2, *, value=1):
    """y = input + value · tensor1 / tensor2, broadcasting, as ``torch.addcdiv``: add ∘ div."""
    for name, t in (("input", input), ("tensor1", tensor1), ("tensor2", tensor2)):
        check_tensor("addcdiv", name, t)
    return add(input, div(tensor1, tensor2), alpha=value)


def lerp(input, end, weight):
    """y = input + weight · (end − input), as ``torch.lerp``; ``weight`` a number (add's α) or a tensor
    (a product): add ∘ sub, and mul for a tensor weight."""
    check_tensor("lerp", "input", input)
    check_tensor("lerp", "end", end)
    check_operands("lerp", input, end, "end")
    if isinstance(weight, Tensor):
        return add(input, mul(weight, sub(end, input)))
    if not isinstance(weight, NUMBER):
        raise TypeError(f"lerp: weight must be a number or a torch.Tensor, got {type(weight).__name__}")
    return add(input, sub(end, input), alpha=weight)


def clamp(input, min=None, max=None):
    """y = min(max(input, min), max) elementwise, as ``torch.clamp``: the bounds both numbers (or None),
    or both tensors (or None), broadcast, whose rules give a bound the gradient where it is the output
    and split g at a tie, as torch's."""
    check_tensor("clamp", "input", input)
    bounds = [b for b in (min, max) if b is not None]
    if not bounds:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not isinstance(bound, (Tensor, *NUMBER)):
            raise TypeError(f"clamp: {name} must be a number, a tensor or None, got {type(bound).__name__}")
    if all(isinstance(b, NUMBER) for b in bounds):
        return apply(Clamp, input, min, max)
    if not all(isinstance(b, Tensor) for b in bounds):
        raise TypeError("clamp: min and max must both be numbers or both be tensors (or None), got "
                        f"{type(min).__name__} and {type(max).__name__}")
    for name, bound in (("min", min), ("max", max)):
        if bound is not None:
            check_operands("clamp", input, bound, name)
    return apply(ClampBounds, input, min, max)


def _clamp_accepts(input, *args, **kwargs):
    """Bounds torch takes: both numbers or both tensors (or None); a mix is torch's own error."""
    bounds = [b for b in (*args, *kwargs.values()) if b is not None]
    return all(isinstance(b, NUMBER) for b in bounds) or all(isinstance(b, Tensor) for b in bounds)


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
    check_operands("add_", input, other)
    return _apply_in_place(AddInPlace, False, input, other, alpha)


def sub_(input, other, *, alpha=1):
    """input −= alpha · other, in place, as ``Tensor.sub_``."""
    check_operands("sub_", input, other)
    return _apply_in_place(SubInPlace, False, input, other, alpha)


def mul_(input, other):
    """input *= other, in place, as ``Tensor.mul_``."""
    check_operands("mul_", input, other)
    return _apply_in_place(MulInPlace, True, input, other)


def div_(input, other, *, rounding_mode=None):
    """input /= other, in place, as ``Tensor.div_``."""
    check_operands("div_", input, other)
    return _apply_in_place(DivInPlace, True, input, other, rounding_mode)     # dL/db reads the old a


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
        ("abs", abs, Abs, "y = |x|", "dL/dx = g sign(x)"),
        ("reciprocal", reciprocal, Reciprocal, "y = 1/x", "dL/dx = −g y²"),
        ("square", square, Square, "y = x²", "dL/dx = 2 g x: mul's rule, x in both places"),
        ("sign", sign, Sign, "y = sign(x)", "dL/dx = 0, a step"),
        ("floor", floor, Floor, "y = ⌊x⌋", "dL/dx = 0, a step"),
        ("ceil", ceil, Ceil, "y = ⌈x⌉", "dL/dx = 0, a step"),
        ("trunc", trunc, Trunc, "y = x rounded toward 0", "dL/dx = 0, a step"),
        ("round", round, Round, "y = x rounded (to decimals places)", "dL/dx = 0, a step")):
    register(Op(_name, _face, (_function,), Derivative(_forward, _backward, SAME), fused_by="the tensor algebra",
                intercepts={getattr(torch, _name): None, getattr(Tensor, _name): None,
                            **({Tensor.__neg__: None} if _name == "neg" else {}),
                            **({Tensor.__abs__: None} if _name == "abs" else {}),
                            **({torch.fix: None, Tensor.fix: None} if _name == "trunc" else {})}))
register(Op(
    "addcmul", addcmul, (Mul, Add),
    Derivative("y = c + v a b", "dL/dc = g, dL/da = v g b, dL/db = v g a: add's and mul's rules",
               "c, a, b broadcastable"),
    fused_by="the tensor algebra", intercepts={torch.addcmul: None, Tensor.addcmul: None},
))
register(Op(
    "addcdiv", addcdiv, (Div, Add),
    Derivative("y = c + v a / b", "dL/dc = g, dL/da = v g / b, dL/db = −v g a / b²: add's and div's rules",
               "c, a, b broadcastable"),
    fused_by="the tensor algebra", intercepts={torch.addcdiv: None, Tensor.addcdiv: None},
))
register(Op(
    "lerp", lerp, (Sub, Add, Mul),
    Derivative("y = a + w (b − a)", "dL/da = (1 − w) g, dL/db = w g, dL/dw = g (b − a): add's, sub's and mul's rules",
               "a, b, w broadcastable"),
    fused_by="the tensor algebra", intercepts={torch.lerp: None, Tensor.lerp: None},
))
register(Op(
    "clamp", clamp, (Clamp, ClampBounds),
    Derivative("y = min(max(x, lo), hi)",
               "dL/dx = g 1[lo < x < hi]; tensor bounds: dL/dlo = g 1[x < lo], dL/dhi = g 1[x > hi] (½ each at a tie, "
               "all to hi where lo > hi)", "x, lo, hi broadcastable"),
    fused_by="the tensor algebra",
    intercepts={torch.clamp: None, torch.clip: None, Tensor.clamp: None, Tensor.clip: None,
                **dict.fromkeys((torch.clamp_min, Tensor.clamp_min), lambda input, min: clamp(input, min)),
                **dict.fromkeys((torch.clamp_max, Tensor.clamp_max), lambda input, max: clamp(input, None, max))},
    accepts=_clamp_accepts,
))

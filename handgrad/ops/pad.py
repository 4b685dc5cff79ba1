"""Padding, in the four modes of ``torch.nn.functional.pad``: one rule, four maps of positions.

Notation: x the input, y the padded output, g = dL/dy. ``pad`` = (before, after) for the last axis,
then the one before it, and so on; a negative amount cuts rows off instead. Along a padded axis of
size n, output row o stands for input row j = o − before, and reads x at idx(j):

- constant: idx(j) = j for 0 ≤ j < n; outside, no row of x (y holds ``value`` there);
- reflect:  the row mirrored about the edge, the edge itself not repeated: n − 1 − |n − 1 − |j||;
- replicate: the nearest edge row: min(max(j, 0), n − 1);
- circular: the row one period away, j mod n (where an amount is negative, torch cuts those rows
  first and wraps around what is left: a period of n − the rows cut).

Every mode is a gather, y[o₁, ..., oₖ] = x[idx(o₁), ..., idx(oₖ)] along the padded axes, linear in x
(``value`` aside). So its gradient gives each input row what every output row that read it
received:

    dL/dx[i] = Σ_{o : idx(o) = i} g[o]

taken one axis at a time: the *fold* of g back onto x. For constant padding it cuts g back to x's
rows (a constant padding of g by −pad); for reflect padding it adds the mirrored border back onto
the interior rows it mirrors; for replicate padding it sums the whole border onto the edge row;
for circular padding it adds each wrapped border onto the far end. The fold is linear in g, and its
own derivative is the same gather with value 0, the padding of the gradient from above: ``Pad``
and ``PadFold`` are each other's backward, at every order.
"""

import numbers

import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, Op, register

MODES = ("constant", "reflect", "replicate", "circular")


def source_rows(mode, n, before, after, device):
    """idx(o − before) for every output row o of an axis of size n (see the module docstring)."""
    if mode == "circular":                                   # the rows cut first, the rest wrapped around
        start, end = max(-before, 0), n - max(-after, 0)
        j = torch.arange(-max(before, 0), end - start + max(after, 0), device=device)
        return start + j.remainder(end - start)
    j = torch.arange(-before, n + after, device=device)
    if mode == "reflect":
        return (n - 1) - ((n - 1) - j.abs()).abs()
    return j.clamp(0, n - 1)                                 # replicate


def fold(g, pad, mode, shape):
    """dL/dx = Σ_{o : idx(o) = i} g[o] (x of ``shape``): g cut back to x's rows in constant mode;
    otherwise, axis by axis from the last, each output row's g added onto the row it read."""
    if mode == "constant":
        return torch.nn.functional.pad(g, [-p for p in pad])
    for k in range(len(pad) // 2):
        axis, n = g.dim() - 1 - k, shape[-1 - k]
        rows = source_rows(mode, n, pad[2 * k], pad[2 * k + 1], g.device)
        g = g.new_zeros(*g.shape[:axis], n, *g.shape[axis + 1:]).index_add(axis, rows, g)
    return g


class Pad(HandFunction):
    """y = x gathered at idx along the padded axes (``value`` where constant padding reads no row).
    A copy: under ``memory="lean"``, made again in backward where the next layer keeps it (a Conv's
    padded input) and x is kept anyway."""

    recomputable = True

    @staticmethod
    def forward(x, pad, mode, value):
        return torch.nn.functional.pad(x, pad, mode, value)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.pad, ctx.mode, _ = inputs
        ctx.shape = tuple(x.shape)

    @staticmethod
    def backward(ctx, g):
        """dL/dx = fold(g): each output row's g added onto the input row it read."""
        return apply(PadFold, g, ctx.pad, ctx.mode, ctx.shape), None, None, None        # x's shape

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: y is x gathered (plus a constant), so dy is dx gathered, with zeros for value."""
        return torch.nn.functional.pad(dx, ctx.pad, ctx.mode, None if ctx.mode != "constant" else 0.0)


class PadFold(HandFunction):
    """x̄ = fold(g), of ``shape``: ``Pad``'s dL/dx as a Function of g, so that its own gradient is
    hand-derived. Linear in g, with ⟨h, fold(g)⟩ = ⟨pad(h), g⟩ (value 0) for the gradient h = dL/dx̄
    arriving from above: dL/dg = pad(h), the same gather."""

    @staticmethod
    def forward(g, pad, mode, shape):
        return fold(g, pad, mode, shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.pad, ctx.mode, ctx.shape = inputs

    @staticmethod
    def backward(ctx, h):
        return apply(Pad, h, ctx.pad, ctx.mode, None if ctx.mode != "constant" else 0.0), None, None, None

    @staticmethod
    def jvp(ctx, dg, *_):
        """Forward mode: fold is linear, so dx̄ = fold(dg)."""
        return fold(dg, ctx.pad, ctx.mode, ctx.shape)


# -- functional face -------------------------------------------------------------------------------


def _check_pad(input, pad, mode, value):
    """The padding as a tuple of ints, checked against the input and the mode as torch checks it."""
    values = tuple(pad) if isinstance(pad, (tuple, list, torch.Size)) else None
    if values is None or not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in values):
        raise TypeError(f"pad: pad must be a tuple of ints (before, after for the last axis, then the one before it, "
                        f"...), got {pad!r}")
    pad = tuple(int(p) for p in values)
    if mode not in MODES:
        raise NotImplementedError(f"pad: mode must be one of {MODES}, got {mode!r}")
    if len(pad) % 2:
        raise RuntimeError(f"pad: the padding length must be divisible by 2 (a pair per axis), got {pad} of length "
                           f"{len(pad)}")
    axes = len(pad) // 2
    if axes > input.dim():
        raise RuntimeError(f"pad: the padding length must be at most twice the input's dimension: {pad} pads {axes} "
                           f"axes of an input of shape {tuple(input.shape)}")
    if mode != "constant":
        if value is not None:
            raise RuntimeError(f"pad: mode {mode!r} takes no value argument (got value={value!r}); only 'constant' "
                               f"padding fills with a value")
        if axes not in (1, 2, 3) or input.dim() not in (axes + 1, axes + 2):
            raise NotImplementedError(
                f"pad: {mode} padding pads the last 1, 2 or 3 axes of an input with one or two more (a batch and "
                f"channels, or channels): a padding of length {len(pad)} takes a {axes + 1}-D or {axes + 2}-D input, "
                f"got shape {tuple(input.shape)}")
    if mode in ("reflect", "replicate") and 0 in input.shape[input.dim() - axes - 1:]:
        raise RuntimeError(f"pad: {mode} padding takes non-zero sizes but for the batch's (the first of "
                           f"{axes + 2} axes), got shape {tuple(input.shape)}")
    smallest = 1 if mode in ("reflect", "replicate") else 0
    for k in range(axes):
        n, before, after = input.shape[-1 - k], pad[2 * k], pad[2 * k + 1]
        axis = input.dim() - 1 - k
        if mode == "reflect" and max(before, after) >= n:
            raise RuntimeError(f"pad: reflect padding must be less than the size of the axis it pads: {(before, after)} "
                               f"along axis {axis} of size {n} (input {tuple(input.shape)})")
        kept = n + min(before, 0) + min(after, 0)            # circular padding wraps around the rows not cut
        if mode == "circular" and max(before, after) > kept:
            raise RuntimeError(f"pad: circular padding must be at most the size of the axis it pads, less what it "
                               f"cuts (it would wrap around more than once): {(before, after)} along axis {axis} "
                               f"of size {n}")
        if n + before + after < smallest:
            raise RuntimeError(f"pad: the padding {(before, after)} leaves {n + before + after} of the {n} rows of "
                               f"axis {axis} (input {tuple(input.shape)}); {mode} padding must leave at least "
                               f"{smallest}")
    return pad


def pad(input, pad, mode="constant", value=None):
    """y = x padded (or cut, where an amount is negative) along its last len(pad) / 2 axes, as
    ``torch.nn.functional.pad``: with ``value`` (default 0), or the rows reflected about the edge,
    replicated from it, or wrapped around (mode 'constant', 'reflect', 'replicate', 'circular').

    Shapes: constant padding takes any input with at least len(pad) / 2 axes; the other modes pad
    the last 1, 2 or 3 axes of an input with one or two axes more ((C, W) or (N, C, W) for a
    padding of length 2, and so on).
    """
    check_tensor("pad", "input", input)
    pad = _check_pad(input, pad, mode, value)
    return apply(Pad, input, pad, mode, value)


def _constant_pad_nd(input, pad, value=0):
    """torch.constant_pad_nd(input, pad, value): constant padding."""
    return globals()["pad"](input, pad, "constant", value)


def _module_forward(mode):
    """The forward of the padding modules of ``mode``: their padding (and value, zero for ZeroPad)."""
    def forward(self, input):
        return pad(input, self.padding, mode, getattr(self, "value", None))
    return forward


_MODES = {getattr(torch.nn, f"{kind}Pad{n}d"): mode for n in (1, 2, 3)
          for kind, mode in (("Reflection", "reflect"), ("Replication", "replicate"), ("Circular", "circular"),
                             ("Zero", "constant"), ("Constant", "constant"))}

register(Op(
    "pad", pad, (Pad, PadFold),
    Derivative("y = x gathered at idx(o) along the padded axes (value outside, constant mode): idx the "
               "position itself, mirrored, clamped or wrapped",
               "dL/dx[i] = Σ_{o: idx(o) = i} g[o]: g folded back onto x (the border cut off, or added onto the "
               "rows it mirrors, repeats or wraps)",
               "x (*, n₁, ..., nₖ), y and g (*, n₁ + pad, ..., nₖ + pad), k = len(pad) / 2"),
    modules={cls: Module(_module_forward(mode)) for cls, mode in _MODES.items()},
    intercepts={torch.constant_pad_nd: _constant_pad_nd},
))

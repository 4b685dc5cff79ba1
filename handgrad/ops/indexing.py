"""Selections by index, by hand: gather, index_select, take_along_dim, scatter_add, index_add, the
triangles tril and triu, and the sorts (sort, topk, kthvalue, median), which are a gather at the
indices they find.

A selection y = x[i] copies values: each y_k is one x_{i_k}, so g_k goes back to x_{i_k}, summed
where several y read the same x: dL/dx = scatter-add of g at i. An addition at indices y = x + scatter(s)
is the transpose: dL/dx = g, dL/ds = g gathered at i. Indices are constants (integers): no
gradient reaches them.
"""

import torch

from handgrad.ops._checks import check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Op, register
from handgrad.ops.reductions import Amax, reduction_dims

Tensor = torch.Tensor


class Gather(HandFunction):
    """y = x.gather(dim, i): y[..., k, ...] = x[..., i[..., k, ...], ...] along ``dim``."""

    @staticmethod
    def forward(x, dim, index):
        return torch.gather(x, dim, index)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, index = inputs
        ctx.save_for_backward(index)
        ctx.save_for_forward(index)
        ctx.shape = x.shape

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        return g.new_zeros(ctx.shape).scatter_add(ctx.dim, index, g), None, None    # dL/dx = g added at i

    @staticmethod
    def jvp(ctx, dx, *_):
        (index,) = ctx.saved_tensors
        return torch.gather(dx, ctx.dim, index)                                   # linear: dy = dx at i


class IndexSelect(HandFunction):
    """y = x.index_select(dim, i): the slices i_0, i_1, ... of x along ``dim``."""

    @staticmethod
    def forward(x, dim, index):
        return torch.index_select(x, dim, index)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, index = inputs
        ctx.save_for_backward(index)
        ctx.save_for_forward(index)
        ctx.shape = x.shape

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        return g.new_zeros(ctx.shape).index_add(ctx.dim, index, g), None, None      # slice k of g added at i_k

    @staticmethod
    def jvp(ctx, dx, *_):
        (index,) = ctx.saved_tensors
        return torch.index_select(dx, ctx.dim, index)


class ScatterAdd(HandFunction):
    """y = x.scatter_add(dim, i, s): x with each s[..., k, ...] added at x[..., i[..., k, ...], ...]."""

    @staticmethod
    def forward(x, dim, index, src):
        return torch.scatter_add(x, dim, index, src)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, index, src = inputs
        ctx.save_for_backward(index)
        ctx.save_for_forward(index)
        ctx.shape, ctx.src_shape = x.shape, src.shape

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        grad_src = None
        if ctx.needs_input_grad[3]:
            grad_src = torch.gather(g, ctx.dim, index)                                # dL/ds = g at i
            if grad_src.shape != ctx.src_shape:                                       # s beyond i's shape: unused
                grad_src = torch.nn.functional.pad(grad_src, [p for s, i in zip(reversed(ctx.src_shape),
                                                                                reversed(index.shape))
                                                              for p in (0, s - i)])
        return (g if ctx.needs_input_grad[0] else None), None, None, grad_src        # dL/dx = g

    @staticmethod
    def jvp(ctx, dx, _, __, ds):
        (index,) = ctx.saved_tensors
        base = dx if dx is not None else ds.new_zeros(ctx.shape)                 # dy = dx + ds added at i
        return base if ds is None else torch.scatter_add(base, ctx.dim, index, ds)


class IndexAdd(HandFunction):
    """y = x.index_add(dim, i, s, alpha=α): x with α s's slice k added at slice i_k along ``dim``."""

    @staticmethod
    def forward(x, dim, index, source, alpha):
        return torch.index_add(x, dim, index, source, alpha=alpha)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, index, _, ctx.alpha = inputs
        ctx.save_for_backward(index)
        ctx.save_for_forward(index)
        ctx.shape = x.shape

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        grad_source = None
        if ctx.needs_input_grad[3]:
            grad_source = torch.index_select(g, ctx.dim, index)                       # dL/ds = α g's slices i
            grad_source = grad_source if ctx.alpha == 1 else grad_source * ctx.alpha
        return (g if ctx.needs_input_grad[0] else None), None, None, grad_source, None   # dL/dx = g

    @staticmethod
    def jvp(ctx, dx, _, __, ds, ___):
        (index,) = ctx.saved_tensors
        base = dx if dx is not None else ds.new_zeros(ctx.shape)                 # dy = dx + α ds at slices i
        return base if ds is None else torch.index_add(base, ctx.dim, index, ds, alpha=ctx.alpha)


class Triangle(HandFunction):
    """y = x ∘ M, M the lower (``upper``: upper) triangle of ones from ``diagonal`` on, in the last two
    dimensions: a mask, so dL/dx = g ∘ M, the same triangle of g."""

    @staticmethod
    def forward(x, diagonal, upper):
        return (torch.triu if upper else torch.tril)(x, diagonal)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ctx.diagonal, ctx.upper = inputs

    @staticmethod
    def backward(ctx, g):
        return (torch.triu if ctx.upper else torch.tril)(g, ctx.diagonal), None, None   # dL/dx = g ∘ M

    @staticmethod
    def jvp(ctx, dx, *_):
        return (torch.triu if ctx.upper else torch.tril)(dx, ctx.diagonal)


class Median(Amax):
    """y = the median of every element of x (the lower of the two middle ones for an even count): g
    goes to the elements equal to it, split evenly between them, as torch splits it (``Amax``'s share)."""

    @staticmethod
    def forward(x, dims, keepdim):
        return torch.median(x)


# -- the faces, as torch's ----------------------------------------------------------------------------


def _dim(fn, input, dim):
    """``dim`` checked against input, non-negative (0 for a 0-d input)."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{fn}: dim must be an int, got {type(dim).__name__}")
    dims = reduction_dims(fn, input, dim)
    return dims[0] if dims else 0


def _index(fn, name, index):
    check_tensor(fn, name, index)
    if index.dtype not in (torch.long, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise RuntimeError(f"{fn}: {name} must be an integer tensor, got {index.dtype}")


def gather(input, dim, index, *, sparse_grad=False):
    """y = input.gather(dim, index), as ``torch.gather`` (``sparse_grad`` is refused: the gradient is dense)."""
    check_tensor("gather", "input", input)
    _index("gather", "index", index)
    if sparse_grad:
        raise NotImplementedError("gather: handgrad's gradient is a dense tensor; sparse_grad=True is not supported")
    return apply(Gather, input, _dim("gather", input, dim), index)


def take_along_dim(input, indices, dim=None):
    """y = input's values at ``indices`` along ``dim``, the two broadcast but along ``dim``, as
    ``torch.take_along_dim``; with dim None, of the flattened input. A gather (movement around it)."""
    check_tensor("take_along_dim", "input", input)
    _index("take_along_dim", "indices", indices)
    if dim is None:
        return apply(Gather, input.reshape(-1), 0, indices.reshape(-1))
    if input.dim() != indices.dim():
        raise RuntimeError(f"take_along_dim: input and indices should have the same number of dimensions, but got "
                           f"{input.dim()} dimensions for input, and {indices.dim()} dimensions for indices")
    d = _dim("take_along_dim", input, dim)
    indices = torch.where(indices < 0, indices + input.shape[d], indices)   # along a dim, −1 is the last
    shape = list(input.shape)
    shape[d] = indices.shape[d]
    indices = indices.broadcast_to(torch.broadcast_shapes(shape, indices.shape))
    shape = list(indices.shape)
    shape[d] = input.shape[d]
    return apply(Gather, input.broadcast_to(torch.broadcast_shapes(shape, input.shape)), d, indices)


def index_select(input, dim, index):
    """y = the slices ``index`` of input along ``dim``, as ``torch.index_select``."""
    check_tensor("index_select", "input", input)
    _index("index_select", "index", index)
    if index.dim() > 1:
        raise IndexError(f"index_select: index must be 1-D (or 0-d), got shape {tuple(index.shape)}")
    return apply(IndexSelect, input, _dim("index_select", input, dim), index.reshape(-1))   # 0-d: one slice


def scatter_add(input, dim, index, src):
    """y = input with each src value added at its index along ``dim``, as ``torch.scatter_add``."""
    check_tensor("scatter_add", "input", input)
    check_tensor("scatter_add", "src", src)
    _index("scatter_add", "index", index)
    return apply(ScatterAdd, input, _dim("scatter_add", input, dim), index, src)


def index_add(input, dim, index, source, *, alpha=1):
    """y = input with alpha · source's slice k added at slice index[k] along ``dim``, as ``torch.index_add``."""
    check_tensor("index_add", "input", input)
    check_tensor("index_add", "source", source)
    _index("index_add", "index", index)
    return apply(IndexAdd, input, _dim("index_add", input, dim), index, source, alpha)


def _triangle(fn, upper):
    def face(input, diagonal=0):
        check_tensor(fn, "input", input)
        if input.dim() < 2:
            raise RuntimeError(f"{fn}: input tensor must have at least 2 dimensions, got shape {tuple(input.shape)}")
        return apply(Triangle, input, diagonal, upper)

    face.__name__ = face.__qualname__ = fn
    face.__doc__ = (f"y = the {'upper' if upper else 'lower'} triangle of input's last two dimensions from "
                    f"``diagonal`` on, zeros elsewhere, as ``torch.{fn}``.")
    return face


tril, triu = _triangle("tril", False), _triangle("triu", True)


def _at_indices(input, dim, indices, keepdim=True):
    """The values of input at ``indices`` along ``dim`` (found without a graph): a gather, so g goes
    back to those indices."""
    if input.dim() == 0:
        return apply(Gather, input.reshape(1), 0, indices.reshape(1)).reshape(())
    values = apply(Gather, input, dim, indices if keepdim else indices.unsqueeze(dim))
    return values if keepdim else values.squeeze(dim)


def sort(input, dim=-1, descending=False, *, stable=False):
    """(values, indices) of input sorted along ``dim``, as ``torch.sort``: the indices found by torch's
    sort, the values a gather at them (g goes back to where each value came from)."""
    check_tensor("sort", "input", input)
    d = _dim("sort", input, dim)
    with torch.no_grad():
        _, indices = torch.sort(input, dim=dim, descending=descending, stable=stable)
    return torch.return_types.sort((_at_indices(input, d, indices), indices))


def topk(input, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the k largest (smallest) elements along ``dim``, as ``torch.topk``: a gather
    at the indices torch's topk finds."""
    check_tensor("topk", "input", input)
    d = _dim("topk", input, dim)
    with torch.no_grad():
        _, indices = torch.topk(input, k, dim, largest, sorted)
    return torch.return_types.topk((_at_indices(input, d, indices), indices))


def kthvalue(input, k, dim=-1, keepdim=False):
    """(value, index) of the k-th smallest element along ``dim``, as ``torch.kthvalue``: a gather at the
    index torch's kthvalue finds."""
    check_tensor("kthvalue", "input", input)
    d = _dim("kthvalue", input, dim)
    with torch.no_grad():
        _, indices = torch.kthvalue(input, k, dim, keepdim)
    return torch.return_types.kthvalue((_at_indices(input, d, indices, keepdim), indices))


def median(input, dim=None, keepdim=False):
    """As ``torch.median``: the median of every element (the lower middle one; g shared between the
    elements equal to it), or along ``dim`` the (value, index) pair, a gather at that index."""
    check_tensor("median", "input", input)
    if dim is None:
        if input.numel() == 0:
            return torch.median(input)                              # torch's NaN for no elements
        return apply(Median, input, tuple(range(input.dim())), False)
    d = _dim("median", input, dim)
    with torch.no_grad():
        _, indices = torch.median(input, dim, keepdim)
    return torch.return_types.median((_at_indices(input, d, indices, keepdim), indices))


# -- the table ----------------------------------------------------------------------------------------

AT = "dL/dx = g added at the indices (summed where several values came from one)"

register(Op(
    "gather", gather, (Gather,),
    Derivative("y = x[.., i, ..] along dim", AT, "x (*), i and y of one rank"),
    fused_by="the tensor algebra", intercepts={torch.gather: None, Tensor.gather: None},
))
register(Op(
    "take_along_dim", take_along_dim, (Gather,),
    Derivative("y = x at i along dim, x and i broadcast", "gather's: " + AT, "x, i of one rank, broadcast"),
    fused_by="the tensor algebra", intercepts={torch.take_along_dim: None, Tensor.take_along_dim: None},
))
register(Op(
    "index_select", index_select, (IndexSelect,),
    Derivative("y = x's slices i along dim", "dL/dx = g's slice k added at slice i_k", "i (k), y: x with k slices"),
    fused_by="the tensor algebra", intercepts={torch.index_select: None, Tensor.index_select: None},
))
register(Op(
    "scatter_add", scatter_add, (ScatterAdd,),
    Derivative("y = x + s added at i along dim", "dL/dx = g, dL/ds = g at i (a gather)", "x, y (*); i, s of one shape"),
    fused_by="the tensor algebra", intercepts={torch.scatter_add: None, Tensor.scatter_add: None},
))
register(Op(
    "index_add", index_add, (IndexAdd,),
    Derivative("y = x + α s's slices added at slices i", "dL/dx = g, dL/ds = α g's slices i (an index_select)",
               "x, y (*); i (k); s: x with k slices"),
    fused_by="the tensor algebra", intercepts={torch.index_add: None, Tensor.index_add: None},
))
register(Op(
    "tril", tril, (Triangle,),
    Derivative("y = x ∘ M, M the lower triangle", "dL/dx = g ∘ M", "(*, n, m)"),
    fused_by="the tensor algebra", intercepts={torch.tril: None, Tensor.tril: None},
))
register(Op(
    "triu", triu, (Triangle,),
    Derivative("y = x ∘ M, M the upper triangle", "dL/dx = g ∘ M", "(*, n, m)"),
    fused_by="the tensor algebra", intercepts={torch.triu: None, Tensor.triu: None},
))
register(Op(
    "sort", sort, (Gather,),
    Derivative("(y, i) = x sorted along dim, y = x at i", "gather's: g back at i", "(*) → (*), (*)"),
    fused_by="the tensor algebra", intercepts={torch.sort: None, Tensor.sort: None},
))
register(Op(
    "topk", topk, (Gather,),
    Derivative("(y, i) = the k largest of x along dim", "gather's: g back at i", "(*, n, *) → (*, k, *) twice"),
    fused_by="the tensor algebra", intercepts={torch.topk: None, Tensor.topk: None},
))
register(Op(
    "kthvalue", kthvalue, (Gather,),
    Derivative("(y, i) = the k-th smallest of x along dim", "gather's: g back at i", "(*) → (*) without dim, twice"),
    fused_by="the tensor algebra", intercepts={torch.kthvalue: None, Tensor.kthvalue: None},
))
register(Op(
    "median", median, (Median, Gather),
    Derivative("y = the median of x; along dim with its index i",
               "every element: g 1[x = y] / count(x = y); along dim: g back at i", "(*) → (), or (*) without dim twice"),
    fused_by="the tensor algebra", intercepts={torch.median: None, Tensor.median: None},
))

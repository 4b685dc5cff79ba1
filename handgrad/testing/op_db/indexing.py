"""The selections' cases (``handgrad.ops.indexing``): NumPy oracles, samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, idx, list_input, sum_to, x32
from handgrad.testing.op_db.elementwise import leaf

# -- NumPy oracles: (y, vjp) ------------------------------------------------------------------------------


def _added_at(shape, dim, index, values):
    """A zero array of ``shape`` with each of ``values`` added where ``index`` points along ``dim``
    (the other coordinates its own): np.add.at, which sums repeated indices."""
    out = np.zeros(shape)
    at = list(np.indices(index.shape))
    at[dim] = index
    np.add.at(out, tuple(at), values)
    return out


def _at(x, dim, index):
    """x at ``index`` along ``dim``, the other coordinates the index's own."""
    at = list(np.indices(index.shape))
    at[dim] = index
    return x[tuple(at)]


def gather_numpy(x, dim, index, sparse_grad=False):
    d = dim % max(x.ndim, 1)
    return _at(x, d, index), lambda g: (_added_at(x.shape, d, index, g),)


def take_along_dim_numpy(input, indices, dim=None):
    if dim is None:
        flat = input.reshape(-1)
        return flat[indices.reshape(-1)], lambda g: (_added_at(flat.shape, 0, indices.reshape(-1), g).reshape(input.shape),)
    d = dim % input.ndim
    indices = np.where(indices < 0, indices + input.shape[d], indices)
    shape = list(input.shape)
    shape[d] = indices.shape[d]
    i = np.broadcast_to(indices, np.broadcast_shapes(tuple(shape), indices.shape))
    shape = list(i.shape)
    shape[d] = input.shape[d]
    x = np.broadcast_to(input, np.broadcast_shapes(tuple(shape), input.shape))
    return _at(x, d, i), lambda g: (sum_to(_added_at(x.shape, d, i, g), input.shape),)


def index_select_numpy(x, dim, index):
    d = dim % max(x.ndim, 1)
    flat = index.reshape(-1)

    def vjp(g):
        grad = np.zeros(np.moveaxis(x, d, 0).shape)
        np.add.at(grad, flat, np.moveaxis(g, d, 0))
        return (np.moveaxis(grad, 0, d),)

    return np.take(x, flat, axis=d), vjp


def scatter_add_numpy(x, dim, index, src):
    d = dim % max(x.ndim, 1)
    src_used = src[tuple(slice(0, n) for n in index.shape)]
    return x + _added_at(x.shape, d, index, src_used), \
        lambda g: (g, None, None, _added_at(src.shape, d, np.indices(index.shape)[d], _at(g, d, index)))


def index_add_numpy(x, dim, index, source, alpha=1):
    d = dim % max(x.ndim, 1)
    y = np.moveaxis(x.copy(), d, 0)
    np.add.at(y, index, alpha * np.moveaxis(source, d, 0))
    return np.moveaxis(y, 0, d), lambda g: (g, None, None, alpha * np.take(g, index, axis=d))


def tril_numpy(x, diagonal=0):
    return np.tril(x, diagonal), lambda g: (np.tril(g, diagonal),)


def triu_numpy(x, diagonal=0):
    return np.triu(x, diagonal), lambda g: (np.triu(g, diagonal),)


def _by_order(x, dim, order, keep):
    """(values, indices) of x at the positions ``order`` picks along ``dim`` (``keep``: which of them),
    and the vjp that sends g to those positions."""
    d = dim % max(x.ndim, 1)
    a = x.reshape(1) if x.ndim == 0 else x
    i = np.take(order(a, d), keep, axis=d)
    values = np.take_along_axis(a, i, axis=d)
    shape = x.shape
    return (values.reshape(shape) if x.ndim == 0 else values, i.reshape(shape) if x.ndim == 0 else i), \
        lambda g, *_: (_added_at(a.shape, d, i, np.reshape(g, i.shape)).reshape(shape),)


def _argsort(descending=False):
    return lambda a, d: np.argsort(-a if descending else a, axis=d, kind="stable")


def sort_numpy(x, dim=-1, descending=False, stable=False):
    n = x.shape[dim % x.ndim] if x.ndim else 1
    return _by_order(x, dim, _argsort(descending), np.arange(n))


def topk_numpy(x, k, dim=-1, largest=True, sorted=True):
    return _by_order(x, dim, _argsort(largest), np.arange(k))


def kthvalue_numpy(x, k, dim=-1, keepdim=False):
    (values, i), vjp = _by_order(x, dim, _argsort(), np.array([k - 1]))
    d = dim % max(x.ndim, 1)
    drop = (lambda a: a) if keepdim or x.ndim == 0 else (lambda a: np.squeeze(a, d))
    return (drop(values), drop(i)), lambda g, *_: vjp(np.reshape(g, i.shape))


def median_numpy(x, dim=None, keepdim=False):
    """Every element: the lower middle one, g shared between the elements equal to it; along dim: the
    (value, index) of the lower middle one, g at that index."""
    if dim is None:
        y = np.sort(x.reshape(-1))[(x.size - 1) // 2]
        share = (x == y) / (x == y).sum()
        return y, lambda g: (g * share,)
    n = x.shape[dim % x.ndim] if x.ndim else 1
    return kthvalue_numpy(x, (n + 1) // 2, dim, keepdim)


# -- samples --------------------------------------------------------------------------------------------


def _gather_samples(gen):
    forms = [
        ("(N, D), dim=1, repeated indices", (randn(gen, 3, 4), 1, idx([0, 0], [3, 1], [2, 2]).reshape(3, 2))),
        ("(N, D), dim=0", (randn(gen, 3, 4), 0, idx(2, 0, 1, 1).reshape(1, 4))),
        ("(B, L, E), dim=-1, index smaller in dim 1", (randn(gen, 2, 3, 4), -1, idx(0, 3, 1, 2).reshape(2, 1, 2))),
        ("0-d input and index", (randn(gen), 0, idx(0).reshape(()))),
    ]
    return [Sample(args, name=name) for name, args in forms]


def _take_along_dim_samples(gen):
    forms = [
        ("dim=None: of the flattened input", (randn(gen, 3, 4), idx(0, 11, 5, 5)), {}),
        ("(N, D) and argsort-like (N, 2), dim=1, −1 the last", (randn(gen, 3, 4), idx(3, 0, -1, 1, 2, 0).reshape(3, 2)),
         {"dim": 1}),
        ("indices (1, D) broadcast over (N, D), dim=0", (randn(gen, 3, 4), idx(2, 0, 1, 2).reshape(1, 4)), {"dim": 0}),
        ("input (1, D) broadcast over indices (N, 1), dim=1",
         (randn(gen, 1, 4), idx(3, 0, 2).reshape(3, 1)), {"dim": 1}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _index_select_samples(gen):
    forms = [
        ("(N, D), dim=0, rows repeated", (randn(gen, 4, 3), 0, idx(1, 3, 1))),
        ("(B, L, E), dim=-1", (randn(gen, 2, 3, 4), -1, idx(3, 0))),
        ("0-d index", (randn(gen, 4, 3), 1, idx(2).reshape(()))),
        ("(N, D), dim=0, no rows", (randn(gen, 4, 3), 0, idx())),
    ]
    return [Sample(args, name=name) for name, args in forms]


def _scatter_add_samples(gen):
    forms = [
        ("(N, D), dim=1, repeated indices", (randn(gen, 3, 4), 1, idx(0, 0, 3, 1, 2, 2).reshape(3, 2), randn(gen, 3, 2))),
        ("(N, D), dim=0, src larger than index", (randn(gen, 3, 4), 0, idx(2, 0, 2, 1).reshape(1, 4), randn(gen, 2, 4))),
        ("(B, L, E), dim=-1", (randn(gen, 2, 3, 4), -1, idx(0, 3, 3, 1, 2, 2, 0, 1, 1, 0, 3, 3).reshape(2, 3, 2),
                               randn(gen, 2, 3, 2))),
    ]
    return [Sample(args, name=name) for name, args in forms]


def _index_add_samples(gen):
    forms = [
        ("(N, D), dim=0, rows repeated", (randn(gen, 4, 3), 0, idx(1, 3, 1), randn(gen, 3, 3)), {}),
        ("(B, L, E), dim=-1, alpha=-0.5", (randn(gen, 2, 3, 4), -1, idx(3, 0), randn(gen, 2, 3, 2)), {"alpha": -0.5}),
        ("(N, D), dim=1, one column", (randn(gen, 4, 3), 1, idx(2), randn(gen, 4, 1)), {}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _triangle_samples(gen):
    forms = [
        ("(L, L), a causal mask's shape", (randn(gen, 4, 4),), {}),
        ("(N, L, S), diagonal=1", (randn(gen, 2, 3, 5),), {"diagonal": 1}),
        ("(L, S), diagonal=-2", (randn(gen, 5, 3),), {"diagonal": -2}),
        ("(0, 3) empty", (randn(gen, 0, 3),), {}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _sort_samples(gen):
    forms = [
        ("(N, D), the last dim", (randn(gen, 3, 5),), {}),
        ("(N, D), dim=0, descending", (randn(gen, 4, 3), 0, True), {}),
        ("(B, L, E), dim=1", (randn(gen, 2, 4, 3), 1), {}),
        ("0-d", (randn(gen),), {}),
    ]
    found = [Sample(args, kwargs, name) for name, args, kwargs in forms]
    found.append(Sample((leaf([[1.0, 2.0, 1.0, 2.0, 0.5]]),), {"stable": True, "descending": True},
                        "ties, stable, descending: first come first", gradcheck=False))
    return found


def _topk_samples(gen):
    forms = [
        ("(N, D), k=2, the last dim", (randn(gen, 3, 5), 2), {}),
        ("(N, D), k=3, dim=0, smallest", (randn(gen, 4, 3), 3, 0, False), {}),
        ("(B, L, E), k=1, dim=1", (randn(gen, 2, 4, 3), 1), {"dim": 1}),
        ("(N, D), k=0", (randn(gen, 3, 5), 0), {}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _kthvalue_samples(gen):
    forms = [
        ("(N, D), k=2, the last dim", (randn(gen, 3, 5), 2), {}),
        ("(N, D), k=4, dim=0, keepdim", (randn(gen, 4, 3), 4, 0, True), {}),
        ("(B, L, E), k=1, dim=1", (randn(gen, 2, 4, 3), 1), {"dim": 1}),
        ("0-d, k=1", (randn(gen), 1), {}),
    ]
    return [Sample(args, kwargs, name) for name, args, kwargs in forms]


def _median_samples(gen):
    forms = [
        ("(N, D), every element (12: the lower middle one)", (randn(gen, 3, 4),), {}),
        ("(N, D), dim=1", (randn(gen, 3, 5), 1), {}),
        ("(B, L, E), dim=0, keepdim", (randn(gen, 4, 2, 3), 0, True), {}),
        ("0-d", (randn(gen),), {}),
    ]
    found = [Sample(args, kwargs, name) for name, args, kwargs in forms]
    found.append(Sample((leaf([[1.0, 3.0, 2.0], [2.0, 0.5, 2.0]]),), name="the median three times: g shared",
                        gradcheck=False))
    return found


# -- bad inputs and the database ---------------------------------------------------------------------------


def _float_index(op, call):
    return ErrorInput("a float index", call, RuntimeError, rf"{op}: index(es)? must be an integer tensor, got "
                                                           r"torch\.float32")


_GATHER_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.gather([1.0, 2.0], 0, idx(0)), TypeError,
               r"gather: input must be a torch\.Tensor, got list"),
    _float_index("gather", lambda F, nn: F.gather(x32(2, 3), 1, x32(2, 1))),
    ErrorInput("index of another rank", lambda F, nn: F.gather(x32(2, 3), 1, idx(0, 1)), RuntimeError,
               r"Index tensor must have the same number of dimensions as input tensor"),
    ErrorInput("sparse_grad", lambda F, nn: F.gather(x32(2, 3), 1, idx(0, 1).reshape(2, 1), sparse_grad=True),
               NotImplementedError, r"gather: handgrad's gradient is a dense tensor", torch_accepts=True),
)
_INDEX_SELECT_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.index_select([1.0, 2.0], 0, idx(0)), TypeError,
               r"index_select: input must be a torch\.Tensor, got list"),
    ErrorInput("a 2-D index", lambda F, nn: F.index_select(x32(2, 3), 0, idx(0, 1).reshape(1, 2)), IndexError,
               r"index_select: index must be 1-D \(or 0-d\), got shape \(1, 2\)"),
)


def _triangle_errors(op):
    return (list_input(op),
            ErrorInput("a 1-D input", lambda F, nn: getattr(F, op)(x32(3)), RuntimeError,
                       rf"{op}: input tensor must have at least 2 dimensions, got shape \(3,\)"))


def _dim_errors(op, *extra):
    return (
        ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, 2.0], *extra), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list"),
        ErrorInput("dim out of range", lambda F, nn: getattr(F, op)(x32(2, 3), *extra, dim=2), IndexError,
                   rf"{op}: dim 2 is out of range for a tensor of 2 dimension\(s\)"),
    )


def _bench_indices(device, n, high, *shape):
    return torch.randint(0, high, (*shape, n), device=device)


OP_INFOS = (
    OpInfo("gather", torch.gather, _gather_samples, gather_numpy,
           lambda device: [("(128, 1000) logits at 128 × 5 labels", (bench_randn(device, 128, 1000), 1,
                                                                    _bench_indices(device, 5, 1000, 128)), {})],
           errors=_GATHER_ERRORS),
    OpInfo("take_along_dim", torch.take_along_dim, _take_along_dim_samples, take_along_dim_numpy,
           lambda device: [("(128, 1000) at (128, 5), dim=1", (bench_randn(device, 128, 1000),
                                                              _bench_indices(device, 5, 1000, 128), 1), {})],
           errors=(ErrorInput("list input", lambda F, nn: F.take_along_dim([1.0, 2.0], idx(0)), TypeError,
                              r"take_along_dim: input must be a torch\.Tensor, got list"),
                   ErrorInput("indices of another rank", lambda F, nn: F.take_along_dim(x32(2, 3), idx(0), 1),
                              RuntimeError, r"take_along_dim: input and indices should have the same number of "
                                            r"dimensions, but got 2 dimensions for input, and 1 dimensions for indices"))),
    OpInfo("index_select", torch.index_select, _index_select_samples, index_select_numpy,
           lambda device: [("an embedding table (32768, 128) at 6400 rows", (bench_randn(device, 32768, 128), 0,
                                                                            _bench_indices(device, 6400, 32768)), {})],
           errors=_INDEX_SELECT_ERRORS),
    OpInfo("scatter_add", torch.scatter_add, _scatter_add_samples, scatter_add_numpy,
           lambda device: [("(128, 1000) += (128, 50) at (128, 50)",
                            (bench_randn(device, 128, 1000), 1, _bench_indices(device, 50, 1000, 128),
                             bench_randn(device, 128, 50)), {})],
           errors=(ErrorInput("src a list", lambda F, nn: F.scatter_add(x32(2), 0, idx(0), [1.0]), TypeError,
                              r"scatter_add: src must be a torch\.Tensor, got list"),)),
    OpInfo("index_add", torch.index_add, _index_add_samples, index_add_numpy,
           lambda device: [("(32768, 128) += 6400 rows", (bench_randn(device, 32768, 128), 0,
                                                         _bench_indices(device, 6400, 32768),
                                                         bench_randn(device, 6400, 128)), {})],
           errors=(ErrorInput("source a list", lambda F, nn: F.index_add(x32(2), 0, idx(0), [1.0]), TypeError,
                              r"index_add: source must be a torch\.Tensor, got list"),)),
    OpInfo("tril", torch.tril, _triangle_samples, tril_numpy,
           lambda device: [("attention scores (128, 4, 50, 50)", (bench_randn(device, 128, 4, 50, 50),), {})],
           errors=_triangle_errors("tril")),
    OpInfo("triu", torch.triu, _triangle_samples, triu_numpy,
           lambda device: [("attention scores (128, 4, 50, 50)", (bench_randn(device, 128, 4, 50, 50),), {})],
           errors=_triangle_errors("triu")),
    OpInfo("sort", torch.sort, _sort_samples, sort_numpy,
           lambda device: [("(128, 1000), the last dim", (bench_randn(device, 128, 1000),), {})],
           errors=_dim_errors("sort")),
    OpInfo("topk", torch.topk, _topk_samples, topk_numpy,
           lambda device: [("(128, 1000), k=5", (bench_randn(device, 128, 1000), 5), {})],
           errors=_dim_errors("topk", 1)),
    OpInfo("kthvalue", torch.kthvalue, _kthvalue_samples, kthvalue_numpy,
           lambda device: [("(128, 1000), k=500", (bench_randn(device, 128, 1000), 500), {})],
           errors=_dim_errors("kthvalue", 1)),
    OpInfo("median", torch.median, _median_samples, median_numpy,
           lambda device: [("(128, 1000), dim=1", (bench_randn(device, 128, 1000), 1), {})],
           errors=(list_input("median"),)),
)

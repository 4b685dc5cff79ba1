"""The products' cases (``handgrad.ops.products``): NumPy oracles, samples, bad inputs, bench sizes."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, sum_to, x32


# -- NumPy oracles: (y, vjp), the vjp giving one gradient per positional argument -----------------------


def matmul_numpy(a, b):
    """y = a b, a 1-D operand a row (left) or a column (right): dL/da = g bᵀ, dL/db = aᵀ g, summed over
    the batch dimensions each was broadcast along."""
    a2 = a[None, :] if a.ndim == 1 else a                       # (1, k)
    b2 = b[:, None] if b.ndim == 1 else b                       # (k, 1)

    def vjp(g):
        g2 = g[..., None] if b.ndim == 1 else g                 # the column's dimension put back
        g2 = g2[..., None, :] if a.ndim == 1 else g2            # the row's
        da = sum_to(g2 @ np.swapaxes(b2, -1, -2), a2.shape)     # (*, n, k)
        db = sum_to(np.swapaxes(a2, -1, -2) @ g2, b2.shape)     # (*, k, m)
        return da.reshape(a.shape), db.reshape(b.shape)

    return np.matmul(a, b), vjp


def dot_numpy(input, tensor):
    return np.dot(input, tensor), lambda g: (g * tensor, g * input)


def mv_numpy(input, vec):
    return input @ vec, lambda g: (np.outer(g, vec), input.T @ g)


def outer_numpy(input, vec2):
    return np.outer(input, vec2), lambda g: (g @ vec2, g.T @ input)


def addmm_numpy(input, mat1, mat2, beta=1, alpha=1):
    """y = β c + α a b: dL/dc = β g summed to c's shape, dL/da = α g bᵀ, dL/db = α aᵀ g, matrix by matrix."""
    y = beta * input + alpha * np.matmul(mat1, mat2)
    return y, lambda g: (sum_to(beta * g, input.shape), alpha * g @ np.swapaxes(mat2, -1, -2),
                         alpha * np.swapaxes(mat1, -1, -2) @ g)


def einsum_numpy(equation, *operands):
    """np.einsum, and each operand's gradient as np.einsum with g in its place (its lone indices expanded back),
    written onto its diagonal where an index repeats in its subscripts."""
    equation = equation.replace(" ", "")
    y = np.einsum(equation, *operands)
    ins, out = equation.split("->")
    ins = ins.split(",")

    def vjp(g):
        grads = []
        for i, mine in enumerate(ins):
            others = ins[:i] + ins[i + 1:]
            once = "".join(dict.fromkeys(mine))
            reach = "".join(c for c in once if c in out or any(c in o for o in others))
            grad = np.einsum(",".join([out, *others]) + "->" + reach, g, *operands[:i], *operands[i + 1:])
            for axis, c in enumerate(once):
                if c not in reach:
                    grad = np.expand_dims(grad, axis)
            full = np.zeros(operands[i].shape)
            np.einsum(f"{mine}->{once}", full)[...] = grad          # a writeable view of the diagonal
            grads.append(full)
        return (None, *grads)

    return y, vjp


# -- samples --------------------------------------------------------------------------------------------


def _matmul_samples(gen):
    forms = {
        "(n, k) @ (k, m)": ((3, 4), (4, 5)),
        "(k) @ (k, m), a row": ((4,), (4, 5)),
        "(n, k) @ (k), a column": ((3, 4), (4,)),
        "(k) @ (k), a dot product": ((4,), (4,)),
        "(B, n, k) @ (B, k, m)": ((2, 3, 4), (2, 4, 5)),
        "(2, 1, 3, 4) @ (5, 4, 2), batch broadcast": ((2, 1, 3, 4), (5, 4, 2)),
        "(N, L, E) @ (E, F), a linear layer": ((2, 3, 4), (4, 5)),
        "(k) @ (B, k, m)": ((4,), (2, 4, 3)),
        "(B, n, k) @ (k)": ((2, 3, 4), (4,)),
        "(0, k) @ (k, m), empty": ((0, 4), (4, 3)),
        "(n, 0) @ (0, m), an empty sum": ((3, 0), (0, 2)),
    }
    return [Sample((randn(gen, *a), randn(gen, *b)), name=name) for name, (a, b) in forms.items()]


def _addmm_samples(gen, batch=()):
    forms = {
        "c (n, m)": ((3, 5), {}),
        "c (m), a bias": ((5,), {}),
        "c (n, 1)": ((3, 1), {}),
        "beta=0.5, alpha=-2": ((3, 5), {"beta": 0.5, "alpha": -2.0}),
        "0-d c": ((), {}),
    }
    samples = [Sample((randn(gen, *batch, *c) if batch and len(c) == 2 else randn(gen, *c), randn(gen, *batch, 3, 4),
                       randn(gen, *batch, 4, 5)), kwargs, name) for name, (c, kwargs) in forms.items()]
    samples.append(Sample((randn(gen, *batch, 0, 2), randn(gen, *batch, 0, 3), randn(gen, *batch, 3, 2)), {},
                          "(0, k) rows, empty"))
    return samples


def _dot_samples(gen):
    return [Sample((randn(gen, 5), randn(gen, 5)), name="(k) · (k)"), Sample((randn(gen, 0), randn(gen, 0)), name="empty")]


def _mv_samples(gen):
    return [Sample((randn(gen, 3, 4), randn(gen, 4)), name="(n, k) (k)"),
            Sample((randn(gen, 0, 4), randn(gen, 4)), name="(0, k), no rows"),
            Sample((randn(gen, 3, 0), randn(gen, 0)), name="(n, 0), an empty sum")]


def _outer_samples(gen):
    return [Sample((randn(gen, 3), randn(gen, 4)), name="(n) (m)"), Sample((randn(gen, 0), randn(gen, 4)), name="empty")]


def _vector_errors(op, second, first_dims=1):
    first = (3,) * first_dims
    return (
        ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0, 2.0, 3.0], x32(3)), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list"),
        ErrorInput("a matrix for the vector", lambda F, nn: getattr(F, op)(x32(*first), x32(3, 3)), RuntimeError,
                   rf"{op}: expected input of {first_dims} dimension\(s\) and a 1-D {second}"),
        ErrorInput("mixed dtypes", lambda F, nn: getattr(F, op)(x32(*first), x32(3, dtype=torch.float64)), RuntimeError,
                   rf"{op}: expected input and {second} to have the same dtype"),
    )


def _einsum_samples(gen):
    forms = [
        ("ij,jk->ik, matmul", ("ij,jk->ik", randn(gen, 3, 4), randn(gen, 4, 5))),
        ("bij,bjk->bik, bmm", ("bij,bjk->bik", randn(gen, 2, 3, 4), randn(gen, 2, 4, 5))),
        ("maxvit's attention, with spaces", ("B G P H I D, B G P H J D -> B G P H I J",
                                            randn(gen, 1, 2, 2, 2, 3, 4), randn(gen, 1, 2, 2, 2, 3, 4))),
        ("i,i->, a dot product", ("i,i->", randn(gen, 5), randn(gen, 5))),
        ("i,j->ij, an outer product", ("i,j->ij", randn(gen, 3), randn(gen, 4))),
        ("bij->j, indices summed in one operand", ("bij->j", randn(gen, 2, 3, 4))),
        ("ij,jk,kl->il, three operands", ("ij,jk,kl->il", randn(gen, 2, 3), randn(gen, 3, 4), randn(gen, 4, 2))),
        ("ij->ji, a transpose", ("ij->ji", randn(gen, 3, 4))),
        ("ii->i, a diagonal", ("ii->i", randn(gen, 3, 3))),
        ("bii,bij->bj, a trace in a product", ("bii,bij->bj", randn(gen, 2, 3, 3), randn(gen, 2, 3, 4))),
        ("iij->, a diagonal summed", ("iij->", randn(gen, 2, 2, 3))),
    ]
    return [Sample(args, {}, name) for name, args in forms]


# -- bench sizes: a small vision transformer's, 128 images × 50 tokens of width 128 ---------------------


def _matmul_bench(device):
    return [("attention (128, 4, 50, 32) @ (128, 4, 32, 50)", (bench_randn(device, 128, 4, 50, 32),
                                                              bench_randn(device, 128, 4, 32, 50)), {}),
            ("MLP (128, 50, 128) @ (128, 512)", (bench_randn(device, 128, 50, 128), bench_randn(device, 128, 512)), {})]


def _addmm_bench(device):
    return [("a linear layer: (6400, 128) + (6400, 128) @ (128, 512)",
             (bench_randn(device, 512), bench_randn(device, 6400, 128), bench_randn(device, 128, 512)), {})]


def _baddbmm_bench(device):
    return [("attention scores with a bias: (512, 50, 50) + (512, 50, 32) @ (512, 32, 50)",
             (bench_randn(device, 512, 50, 50), bench_randn(device, 512, 50, 32), bench_randn(device, 512, 32, 50)), {})]


def _einsum_bench(device):
    return [("attention scores: bhid,bhjd->bhij (128, 4, 50, 32)",
             ("bhid,bhjd->bhij", bench_randn(device, 128, 4, 50, 32), bench_randn(device, 128, 4, 50, 32)), {})]


# -- bad inputs -----------------------------------------------------------------------------------------


def _add_product_errors(op, dims):
    factor = "mat" if dims == 2 else "batch"
    lead = (2,) * (dims - 2)
    return (
        ErrorInput("list input", lambda F, nn: getattr(F, op)([1.0], x32(*lead, 2, 3), x32(*lead, 3, 1)), TypeError,
                   rf"{op}: input must be a torch\.Tensor, got list"),
        ErrorInput(f"{factor}1 a list", lambda F, nn: getattr(F, op)(x32(3), [1.0], x32(*lead, 2, 3)), TypeError,
                   rf"{op}: {factor}1 must be a torch\.Tensor, got list"),
        ErrorInput(f"{dims - 1}-D factors", lambda F, nn: getattr(F, op)(x32(3), x32(*lead[1:], 3), x32(*lead[1:], 3)),
                   RuntimeError, rf"{op}: the factors must be {dims}-D"),
        ErrorInput("input that does not broadcast", lambda F, nn: getattr(F, op)(x32(*lead, 4, 4), x32(*lead, 2, 3),
                                                                                   x32(*lead, 3, 5)),
                   RuntimeError, rf"{op}: input of shape \({', '.join(map(str, (*lead, 4, 4)))}\) does not broadcast"),
    )


_MATMUL_ERRORS = (
    ErrorInput("list input", lambda F, nn: F.matmul([1.0, -2.0], x32(2)), TypeError,
               r"matmul: input must be a torch\.Tensor, got list"),
    ErrorInput("other a number", lambda F, nn: F.matmul(x32(2, 3), 2.0), TypeError,
               r"matmul: other must be a torch\.Tensor, got float"),
    ErrorInput("inner dimensions differ", lambda F, nn: F.matmul(x32(2, 3), x32(4, 5)), RuntimeError,
               r"matmul: input of shape \(2, 3\) and other of shape \(4, 5\): input's last dimension \(3\) must "
               r"equal other's second-to-last \(4\)"),
    ErrorInput("vectors of different lengths", lambda F, nn: F.matmul(x32(3), x32(4)), RuntimeError,
               r"matmul: input of shape \(3,\) and other of shape \(4,\): input's last dimension \(3\) must "
               r"equal other's only \(4\)"),
    ErrorInput("0-d input", lambda F, nn: F.matmul(x32(), x32(3)), RuntimeError,
               r"matmul: both arguments need at least 1 dimension, got 0D and 1D"),
)


_EINSUM_ERRORS = (
    ErrorInput("operands before the equation", lambda F, nn: F.einsum(x32(2, 3), "ij->j"), TypeError,
               r"einsum: handgrad takes the equation as a string first"),
    ErrorInput("a diagonal of unequal sizes", lambda F, nn: F.einsum("ii->i", x32(3, 4)), RuntimeError,
               r"einsum: subscript i is repeated for operand 0 but the sizes don't match, 4 != 3"),
    ErrorInput("too few operands", lambda F, nn: F.einsum("ij,jk->ik", x32(2, 3)), ValueError,
               r"einsum: the equation names 2 operand\(s\), 1 given", torch_class=RuntimeError),
)


# -- the database ---------------------------------------------------------------------------------------

OP_INFOS = (
    OpInfo("matmul", torch.matmul, _matmul_samples, matmul_numpy, _matmul_bench, errors=_MATMUL_ERRORS),
    OpInfo("dot", torch.dot, _dot_samples, dot_numpy,
           lambda device: [("(6400,) · (6400,)", (bench_randn(device, 6400), bench_randn(device, 6400)), {})],
           errors=_vector_errors("dot", "tensor") + (
               ErrorInput("lengths that differ", lambda F, nn: F.dot(x32(3), x32(4)), RuntimeError,
                          r"dot: expected both vectors to have the same number of elements, but got 3 and 4"),)),
    OpInfo("mv", torch.mv, _mv_samples, mv_numpy,
           lambda device: [("(512, 128) (128,)", (bench_randn(device, 512, 128), bench_randn(device, 128)), {})],
           errors=_vector_errors("mv", "vec", 2)),
    OpInfo("outer", torch.outer, _outer_samples, outer_numpy,
           lambda device: [("(512,) (128,)", (bench_randn(device, 512), bench_randn(device, 128)), {})],
           errors=_vector_errors("outer", "vec2")),
    OpInfo("einsum", torch.einsum, _einsum_samples, einsum_numpy, _einsum_bench, errors=_EINSUM_ERRORS),
    OpInfo("addmm", torch.addmm, _addmm_samples, addmm_numpy, _addmm_bench, errors=_add_product_errors("addmm", 2)),
    OpInfo("baddbmm", torch.baddbmm, lambda gen: _addmm_samples(gen, batch=(2,)), addmm_numpy, _baddbmm_bench,
           errors=_add_product_errors("baddbmm", 3)),
)

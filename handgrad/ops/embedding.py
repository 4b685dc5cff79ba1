"""Embedding: a lookup, y = W[x], the rows of a table W picked by integer indices x.

Notation: x the indices (*) (any shape, int64 or int32), W the table (V, D) (V rows, the
vocabulary; D columns, the embedding size), y (*, D), g = dL/dy (*, D).

y_i = W[x_i] copies row x_i, so dy_i/dW_v is the identity where v = x_i and zero elsewhere: each
row of g goes back to the row of W it came from, and a row looked up k times sums k rows of g.
That is dL/dW = Σ_i onehot(x_i) g_iᵀ, an index_add of g's rows into a (V, D) zero table.
PyTorch's two options change that sum, not the derivative of anything: ``padding_idx`` p leaves row
p without gradient (a fixed padding vector), ``scale_grad_by_freq`` divides each g_i by how often
x_i occurs in the batch. The indices are not differentiable.
"""

import torch

from handgrad.ops._checks import can_inspect_values, check_same_device, check_tensor
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Module, Op, register


class Embedding(HandFunction):
    """y = W[x] for x (*) integer indices, W (V, D); y (*, D)."""

    @staticmethod
    def forward(x, W, padding_idx, scale_grad_by_freq):
        return W.index_select(0, x.reshape(-1)).reshape(*x.shape, W.shape[1])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, padding_idx, scale_grad_by_freq = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        ctx.n_rows, ctx.padding_idx, ctx.scale_grad_by_freq = W.shape[0], padding_idx, scale_grad_by_freq

    @staticmethod
    def backward(ctx, g):
        """dL/dW = Σ_i onehot(x_i) g_iᵀ: g's rows added into the rows they were read from (V, D);
        row padding_idx gets none; with scale_grad_by_freq each g_i is first divided by the count of x_i."""
        (x,) = ctx.saved_tensors
        grad_W = None
        if ctx.needs_input_grad[1]:
            x_flat = x.reshape(-1)                                       # (n,), n = prod(*)
            g_rows = g.reshape(x_flat.shape[0], g.shape[-1])             # (n, D), g_i = dL/dy_i
            if ctx.scale_grad_by_freq:
                counts = _counts(x_flat, ctx.n_rows)                     # (V,), how often each row is read
                g_rows = g_rows / counts.index_select(0, x_flat).unsqueeze(1)     # g_i / count(x_i), (n, D)
            # Σ_i onehot(x_i) g_iᵀ: g's rows added into the rows x_i of a zero table, (V, D); in place
            # in a table made here (no copy of it), which is differentiable and, made by g.new_zeros,
            # batched like g under vmap. With int32 indices the CPU kernel adds row by row; int64
            # ones take a sort-based parallel path, several times slower on the CPU.
            rows = x_flat.int() if ctx.n_rows <= torch.iinfo(torch.int32).max else x_flat
            grad_W = g.new_zeros(ctx.n_rows, g.shape[-1]).index_add_(0, rows, g_rows)
            if ctx.padding_idx is not None:
                grad_W[ctx.padding_idx] = 0                              # the padding row stays fixed, (V, D)
        return None, grad_W, None, None

    @staticmethod
    def jvp(ctx, dx, dW, *_):
        """Forward mode: y is linear in W, so dy = dW[x], the same lookup in the tangent of the table."""
        (x,) = ctx.saved_tensors
        return multilinear_jvp(Embedding.forward, (x, None, None, False), (None, dW, None, None))


def _counts(x_flat, n_rows):
    """How many times each of the V rows occurs among the indices, (V,) int64: exact at any count
    (float16 would not be past 2048), and dividing g by it keeps g's dtype."""
    ones = torch.ones(x_flat.shape, dtype=torch.int64, device=x_flat.device)
    return torch.zeros(n_rows, dtype=torch.int64, device=x_flat.device).index_add(0, x_flat, ones)


# -- functional face -------------------------------------------------------------------------------


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """y = W[x]: row x_i of weight for every index, as ``torch.nn.functional.embedding``.

    Shapes: input (*) of int64 or int32 indices in [0, V); weight (V, D); output (*, D).
    ``padding_idx`` (negative counts from the end) gets no gradient; ``max_norm`` first rescales,
    in place, every row of weight that ``input`` looks up and whose ``norm_type``-norm exceeds
    max_norm, to norm max_norm (the forward part, as in PyTorch); ``scale_grad_by_freq`` divides
    each row's gradient by how often its index occurs in ``input``. ``sparse=True`` is refused:
    the gradient computed here is the dense (V, D) table.
    """
    fn = "embedding"
    check_tensor(fn, "input", input)
    check_tensor(fn, "weight", weight)
    if input.dtype not in (torch.int64, torch.int32):
        raise RuntimeError(
            f"{fn}: input holds the indices of the rows to look up and must be int64 or int32, got {input.dtype}; "
            f"convert with input.long()"
        )
    if weight.dim() != 2:
        raise RuntimeError(
            f"{fn}: weight must be a 2-D table (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}"
        )
    n_rows = weight.shape[0]
    if padding_idx is not None:
        if not isinstance(padding_idx, int) or isinstance(padding_idx, bool):
            raise TypeError(f"{fn}: padding_idx must be an int or None, got {padding_idx!r}")
        if not -n_rows <= padding_idx < n_rows:
            raise AssertionError(
                f"{fn}: padding_idx {padding_idx} is out of range for a weight of {n_rows} rows "
                f"(num_embeddings): expected -{n_rows} <= padding_idx < {n_rows}"
            )
        padding_idx %= n_rows
    if sparse:
        raise NotImplementedError(
            f"{fn}: sparse=True asks for a sparse gradient of weight, which handgrad does not derive (its "
            f"backward adds g's rows into a dense (V, D) table); pass sparse=False for the same values as a "
            f"dense gradient, or keep torch.nn.Embedding(sparse=True) (handgrad.nn.convert leaves it built-in)"
        )
    if max_norm is not None and max_norm < 0:
        raise ValueError(f"{fn}: max_norm is the largest norm a row may keep and must be >= 0, got {max_norm}")
    check_same_device(fn, {"weight": weight, "input": input})
    if input.numel() and can_inspect_values(input):
        low, high = (int(v) for v in torch.aminmax(input))
        if low < 0 or high >= n_rows:
            bad = low if low < 0 else high
            raise IndexError(
                f"{fn}: index {bad} is out of range for a weight of {n_rows} rows: indices must lie in "
                f"[0, {n_rows - 1}]"
            )
    if max_norm is not None:
        if not weight.is_floating_point():
            raise RuntimeError(f"{fn}: max_norm rescales rows by their norm and needs a floating-point weight, "
                               f"got {weight.dtype}")
        with torch.no_grad():                                # forward: W changes in place, no gradient
            _renorm_(weight.detach(), input.reshape(-1), max_norm, norm_type)
    return apply(Embedding, input, weight, padding_idx, scale_grad_by_freq)


def _renorm_(W, rows, max_norm, norm_type):
    """Each row W_v looked up whose norm ‖W_v‖_p exceeds max_norm becomes W_v · max_norm / (‖W_v‖_p + 1e-7),
    in place, as ``torch.embedding_renorm_`` does on the CPU (norm in W's dtype, factor in double,
    product in W's compute dtype). Not the built-in: its CUDA kernel sums pow(x, p) without |x|
    (wrong for p other than 1 and 2; p = inf gives every row norm 1) and reads a row's length from
    stride(0) (wrong for a transposed table). A row looked up twice is rescaled once: every copy
    is computed from the same old row and writes the same values."""
    if rows.numel() == 0:
        return
    old = W.index_select(0, rows)                                            # (n, D)
    norms = torch.linalg.vector_norm(old, ord=norm_type, dim=1).double()
    factor = torch.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)   # 1: the row is kept as it is
    compute = torch.promote_types(W.dtype, torch.float32)
    W.index_put_((rows,), (old.to(compute) * factor.to(compute)[:, None]).to(W.dtype))


def _embedding_module_unsupported(module):
    return "sparse=True: handgrad derives the dense gradient of weight only" if module.sparse else ""


register(Op(
    "embedding", embedding, (Embedding,),
    Derivative("y = W[x]", "dL/dW = Σ_i onehot(x_i) g_iᵀ (index_add of g's rows; none into padding_idx)",
               "x (*) indices, W (V, D), g (*, D)"),
    modules={torch.nn.Embedding: Module(
        lambda self, input: embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                                      self.scale_grad_by_freq, self.sparse),
        _embedding_module_unsupported)},
))

"""The products, by hand: matmul and einsum, and addmm / baddbmm composed from the matmul, mul and
add rules.

y = a b is linear in each factor, so each factor's gradient is g multiplied by the other factor,
transposed: the seed's dL/dx = g Wᵀ and dL/dW = xᵀ g, for every matrix of a batch, summed over the
batch dimensions a factor was broadcast along.
"""

import functools

import torch

from handgrad.ops._checks import LOWER, autocast, check_tensor
from handgrad.ops._function import HandFunction, apply, multilinear_jvp, sum_to
from handgrad.ops._registry import Derivative, Op, register
from handgrad.ops.elementwise import Add, Mul, add, mul
from handgrad.ops.reductions import Sum, sum

Tensor = torch.Tensor


class Matmul(HandFunction):
    """y = a b, a (*, n, k), b (*, k, m), the batch dimensions * broadcast.

    y_ij = Σ_k a_ik b_kj, so dL/da_ik = Σ_j g_ij b_kj = (g bᵀ)_ik and dL/db_kj = Σ_i a_ik g_ij = (aᵀ g)_kj:
    the seed's dL/dx = g Wᵀ and dL/dW = xᵀ g, for every matrix of the batch, summed over the batch
    dimensions an input was broadcast along.
    """

    recomputable = "product"

    @staticmethod
    def forward(a, b):
        return torch.matmul(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b = inputs
        needs = ctx.needs_input_grad
        ctx.save_for_backward(a if needs[1] else None, b if needs[0] else None)     # a for dL/db, b for dL/da
        ctx.save_for_forward(a, b)
        ctx.shapes = (a.shape, b.shape)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        a_shape, b_shape = ctx.shapes
        grad_a = sum_to(g @ b.mT, a_shape) if ctx.needs_input_grad[0] else None     # dL/da = g bᵀ, (*, n, k)
        grad_b = sum_to(a.mT @ g, b_shape) if ctx.needs_input_grad[1] else None     # dL/db = aᵀ g, (*, k, m)
        return grad_a, grad_b

    @staticmethod
    def jvp(ctx, da, db):
        return multilinear_jvp(torch.matmul, ctx.saved_tensors, (da, db))            # dy = da b + a db


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
        asking = [i for i, need in enumerate(ctx.needs_input_grad[2:]) if need]
        # Operand i's gradient reads every operand but i: each is kept where another one asks.
        ctx.save_for_backward(*(t if any(j != i for j in asking) else None for i, t in enumerate(operands)))
        ctx.save_for_forward(*operands)
        ctx.shapes = [t.shape for t in operands]

    @staticmethod
    def backward(ctx, g):
        operands = ctx.saved_tensors
        return (None, None, *(einsum_backward(g, ctx.inputs, ctx.out, operands, i, ctx.shapes[i])
                              if ctx.needs_input_grad[i + 2] else None for i in range(len(operands))))

    @staticmethod
    def jvp(ctx, _, __, *tangents):
        equation = f"{','.join(ctx.inputs)}->{ctx.out}"                               # dy = Σ_i y(…, dAᵢ, …)
        return multilinear_jvp(functools.partial(torch.einsum, equation), ctx.saved_tensors, tangents)


def einsum_backward(g, inputs, out, operands, i, shape):
    """dL/d operand i (of ``shape``) = einsum(out, the others → its subscripts), its lone indices
    expanded back."""
    mine, others = inputs[i], inputs[:i] + inputs[i + 1:]
    reachable = "".join(c for c in mine if c in out or any(c in o for o in others))
    grad = torch.einsum(f"{','.join([out, *others])}->{reachable}", g, *operands[:i], *operands[i + 1:])
    for axis, c in enumerate(mine):
        if c not in reachable:
            grad = grad.unsqueeze(axis)
    lone = [shape[axis] if c not in reachable else -1 for axis, c in enumerate(mine)]
    return sum_to(grad.expand(lone), shape)                  # a size-1 index broadcast in y: summed back


# -- the faces, as torch's ----------------------------------------------------------------------------


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


def compact(t):
    """``t``, or a contiguous copy of it where it is a batch of matrices strided through a larger tensor
    in a way a batched product cannot read as it is (the key of attention, a slice of the packed q, k, v
    projection whose heads were moved ahead of its tokens): a batched product copies it so anyway, and
    keeping the copy rather than the view keeps its own bytes, not the whole larger tensor's, as
    autograd's product keeps its copy. The copy is a movement, outside the Function."""
    if (t.dim() >= 3 and _copied_by_bmm(t)
            and not torch._C._are_functorch_transforms_active() and not torch.compiler.is_compiling()
            # (whose wrapped and fake tensors show no storage)
            and t.untyped_storage().nbytes() > t.numel() * t.element_size()):
        return t.contiguous()
    return t


def _copied_by_bmm(t):
    """Whether torch's batched product copies ``t`` (*, n, k) before multiplying: where its batch
    dimensions do not fold into one, or its matrices are neither row- nor column-major."""
    sizes, strides = t.shape, t.stride()
    if not (strides[-1] == 1 or strides[-2] == 1 or sizes[-1] == 1 or sizes[-2] == 1):
        return True
    batch = [(n, s) for n, s in zip(sizes[:-2], strides[:-2]) if n != 1]
    return any(s != s_next * n_next for (_, s), (n_next, s_next) in zip(batch, batch[1:]))


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
    y = apply(Matmul, compact(a), compact(b))
    y = y.squeeze(-1) if other.dim() == 1 else y
    return y.squeeze(-2 if other.dim() > 1 else -1) if input.dim() == 1 else y


def dot(input, tensor):
    """y = Σ aᵢ bᵢ of two vectors, as ``torch.dot``: mul's and sum's rules (dL/da = g b, dL/db = g a)."""
    _vectors("dot", input, tensor, "tensor")
    if input.shape != tensor.shape:
        raise RuntimeError(f"dot: expected both vectors to have the same number of elements, but got "
                           f"{input.numel()} and {tensor.numel()}")
    return sum(mul(input, tensor))


def mv(input, vec):
    """y = A v, a matrix (n, k) times a vector (k), as ``torch.mv``: y_i = Σ_k A_ik v_k, mul's rule with v
    broadcast along the rows, then sum's (dL/dA = g vᵀ, dL/dv = Aᵀ g)."""
    _vectors("mv", input, vec, "vec", first_dims=2)
    if input.shape[1] != vec.shape[0]:
        raise RuntimeError(f"mv: input of shape {tuple(input.shape)} and vec of shape {tuple(vec.shape)}: input's "
                           f"columns ({input.shape[1]}) must equal vec's length ({vec.shape[0]})")
    return sum(mul(input, vec), -1)


def outer(input, vec2):
    """y = a bᵀ of two vectors, y_ij = a_i b_j, as ``torch.outer``: mul's rule, a column (n, 1) times a
    row (m), broadcast (dL/da = g b, dL/db = gᵀ a)."""
    _vectors("outer", input, vec2, "vec2")
    return mul(input.unsqueeze(-1), vec2)


def _vectors(fn, first, second, name, first_dims=1):
    """``first`` of ``first_dims`` dimensions and ``second`` a vector, of one dtype (torch computes these
    three in their inputs' dtype, which must agree, and autocast leaves them there: hence products and
    sums, which autocast does not cast either, not matmul)."""
    check_tensor(fn, "input", first)
    check_tensor(fn, name, second)
    if first.dim() != first_dims or second.dim() != 1:
        raise RuntimeError(f"{fn}: expected input of {first_dims} dimension(s) and a 1-D {name}, got shapes "
                           f"{tuple(first.shape)} and {tuple(second.shape)}")
    if first.dtype != second.dtype:
        raise RuntimeError(f"{fn}: expected input and {name} to have the same dtype, but got: {first.dtype} != "
                           f"{second.dtype}")


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
    inputs, operands = zip(*(_diagonal(i, s, t) for i, (s, t) in enumerate(zip(inputs, operands))))
    if any(len([s for s in inputs if c in s]) > 1 and c not in out for c in set("".join(inputs))):
        operands = autocast(LOWER, *operands)      # a contraction: torch runs it as bmm, which autocast casts
    return apply(Einsum, tuple(inputs), out, *(compact(t) for t in operands))


def _diagonal(i, subscripts, operand):
    """Operand i with an index repeated in its subscripts (``ii``, a diagonal) reduced to that diagonal,
    a view (``torch.diagonal``, movement: its backward puts g back on the diagonal of zeros), with the
    index once, last: (its subscripts, the view). ``iij`` → ``ji``."""
    for c in dict.fromkeys(c for c in subscripts if subscripts.count(c) > 1):
        while subscripts.count(c) > 1:
            first = subscripts.index(c)
            second = subscripts.index(c, first + 1)
            if operand.shape[first] != operand.shape[second]:
                raise RuntimeError(f"einsum: subscript {c} is repeated for operand {i} but the sizes don't match, "
                                   f"{operand.shape[second]} != {operand.shape[first]}")
            operand = operand.diagonal(0, first, second)
            subscripts = subscripts[:first] + subscripts[first + 1:second] + subscripts[second + 1:] + c
    return subscripts, operand


def _einsum_accepts(*args):
    return bool(args) and isinstance(args[0], str)


# -- the table ----------------------------------------------------------------------------------------

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
    "matmul", matmul, (Matmul,),
    Derivative("y = a b", "dL/da = g bᵀ, dL/db = aᵀ g, summed over broadcast batch dimensions",
               "a (*, n, k), b (*, k, m) → (*, n, m)"),
    fused_by="the tensor algebra",
    intercepts={torch.matmul: None, Tensor.matmul: None, Tensor.__matmul__: None,
                Tensor.__rmatmul__: lambda self, other: matmul(other, self),
                torch.mm: None, Tensor.mm: None, torch.bmm: None, Tensor.bmm: None},
))
register(Op(
    "dot", dot, (Mul, Sum),
    Derivative("y = Σ aᵢ bᵢ", "dL/da = g b, dL/db = g a: mul's and sum's rules", "a, b (k) → ()"),
    fused_by="the tensor algebra", intercepts={torch.dot: None, Tensor.dot: None},
))
register(Op(
    "mv", mv, (Mul, Sum),
    Derivative("y = A v", "dL/dA = g vᵀ, dL/dv = Aᵀ g: mul's (v broadcast) and sum's rules", "A (n, k), v (k) → (n)"),
    fused_by="the tensor algebra", intercepts={torch.mv: None, Tensor.mv: None},
))
register(Op(
    "outer", outer, (Mul,),
    Derivative("y = a bᵀ", "dL/da = g b, dL/db = gᵀ a: mul's, a column times a row", "a (n), b (m) → (n, m)"),
    fused_by="the tensor algebra", intercepts={torch.outer: None, Tensor.outer: None, torch.ger: None, Tensor.ger: None},
))
register(Op(
    "einsum", einsum, (Einsum,),
    Derivative("y = einsum(A, B, ...)", "dL/dA = einsum(g, the other operands → A's indices); a repeated index "
               "reads A's diagonal, a view", "as the equation says"),
    fused_by="the tensor algebra", intercepts={torch.einsum: None}, accepts=_einsum_accepts,
))

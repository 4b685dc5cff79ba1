"""The language-model head fused with its loss: L = cross_entropy(x Wᵀ + b, t), in chunks of rows, so
that the (N, V) logits and probabilities, V the vocabulary (32768 and up), are never held at once
(llm.c's fused classifier, Liger-Kernel's fused linear cross-entropy).

Notation (the seed's, and ``classification``'s): x (N, d) the hidden states, one row per token; W
(V, d) the head's weight, b (V,) its bias; z = x Wᵀ + b (N, V) the logits, ℓ = log Σ_c e^(z_c) each
row's log-sum-exp, p = e^(z − ℓ) = softmax(z); a (N, V) the target distribution (one-hot(t) in the
seed, with class weights w, label smoothing ε and ignored rows generalised as in ``cross_entropy``),
s = Σ_c a_c; r (N, 1) how much each row's loss moves L (g, g / D or g_row).

Forward, chunk by chunk of rows: z = x Wᵀ + b, ℓ = logsumexp(z), L_row = −Σ_c a_c (z_c − ℓ)
= s ℓ − Σ_c a_c z_c; only ℓ (N,) is kept.

Backward, chunk by chunk again: z recomputed, p = e^(z − ℓ), and

    dL/dz = r (s p − a)                 the seed's softmax − onehot (``softmax_cross_entropy_backward``)
    dL/dx = (dL/dz) W                   the seed's dL/dx = g Wᵀ, W being (V, d)
    dL/dW = Σ_chunks (dL/dz)ᵀ x         the seed's dL/dW = xᵀ g, summed over the chunks
    dL/db = Σ_rows dL/dz

ℓ is the Function's second output (as attention's is), so that double backward, which differentiates
p = e^(z − ℓ), sees ℓ move with z.
"""

import torch

from handgrad.ops._checks import (FLOAT32, LOWER, REDUCTIONS, as_dtype, autocast, can_inspect_values,
                                  check_same_dtype_and_device, check_tensor, computed_in)
from handgrad.ops._function import HandFunction, apply, derivation
from handgrad.ops._reduction import reduce
from handgrad.ops._registry import Derivative, Module, Op, register
from handgrad.ops.classification import (_check_class_weight, class_index_rows, class_weight, probability_target,
                                         softmax_cross_entropy_backward, sparse_target_backward_, target_distribution)

# Logits held at once: 2²² entries (16 MB in float32) a chunk, whatever V is.
CHUNK_ENTRIES = 1 << 22


def chunks(n_rows, width, rows=None):
    """(start, stop) of each chunk of rows: ``rows`` a chunk, or as many as keep a chunk's logits
    (rows × width) within ``CHUNK_ENTRIES``."""
    rows = rows or max(1, CHUNK_ENTRIES // max(width, 1))
    return [(i, min(i + rows, n_rows)) for i in range(0, n_rows, rows)]


def logits(x, w, b, positions, dtype):
    """z = x Wᵀ + b for a chunk of rows, one row per prediction, (rows · D, V), in ``dtype`` (float32
    for half precision inputs: the softmax is computed there, as cross_entropy under autocast
    computes it). W is (V · D, d) with D positions per row for a K-dimensional loss (logits
    (rows, V, d1, …, dK)), D = 1 otherwise."""
    z = torch.matmul(x, w.transpose(0, 1))
    return logits_layout(as_dtype(z if b is None else z + b, dtype), positions)


def writable_buffers():
    """Whether tensors made once may be written chunk by chunk (``out=``): not under torch.func's
    transforms, whose wrapped tensors take no ``out=``, nor while compiling."""
    return not torch._C._are_functorch_transforms_active() and not torch.compiler.is_compiling()


def chunk_buffer(x, w, spans):
    """A (rows, V) tensor that every chunk of ``spans`` (the first is the largest) is written into."""
    return x.new_empty(spans[0][1] - spans[0][0] if spans else 0, w.shape[0])


def logits_into(out, x, w, b):
    """z = x Wᵀ + b for a chunk of rows, one prediction a row in x's dtype, written into ``out``."""
    z = torch.matmul(x, w.transpose(0, 1), out=out)
    return z if b is None else z.add_(b)


def logsumexp_rows(z, scratch):
    """ℓ = log Σ_c e^(z_c) of each row of z (M, V), as ``torch.logsumexp`` computes it
    (m + log Σ_c e^(z_c − m), m the row's max, taken as 0 where it is infinite), with e^(z − m)
    written into ``scratch`` (M, V): no tensor of z's size is made."""
    m = z.amax(1, keepdim=True)
    m = m.masked_fill_(m.isinf(), 0)
    return torch.sub(z, m, out=scratch).exp_().sum(1).log_().add_(m.squeeze(1))


def row_logsumexp(z):
    """ℓ = log Σ_c e^(z_c) of each row of z (M, V), (M, 1): ``torch.logsumexp`` where backward is not
    itself differentiated, else m + log Σ_c e^(z_c − m) written out (m, the row's max, a constant: ℓ
    does not depend on it), whose derivatives are those of exp, sum and log."""
    if not torch.is_grad_enabled():
        return torch.logsumexp(z, 1, keepdim=True)
    m = z.detach().amax(1, keepdim=True)
    m = m.masked_fill(m.isinf(), 0)
    return (z - m).exp().sum(1, keepdim=True).log() + m


def softmax_rows_(z):
    """p = e^(z − m) / Σ_c e^(z_c − m) of each row of z, written into z (m the row's max, 0 where infinite)."""
    m = z.amax(1, keepdim=True)
    z.sub_(m.masked_fill_(m.isinf(), 0)).exp_()
    return z.div_(z.sum(1, keepdim=True))


def from_rows(dz, positions):
    """dL/dz of ``logits``'s rows back in the layout of x Wᵀ, (rows, V · D)."""
    if positions == 1:
        return dz
    return dz.reshape(-1, positions, dz.shape[1]).transpose(1, 2).reshape(-1, dz.shape[1] * positions)


def rows_loss(z, lse, target, weight, ignore_index, eps):
    """L_row = s ℓ − Σ_c a_c z_c for a chunk (M rows): the class-index target without the dense a."""
    n_classes = z.shape[1]
    if target.is_floating_point():
        a = probability_target(target, weight, eps, z.dtype)
        return a.sum(1) * lse - (a * z).sum(1)
    kept, t, w_t = class_index_rows(target, weight, ignore_index, z.dtype)
    z_t = z.gather(1, t.unsqueeze(1)).squeeze(1)
    loss = (1 - eps) * w_t * (lse - z_t)                                          # (1 − ε) w_t (ℓ − z_t)
    if eps > 0:                                                                   # + (ε / C) Σ_c w_c (ℓ − z_c)
        w = class_weight(weight, n_classes, z.dtype, z.device)
        smooth = w.sum() * lse - torch.matmul(z, w)
        loss = loss + (eps / n_classes) * smooth.where(kept, 0)
    return loss


def indices(target):
    """Class indices as int64, what indexing takes, from the uint8 a target may be kept as."""
    return target.long() if target.dtype == torch.uint8 else target


def divisor(target, weight, ignore_index, dtype):
    """D of 'mean': Σ w_t over the rows kept (class indices), or the number of rows (probabilities)."""
    if target.is_floating_point():
        return target.shape[0]
    return class_index_rows(target, weight, ignore_index, dtype)[2].sum()


class LinearCrossEntropy(HandFunction):
    """L = cross_entropy(x Wᵀ + b, t), chunk by chunk of rows; returns (L, ℓ).

    Inputs, already flattened by ``linear_cross_entropy``: ``x`` (N, d); ``w`` (V · D, d); ``b``
    (V · D,) or None; ``target`` (N · D,) int64 class indices or (N · D, V) probabilities, one row per
    prediction; ``weight`` (V,) or None; ``ignore_index`` (int, or None when no row is ignored);
    ``eps`` the label smoothing; ``reduction``; ``positions`` D, the predictions per row of x (1, or
    d1 ⋯ dK for a K-dimensional loss); ``rows`` rows of x a chunk (None: ``CHUNK_ENTRIES`` logits a
    chunk); ``loss_dtype`` L's dtype. ℓ is (N · D,).
    """

    @staticmethod
    def forward(x, w, b, target, weight, ignore_index, eps, reduction, positions, rows, loss_dtype):
        target = indices(target)
        dtype = computed_in(x.dtype)
        lse, losses = [], []
        spans = chunks(x.shape[0], w.shape[0], rows)
        # One prediction a row in x's own dtype: every chunk's z and e^(z − m) in the same two tensors,
        # which an allocator that gives freed memory back (glibc's) would otherwise make again and
        # again, its resident memory growing to ten times what is live (bench section 10).
        buffers = positions == 1 and dtype == x.dtype and w.shape[0] > 0 and spans and writable_buffers()
        if buffers:
            z_all, scratch = chunk_buffer(x, w, spans), chunk_buffer(x, w, spans)
        for i, j in spans:
            if buffers:
                z = logits_into(z_all[:j - i], x[i:j], w, b)                      # z = x Wᵀ + b
                lse.append(logsumexp_rows(z, scratch[:j - i]))
            else:
                z = logits(x[i:j], w, b, positions, dtype)                        # (rows · D, V)
                lse.append(torch.logsumexp(z, 1))
            losses.append(rows_loss(z, lse[-1], target[i * positions:j * positions], weight, ignore_index, eps))
        lse = torch.cat(lse) if lse else x.new_zeros(0, dtype=dtype)
        losses = torch.cat(losses) if losses else x.new_zeros(0, dtype=dtype)
        loss = reduce(losses, reduction, divisor(target, weight, ignore_index, dtype))
        return as_dtype(loss, loss_dtype), lse

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w, b, target, weight, ignore_index, eps, reduction, positions, rows, loss_dtype = inputs
        # ℓ is computed again from z, which backward computes anyway; dL/dq reads no q: the target is
        # kept for the gradients of x, W and b.
        ctx.save_for_backward(x, w, b, target if any(ctx.needs_input_grad[:3]) else None, weight)
        ctx.save_for_forward(x, w, b, target, weight, output[1])
        ctx.options = (ignore_index, eps, reduction, positions, rows)
        ctx.loss_dtype = loss_dtype
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_lse):
        x, w, b, target, weight = ctx.saved_tensors
        target = None if target is None else indices(target)
        grads = linear_cross_entropy_backward(ctx.needs_input_grad[:4], g, g_lse, x, w, b, target, weight,
                                              *ctx.options)
        return (*grads, None, None, None, None, None, None, None)

    @staticmethod
    def jvp(ctx, dx, dw, db, dq, *_):
        x, w, b, target, weight, lse = ctx.saved_tensors
        target = indices(target)
        d_loss, d_lse = linear_cross_entropy_jvp(dx, dw, db, dq, x, w, b, target, weight, lse, *ctx.options)
        return as_dtype(d_loss, ctx.loss_dtype), d_lse


@derivation
def linear_cross_entropy_backward(wants, g, g_lse, x, w, b, target, weight, ignore_index, eps, reduction,
                                  positions, rows):
    """dL/dx, dL/dW, dL/db, dL/dq (None where not wanted), chunk by chunk: z and ℓ recomputed, then

        dL/dz = r (s p − a) + p ∘ g_ℓ       p = e^(z − ℓ); g_ℓ where ℓ itself is differentiated
        dL/dx = (dL/dz) W,  dL/dW = Σ_chunks (dL/dz)ᵀ x,  dL/db = Σ_rows dL/dz
        dL/dq = −r (1 − ε) w ∘ log p        class probabilities q (a is linear in q)

    r is the same for every chunk: 'mean' divides by D over all rows, which the chunk passes as g / D
    with reduction 'sum'. target is None where only dL/dq is wanted, which reads no q (D is then the
    number of rows, that of ℓ). Shapes: x (N, d), W (V · D, d), z, p (rows · D, V)."""
    dtype = computed_in(x.dtype)
    n_classes = w.shape[0] // positions
    probabilities = target is None or target.is_floating_point()
    needs_dz = wants[0] or wants[1] or wants[2]
    chunk_reduction = reduction
    if g is not None:
        g = as_dtype(g, dtype)
        if reduction == "mean":
            D = x.shape[0] * positions if target is None else divisor(target, weight, ignore_index, dtype)
            g, chunk_reduction = g / D, "sum"
    grad_x, grad_q = [], []
    grad_w = grad_b = None
    for i, j in chunks(x.shape[0], w.shape[0], rows):
        rows_of = slice(i * positions, j * positions)
        z = logits(x[i:j], w, b, positions, dtype)                                 # (rows · D, V)
        log_p = z - row_logsumexp(z)                                               # z − ℓ
        dz = None
        if g is not None:
            g_chunk = g[rows_of] if chunk_reduction == "none" else g
            if needs_dz:
                dz = softmax_cross_entropy_backward(g_chunk, log_p, target[rows_of], weight, ignore_index, eps,
                                                    chunk_reduction)               # r (s p − a)
            if wants[3] and probabilities:
                r = g_chunk.unsqueeze(1) if chunk_reduction == "none" else g_chunk
                w_c = class_weight(weight, n_classes, dtype, x.device)
                grad_q.append(as_dtype(-r * (1 - eps) * w_c * log_p, x.dtype))     # dL/dq, q in x's dtype
        if not needs_dz:
            continue
        if g_lse is not None:
            through_lse = log_p.exp() * as_dtype(g_lse[rows_of], dtype).unsqueeze(1)   # p ∘ g_ℓ
            dz = through_lse if dz is None else dz + through_lse
        if dz is None:
            dz = torch.zeros_like(log_p)
        dz = as_dtype(from_rows(dz, positions), x.dtype)                           # (rows, V · D)
        if wants[0]:
            grad_x.append(torch.matmul(dz, w))                                     # dL/dx = (dL/dz) W
        if wants[1]:
            step = torch.matmul(dz.transpose(0, 1), x[i:j])                         # dL/dW += (dL/dz)ᵀ x
            grad_w = step if grad_w is None else grad_w + step
        if wants[2] and b is not None:
            step = dz.sum(0)                                                       # dL/db += Σ dL/dz
            grad_b = step if grad_b is None else grad_b + step
    grad_x = (torch.cat(grad_x) if grad_x else torch.zeros_like(x)) if wants[0] else None
    if wants[1] and grad_w is None:
        grad_w = torch.zeros_like(w)
    if wants[2] and b is not None and grad_b is None:
        grad_b = torch.zeros_like(b)
    grad_q = (torch.cat(grad_q) if grad_q else x.new_zeros(x.shape[0] * positions, n_classes)) \
        if wants[3] and probabilities else None
    return grad_x, grad_w, grad_b, grad_q


@linear_cross_entropy_backward.faster
def _linear_cross_entropy_backward_in_place(wants, g, g_lse, x, w, b, target, weight, ignore_index, eps,
                                            reduction, positions, rows):
    """The same for class indices (one prediction a row, x's own dtype, no g_ℓ), with one (rows, V)
    tensor for every chunk: z is written into it, then p = softmax(z) and dL/dz = r (s p − a) in
    place, and dL/dx, dL/dW, dL/db go straight into their own tensors (``addmm_``). The reference
    makes several (rows, V) tensors a chunk and frees them; glibc's allocator does not reuse that
    memory well, and at (N 4096, d 256, V 32768) its peak resident memory grew to 530-940 MiB where
    this form's stays at 68 MiB, in 0.84× the reference's time (bench sections 9 and 10)."""
    if positions != 1 or g is None or g_lse is not None or target is None or target.is_floating_point() or \
            computed_in(x.dtype) != x.dtype or not writable_buffers():
        return linear_cross_entropy_backward.reference(wants, g, g_lse, x, w, b, target, weight, ignore_index,
                                                       eps, reduction, positions, rows)
    if reduction == "mean":
        g, reduction = g / divisor(target, weight, ignore_index, x.dtype), "sum"
    spans = chunks(x.shape[0], w.shape[0], rows)
    z = chunk_buffer(x, w, spans)                                                     # (rows, V)
    grad_x = x.new_empty(x.shape) if wants[0] else None                               # contiguous, as out= wants
    grad_w = torch.zeros_like(w) if wants[1] else None
    grad_b = torch.zeros_like(b) if wants[2] and b is not None else None
    for i, j in spans:
        p = softmax_rows_(logits_into(z[:j - i], x[i:j], w, b))                       # p = softmax(x Wᵀ + b)
        dz = sparse_target_backward_(g[i:j] if reduction == "none" else g, p, target[i:j], weight, ignore_index,
                                     eps, reduction)                                  # r (s p − a)
        if wants[0]:
            torch.matmul(dz, w, out=grad_x[i:j])                                      # dL/dx = (dL/dz) W
        if wants[1]:
            grad_w.addmm_(dz.transpose(0, 1), x[i:j])                                 # dL/dW += (dL/dz)ᵀ x
        if grad_b is not None:
            grad_b.add_(dz.sum(0))                                                    # dL/db += Σ dL/dz
    return grad_x, grad_w, grad_b, None


def linear_cross_entropy_jvp(dx, dw, db, dq, x, w, b, target, weight, lse, ignore_index, eps, reduction, positions,
                             rows):
    """Forward mode, chunk by chunk: dz = dx Wᵀ + x dWᵀ + db, dℓ = Σ_c p_c dz_c, d log p = dz − dℓ,
    dL_row = −Σ_c (a_c d log p_c + da_c log p_c) with da = (1 − ε) w dq; reduced as L is. Returns (dL, dℓ)."""
    dtype = computed_in(x.dtype)
    n_classes = w.shape[0] // positions
    d_rows, d_lse = [], []
    for i, j in chunks(x.shape[0], w.shape[0], rows):
        rows_of = slice(i * positions, j * positions)
        log_p = logits(x[i:j], w, b, positions, dtype) - lse[rows_of].unsqueeze(1)
        dz = 0
        if dx is not None:
            dz = dz + torch.matmul(dx[i:j], w.transpose(0, 1))
        if dw is not None:
            dz = dz + torch.matmul(x[i:j], dw.transpose(0, 1))
        if db is not None:
            dz = dz + db
        dz = torch.zeros_like(log_p) if isinstance(dz, int) else logits_layout(as_dtype(dz, dtype), positions)
        d_lse.append((log_p.exp() * dz).sum(1))                                    # dℓ = Σ_c p_c dz_c
        a, _ = target_distribution(target[rows_of], weight, ignore_index, eps, n_classes, dtype)
        d_row = -torch.where(a != 0, a * (dz - d_lse[-1].unsqueeze(1)), 0).sum(1)  # −Σ_c a_c d log p_c
        if dq is not None:
            da = (1 - eps) * class_weight(weight, n_classes, dtype, x.device) * as_dtype(dq[rows_of], dtype)
            d_row = d_row - (da * log_p).sum(1)                                    # − Σ_c da_c log p_c
        d_rows.append(d_row)
    d_rows = torch.cat(d_rows) if d_rows else lse.new_zeros(0)
    d_lse = torch.cat(d_lse) if d_lse else torch.zeros_like(lse)
    return reduce(d_rows, reduction, divisor(target, weight, ignore_index, dtype)), d_lse


def logits_layout(z, positions):
    """x Wᵀ's layout (rows, V · D) as ``logits``'s rows (rows · D, V)."""
    if positions == 1:
        return z
    return z.reshape(z.shape[0], -1, positions).transpose(1, 2).reshape(-1, z.shape[1] // positions)


# -- functional face -------------------------------------------------------------------------------


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, options=None):
    """L = cross_entropy(linear(input, W, b), target), as ``torch.nn.functional.linear_cross_entropy``
    (torch 2.14), computed in chunks of rows: the (N, C) logits are never held at once, whatever
    ``options`` says, and double backward, forward mode, torch.func and compile all work. Works where
    the installed torch lacks the built-in.

    Shapes: input (N, d) or (d); linear_weight (C, d), or (C, d1, ..., dK, d) for a K-dimensional
    loss (logits (N, C, d1, ..., dK)); linear_bias the logits' class dimensions, (C) or
    (C, d1, ..., dK); target class indices (N) / (N, d1, ..., dK) / () (int64, or uint8), or class
    probabilities with the logits' shape; weight (C). ``ignore_index`` None means -100 for class
    indices and is refused with probabilities, as in torch. ``options`` (a
    ``LinearCrossEntropyOptions``) is read for its ``batch_chunk_size`` only: rows a chunk.
    """
    fn = "linear_cross_entropy"
    for name, t in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        check_tensor(fn, name, t)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.dim() not in (1, 2):
        raise RuntimeError(f"{fn}: expected input of dimensionality 1 (d) or 2 (N, d), got {input.dim()}")
    if linear_weight.dim() < 2:
        raise RuntimeError(f"{fn}: expected linear_weight of dimensionality at least 2 (C, d), got "
                           f"{linear_weight.dim()}")
    if not input.is_floating_point() or not linear_weight.is_floating_point():
        raise RuntimeError(f"{fn}: input and linear_weight must be floating point, got {input.dtype} and "
                           f"{linear_weight.dtype}")
    d, n_classes, out_features = input.shape[-1], linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    if linear_weight.shape[-1] != d:
        raise RuntimeError(f"{fn}: input has {d} features but linear_weight {tuple(linear_weight.shape)} takes "
                           f"{linear_weight.shape[-1]} (its last dimension)")
    if linear_bias is not None:
        check_tensor(fn, "linear_bias", linear_bias)
        if tuple(linear_bias.shape) != (n_classes, *out_features):
            raise RuntimeError(f"{fn}: expected linear_bias of shape {(n_classes, *out_features)}, got "
                               f"{tuple(linear_bias.shape)}")
    batched = input.dim() == 2
    if out_features and not batched:
        raise RuntimeError(f"{fn}: a K-dimensional loss (linear_weight {tuple(linear_weight.shape)}) needs a "
                           f"batched input (N, {d}), got {tuple(input.shape)}")
    batch = tuple(input.shape[:-1])
    probabilities = target.is_floating_point()
    if probabilities and ignore_index is not None:
        raise RuntimeError(f"{fn}: ignore_index cannot be specified when target contains probabilities")
    ignore_index = -100 if ignore_index is None else ignore_index
    _check_class_weight(fn, weight, n_classes)
    rows = getattr(options, "batch_chunk_size", None)
    if options is not None and not hasattr(options, "batch_chunk_size"):
        raise TypeError(f"{fn}: options must be a torch.nn.LinearCrossEntropyOptions or None, got "
                        f"{type(options).__name__}")
    if rows is not None and (not isinstance(rows, int) or rows < 1):
        raise ValueError(f"{fn}: options.batch_chunk_size must be a positive number of rows, got {rows}")
    loss_dtype = input.dtype
    if input.device.type in FLOAT32 and torch.is_autocast_enabled(input.device.type):
        loss_dtype = torch.float32                                   # cross_entropy runs in float32 there
    _, weight, *q = autocast(FLOAT32, input, weight, *((target,) if probabilities else ()))
    input, linear_weight, linear_bias = autocast(LOWER, input, linear_weight, linear_bias)
    check_same_dtype_and_device(fn, {"input": input, "linear_weight": linear_weight, "linear_bias": linear_bias})
    positions = 1
    for k in out_features:
        positions *= k
    x = input if batched else input.unsqueeze(0)
    w = linear_weight.reshape(n_classes * positions, d)
    b = None if linear_bias is None else linear_bias.reshape(n_classes * positions)
    logits_shape = (*batch, n_classes, *out_features)
    if probabilities:
        q = q[0]
        if q.shape != logits_shape:
            raise RuntimeError(f"{fn}: a floating-point target is read as class probabilities and must have the "
                               f"logits' shape {logits_shape}, got {tuple(q.shape)}")
        t = q.unsqueeze(0) if not batched else q
        t = t.movedim(1, -1).reshape(-1, n_classes) if out_features else t
        ignore = None
    else:
        every_row_kept = _check_targets(fn, target, (*batch, *out_features), n_classes, ignore_index, input.device)
        t = target.reshape(-1)                   # uint8 kept as uint8 (an eighth of the bytes): indices()
        ignore = None if every_row_kept else ignore_index
    loss, _ = apply(LinearCrossEntropy, x, w, b, t, weight, ignore, label_smoothing, reduction, positions, rows,
                    loss_dtype)
    if reduction == "none":
        loss = loss.reshape((*batch, *out_features))
    return loss


def _check_targets(fn, target, shape, n_classes, ignore_index, device):
    """Class indices of ``shape`` (the logits' without the class dimension), each in [0, C) or
    ignore_index; True when no row can be ignored."""
    if target.dtype not in (torch.long, torch.uint8):
        raise RuntimeError(f"{fn}: class-index target must have dtype torch.long (or torch.uint8), got {target.dtype}")
    if tuple(target.shape) != shape:
        raise RuntimeError(f"{fn}: target of shape {tuple(target.shape)} does not match the logits: class-index "
                           f"targets must have shape {shape} (the logits' without the class dimension)")
    if target.device != device:
        raise RuntimeError(f"{fn}: target is on {target.device} but input is on {device}; move them to the same device")
    return _index_range(fn, target, n_classes, ignore_index)


def _index_range(fn, target, n_classes, ignore_index):
    """Every index in [0, C) or equal to ignore_index (raises IndexError naming one that is not);
    True when none can equal ignore_index."""
    if not target.numel() or not can_inspect_values(target):
        return False
    low, high = (int(v) for v in torch.aminmax(target))
    if low >= 0 and high < n_classes:
        return not 0 <= ignore_index < n_classes
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise IndexError(f"{fn}: target {target[bad].flatten()[0].item()} is out of bounds: class indices must lie "
                         f"in [0, {n_classes - 1}] for {n_classes} classes, or equal ignore_index={ignore_index}")
    return False


def _module_forward(self, input, target):
    """torch.nn.LinearCrossEntropyLoss's forward: its Linear's weight and bias as (C, d1, …, dK, d)."""
    linear_weight = self.linear.weight.reshape((self.num_classes, *self.out_features, self.linear.in_features))
    linear_bias = (None if self.linear.bias is None
                   else self.linear.bias.reshape((self.num_classes, *self.out_features)))
    return linear_cross_entropy(input, linear_weight, target, linear_bias=linear_bias, weight=self.weight,
                                reduction=self.reduction, ignore_index=self.ignore_index,
                                label_smoothing=self.label_smoothing, options=self.options)


register(Op(
    "linear_cross_entropy", linear_cross_entropy, (LinearCrossEntropy,),
    Derivative("L = cross_entropy(x Wᵀ + b, t), chunk by chunk of rows",
               "dL/dz = r (s p − a) per chunk, z recomputed; dL/dx = (dL/dz) W, dL/dW = Σ (dL/dz)ᵀ x",
               "x (N, d), W (V, d), z (chunk, V), ℓ (N,)"),
    modules=({torch.nn.LinearCrossEntropyLoss: Module(_module_forward)}
             if hasattr(torch.nn, "LinearCrossEntropyLoss") else {}),
    fused_by="`LinearCrossEntropyLoss` where torch has it",
))

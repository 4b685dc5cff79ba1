"""The seed's layer, y = x Wᵀ + b, and the seed's hidden layer y = φ(x Wᵀ + b) as one Function.

Notation: x a layer's input (*, in), W its weight stored (out, in) as in ``torch.nn.Linear`` (the
seed writes l = x W with W (in, out): the same numbers, transposed), b its bias, g = dL/dy (*, out).
"""

import math

import torch

from handgrad.ops import activation
from handgrad.ops._checks import LOWER, autocast, check_same_dtype_and_device, check_tensor
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Module, ModuleSample, Op, register
from handgrad.testing import ErrorInput, Sample, Tolerance, randn


def _matrix(t):
    """View ``(*, n)`` as ``(prod(*), n)``: every leading dimension acts as a batch dimension."""
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


class Linear(HandFunction):
    """y = x Wᵀ + b for ``x`` of shape (*, in), ``W`` (out, in), ``b`` broadcastable to (*, out)."""

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
        x, W = ctx.saved_tensors
        return linear_backward(ctx.needs_input_grad, ctx.bias_shape, g, x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        x, W = ctx.saved_tensors
        return linear_jvp(x, W, dx, dW, db)


def linear_backward(needs_input_grad, bias_shape, g, x, W):
    """dL/dx = g W, dL/dW = gᵀ x, dL/db = Σ g, each only if asked for.

    From y = x Wᵀ + b, one entry at a time: y_nj = Σ_i x_ni W_ji + b_j, so dy_nj/dx_ni = W_ji,
    dy_nj/dW_ji = x_ni and dy_nj/db_j = 1; summing over what each entry touches gives the three
    products. The leading dimensions * are flattened into one batch dimension N, so gᵀ x sums the
    outer products of all N rows, and Σ g sums g over every dimension along which b was broadcast.
    """
    grad_x = grad_W = grad_b = None
    rows = g.dim() == 2                                      # (N, out): nothing to flatten or broadcast
    if needs_input_grad[0]:
        grad_x = g.mm(W) if rows else g.matmul(W)            # dL/dx = g W, (*, in)
    if needs_input_grad[1]:
        grad_W = g.t().mm(x) if rows else _matrix(g).t().mm(_matrix(x))      # dL/dW = gᵀ x, (out, in)
    if bias_shape is not None and needs_input_grad[2]:
        plain = rows and len(bias_shape) == 1 and bias_shape[0] == g.shape[1]
        grad_b = g.sum(0) if plain else g.sum_to_size(bias_shape)             # dL/db = Σ g, b's shape
    return grad_x, grad_W, grad_b


def linear_jvp(x, W, dx, dW, db):
    """Forward mode: dy = dx Wᵀ + x dWᵀ + db, (*, out)."""
    terms = []
    if dx is not None:
        terms.append(Linear.forward(dx, W))
    if dW is not None:
        terms.append(Linear.forward(x, dW))
    if db is not None:
        terms.append(db)
    return sum(terms[1:], terms[0])


class _LinearThenActivation(HandFunction):
    """What the fused Functions share: they keep x and W for the linear part, y for the activation."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        ctx.save_for_backward(x, W, output)
        ctx.save_for_forward(x, W, output)
        ctx.bias_shape = None if b is None else b.shape


class LinearSigmoid(_LinearThenActivation):
    """y = σ(x Wᵀ + b): the seed's hidden layer lⁱ = φ(lⁱ⁻¹ Wⁱ + bⁱ) as one Function.

    The same derivatives as ``Linear`` then ``Sigmoid``, in one call with one output tensor (the
    sigmoid is applied in place to the product), which is what ``handgrad.nn.Sequential`` runs.
    """

    @staticmethod
    def forward(x, W, b=None):
        return _activate("sigmoid", Linear.forward(x, W, b))

    @staticmethod
    def backward(ctx, g):
        """dL/dz = g · y(1 − y), then dL/dx = (dL/dz) W, dL/dW = (dL/dz)ᵀ x, dL/db = Σ dL/dz."""
        x, W, y = ctx.saved_tensors
        return linear_backward(ctx.needs_input_grad, ctx.bias_shape, activation.sigmoid_rule(g, y), x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        """Forward mode: dy = y (1 − y) (dx Wᵀ + x dWᵀ + db)."""
        x, W, y = ctx.saved_tensors
        return activation.sigmoid_rule(linear_jvp(x, W, dx, dW, db), y)


class LinearReLU(_LinearThenActivation):
    """y = max(x Wᵀ + b, 0): the quickstart's hidden layer as one Function (see ``LinearSigmoid``)."""

    @staticmethod
    def forward(x, W, b=None):
        return _activate("relu", Linear.forward(x, W, b))

    @staticmethod
    def backward(ctx, g):
        """dL/dz = g · 1[z > 0], then dL/dx = (dL/dz) W, dL/dW = (dL/dz)ᵀ x, dL/db = Σ dL/dz."""
        x, W, y = ctx.saved_tensors
        return linear_backward(ctx.needs_input_grad, ctx.bias_shape, activation.relu_rule(g, y), x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        """Forward mode: dy = 1[z > 0] (dx Wᵀ + x dWᵀ + db)."""
        x, W, y = ctx.saved_tensors
        return linear_jvp(x, W, dx, dW, db) * activation.relu_mask(y)


_ACTIVATIONS = {  # name: (φ in place, φ, rule(g, y) = g ∘ φ'(z) read from y = φ(z))
    "sigmoid": (torch.Tensor.sigmoid_, torch.sigmoid, activation.sigmoid_rule),
    "relu": (torch.Tensor.relu_, torch.relu, activation.relu_rule),
}
RULES = {name: rule for name, (_, _, rule) in _ACTIVATIONS.items()}
# The rules for a g that is NaN across each row of a NaN unit (``activation.relu_rule_nan_rows``):
# what ``LinearChainCrossEntropy`` hands ``chain_backward``.
RULES_NAN_ROWS = {**RULES, "relu": activation.relu_rule_nan_rows}


def _activate(name, z):
    """φ(z), in place on z (one tensor a layer), but a new tensor while ``torch.compile`` traces:
    there, in torch 2.11, a Function's output made by an in-place op got no gradient (the compiled
    graph ran the hand backward on a zero tangent, so every gradient came out 0: found on an H100,
    then seen on the CPU with torch 2.11; 2.14 is right either way)."""
    inplace, fresh, _ = _ACTIVATIONS[name]
    return fresh(z) if torch.compiler.is_compiling() else inplace(z)


class LinearChain(HandFunction):
    """The seed's whole forward pass as one Function: l⁰ = x, lⁱ = φⁱ(lⁱ⁻¹ Wⁱᵀ + bⁱ) for i = 1..L.

    ``activations[i]`` names φⁱ⁺¹ ("sigmoid", "relu", or None for none); ``params`` are W¹, b¹, ...,
    Wᴸ, bᴸ (a b may be None). Backward is the seed's ``update_weights``, batched: one call for the
    whole chain instead of one per layer. Returns (lᴸ, l¹, ..., lᴸ⁻¹): the hidden outputs are what
    backward needs, returned (as the cross-entropy returns log p) so that double backward
    differentiates through them.
    """

    @staticmethod
    def forward(x, activations, *params):
        outputs, l = [], x
        for i, name in enumerate(activations):
            W, b = params[2 * i], params[2 * i + 1]
            if l.dim() == 2 and b is not None:
                l = torch.addmm(b, l, W.t())                                   # lⁱ⁻¹ Wⁱᵀ + bⁱ, one kernel
            else:
                l = Linear.forward(l, W, b)
            if name is not None:
                l = _activate(name, l)                                         # φ in place: one tensor per layer
            outputs.append(l)
        return (outputs[-1], *outputs[:-1])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, activations, *params = inputs
        y, *hidden = output
        # lᴸ is needed only for the top layer's φ' (the seed's networks have none on the logits).
        top = (y,) if activations[-1] is not None else ()
        ctx.save_for_backward(x, *params[::2], *hidden, *top)
        ctx.save_for_forward(x, *params[::2], *hidden, *top)
        ctx.activations = activations
        ctx.bias_shapes = [None if b is None else b.shape for b in params[1::2]]
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, *g_hidden):
        """``chain_backward`` on what forward kept: x, the weights, l¹, ..., lᴸ⁻¹ (and lᴸ if kept)."""
        n = len(ctx.activations)
        x, *rest = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x, grad_params = chain_backward(g, g_hidden, x, rest[:n], rest[n:], ctx.activations, ctx.bias_shapes,
                                             needs[0], needs[2:])
        return (grad_x, None, *grad_params)

    @staticmethod
    def jvp(ctx, dx, _, *dparams):
        """Forward mode, from the bottom up: dlⁱ = φ'(zⁱ) ∘ (dlⁱ⁻¹ Wⁱᵀ + lⁱ⁻¹ dWⁱᵀ + dbⁱ)."""
        n = len(ctx.activations)
        x, *rest = ctx.saved_tensors
        Ws, outputs = rest[:n], [x, *rest[n:], None][: n + 1]
        tangents, dl = [], dx
        for i, name in enumerate(ctx.activations):
            dW, db = dparams[2 * i], dparams[2 * i + 1]
            if dl is None and dW is None and db is None:
                dl = torch.zeros_like(outputs[i + 1])
            else:
                dl = linear_jvp(outputs[i], Ws[i], dl, dW, db)
                if name is not None:
                    dl = _ACTIVATIONS[name][2](dl, outputs[i + 1])
            tangents.append(dl)
        return (tangents[-1], *tangents[:-1])


def chain_backward(g, g_hidden, x, Ws, above, activations, bias_shapes, needs_x, needs_params, rules=RULES):
    """The backward of ``LinearChain``, and of the chain inside ``LinearChainCrossEntropy``: from the
    top layer down, as the seed's update_weights. g arrives at lⁱ, goes through φⁱ (g ← g ∘ φ'),
    gives dL/dWⁱ = gᵀ lⁱ⁻¹ and dL/dbⁱ = Σ g, and moves down as g ← g Wⁱ.

    ``above`` holds l¹, ..., lᴸ⁻¹ (and lᴸ when the top layer has a φ), ``g_hidden`` the gradients
    that reached l¹, ..., lᴸ⁻¹ from outside the chain (None for none), ``needs_x`` and
    ``needs_params`` (one per W¹, b¹, ..., Wᴸ, bᴸ) which gradients are wanted, ``rules`` each φ's
    rule g ∘ φ'. Returns (dL/dx, [dL/dW¹, dL/db¹, ..., dL/dWᴸ, dL/dbᴸ]), None where not wanted.
    """
    n = len(activations)
    outputs = [x, *above, None][: n + 1]                     # outputs[i] = lⁱ, i = 0..L (lᴸ if kept)
    # below[i]: whether anything below layer i asks for a gradient; then g must go on down through Wⁱ.
    below, wanted = [], needs_x
    for i in range(n):
        below.append(wanted)
        wanted = wanted or needs_params[2 * i] or needs_params[2 * i + 1]
    grads = [None] * (2 * n)
    for i in reversed(range(n)):
        if i < n - 1 and g_hidden[i] is not None:                # lⁱ⁺¹ was used outside too
            g = g_hidden[i] if g is None else g + g_hidden[i]
        if g is None:
            continue
        if activations[i] is not None:
            g = rules[activations[i]](g, outputs[i + 1])                        # g ∘ φ'(zⁱ⁺¹)
        wanted = (below[i], needs_params[2 * i], needs_params[2 * i + 1])
        g, grads[2 * i], grads[2 * i + 1] = linear_backward(wanted, bias_shapes[i], g, outputs[i], Ws[i])
    return g, grads


# -- functional faces ------------------------------------------------------------------------------


def linear(input, weight, bias=None):
    """y = x Wᵀ + b, as ``torch.nn.functional.linear``.

    Shapes: input (*, in), weight (out, in) or (in,), bias broadcastable to (*, out); output
    (*, out), or (*) for a 1-D weight.
    """
    if _plain_chain(input, (None,), (weight, bias)):                # checked: the common case needs no more
        return apply(Linear, input, weight, bias)
    input, weight, bias = _linear_arguments("linear", input, weight, bias)
    if weight.dim() == 1:
        return apply(Linear, input, weight.unsqueeze(0), None).squeeze(-1)
    return apply(Linear, input, weight, bias)


def linear_sigmoid(input, weight, bias=None):
    """y = σ(x Wᵀ + b), the same as ``sigmoid(linear(input, weight, bias))`` in one Function.

    Shapes: input (*, in), weight (out, in), bias broadcastable to (*, out); output (*, out).
    """
    if not _plain_chain(input, ("sigmoid",), (weight, bias)):
        input, weight, bias = _linear_arguments("linear_sigmoid", input, weight, bias, weight_1d=False)
    return apply(LinearSigmoid, input, weight, bias)


def linear_relu(input, weight, bias=None):
    """y = max(x Wᵀ + b, 0), the same as ``relu(linear(input, weight, bias))`` in one Function.

    Shapes: input (*, in), weight (out, in), bias broadcastable to (*, out); output (*, out).
    """
    if not _plain_chain(input, ("relu",), (weight, bias)):
        input, weight, bias = _linear_arguments("linear_relu", input, weight, bias, weight_1d=False)
    return apply(LinearReLU, input, weight, bias)


def linear_chain(input, activations, *params):
    """lᴸ of the chain lⁱ = φⁱ(lⁱ⁻¹ Wⁱᵀ + bⁱ), l⁰ = input, in one Function (``LinearChain``): the
    same as ``linear`` and the activations layer by layer, which is what ``handgrad.nn.Sequential``
    runs for a stack of Linear layers and their Sigmoid or ReLU.

    Args:
        input: (*, in)
        activations: one name per layer, "sigmoid", "relu" or None
        params: W¹, b¹, ..., Wᴸ, bᴸ with Wⁱ (outⁱ, inⁱ) and bⁱ (outⁱ,) or None
    """
    if _plain_chain(input, activations, params):
        return apply(LinearChain, input, activations, *params)[0]
    if not isinstance(activations, (tuple, list)) or not activations:
        raise TypeError(f"linear_chain: activations must be a non-empty tuple, got {activations!r}")
    unknown = [a for a in activations if a is not None and a not in _ACTIVATIONS]
    if unknown:
        raise ValueError(f"linear_chain: unknown activation {unknown[0]!r}; use one of {sorted(_ACTIVATIONS)} or None")
    if len(params) != 2 * len(activations):
        raise TypeError(f"linear_chain: {len(activations)} layers take {2 * len(activations)} parameters "
                        f"(a weight and a bias or None each), got {len(params)}")
    checked, l = [], input
    for i in range(len(activations)):
        W, b = params[2 * i], params[2 * i + 1]
        if b is not None and isinstance(b, torch.Tensor) and b.dim() != 1:
            raise RuntimeError(f"linear_chain: bias of layer {i + 1} must be 1-D (out_features,), got shape {tuple(b.shape)}")
        l, W, b = _linear_arguments(f"linear_chain: layer {i + 1}", l, W, b, weight_1d=False)
        checked += [W, b]
        l = l.new_empty((1,) * (l.dim() - 1) + (W.shape[0],))      # stands for lⁱ: its shape, dtype, device
    input = autocast(LOWER, input)[0]
    y, *_ = apply(LinearChain, input, tuple(activations), *checked)
    return y


def _plain_chain(input, activations, params):
    """Whether ``linear_chain``'s arguments are the common case, which needs no cast and passes every
    check of the general path: a tuple of known activations, weights (out, in) whose widths follow
    on from the input's, biases (out,) or None, all of the input's dtype and device, autocast off.
    It only answers; anything else takes the general path, which casts or names what is wrong."""
    if type(activations) is not tuple or not activations or len(params) != 2 * len(activations):
        return False
    if not isinstance(input, torch.Tensor) or input.dim() == 0:
        return False
    dtype, device = input.dtype, input.device
    if torch.is_autocast_enabled("cpu" if input.is_cpu else device.type):
        return False
    width = input.shape[-1]
    for i, name in enumerate(activations):
        W, b = params[2 * i], params[2 * i + 1]
        if name is not None and name not in _ACTIVATIONS:
            return False
        if not isinstance(W, torch.Tensor) or W.dim() != 2 or W.dtype != dtype or W.device != device:
            return False
        out, in_ = W.shape
        if in_ != width or b is not None and (not isinstance(b, torch.Tensor) or b.dim() != 1 or b.shape[0] != out
                                              or b.dtype != dtype or b.device != device):
            return False
        width = out
    return True


def _linear_arguments(fn, input, weight, bias, weight_1d=True):
    """Check linear's arguments; return them cast as autocast casts the built-in's (first, so that
    a float32 layer takes the autocast dtype its predecessor produced, as the built-in does)."""
    check_tensor(fn, "input", input)
    check_tensor(fn, "weight", weight)
    if bias is not None:
        check_tensor(fn, "bias", bias)
    input, weight, bias = autocast(LOWER, input, weight, bias)
    if input.dim() == 0:
        raise RuntimeError(f"{fn}: input must have at least 1 dimension (*, in_features), got a 0-d tensor")
    if weight.dim() != 2 and not (weight_1d and weight.dim() == 1):
        expected = "2-D (out_features, in_features) or 1-D (in_features,)" if weight_1d else "2-D (out_features, in_features)"
        raise RuntimeError(f"{fn}: weight must be {expected}, got shape {tuple(weight.shape)}")
    if input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"{fn}: input has {input.shape[-1]} features in its last dimension "
            f"(shape {tuple(input.shape)}) but weight of shape {tuple(weight.shape)} expects "
            f"{weight.shape[-1]}"
        )
    if bias is not None:
        if weight.dim() == 1:
            raise RuntimeError(f"{fn}: a 1-D weight takes no bias (torch.nn.functional.linear refuses it too)")
        out_shape = (*input.shape[:-1], weight.shape[0])
        if bias.shape != out_shape[-1:]:                     # the usual (out,) bias needs no question
            try:
                broadcasts = torch.broadcast_shapes(bias.shape, out_shape) == out_shape
            except RuntimeError:
                broadcasts = False
            if not broadcasts:
                raise RuntimeError(
                    f"{fn}: bias of shape {tuple(bias.shape)} does not broadcast to the output shape "
                    f"{out_shape}; expected a bias of shape ({weight.shape[0]},) for "
                    f"{weight.shape[0]} out_features"
                )
    check_same_dtype_and_device(fn, {"input": input, "weight": weight, "bias": bias})
    return input, weight, bias


# -- NumPy oracle: the seed's l = x W + b, W (in, out) ----------------------------------------------


def linear_numpy(x, W, b=None):
    """The seed's layer in torch's layout: the (out, in) weight transposed to the seed's (in, out)."""
    W_seed = (W if W.ndim == 2 else W[None]).T               # (in, out)
    x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])     # (N, in)
    out_shape = x.shape[:-1] + ((W.shape[0],) if W.ndim == 2 else ())
    y = (x2 @ W_seed).reshape(out_shape) + (0 if b is None else b)

    def vjp(g):
        g2 = g.reshape(x2.shape[0], W_seed.shape[1])
        dx = (g2 @ W_seed.T).reshape(x.shape)                # the seed's dL/dx = g Wᵀ
        dW = (x2.T @ g2).T.reshape(W.shape)                  # the seed's dL/dW = xᵀ g, back to (out, in)
        db = None if b is None else _sum_to(g, b.shape)
        return dx, dW, db

    return y, vjp


def _sum_to(a, shape):
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape)


def _linear_then_numpy(activation_numpy):
    def run(x, W, b=None):
        z, linear_vjp = linear_numpy(x, W, b)
        y, activation_vjp = activation_numpy(z)
        return y, lambda g: linear_vjp(activation_vjp(g)[0])
    return run


# -- samples and registration ----------------------------------------------------------------------


def _linear_samples(fused=False):
    def samples(gen):
        def sample(name, x_shape, out=3, bias=True, weight_1d=False, bias_shape=None):
            n_in = x_shape[-1]
            args = (randn(gen, *x_shape), randn(gen, n_in) if weight_1d else randn(gen, out, n_in))
            if bias:
                args += (randn(gen, *(bias_shape or (out,))),)
            return Sample(args, name=name)

        found = [
            sample("(N, in)", (8, 5)),
            sample("(N, in) no bias", (8, 5), bias=False),
            sample("(in,) unbatched", (5,)),
            sample("(B, T, in)", (2, 3, 5)),
            sample("(0, in) empty batch", (0, 5)),
            sample("(N, 0) no features", (4, 0)),
            sample("(N, out) broadcast bias", (4, 5), bias_shape=(4, 3)),
        ]
        if not fused:
            found.append(sample("1-D weight", (4, 5), bias=False, weight_1d=True))
        return found
    return samples


def _linear_bench(device):
    def randn_(*shape):
        return torch.randn(*shape, device=device, requires_grad=True)
    return [
        (f"{n_in}->{n_out}, batch {batch}", (randn_(batch, n_in), randn_(n_out, n_in), randn_(n_out)), {})
        for batch in (64, 1024) for n_in, n_out in ((784, 512), (512, 512))
    ]


def _chain_reference(input, activations, *params):
    torch_activations = {"sigmoid": torch.sigmoid, "relu": torch.relu, None: lambda t: t}
    for i, name in enumerate(activations):
        input = torch_activations[name](torch.nn.functional.linear(input, params[2 * i], params[2 * i + 1]))
    return input


def linear_chain_numpy(x, activations, *params):
    """The seed's forward pass and its backward pass, one layer's oracle after another."""
    numpy_activations = {"sigmoid": activation.sigmoid_numpy, "relu": activation.relu_numpy}
    vjps, l = [], x
    for i, name in enumerate(activations):
        l, linear_vjp = linear_numpy(l, params[2 * i], params[2 * i + 1])
        l, activation_vjp = numpy_activations[name](l) if name else (l, lambda g: (g,))
        vjps.append((linear_vjp, activation_vjp))

    def vjp(g):
        grads = [None] * (2 + len(params))
        for i in reversed(range(len(activations))):
            linear_vjp, activation_vjp = vjps[i]
            g, grads[2 + 2 * i], grads[3 + 2 * i] = linear_vjp(activation_vjp(g)[0])
        grads[0] = g
        return tuple(grads)

    return l, vjp


def _chain_samples(gen):
    def sample(name, x_shape, sizes, activations, bias=True):
        params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            params += [randn(gen, n_out, n_in), randn(gen, n_out) if bias else None]
        return Sample((randn(gen, *x_shape), activations, *params), name=name)

    return [
        sample("better: sigmoid, sigmoid, none", (8, 5), (5, 7, 6, 3), ("sigmoid", "sigmoid", None)),
        sample("quickstart: relu, relu, none", (8, 5), (5, 7, 6, 3), ("relu", "relu", None)),
        sample("basic: no activation, no bias", (8, 5), (5, 7, 6, 3), (None, None, None), bias=False),
        sample("ends on an activation", (8, 5), (5, 4, 3), ("relu", "sigmoid")),
        sample("one layer", (8, 5), (5, 3), ("sigmoid",)),
        sample("(B, T, in)", (2, 3, 5), (5, 4, 3), ("sigmoid", None)),
        sample("(0, in) empty batch", (0, 5), (5, 4, 3), ("relu", None)),
    ]


def _chain_bench(device):
    def randn_(*shape):
        return torch.randn(*shape, device=device, requires_grad=True)
    found = []
    for batch in (64, 1024):
        params = [t for n_in, n_out in zip((784, 512, 512), (512, 512, 10)) for t in (randn_(n_out, n_in), randn_(n_out))]
        found.append((f"784-512-512-10 sigmoid, batch {batch}", (randn_(batch, 784), ("sigmoid", "sigmoid", None), *params), {}))
    return found


def _then(activation_fn):
    def reference(input, weight, bias=None):
        return activation_fn(torch.nn.functional.linear(input, weight, bias))
    return reference


def _x(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype)


_ERRORS = (
    ErrorInput("input/weight feature mismatch", lambda F, nn: F.linear(_x(2, 3), _x(4, 5)), RuntimeError,
               r"input has 3 features .*shape \(2, 3\).* weight of shape \(4, 5\) expects 5"),
    ErrorInput("bias of the wrong length", lambda F, nn: F.linear(_x(2, 3), _x(4, 3), _x(5)), RuntimeError,
               r"bias of shape \(5,\) does not broadcast to the output shape \(2, 4\)"),
    ErrorInput("bias with more dimensions than the output", lambda F, nn: F.linear(_x(2, 3), _x(4, 3), _x(2, 2, 4)),
               RuntimeError, r"bias of shape \(2, 2, 4\) does not broadcast to the output shape \(2, 4\)"),
    ErrorInput("0-d input", lambda F, nn: F.linear(_x(), _x(4, 3)), RuntimeError,
               r"input must have at least 1 dimension.*0-d"),
    ErrorInput("3-D weight", lambda F, nn: F.linear(_x(2, 3), _x(4, 3, 3)), RuntimeError,
               r"weight must be 2-D .*got shape \(4, 3, 3\)"),
    ErrorInput("1-D weight with a bias", lambda F, nn: F.linear(_x(2, 3), _x(3), _x(1)), RuntimeError,
               r"1-D weight takes no bias"),
    ErrorInput("float64 input, float32 weight", lambda F, nn: F.linear(_x(2, 3, dtype=torch.float64), _x(4, 3)),
               RuntimeError, r"weight has dtype torch\.float32 but input has dtype torch\.float64"),
    ErrorInput("float64 bias, float32 input", lambda F, nn: F.linear(_x(2, 3), _x(4, 3), _x(4, dtype=torch.float64)),
               RuntimeError, r"bias has dtype torch\.float64 but input has dtype torch\.float32"),
    ErrorInput("list input", lambda F, nn: F.linear([[1.0, 2.0, 3.0]], _x(4, 3)), TypeError,
               r"input must be a torch\.Tensor, got list"),
    ErrorInput("nn.Linear input/weight feature mismatch", lambda F, nn: nn.Linear(5, 4)(_x(2, 3)), RuntimeError,
               r"input has 3 features .* weight of shape \(4, 5\) expects 5"),
    ErrorInput("nn.Linear float64 input", lambda F, nn: nn.Linear(3, 4)(_x(2, 3, dtype=torch.float64)), RuntimeError,
               r"weight has dtype torch\.float32 but input has dtype torch\.float64"),
)

LINEAR_SHAPES = "x (*, in), W (out, in), b (out) or broadcastable to (*, out), g (*, out)"

_CHAIN_ERRORS = (
    ErrorInput("unknown activation", lambda F, nn: F.linear_chain(_x(2, 3), ("tanh",), _x(4, 3), None), ValueError,
               r"linear_chain: unknown activation 'tanh'"),
    ErrorInput("a parameter missing", lambda F, nn: F.linear_chain(_x(2, 3), ("relu", None), _x(4, 3), None, _x(2, 4)),
               TypeError, r"2 layers take 4 parameters .*got 3"),
    ErrorInput("layer sizes that do not chain",
               lambda F, nn: F.linear_chain(_x(2, 3), ("relu", None), _x(4, 3), None, _x(2, 5), None), RuntimeError,
               r"linear_chain: layer 2: input has 4 features .* weight of shape \(2, 5\) expects 5"),
)

register(Op(
    "linear", linear, torch.nn.functional.linear, _linear_samples(), linear_numpy, (Linear,),
    Derivative("y = x Wᵀ + b", "dL/dx = g W, dL/dW = gᵀ x, dL/db = Σ g", LINEAR_SHAPES),
    modules={torch.nn.Linear: Module(
        lambda self, input: linear(input, self.weight, self.bias),
        tuple(ModuleSample(f"Linear(5, 4, bias={bias}) on {shape}", lambda gen, shape=shape: (randn(gen, *shape),),
                           (5, 4), {"bias": bias})
              for bias in (True, False) for shape in ((7, 5), (2, 3, 5), (5,), (1, 5))))},
    bench=_linear_bench,
    errors=_ERRORS,
))

register(Op(
    "linear_chain", linear_chain, _chain_reference, _chain_samples, linear_chain_numpy, (LinearChain,),
    Derivative("lⁱ = φⁱ(lⁱ⁻¹ Wⁱᵀ + bⁱ), i = 1..L, in one Function",
               "from the top down: g ← g ∘ φ'(zⁱ), dL/dWⁱ = gᵀ lⁱ⁻¹, dL/dbⁱ = Σ g, g ← g Wⁱ (the seed's update_weights)",
               "as `linear`, for each layer"),
    bench=_chain_bench,
    errors=_CHAIN_ERRORS,
    # Three layers of low-precision rounding (of each hidden output) against float64 NumPy: the
    # gradients of the bottom layers, sums of sums, move by more than one layer's do.
    tolerances={torch.bfloat16: Tolerance(atol=0.25, rtol=3e-2), torch.float16: Tolerance(atol=3e-2, rtol=4e-3)},
))

register(Op(
    "linear_sigmoid", linear_sigmoid, _then(torch.sigmoid), _linear_samples(fused=True),
    _linear_then_numpy(activation.sigmoid_numpy), (LinearSigmoid,),
    Derivative("y = σ(x Wᵀ + b)", "dL/dz = g · y (1 − y), then the rows of `Linear` with dL/dz for g", "as `linear`"),
    bench=_linear_bench,
))

register(Op(
    "linear_relu", linear_relu, _then(torch.relu), _linear_samples(fused=True),
    _linear_then_numpy(activation.relu_numpy), (LinearReLU,),
    Derivative("y = max(x Wᵀ + b, 0)", "dL/dz = g · 1[z > 0], then the rows of `Linear` with dL/dz for g",
               "as `linear`"),
    bench=_linear_bench,
))

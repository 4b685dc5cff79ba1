"""The seed's network as one Function: the hidden layer lⁱ = φ(lⁱ⁻¹ Wⁱᵀ + bⁱ), the whole forward pass
l⁰ = x, ..., lᴸ, and the forward pass with its cross-entropy, each in one call with a backward that
is the seed's ``update_weights``: from the top layer down, g ← g ∘ φ'(zⁱ), dL/dWⁱ = gᵀ lⁱ⁻¹,
dL/dbⁱ = Σ g, g ← g Wⁱ. What ``handgrad.nn.Sequential`` runs for a stack of Linear layers and their
Sigmoid or ReLU (and ``Sequential.loss`` for the stack and its loss).

Notation: as ``handgrad.ops.linear`` (x, W (out, in), b, g), with lⁱ layer i's output, zⁱ its
pre-activation and φ its activation ("sigmoid", "relu" or None).
"""

import torch

from handgrad.ops._checks import LOWER, REDUCTIONS, autocast
from handgrad.ops._function import HandFunction, apply
from handgrad.ops._registry import Derivative, Op, register
from handgrad.ops.activation import relu_backward, sigmoid_backward
from handgrad.ops.classification import (SoftmaxCrossEntropy, _plain_class_target, cross_entropy, cross_entropy_backward,
                                         cross_entropy_jvp)
from handgrad.ops.linear import Linear, _linear_arguments, linear_backward, linear_jvp, plain_layers

# -- the hidden layer ------------------------------------------------------------------------------


class _LinearThenActivation(HandFunction):
    """What the fused Functions share: they keep y for the activation's φ', x for dL/dW and W for
    dL/dx, each only where that gradient is asked for."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        needs = ctx.needs_input_grad
        ctx.save_for_backward(x if needs[1] else None, W if needs[0] else None, output)
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
        return linear_backward(ctx.needs_input_grad, ctx.bias_shape, sigmoid_backward(g, y), x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        """Forward mode: dy = y (1 − y) (dx Wᵀ + x dWᵀ + db)."""
        x, W, y = ctx.saved_tensors
        return sigmoid_backward(linear_jvp(x, W, dx, dW, db), y)


class LinearReLU(_LinearThenActivation):
    """y = max(x Wᵀ + b, 0): the quickstart's hidden layer as one Function (see ``LinearSigmoid``)."""

    @staticmethod
    def forward(x, W, b=None):
        return _activate("relu", Linear.forward(x, W, b))

    @staticmethod
    def backward(ctx, g):
        """dL/dz = g · 1[z > 0], then dL/dx = (dL/dz) W, dL/dW = (dL/dz)ᵀ x, dL/db = Σ dL/dz."""
        x, W, y = ctx.saved_tensors
        return linear_backward(ctx.needs_input_grad, ctx.bias_shape, relu_backward(g, y), x, W)

    @staticmethod
    def jvp(ctx, dx, dW, db):
        """Forward mode: dy = 1[z > 0] (dx Wᵀ + x dWᵀ + db)."""
        x, W, y = ctx.saved_tensors
        return relu_backward(linear_jvp(x, W, dx, dW, db), y)


_ACTIVATIONS = {  # name: (φ in place, φ, rule(g, y) = g ∘ φ'(z) read from y = φ(z))
    "sigmoid": (torch.Tensor.sigmoid_, torch.sigmoid, sigmoid_backward),
    "relu": (torch.Tensor.relu_, torch.relu, relu_backward),
}
RULES = {name: rule for name, (_, _, rule) in _ACTIVATIONS.items()}


def _activate(name, z):
    """φ(z), in place on z (one tensor a layer), but a new tensor while ``torch.compile`` traces:
    in torch 2.11 compiled code gave a Function's output made by an in-place op no gradient (it ran
    the hand backward on a zero tangent; docs/differences.md)."""
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
        ctx.save_for_backward(*chain_kept(x, params[::2], (*hidden, *top), activations, ctx.needs_input_grad[0],
                                          ctx.needs_input_grad[2:]))
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
        n = len(ctx.activations)
        x, *rest = ctx.saved_tensors
        return chain_jvp(dx, dparams, x, rest[:n], rest[n:], ctx.activations)


def chain_kept(x, Ws, above, activations, needs_x, needs_params):
    """x, W¹, ..., Wᴸ, l¹, ... as ``chain_backward`` reads them for the gradients asked, None in place of
    each it does not read: lⁱ⁻¹ for dL/dWⁱ, Wⁱ to carry g below layer i, lⁱ for φⁱ' where g passes
    through layer i (``above``: l¹, ..., lᴸ⁻¹, and lᴸ where the top layer has a φ)."""
    n = len(activations)
    # flows[i]: whether g goes on below layer i + 1, i.e. x or a parameter of layers 1..i asks for one.
    flows = [needs_x]
    for i in range(n):
        flows.append(flows[-1] or needs_params[2 * i] or needs_params[2 * i + 1])
    l = [x, *above]
    kept_l = [None] * len(l)
    for i in range(n):
        if needs_params[2 * i]:
            kept_l[i] = l[i]                                             # dL/dWⁱ⁺¹ = gᵀ lⁱ
        if activations[i] is not None and flows[i + 1] and i + 1 < len(l):
            kept_l[i + 1] = l[i + 1]                                     # φ'(zⁱ⁺¹), read from lⁱ⁺¹
    kept_W = [W if flows[i] else None for i, W in enumerate(Ws)]        # g ← g Wⁱ⁺¹ on down
    return (kept_l[0], *kept_W, *kept_l[1:])


def chain_backward(g, g_hidden, x, Ws, above, activations, bias_shapes, needs_x, needs_params):
    """The backward of ``LinearChain``, and of the chain inside ``LinearChainCrossEntropy``: from the
    top layer down, as the seed's update_weights. g arrives at lⁱ, goes through φⁱ (g ← g ∘ φ'),
    gives dL/dWⁱ = gᵀ lⁱ⁻¹ and dL/dbⁱ = Σ g, and moves down as g ← g Wⁱ.

    ``above`` holds l¹, ..., lᴸ⁻¹ (and lᴸ when the top layer has a φ), ``g_hidden`` the gradients
    that reached l¹, ..., lᴸ⁻¹ from outside the chain (None for none), ``needs_x`` and
    ``needs_params`` (one per W¹, b¹, ..., Wᴸ, bᴸ) which gradients are wanted. Returns
    (dL/dx, [dL/dW¹, dL/db¹, ..., dL/dWᴸ, dL/dbᴸ]), None where not wanted.
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
            g = RULES[activations[i]](g, outputs[i + 1])                        # g ∘ φ'(zⁱ⁺¹)
        wanted = (below[i], needs_params[2 * i], needs_params[2 * i + 1])
        g, grads[2 * i], grads[2 * i + 1] = linear_backward(wanted, bias_shapes[i], g, outputs[i], Ws[i])
    return g, grads


def chain_jvp(dx, dparams, x, Ws, above, activations):
    """Forward mode of the chain, from the bottom up: dlⁱ = φ'(zⁱ) ∘ (dlⁱ⁻¹ Wⁱᵀ + lⁱ⁻¹ dWⁱᵀ + dbⁱ),
    each layer's ``linear_jvp`` then its rule. ``above`` as in ``chain_backward``; ``dparams`` one
    tangent (or None) per W¹, b¹, ..., Wᴸ, bᴸ. Returns (dlᴸ, dl¹, ..., dlᴸ⁻¹)."""
    n = len(activations)
    outputs = [x, *above, None][: n + 1]
    tangents, dl = [], dx
    for i, name in enumerate(activations):
        dW, db = dparams[2 * i], dparams[2 * i + 1]
        if dl is None and dW is None and db is None:
            dl = torch.zeros_like(outputs[i + 1])
        else:
            dl = linear_jvp(outputs[i], Ws[i], dl, dW, db)
            if name is not None:
                dl = RULES[name](dl, outputs[i + 1])
        tangents.append(dl)
    return (tangents[-1], *tangents[:-1])


# -- the network and its loss ---------------------------------------------------------------------


class LinearChainCrossEntropy(HandFunction):
    """The seed's whole training computation as one Function: the chain lⁱ = φⁱ(lⁱ⁻¹ Wⁱᵀ + bⁱ) of
    ``LinearChain`` and the cross-entropy L of its logits lᴸ (``SoftmaxCrossEntropy``), as the seed's
    ``update_weights`` runs from dL/dlᴸ = softmax − onehot down to dL/dW¹ in one place.

    Inputs: x (N, in), target (N,) class indices, ignore_index (None: no row ignored),
    label_smoothing, reduction, activations (the last one None: the logits have no φ), W¹, b¹, ...,
    Wᴸ, bᴸ. Returns (L, log p, l¹, ..., lᴸ⁻¹): what the two Functions return apart, so that double
    backward differentiates through the same outputs. lᴸ itself is needed by neither backward.
    """

    @staticmethod
    def forward(x, target, ignore_index, label_smoothing, reduction, activations, *params):
        logits, *hidden = LinearChain.forward(x, activations, *params)
        loss, log_p = SoftmaxCrossEntropy.forward(logits, target, None, ignore_index, label_smoothing, reduction)
        return (loss, log_p, *hidden)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, target, ignore_index, label_smoothing, reduction, activations, *params = inputs
        _, log_p, *hidden = output
        needs = ctx.needs_input_grad
        ctx.save_for_backward(*chain_kept(x, params[::2], hidden, activations, needs[0], needs[6:]), log_p, target)
        ctx.save_for_forward(x, *params[::2], *hidden, log_p, target)
        ctx.activations = activations
        ctx.bias_shapes = [None if b is None else b.shape for b in params[1::2]]
        ctx.ignore_index, ctx.label_smoothing, ctx.reduction = ignore_index, label_smoothing, reduction
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g, g_log_p, *g_hidden):
        """The chain rule across the two, literally: the cross-entropy's backward turns g into
        dL/dlᴸ = r (p − onehot(t)), and the chain's takes it from the top layer down."""
        x, Ws, hidden, log_p, target = _unpack(ctx.saved_tensors, len(ctx.activations))
        # Backward runs only when x or a parameter wants a gradient: dL/dlᴸ is always wanted.
        g_logits = cross_entropy_backward(g, g_log_p, log_p, target, None, ctx.ignore_index, ctx.label_smoothing,
                                          ctx.reduction)
        needs = ctx.needs_input_grad
        grad_x, grad_params = chain_backward(g_logits, g_hidden, x, Ws, hidden, ctx.activations, ctx.bias_shapes,
                                             needs[0], needs[6:])
        return (grad_x, None, None, None, None, None, *grad_params)

    @staticmethod
    def jvp(ctx, dx, _target, _ignore, _eps, _reduction, _activations, *dparams):
        """Forward mode, from the bottom up: the chain's tangent dlᴸ, then the cross-entropy's."""
        x, Ws, hidden, log_p, target = _unpack(ctx.saved_tensors, len(ctx.activations))
        d_logits, *d_hidden = chain_jvp(dx, dparams, x, Ws, hidden, ctx.activations)
        d_loss, d_log_p = cross_entropy_jvp(d_logits, None, log_p, target, None, ctx.ignore_index,
                                            ctx.label_smoothing, ctx.reduction, x.dtype)
        return (d_loss, d_log_p, *d_hidden)


def _unpack(saved, n):
    """x, [W¹, ..., Wᴸ], [l¹, ..., lᴸ⁻¹], log p and the target: what the fused Function of ``n``
    layers kept, in the order ``setup_context`` saved them."""
    x, *rest = saved
    return x, rest[:n], rest[n:2 * n - 1], rest[2 * n - 1], rest[2 * n]


# -- functional faces ------------------------------------------------------------------------------


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


def linear_chain_cross_entropy(input, target, activations, *params, weight=None, ignore_index=-100, reduction="mean",
                               label_smoothing=0.0):
    """``cross_entropy(linear_chain(input, activations, *params), target, ...)``, as one Function
    (``LinearChainCrossEntropy``) in the common case: input (N, in) and parameters of one dtype
    (float32 or float64) and device, target (N,) int64 with every index a class or ignore_index, no
    class weight, no activation on the logits, autocast off. Any other case runs the two apart,
    with the same result and the same checks. ``handgrad.nn.Sequential.loss`` calls this.

    Args:
        input: (N, in)
        target: (N,) class indices
        activations: one name per layer, "sigmoid", "relu" or None (as ``linear_chain``)
        params: W¹, b¹, ..., Wᴸ, bᴸ (as ``linear_chain``)
        weight: (C,) class weights or None (as ``cross_entropy``)
        ignore_index: a target value whose rows count for nothing (as ``cross_entropy``)
        reduction: 'mean', 'sum' or 'none' (as ``cross_entropy``)
        label_smoothing: ε in [0, 1] (as ``cross_entropy``)
    """
    if (weight is None and type(activations) is tuple and activations and activations[-1] is None
            and reduction in REDUCTIONS and 0.0 <= label_smoothing <= 1.0
            and _plain_chain(input, activations, params) and input.dim() == 2
            and input.dtype in (torch.float32, torch.float64)):
        plain = _plain_class_target(target, input.shape[0], params[-2].shape[0], input.device, ignore_index)
        if plain:
            return apply(LinearChainCrossEntropy, input, target, plain.ignore, label_smoothing, reduction,
                         activations, *params)[0]
    return cross_entropy(linear_chain(input, activations, *params), target, weight=weight, ignore_index=ignore_index,
                         reduction=reduction, label_smoothing=label_smoothing)


def _plain_chain(input, activations, params):
    """Whether ``linear_chain``'s arguments are the common case (``plain_layers``), with a tuple of
    known activations, one per layer."""
    if type(activations) is not tuple or not activations or len(params) != 2 * len(activations):
        return False
    return all(name is None or name in _ACTIVATIONS for name in activations) and plain_layers(input, params)


# -- registration ----------------------------------------------------------------------------------

register(Op(
    "linear_chain", linear_chain, (LinearChain,),
    Derivative("lⁱ = φⁱ(lⁱ⁻¹ Wⁱᵀ + bⁱ), i = 1..L, in one Function",
               "from the top down: g ← g ∘ φ'(zⁱ), dL/dWⁱ = gᵀ lⁱ⁻¹, dL/dbⁱ = Σ g, g ← g Wⁱ (the seed's update_weights)",
               "as `linear`, for each layer"),
))

register(Op(
    "linear_sigmoid", linear_sigmoid, (LinearSigmoid,),
    Derivative("y = σ(x Wᵀ + b)", "dL/dz = g · y (1 − y), then the rows of `Linear` with dL/dz for g", "as `linear`"),
))

register(Op(
    "linear_relu", linear_relu, (LinearReLU,),
    Derivative("y = max(x Wᵀ + b, 0)", "dL/dz = g · 1[z > 0], then the rows of `Linear` with dL/dz for g",
               "as `linear`"),
))

register(Op(
    "linear_chain_cross_entropy", linear_chain_cross_entropy, (LinearChainCrossEntropy,),
    Derivative("L = cross_entropy(lᴸ, t), lᴸ the chain's logits, in one Function",
               "dL/dlᴸ = r (softmax − onehot), then the chain's rows from the top down (the seed's update_weights)",
               "as `linear_chain` and `cross_entropy`"),
    fused_by="`Sequential.loss` fuses",
))

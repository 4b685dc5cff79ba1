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
from handgrad.testing import ErrorInput, Sample, randn


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
    if needs_input_grad[0]:
        grad_x = g.matmul(W)                                 # dL/dx = g W, (*, in)
    if needs_input_grad[1]:
        grad_W = _matrix(g).t().mm(_matrix(x))               # dL/dW = gᵀ x, (out, in)
    if bias_shape is not None and needs_input_grad[2]:
        grad_b = g.sum_to_size(bias_shape)                   # dL/db = Σ g, b's shape
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
        return Linear.forward(x, W, b).sigmoid_()

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
        return Linear.forward(x, W, b).relu_()

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


# -- functional faces ------------------------------------------------------------------------------


def linear(input, weight, bias=None):
    """y = x Wᵀ + b, as ``torch.nn.functional.linear``.

    Shapes: input (*, in), weight (out, in) or (in,), bias broadcastable to (*, out); output
    (*, out), or (*) for a 1-D weight.
    """
    input, weight, bias = _linear_arguments("linear", input, weight, bias)
    if weight.dim() == 1:
        return apply(Linear, input, weight.unsqueeze(0), None).squeeze(-1)
    return apply(Linear, input, weight, bias)


def linear_sigmoid(input, weight, bias=None):
    """y = σ(x Wᵀ + b), the same as ``sigmoid(linear(input, weight, bias))`` in one Function.

    Shapes: input (*, in), weight (out, in), bias broadcastable to (*, out); output (*, out).
    """
    input, weight, bias = _linear_arguments("linear_sigmoid", input, weight, bias, weight_1d=False)
    return apply(LinearSigmoid, input, weight, bias)


def linear_relu(input, weight, bias=None):
    """y = max(x Wᵀ + b, 0), the same as ``relu(linear(input, weight, bias))`` in one Function.

    Shapes: input (*, in), weight (out, in), bias broadcastable to (*, out); output (*, out).
    """
    input, weight, bias = _linear_arguments("linear_relu", input, weight, bias, weight_1d=False)
    return apply(LinearReLU, input, weight, bias)


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

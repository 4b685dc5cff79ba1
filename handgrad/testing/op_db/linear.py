"""The linear layer's cases (``handgrad.ops.linear``): the seed's NumPy layer, samples, bad inputs,
bench sizes."""

import math

import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, sum_to, x32

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
        db = None if b is None else sum_to(g, b.shape)
        return dx, dW, db

    return y, vjp


# -- samples, bad inputs, bench sizes ----------------------------------------------------------------


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
    return [
        (f"{n_in}->{n_out}, batch {batch}",
         (bench_randn(device, batch, n_in), bench_randn(device, n_out, n_in), bench_randn(device, n_out)), {})
        for batch in (64, 1024) for n_in, n_out in ((784, 512), (512, 512))
    ]


_ERRORS = (
    ErrorInput("input/weight feature mismatch", lambda F, nn: F.linear(x32(2, 3), x32(4, 5)), RuntimeError,
               r"input has 3 features .*shape \(2, 3\).* weight of shape \(4, 5\) expects 5"),
    ErrorInput("bias of the wrong length", lambda F, nn: F.linear(x32(2, 3), x32(4, 3), x32(5)), RuntimeError,
               r"bias of shape \(5,\) does not broadcast to the output shape \(2, 4\)"),
    ErrorInput("bias with more dimensions than the output", lambda F, nn: F.linear(x32(2, 3), x32(4, 3), x32(2, 2, 4)),
               RuntimeError, r"bias of shape \(2, 2, 4\) does not broadcast to the output shape \(2, 4\)"),
    ErrorInput("0-d input", lambda F, nn: F.linear(x32(), x32(4, 3)), RuntimeError,
               r"input must have at least 1 dimension.*0-d"),
    ErrorInput("3-D weight", lambda F, nn: F.linear(x32(2, 3), x32(4, 3, 3)), RuntimeError,
               r"weight must be 2-D .*got shape \(4, 3, 3\)"),
    ErrorInput("1-D weight with a bias", lambda F, nn: F.linear(x32(2, 3), x32(3), x32(1)), RuntimeError,
               r"1-D weight takes no bias"),
    ErrorInput("float64 input, float32 weight", lambda F, nn: F.linear(x32(2, 3, dtype=torch.float64), x32(4, 3)),
               RuntimeError, r"weight has dtype torch\.float32 but input has dtype torch\.float64"),
    ErrorInput("float64 bias, float32 input", lambda F, nn: F.linear(x32(2, 3), x32(4, 3), x32(4, dtype=torch.float64)),
               RuntimeError, r"bias has dtype torch\.float64 but input has dtype torch\.float32"),
    ErrorInput("list input", lambda F, nn: F.linear([[1.0, 2.0, 3.0]], x32(4, 3)), TypeError,
               r"input must be a torch\.Tensor, got list"),
    ErrorInput("nn.Linear input/weight feature mismatch", lambda F, nn: nn.Linear(5, 4)(x32(2, 3)), RuntimeError,
               r"input has 3 features .* weight of shape \(4, 5\) expects 5"),
    ErrorInput("nn.Linear float64 input", lambda F, nn: nn.Linear(3, 4)(x32(2, 3, dtype=torch.float64)), RuntimeError,
               r"weight has dtype torch\.float32 but input has dtype torch\.float64"),
)


OP_INFOS = (
    OpInfo(
        "linear", torch.nn.functional.linear, _linear_samples(), linear_numpy, _linear_bench, errors=_ERRORS,
        modules={torch.nn.Linear: tuple(
            ModuleSample(f"Linear(5, 4, bias={bias}) on {shape}", lambda gen, shape=shape: (randn(gen, *shape),),
                         (5, 4), {"bias": bias})
            for bias in (True, False) for shape in ((7, 5), (2, 3, 5), (5,), (1, 5))),
                 # MultiheadAttention's out_proj, a Linear under another name.
                 torch.nn.modules.linear.NonDynamicallyQuantizableLinear: (
                     ModuleSample("(8, 8) on (6, 2, 8)", lambda gen: (randn(gen, 6, 2, 8),), (8, 8)),)},
        parameters=(1, 2),
    ),
)

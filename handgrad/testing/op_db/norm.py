"""The normalisations' cases (``handgrad.ops.norm``): NumPy oracles (cs231n's staged forward and
backward, one intermediate at a time), samples, bad inputs, bench sizes, tolerances."""

import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32


def _normalize_numpy(x, axes, eps):
    """x̂ = (x − μ) / √(σ² + ε) over ``axes``, and the vjp dL/dx̂ ↦ dL/dx stage by stage."""
    m = math.prod(x.shape[a] for a in axes)
    with np.errstate(invalid="ignore", divide="ignore"):     # an empty set has no mean: NaN
        mu = x.sum(axis=axes, keepdims=True) / m
        xmu = x - mu
        var = (xmu ** 2).sum(axis=axes, keepdims=True) / m
        inv = 1 / np.sqrt(var + eps)
    x_hat = xmu * inv

    def vjp(dx_hat):
        dinv = (dx_hat * xmu).sum(axis=axes, keepdims=True)             # x̂ = xmu · inv
        dxmu = dx_hat * inv
        dvar = -0.5 * (var + eps) ** -1.5 * dinv                         # inv = (var + ε)^(−1/2)
        dxmu = dxmu + 2 * xmu * dvar / max(m, 1)                          # var = mean(xmu²)
        dmu = -dxmu.sum(axis=axes, keepdims=True)                        # xmu = x − μ
        return dxmu + dmu / max(m, 1)                                     # μ = mean(x)

    return x_hat, vjp


def batch_norm_numpy(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    c = x.shape[1]
    shape = (1, c) + (1,) * (x.ndim - 2)
    axes = (0,) + tuple(range(2, x.ndim))
    gamma = np.ones(shape) if weight is None else weight.reshape(shape)
    beta = np.zeros(shape) if bias is None else bias.reshape(shape)
    if training:
        x_hat, normalize_vjp = _normalize_numpy(x, axes, eps)
    else:
        inv = 1 / np.sqrt(running_var.reshape(shape) + eps)
        x_hat = (x - running_mean.reshape(shape)) * inv
        normalize_vjp = lambda dx_hat: dx_hat * inv                      # the statistics are constants
    y = gamma * x_hat + beta

    def vjp(g):
        dx = normalize_vjp(g * gamma)
        dgamma = None if weight is None else (g * x_hat).sum(axis=axes).reshape(weight.shape)
        dbeta = None if bias is None else g.sum(axis=axes).reshape(bias.shape)
        return dx, None, None, dgamma, dbeta

    return y, vjp


def layer_norm_numpy(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    k = len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    lead = tuple(range(x.ndim - k))
    x_hat, normalize_vjp = _normalize_numpy(x, axes, eps)
    gamma = 1.0 if weight is None else weight
    y = gamma * x_hat + (0.0 if bias is None else bias)

    def vjp(g):
        dx = normalize_vjp(g * gamma)
        dgamma = None if weight is None else (g * x_hat).sum(axis=lead)
        dbeta = None if bias is None else g.sum(axis=lead)
        return dx, None, dgamma, dbeta

    return y, vjp


def rms_norm_numpy(x, normalized_shape, weight=None, eps=None):
    """Staged: ms = mean x², r = (ms + ε)^(−1/2), x̂ = x r, y = γ x̂; then back stage by stage. eps None
    is float64's epsilon here (the op takes its input dtype's: within every dtype's tolerance)."""
    eps = np.finfo(np.float64).eps if eps is None else eps
    k = len(normalized_shape)
    axes, lead = tuple(range(x.ndim - k, x.ndim)), tuple(range(x.ndim - k))
    d = max(int(np.prod(normalized_shape)), 1)
    ms = (x * x).sum(axis=axes, keepdims=True) / d
    r = 1 / np.sqrt(ms + eps)
    x_hat = x * r
    gamma = 1.0 if weight is None else weight

    def vjp(g):
        dx_hat = g * gamma
        dr = (dx_hat * x).sum(axis=axes, keepdims=True)                 # x̂ = x · r
        dms = -0.5 * (ms + eps) ** -1.5 * dr                             # r = (ms + ε)^(−1/2)
        dx = dx_hat * r + dms * 2 * x / d                                # ms = mean x²
        return dx, None, None if weight is None else (g * x_hat).sum(axis=lead)

    return gamma * x_hat, vjp



# Where float16 and bfloat16 cannot hold the input well enough to normalise it: 10 + N(0, 1) rounds
# to steps of 0.06 in bfloat16, and two values per channel give x̂ = ±1 and dL/dx ≈ 0 (ε alone).
# The offset is 10, not more: at 100, float32's own rounding of x (7.6e-6, times r), and PyTorch's
# layer-norm backward, which works from x rather than x − μ (off by 5e-5), reach float32's tolerance.
_WIDE = (torch.float64, torch.float32)


def _batch_norm_samples(gen):
    def sample(name, shape, training=True, stats=True, weight=True, bias=True, momentum=0.1, eps=1e-5, scale=1.0,
               offset=0.0, **options):
        c = shape[1]
        running = (randn(gen, c, requires_grad=False) * 0.1, torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
        gamma, beta = randn(gen, c), randn(gen, c)
        x = (randn(gen, *shape, requires_grad=False) * scale + offset).requires_grad_()
        args = (x, *(running if stats else (None, None)), gamma if weight else None, beta if bias else None,
                training, momentum, eps)
        return Sample(args, name=f"{name}, {'training' if training else 'eval'}", **options)

    samples = []
    for training in (True, False):
        samples += [
            sample("(N, C)", (8, 3), training),
            sample("(N, C, L)", (4, 3, 5), training),
            sample("(N, C, H, W)", (3, 2, 4, 3), training),
            sample("(N, C, D, H, W)", (2, 2, 3, 2, 2), training),
            sample("(N, C, L), no affine", (4, 3, 5), training, weight=False, bias=False),
            sample("(N, C, L), weight only", (4, 3, 5), training, bias=False),
            sample("(N, C, L), bias only", (4, 3, 5), training, weight=False),
            sample("(N, C, L), eps=1e-3", (4, 3, 5), training, eps=1e-3),
            sample("(1, C, L) one sample", (1, 3, 4), training),
            sample("(0, C) empty batch", (0, 3), training),
            sample("(N, C, 0) empty", (2, 3, 0), training),
            sample("x ~ 10 + N(0, 1)", (6, 3, 4), training, offset=10.0, dtypes=_WIDE),
            sample("x ~ N(0, 1e-4²), σ² ≪ ε", (6, 3, 4), training, scale=1e-4),
        ]
    samples += [
        sample("(N, C, L), no running statistics", (4, 3, 5), stats=False),
        sample("(N, C, L), momentum=0", (4, 3, 5), momentum=0.0),
        sample("(N, C, L), momentum=1", (4, 3, 5), momentum=1.0),
        sample("(N, C) N=2", (2, 4), dtypes=_WIDE),
        sample("(1, C) one sample", (1, 3), training=False),
    ]
    return samples


def _layer_norm_samples(gen):
    def sample(name, shape, k=1, weight=True, bias=True, eps=1e-5, scale=1.0, offset=0.0, as_list=False, **options):
        normalized = tuple(shape[len(shape) - k:])
        gamma, beta = randn(gen, *normalized), randn(gen, *normalized)
        x = (randn(gen, *shape, requires_grad=False) * scale + offset).requires_grad_()
        args = (x, list(normalized) if as_list else normalized, gamma if weight else None, beta if bias else None, eps)
        return Sample(args, name=name, **options)

    return [
        sample("(N, D)", (6, 5)),
        sample("(B, T, D)", (2, 3, 5)),
        sample("(N, C, H, W) over (C, H, W)", (2, 3, 2, 2), k=3),
        sample("(B, T, D) over (T, D), normalized_shape a list", (2, 3, 4), k=2, as_list=True),
        sample("(D,) unbatched", (5,)),
        sample("(N, D), no affine", (6, 5), weight=False, bias=False),
        sample("(N, D), weight only (bias=False)", (6, 5), bias=False),
        sample("(N, D), bias only", (6, 5), weight=False),
        sample("(N, D), eps=1e-3", (6, 5), eps=1e-3),
        # x̂ = 0 and dL/dx = 0 exactly; float32 leaves r·ulp(ĝ) ≈ 1e-5 of noise there (here and in PyTorch).
        sample("(N, 1), one value per row", (4, 1), dtypes=(torch.float64,)),
        sample("(0, D) empty batch", (0, 5)),
        sample("x ~ 10 + N(0, 1)", (6, 5), offset=10.0, dtypes=_WIDE),
        sample("x ~ N(0, 1e-4²), σ² ≪ ε", (6, 5), scale=1e-4),
    ]


def _stats(c=3, dtype=torch.float32):
    return torch.zeros(c, dtype=dtype), torch.ones(c, dtype=dtype)


_BATCH_NORM_ERRORS = (
    ErrorInput("N=1 in training", lambda F, nn: F.batch_norm(x32(1, 3), *_stats(), training=True), ValueError,
               r"more than 1 value per channel when training, got input of shape \(1, 3\)"),
    ErrorInput("(1, C, 1) in training", lambda F, nn: F.batch_norm(x32(1, 3, 1), None, None, training=True), ValueError,
               r"more than 1 value per channel when training, got input of shape \(1, 3, 1\)"),
    ErrorInput("nn.BatchNorm1d training on one sample", lambda F, nn: nn.BatchNorm1d(3)(x32(1, 3)), ValueError,
               r"more than 1 value per channel when training.*module\.eval\(\)"),
    ErrorInput("1-D input", lambda F, nn: F.batch_norm(x32(3), *_stats(), training=True), RuntimeError,
               r"input must be \(N, C\) or \(N, C, \*\).*got shape \(3,\)"),
    ErrorInput("running_mean of the wrong length", lambda F, nn: F.batch_norm(x32(4, 3), torch.zeros(4), torch.ones(3)),
               RuntimeError, r"running_mean must hold one value per channel, shape \(3,\).*got shape \(4,\)"),
    ErrorInput("weight of the wrong length", lambda F, nn: F.batch_norm(x32(4, 3), *_stats(), torch.ones(4)),
               RuntimeError, r"weight must hold one value per channel, 3 values.*got shape \(4,\)"),
    ErrorInput("bias of the wrong length", lambda F, nn: F.batch_norm(x32(4, 3, 2), *_stats(), None, torch.ones(2)),
               RuntimeError, r"bias must hold one value per channel, 3 values.*got shape \(2,\)"),
    ErrorInput("running_mean without running_var", lambda F, nn: F.batch_norm(x32(4, 3), torch.zeros(3), None,
                                                                              training=True),
               ValueError, r"running_mean and running_var must both be tensors or both be None"),
    ErrorInput("eval mode without running statistics", lambda F, nn: F.batch_norm(x32(4, 3), None, None), RuntimeError,
               r"eval mode .* running_mean and running_var, which are None"),
    ErrorInput("eps=0 in training", lambda F, nn: F.batch_norm(x32(4, 3), *_stats(), training=True, eps=0.0),
               ValueError, r"eps must be positive during training.*got 0\.0"),
    ErrorInput("negative eps in eval", lambda F, nn: F.batch_norm(x32(4, 3), *_stats(), eps=-1.0), ValueError,
               r"eps must be non-negative, got -1\.0"),
    ErrorInput("momentum=None", lambda F, nn: F.batch_norm(x32(4, 3), *_stats(), training=True, momentum=None),
               TypeError, r"momentum must be a float, got None.*1 / number of batches"),
    ErrorInput("int64 input", lambda F, nn: F.batch_norm(torch.ones(4, 3, dtype=torch.long), *_stats()),
               NotImplementedError, r"input must be a floating-point tensor, got torch\.int64"),
    ErrorInput("float64 input, float32 parameters",
               lambda F, nn: F.batch_norm(x32(4, 3, dtype=torch.float64), *_stats(), torch.ones(3)), RuntimeError,
               r"running_mean has dtype torch\.float32 but input has dtype torch\.float64"),
    ErrorInput("float32 input, bfloat16 weight",
               lambda F, nn: F.batch_norm(x32(4, 3), *_stats(), torch.ones(3, dtype=torch.bfloat16)), RuntimeError,
               r"weight has dtype torch\.bfloat16 but input has dtype torch\.float32"),
    ErrorInput("bfloat16 input, bfloat16 weight, float32 statistics",
               lambda F, nn: F.batch_norm(x32(4, 3, dtype=torch.bfloat16), *_stats(), torch.ones(3, dtype=torch.bfloat16)),
               RuntimeError, r"weight has dtype torch\.bfloat16 but input has dtype torch\.bfloat16 and running_mean "
                             r"torch\.float32"),
    ErrorInput("list input", lambda F, nn: F.batch_norm([[1.0, 2.0, 3.0]], *_stats()), TypeError,
               r"input must be a torch\.Tensor, got list"),
    ErrorInput("running_mean requiring grad",
               lambda F, nn: F.batch_norm(x32(4, 3), torch.zeros(3, requires_grad=True), torch.ones(3)), RuntimeError,
               r"running_mean requires grad, but batch norm is not differentiable with respect to its running"),
    ErrorInput("nn.BatchNorm2d on (N, C, L)", lambda F, nn: nn.BatchNorm2d(3)(x32(4, 3, 5)), ValueError,
               r"BatchNorm2d: expected 4D input \(N, C, H, W\), got 3D input of shape \(4, 3, 5\)"),
    ErrorInput("nn.BatchNorm1d on (N, C, H, W)", lambda F, nn: nn.BatchNorm1d(3)(x32(4, 3, 5, 5)), ValueError,
               r"BatchNorm1d: expected 2D or 3D input \(N, C\) or \(N, C, L\), got 4D"),
    ErrorInput("nn.BatchNorm1d with the wrong number of channels", lambda F, nn: nn.BatchNorm1d(4)(x32(5, 3)),
               RuntimeError, r"running_mean must hold one value per channel, shape \(3,\) for input of shape \(5, 3\)"),
)


def _rms_norm_samples(gen):
    def sample(name, shape, k=1, weight=True, eps=1e-6, scale=1.0, as_list=False, **options):
        normalized = tuple(shape[len(shape) - k:])
        x = randn(gen, *shape, scale=scale)
        args = (x, list(normalized) if as_list else normalized, randn(gen, *normalized) if weight else None, eps)
        return Sample(args, name=name, **options)

    return [
        sample("(N, D)", (6, 5)),
        sample("(B, T, D)", (2, 3, 5)),
        sample("(B, T, D) over (T, D), normalized_shape a list", (2, 3, 4), k=2, as_list=True),
        sample("(D,) unbatched", (5,)),
        sample("(N, D), no weight", (6, 5), weight=False),
        sample("(N, D), eps None (the dtype's)", (6, 5), eps=None),
        sample("(0, D) empty batch", (0, 5)),
        sample("x ~ 100 · N(0, 1)", (6, 5), scale=100.0),
        sample("x ~ N(0, 1e-4²), x² ≪ ε", (6, 5), scale=1e-4, eps=1e-6),
    ]


_LAYER_NORM_ERRORS = (
    ErrorInput("normalized_shape not the input's last dimensions", lambda F, nn: F.layer_norm(x32(4, 3, 5), (4,)),
               RuntimeError, r"input of shape \(4, 3, 5\) does not end in normalized_shape \(4,\).*\(\*, 4\)"),
    ErrorInput("normalized_shape longer than the input", lambda F, nn: F.layer_norm(x32(3, 5), (2, 3, 5)),
               RuntimeError, r"input of shape \(3, 5\) does not end in normalized_shape \(2, 3, 5\)"),
    ErrorInput("normalized_shape ()", lambda F, nn: F.layer_norm(x32(3, 5), ()), RuntimeError,
               r"normalized_shape must name at least one dimension, got \(\)"),
    ErrorInput("normalized_shape an int", lambda F, nn: F.layer_norm(x32(3, 5), 5), TypeError,
               r"normalized_shape must be a tuple or list of ints, got 5; .*write \(5,\)"),
    ErrorInput("normalized_shape of floats", lambda F, nn: F.layer_norm(x32(3, 5), (5.0,)), TypeError,
               r"normalized_shape must hold ints, got \(5\.0,\)"),
    ErrorInput("weight of the wrong shape", lambda F, nn: F.layer_norm(x32(3, 5), (5,), torch.ones(4)), RuntimeError,
               r"weight must have shape normalized_shape \(5,\), got \(4,\)"),
    ErrorInput("bias of the wrong shape", lambda F, nn: F.layer_norm(x32(3, 5), (5,), None, torch.ones(1, 5)),
               RuntimeError, r"bias must have shape normalized_shape \(5,\), got \(1, 5\)"),
    ErrorInput("int64 input", lambda F, nn: F.layer_norm(torch.ones(3, 5, dtype=torch.long), (5,)),
               NotImplementedError, r"input must be a floating-point tensor, got torch\.int64"),
    ErrorInput("float64 input, float32 weight",
               lambda F, nn: F.layer_norm(x32(3, 5, dtype=torch.float64), (5,), torch.ones(5)), RuntimeError,
               r"weight has dtype torch\.float32 but input has dtype torch\.float64"),
    ErrorInput("list input", lambda F, nn: F.layer_norm([[1.0, 2.0]], (2,)), TypeError,
               r"input must be a torch\.Tensor, got list"),
    ErrorInput("nn.LayerNorm on the wrong last dimension", lambda F, nn: nn.LayerNorm(5)(x32(2, 4)), RuntimeError,
               r"input of shape \(2, 4\) does not end in normalized_shape \(5,\)"),
)


def _batch_norm_module_samples():
    def input(*shape):
        return lambda gen: (randn(gen, *shape),)

    configurations = [  # (name, class, args, kwargs, input shape)
        ("BatchNorm1d(4) on (N, C)", torch.nn.BatchNorm1d, (4,), {}, (8, 4)),
        ("BatchNorm1d(4) on (N, C, L)", torch.nn.BatchNorm1d, (4,), {}, (3, 4, 5)),
        ("BatchNorm1d(4) on (1, C, L)", torch.nn.BatchNorm1d, (4,), {}, (1, 4, 5)),
        ("BatchNorm1d(4, affine=False)", torch.nn.BatchNorm1d, (4,), {"affine": False}, (6, 4)),
        ("BatchNorm1d(4, momentum=None)", torch.nn.BatchNorm1d, (4,), {"momentum": None}, (6, 4, 2)),
        ("BatchNorm1d(4, track_running_stats=False)", torch.nn.BatchNorm1d, (4,), {"track_running_stats": False},
         (6, 4)),
        ("BatchNorm1d(4, eps=1e-3, momentum=0.3)", torch.nn.BatchNorm1d, (4,), {"eps": 1e-3, "momentum": 0.3},
         (6, 4)),
        ("BatchNorm2d(3)", torch.nn.BatchNorm2d, (3,), {}, (4, 3, 5, 5)),
        ("BatchNorm2d(3, affine=False)", torch.nn.BatchNorm2d, (3,), {"affine": False}, (4, 3, 5, 5)),
        ("BatchNorm2d(3, momentum=None)", torch.nn.BatchNorm2d, (3,), {"momentum": None}, (2, 3, 4, 4)),
        ("BatchNorm2d(3, track_running_stats=False)", torch.nn.BatchNorm2d, (3,), {"track_running_stats": False},
         (2, 3, 4, 4)),
        ("BatchNorm2d(3, affine=False, track_running_stats=False)", torch.nn.BatchNorm2d, (3,),
         {"affine": False, "track_running_stats": False}, (2, 3, 4, 4)),
        ("BatchNorm3d(2)", torch.nn.BatchNorm3d, (2,), {}, (2, 2, 3, 3, 3)),
    ]
    samples = {}
    for name, cls, args, kwargs, shape in configurations:
        samples.setdefault(cls, []).append(ModuleSample(name, input(*shape), args, kwargs))
    return {cls: tuple(found) for cls, found in samples.items()}


def _layer_norm_module_samples():
    def input(*shape):
        return lambda gen: (randn(gen, *shape),)

    configurations = [  # (name, args, kwargs, input shape)
        ("LayerNorm(5) on (N, D)", (5,), {}, (4, 5)),
        ("LayerNorm(5) on (B, T, D)", (5,), {}, (2, 3, 5)),
        ("LayerNorm(5) on (D,)", (5,), {}, (5,)),
        ("LayerNorm((3, 5))", ((3, 5),), {}, (2, 3, 5)),
        ("LayerNorm([3, 2, 2]) on (N, C, H, W)", ([3, 2, 2],), {}, (2, 3, 2, 2)),
        ("LayerNorm(5, elementwise_affine=False)", (5,), {"elementwise_affine": False}, (4, 5)),
        ("LayerNorm(5, bias=False)", (5,), {"bias": False}, (4, 5)),
        ("LayerNorm(5, eps=1e-3)", (5,), {"eps": 1e-3}, (4, 5)),
    ]
    return tuple(ModuleSample(name, input(*shape), args, kwargs) for name, args, kwargs, shape in configurations)


def _batch_norm_bench(device):
    def case(n, c, h, w):
        x = torch.randn(n, c, h, w, device=device, requires_grad=True)
        params = [torch.randn(c, device=device, requires_grad=True) for _ in range(2)]
        stats = (torch.zeros(c, device=device), torch.ones(c, device=device))
        return f"({n}, {c}, {h}, {w}), training", (x, *stats, *params, True), {}
    return [case(128, 32, 28, 28), case(128, 64, 14, 14)]


def _layer_norm_bench(device):
    x = torch.randn(64, 128, 512, device=device, requires_grad=True)
    params = [torch.randn(512, device=device, requires_grad=True) for _ in range(2)]
    return [("(64, 128, 512) over (512,)", (x, (512,), *params), {})]


# μ and r are kept in the input's dtype for float16 and bfloat16 input, as PyTorch keeps them: r
# rounded by up to 2⁻¹¹ (float16) or 2⁻⁸ (bfloat16) moves the larger entries of dL/dx (≈ 5) by
# 2.5e-3 or 2e-2, against the NumPy oracle, whatever the size of the entry compared.
_LAYER_NORM_TOLERANCES = {torch.float16: Tolerance(atol=4e-3, rtol=8e-3), torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2)}


# dL/dγ = Σ g x̂ sums terms of size ~1 over (N, *): PyTorch's CUDA kernel and this one round them to
# bfloat16 (2⁻⁸) at other places, which moved a sum of 36 terms by 0.02 (eval, on CUDA), over the
# default 1e-2 + 3e-2 |dL/dγ| where dL/dγ is small.
_BATCH_NORM_TOLERANCES = {torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2)}


_RMS_NORM_ERRORS = (
    ErrorInput("normalized_shape not the input's last dimensions", lambda F, nn: F.rms_norm(x32(4, 3, 5), (4,)),
               RuntimeError, r"rms_norm: input of shape \(4, 3, 5\) does not end in normalized_shape \(4,\)"),
    ErrorInput("weight of the wrong shape", lambda F, nn: F.rms_norm(x32(3, 5), (5,), torch.ones(4)), RuntimeError,
               r"rms_norm: weight must have shape normalized_shape \(5,\), got \(4,\)"),
    ErrorInput("int64 input", lambda F, nn: F.rms_norm(torch.ones(3, 5, dtype=torch.long), (5,)),
               NotImplementedError, r"rms_norm: input must be a floating-point tensor, got torch\.int64"),
    ErrorInput("nn.RMSNorm on the wrong last dimension", lambda F, nn: nn.RMSNorm(5)(x32(2, 4)), RuntimeError,
               r"rms_norm: input of shape \(2, 4\) does not end in normalized_shape \(5,\)"),
)


def _rms_norm_module_samples():
    configurations = [("RMSNorm(5) on (N, D)", (5,), {}, (4, 5)), ("RMSNorm((3, 5))", ((3, 5),), {}, (2, 3, 5)),
                      ("RMSNorm(5, eps=1e-3)", (5,), {"eps": 1e-3}, (4, 5)),
                      ("RMSNorm(5, elementwise_affine=False)", (5,), {"elementwise_affine": False}, (4, 5))]
    return tuple(ModuleSample(name, lambda gen, shape=shape: (randn(gen, *shape),), args, kwargs)
                 for name, args, kwargs, shape in configurations)


def _rms_norm_bench(device):
    return [("(64, 128, 512) over (512,)", (bench_randn(device, 64, 128, 512), (512,), bench_randn(device, 512)), {})]


OP_INFOS = (
    OpInfo("batch_norm", torch.nn.functional.batch_norm, _batch_norm_samples, batch_norm_numpy, _batch_norm_bench,
           errors=_BATCH_NORM_ERRORS, tolerances=_BATCH_NORM_TOLERANCES, modules=_batch_norm_module_samples()),
    OpInfo("layer_norm", torch.nn.functional.layer_norm, _layer_norm_samples, layer_norm_numpy, _layer_norm_bench,
           errors=_LAYER_NORM_ERRORS, tolerances=_LAYER_NORM_TOLERANCES,
           modules={torch.nn.LayerNorm: _layer_norm_module_samples()}),
    OpInfo("rms_norm", torch.nn.functional.rms_norm, _rms_norm_samples, rms_norm_numpy, _rms_norm_bench,
           errors=_RMS_NORM_ERRORS, tolerances=_LAYER_NORM_TOLERANCES,
           modules={torch.nn.RMSNorm: _rms_norm_module_samples()}),
)

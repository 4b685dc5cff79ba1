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



def group_norm_numpy(x, num_groups, weight=None, bias=None, eps=1e-5):
    """x as (N, G, C / G, L), normalised over the last two axes (``_normalize_numpy``), then γ, β per channel."""
    n, c = x.shape[:2]
    grouped = x.reshape(n, num_groups, c // num_groups, -1)
    x_hat, normalize_vjp = _normalize_numpy(grouped, (2, 3), eps)
    x_hat = x_hat.reshape(x.shape)
    channel = (1, c) + (1,) * (x.ndim - 2)
    gamma = 1.0 if weight is None else weight.reshape(channel)
    axes = (0,) + tuple(range(2, x.ndim))

    def vjp(g):
        dx = normalize_vjp((g * gamma).reshape(grouped.shape)).reshape(x.shape)
        dgamma = None if weight is None else (g * x_hat).sum(axis=axes)
        dbeta = None if bias is None else g.sum(axis=axes)
        return dx, None, dgamma, dbeta

    return gamma * x_hat + (0.0 if bias is None else bias.reshape(channel)), vjp


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



def _layer_norm_bench(device):
    x = torch.randn(64, 128, 512, device=device, requires_grad=True)
    params = [torch.randn(512, device=device, requires_grad=True) for _ in range(2)]
    return [("(64, 128, 512) over (512,)", (x, (512,), *params), {})]


# μ and r are kept in the input's dtype for float16 and bfloat16 input, as PyTorch keeps them: r
# rounded by up to 2⁻¹¹ (float16) or 2⁻⁸ (bfloat16) moves the larger entries of dL/dx (≈ 5) by
# 2.5e-3 or 2e-2, against the NumPy oracle, whatever the size of the entry compared.
_LAYER_NORM_TOLERANCES = {torch.float16: Tolerance(atol=4e-3, rtol=8e-3), torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2)}



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


def _group_norm_samples(gen):
    def sample(name, shape, groups, weight=True, bias=True, eps=1e-5, **options):
        c = shape[1]
        args = (randn(gen, *shape), groups, randn(gen, c) if weight else None, randn(gen, c) if bias else None, eps)
        return Sample(args, name=name, **options)

    return [
        sample("(N, C, H, W), 2 groups", (2, 6, 3, 2), 2),
        sample("(N, C, L), 3 groups", (3, 6, 4), 3),
        # x̂ = 0 and dL/dx = 0 exactly; PyTorch's float32 leaves ~1e-5 of noise there (as layer norm's).
        sample("(N, C), one channel a group", (4, 6), 6, dtypes=(torch.float64,)),
        sample("(N, C, H, W), one group (layer norm over (C, H, W))", (2, 4, 2, 3), 1),
        sample("(N, C, H, W), no affine", (2, 6, 3, 2), 3, weight=False, bias=False),
        sample("(N, C, H, W), weight only", (2, 6, 3, 2), 3, bias=False),
        sample("(N, C, H, W), eps=1e-3", (2, 6, 3, 2), 2, eps=1e-3),
        sample("(0, C, H, W) empty batch", (0, 6, 3, 2), 2),
    ]


_GROUP_NORM_ERRORS = (
    ErrorInput("channels that do not split into the groups", lambda F, nn: F.group_norm(x32(2, 6, 3), 4), RuntimeError,
               r"group_norm: the 6 channels of input \(shape \(2, 6, 3\)\) must split into num_groups=4 groups"),
    ErrorInput("weight of the wrong length", lambda F, nn: F.group_norm(x32(2, 6, 3), 3, torch.ones(4)), RuntimeError,
               r"group_norm: weight must hold one value per channel, shape \(6,\), got shape \(4,\)"),
    ErrorInput("1-D input", lambda F, nn: F.group_norm(x32(6), 3), RuntimeError,
               r"group_norm: input must be \(N, C, \*\) .*got shape \(6,\)"),
    ErrorInput("int64 input", lambda F, nn: F.group_norm(torch.ones(2, 6, dtype=torch.long), 3), NotImplementedError,
               r"group_norm: input must be a floating-point tensor, got torch\.int64"),
    ErrorInput("nn.GroupNorm on the wrong number of channels", lambda F, nn: nn.GroupNorm(2, 6)(x32(2, 4, 3)),
               RuntimeError, r"group_norm: weight must hold one value per channel, shape \(4,\), got shape \(6,\)"),
)


def _group_norm_module_samples():
    configurations = [("GroupNorm(2, 6) on (N, C, H, W)", (2, 6), {}, (2, 6, 3, 2)),
                      ("GroupNorm(3, 6) on (N, C)", (3, 6), {}, (4, 6)),
                      ("GroupNorm(2, 6, affine=False)", (2, 6), {"affine": False}, (2, 6, 3)),
                      ("GroupNorm(1, 4, eps=1e-3)", (1, 4), {"eps": 1e-3}, (2, 4, 5))]
    return tuple(ModuleSample(name, lambda gen, shape=shape: (randn(gen, *shape),), args, kwargs)
                 for name, args, kwargs, shape in configurations)


def _group_norm_bench(device):
    c = 64
    return [("(32, 64, 28, 28), 8 groups", (bench_randn(device, 32, c, 28, 28), 8, bench_randn(device, c),
                                             bench_randn(device, c)), {})]


OP_INFOS = (
    OpInfo("layer_norm", torch.nn.functional.layer_norm, _layer_norm_samples, layer_norm_numpy, _layer_norm_bench,
           errors=_LAYER_NORM_ERRORS, tolerances=_LAYER_NORM_TOLERANCES,
           modules={torch.nn.LayerNorm: _layer_norm_module_samples()}, parameters=(2, 3)),
    OpInfo("rms_norm", torch.nn.functional.rms_norm, _rms_norm_samples, rms_norm_numpy, _rms_norm_bench,
           errors=_RMS_NORM_ERRORS, tolerances=_LAYER_NORM_TOLERANCES,
           modules={torch.nn.RMSNorm: _rms_norm_module_samples()}, parameters=(2,)),
    OpInfo("group_norm", torch.nn.functional.group_norm, _group_norm_samples, group_norm_numpy, _group_norm_bench,
           errors=_GROUP_NORM_ERRORS, tolerances=_LAYER_NORM_TOLERANCES,
           modules={torch.nn.GroupNorm: _group_norm_module_samples()}, parameters=(2, 3)),
)

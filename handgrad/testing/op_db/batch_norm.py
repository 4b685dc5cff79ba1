"""Batch norm's cases (``handgrad.ops.batch_norm``): the NumPy oracle (cs231n's staged batch norm),
samples, bad inputs, bench sizes, tolerances."""

import numpy as np
import torch

from handgrad.testing import ErrorInput, ModuleSample, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, x32
from handgrad.testing.op_db.norm import _WIDE, _normalize_numpy


def _per_channel_numpy(x, running_mean, running_var, weight, bias, input_stats, axes, eps):
    """γ x̂ + β per channel (dimension 1), x̂ normalised over ``axes`` (``_normalize_numpy``) or with the
    running statistics, constants then; dL/dγ and dL/dβ summed over every dimension but the channels."""
    c = x.shape[1]
    shape = (1, c) + (1,) * (x.ndim - 2)
    gamma = np.ones(shape) if weight is None else weight.reshape(shape)
    beta = np.zeros(shape) if bias is None else bias.reshape(shape)
    if input_stats:
        x_hat, normalize_vjp = _normalize_numpy(x, axes, eps)
    else:
        inv = 1 / np.sqrt(running_var.reshape(shape) + eps)
        x_hat = (x - running_mean.reshape(shape)) * inv
        normalize_vjp = lambda dx_hat: dx_hat * inv                      # the statistics are constants
    y = gamma * x_hat + beta
    summed = (0, *range(2, x.ndim))

    def vjp(g):
        dgamma = None if weight is None else (g * x_hat).sum(axis=summed).reshape(weight.shape)
        dbeta = None if bias is None else g.sum(axis=summed).reshape(bias.shape)
        return normalize_vjp(g * gamma), None, None, dgamma, dbeta

    return y, vjp


def batch_norm_numpy(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    return _per_channel_numpy(x, running_mean, running_var, weight, bias, training, (0, *range(2, x.ndim)), eps)


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


def _batch_norm_bench(device):
    def case(n, c, h, w):
        x = torch.randn(n, c, h, w, device=device, requires_grad=True)
        params = [torch.randn(c, device=device, requires_grad=True) for _ in range(2)]
        stats = (torch.zeros(c, device=device), torch.ones(c, device=device))
        return f"({n}, {c}, {h}, {w}), training", (x, *stats, *params, True), {}
    return [case(128, 32, 28, 28), case(128, 64, 14, 14)]


# dL/dγ = Σ g x̂ sums terms of size ~1 over (N, *): PyTorch's CUDA kernel and this one round them to
# bfloat16 (2⁻⁸) at other places, which moved a sum of 36 terms by 0.02 (eval, on CUDA), over the
# default 1e-2 + 3e-2 |dL/dγ| where dL/dγ is small.
_BATCH_NORM_TOLERANCES = {torch.bfloat16: Tolerance(atol=3e-2, rtol=3e-2)}


OP_INFOS = (
    OpInfo("batch_norm", torch.nn.functional.batch_norm, _batch_norm_samples, batch_norm_numpy, _batch_norm_bench,
           errors=_BATCH_NORM_ERRORS, tolerances=_BATCH_NORM_TOLERANCES, modules=_batch_norm_module_samples(),
           parameters=(1, 2, 3, 4)),          # running_mean, running_var (buffers), weight, bias
)


def instance_norm_numpy(x, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                        momentum=0.1, eps=1e-5):
    """Each (n, c) normalised over its positions (the axes 2, ...), or with the running statistics,
    then γ, β per channel."""
    return _per_channel_numpy(x, running_mean, running_var, weight, bias, use_input_stats, tuple(range(2, x.ndim)),
                              eps)


def _instance_norm_samples(gen):
    def sample(name, shape, stats=False, weight=True, bias=True, use_input_stats=True):
        c = shape[1]
        running = (randn(gen, c, requires_grad=False) * 0.1, torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
        args = (randn(gen, *shape), *(running if stats else (None, None)), randn(gen, c) if weight else None,
                randn(gen, c) if bias else None, use_input_stats)
        return Sample(args, name=name)

    return [sample("(N, C, L)", (3, 4, 5)),
            sample("(N, C, H, W), running statistics updated", (2, 3, 4, 3), stats=True),
            sample("(N, C, D, H, W), no affine", (2, 2, 3, 2, 2), weight=False, bias=False),
            sample("(N, C, H, W), running statistics (use_input_stats=False)", (2, 3, 3, 2), stats=True,
                   use_input_stats=False),
            sample("(N, C, L), weight only", (2, 3, 4), bias=False)]


_INSTANCE_NORM_ERRORS = (
    ErrorInput("one position in training", lambda F, nn: F.instance_norm(x32(2, 3, 1)), ValueError,
               r"instance_norm: expected more than 1 spatial element when training, got input size \[2, 3, 1\]"),
    ErrorInput("use_input_stats=False without running statistics",
               lambda F, nn: F.instance_norm(x32(2, 3, 4), use_input_stats=False), RuntimeError,
               r"instance_norm: use_input_stats=False normalises with running_mean and running_var"),
    ErrorInput("weight of the wrong length", lambda F, nn: F.instance_norm(x32(2, 3, 4), weight=torch.ones(4)),
               RuntimeError,
               r"instance_norm: weight must hold one value per channel, 3 for input of shape \(2, 3, 4\)"),
    ErrorInput("nn.InstanceNorm2d(3, affine=True) on 4 channels",
               lambda F, nn: nn.InstanceNorm2d(3, affine=True)(x32(2, 4, 3, 3)), ValueError,
               r"expected input's size at dim=1 to match num_features \(3\), but got: 4"),
)


def _instance_norm_module_samples():
    def input(*shape):
        return lambda gen: (randn(gen, *shape),)

    return {
        torch.nn.InstanceNorm1d: (ModuleSample("InstanceNorm1d(4) on (N, C, L)", input(3, 4, 5), (4,)),
                                  ModuleSample("InstanceNorm1d(4, affine=True) on (C, L)", input(4, 5), (4,),
                                               {"affine": True})),
        torch.nn.InstanceNorm2d: (ModuleSample("InstanceNorm2d(3, affine=True)", input(2, 3, 4, 4), (3,),
                                               {"affine": True}),
                                  ModuleSample("InstanceNorm2d(3, affine=True, track_running_stats=True)",
                                               input(2, 3, 4, 4), (3,), {"affine": True, "track_running_stats": True})),
        torch.nn.InstanceNorm3d: (ModuleSample("InstanceNorm3d(2)", input(2, 2, 3, 3, 3), (2,)),),
    }


def _instance_norm_bench(device):
    x = torch.randn(8, 64, 64, 64, device=device, requires_grad=True)
    params = [torch.randn(64, device=device, requires_grad=True) for _ in range(2)]
    return [("(8, 64, 64, 64), affine", (x, None, None, *params), {})]


OP_INFOS += (
    OpInfo("instance_norm", torch.nn.functional.instance_norm, _instance_norm_samples, instance_norm_numpy,
           _instance_norm_bench, errors=_INSTANCE_NORM_ERRORS, modules=_instance_norm_module_samples(),
           parameters=(1, 2, 3, 4)),
)

"""What the registry's samples cannot hold for the losses: PyTorch's deprecated ``size_average`` /
``reduce`` arguments (their conversion warns, which ``torch.compile(fullgraph=True)`` cannot trace,
so the compile check would refuse every such sample), a (C) input with a (1,) target (PyTorch
computes the loss but its own backward refuses it, so there is no reference gradient), the
warning of ``mse_loss`` on shapes that differ, and cross_entropy as log_softmax then nll_loss."""

import warnings

import pytest
import torch
import torch.nn.functional as torch_F

import handgrad.functional as F
from handgrad import testing
from handgrad.testing.op_db.chain import _chain_cross_entropy_reference

LEGACY = [{"size_average": False}, {"reduce": False}, {"size_average": True, "reduce": True},
          {"size_average": False, "reduce": True}, {"reduce": False, "reduction": "sum"}]


def _randn(gen, *shape, device):
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()


def _loss_inputs(name, gen, device):
    """(input, target) of the loss: log-probabilities or logits, and class indices or values."""
    if name in ("nll_loss", "cross_entropy"):
        x = _randn(gen, 6, 5, device=device)
        if name == "nll_loss":
            x = x.detach().log_softmax(1).requires_grad_()
        return x, torch.randint(0, 5, (6,), generator=gen).to(device)
    target = torch.rand(6, 5, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    return _randn(gen, 6, 5, device=device), target


def _value_and_grads(fn, inputs, kwargs):
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                      # the deprecation warning, on both sides
        out = fn(*leaves, **kwargs)
    wrt = [t for t in leaves if t.requires_grad]
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype).to(out.device)
    return out, torch.autograd.grad(out, wrt, upstream)


def _check_close(name, actual, expected):
    d = testing.difference(name, actual, expected, testing.TOLERANCES[torch.float64])
    assert d.ok, str(d)


@pytest.mark.parametrize("legacy", LEGACY, ids=str)
@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy", "mse_loss", "binary_cross_entropy_with_logits"])
def test_loss_legacy_reduction_arguments_match_torch(name, legacy, device):
    inputs = _loss_inputs(name, torch.Generator().manual_seed(0), device)
    (out, grads), (out_ref, grads_ref) = (_value_and_grads(fn, inputs, legacy)
                                          for fn in (getattr(F, name), getattr(torch_F, name)))
    _check_close(f"{name}({legacy}) output", out, out_ref)
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        _check_close(f"{name}({legacy}) gradient of input {i}", g, g_ref)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
def test_class_loss_unbatched_input_takes_a_target_of_shape_1(name, reduction, device):
    """torch computes the loss of a (C) input with a (1,) target (its backward then fails): the
    value is torch's, and the gradient that of the () target."""
    gen = torch.Generator().manual_seed(0)
    x = _randn(gen, 5, device=device)
    target = torch.tensor([3], device=device)
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.1], dtype=torch.float64, device=device)
    out, (grad,) = _value_and_grads(getattr(F, name), [x, target], {"weight": weight, "reduction": reduction})
    _check_close(f"{name} output", out, getattr(torch_F, name)(x, target, weight, reduction=reduction))
    out_0d, (grad_0d,) = _value_and_grads(getattr(F, name), [x, target[0]], {"weight": weight, "reduction": reduction})
    assert out.shape == out_0d.shape == ()
    _check_close(f"{name} gradient", grad, grad_0d)


def test_mse_loss_warns_as_torch_when_shapes_differ():
    x, t = torch.randn(3, 4), torch.randn(4)
    for fn in (F.mse_loss, torch_F.mse_loss):
        with pytest.warns(UserWarning, match=r"Using a target size \(torch.Size\(\[4\]\)\) that is different to the "
                                             r"input size \(torch.Size\(\[3, 4\]\)\)"):
            fn(x, t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(x, torch.randn(3, 4))                     # same shapes: silent


@pytest.mark.parametrize("options", [{}, {"ignore_index": 2, "reduction": "sum"}, {"reduction": "none"}], ids=str)
def test_cross_entropy_is_nll_loss_of_log_softmax(options, device):
    gen = torch.Generator().manual_seed(0)
    x = _randn(gen, 2, 5, 3, device=device)
    target = torch.randint(0, 5, (2, 3), generator=gen).to(device)
    weight = torch.rand(5, generator=gen, dtype=torch.float64).to(device) + 0.1
    composed = _value_and_grads(lambda x, t: F.nll_loss(F.log_softmax(x, 1), t, weight, **options), [x, target], {})
    fused = _value_and_grads(lambda x, t: F.cross_entropy(x, t, weight, **options), [x, target], {})
    _check_close("output", composed[0], fused[0])
    _check_close("gradient", composed[1][0], fused[1][0])


def test_linear_chain_cross_entropy_runs_one_function_in_the_common_case_and_apart_otherwise():
    """The registry checks the values and gradients of every sample; this checks which path ran:
    one LinearChainCrossEntropy for the common case, the chain and the loss apart otherwise."""
    from handgrad.testing.op_db import OP_DB
    samples = OP_DB["linear_chain_cross_entropy"].samples(torch.Generator().manual_seed(0))
    apart = {s.name for s in samples if s.name.endswith("run apart")}
    assert apart and len(apart) < len(samples)
    for sample in samples:
        loss = F.linear_chain_cross_entropy(*sample.args, **sample.kwargs)
        top = type(loss.grad_fn).__name__
        if sample.name in apart:
            assert top != "LinearChainCrossEntropyBackward", f"{sample.name}: ran fused"
        else:
            assert top == "LinearChainCrossEntropyBackward", f"{sample.name}: ran {top}"


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_chain_cross_entropy_gradients_through_nan_rows_are_torch_s(activation, reduction, device):
    """A NaN (input row 1) or an inf that becomes one (input row 3: inf − inf in the first layer)
    turns whole rows NaN; the fused backward must give PyTorch's gradients there, NaN for NaN, all
    the same. The other rows, and every gradient torch finds finite, must match as numbers."""
    gen = torch.Generator().manual_seed(3)
    sizes, params = (5, 7, 6, 4), []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params += [_randn(gen, n_out, n_in, device=device), _randn(gen, n_out, device=device)]
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    x[1, 2], x[3, 0], x[3, 1] = float("nan"), float("inf"), float("inf")
    params[0].data[:, 1] = -params[0].data[:, 0]                        # inf · w − inf · w = NaN
    x = x.to(device).requires_grad_()
    target = torch.randint(0, 4, (6,), generator=gen).to(device)
    activations = (activation, activation, None)

    loss = F.linear_chain_cross_entropy(x, target, activations, *params, reduction=reduction)
    assert type(loss.grad_fn).__name__ == "LinearChainCrossEntropyBackward"
    grads = torch.autograd.grad(loss.sum(), [x, *params])
    reference = _chain_cross_entropy_reference(x, target, activations, *params, reduction=reduction)
    expected = torch.autograd.grad(reference.sum(), [x, *params])
    assert torch.isnan(expected[1]).any() and torch.isfinite(expected[0][0]).all()  # the case is there
    for name, actual, want in zip(["x", "W1", "b1", "W2", "b2", "W3", "b3"], grads, expected):
        torch.testing.assert_close(actual, want, equal_nan=True, msg=lambda m: f"d{name}: {m}")


@pytest.mark.parametrize("target_dtype", [torch.float32, torch.float16, torch.float64], ids=str)
def test_binary_cross_entropy_with_logits_has_the_targets_dtype_as_torch(target_dtype):
    """PyTorch's loss has the target's dtype whatever the logits' (torchvision's detectors: float64
    logits, float32 labels, a float32 loss); computed in the promoted dtype, the same values. A
    sample of the registry holds one dtype, so the mixed ones are here."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.rand(6, generator=gen, dtype=torch.float64).to(target_dtype)
    for reduction in ("mean", "none"):
        want = torch_F.binary_cross_entropy_with_logits(x, t, reduction=reduction)
        got = F.binary_cross_entropy_with_logits(x, t, reduction=reduction)
        assert got.dtype == want.dtype == target_dtype, (got.dtype, want.dtype)
        d = testing.difference("loss", got, want, testing.TOLERANCES[target_dtype])
        assert d.ok, str(d)
        g = torch.linspace(-1, 1, want.numel(), dtype=target_dtype).reshape(want.shape)
        d = testing.difference("dL/dx", *(torch.autograd.grad(y, x, g)[0] for y in (got, want)),
                               testing.TOLERANCES[torch.float64])
        assert d.ok, str(d)

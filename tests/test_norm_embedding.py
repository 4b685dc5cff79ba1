"""What the registry-driven tests cannot see of the normalisation and embedding ops: running
statistics over several training steps (exponential and, for momentum=None, cumulative averages)
against the update formula in NumPy, the buffers left alone when they must be, float32 statistics
and parameters with a bfloat16 input, backward inside an autocast region, and max_norm rewriting
the looked-up rows of the table in place."""

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_F

import handgrad.functional as F
import handgrad.nn
from handgrad import testing

STEPS = 4


def _batches(shape, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=gen, dtype=torch.float64) * (1 + i) + i).to(device) for i in range(STEPS)]


def _running_stats_numpy(batches, momentum, axes):
    """running_mean and running_var after each batch, from 0 and 1, by the update rule:
    r ← (1 − m) r + m s, with s the batch mean and the unbiased batch variance, and m = momentum,
    or 1 / t at step t for momentum=None (then r is the plain average of the batches' s)."""
    mean, var, found = 0.0, 1.0, []
    for t, x in enumerate(batches, start=1):
        x = x.cpu().numpy()
        m = 1.0 / t if momentum is None else momentum
        mean = (1 - m) * mean + m * x.mean(axis=axes)
        var = (1 - m) * var + m * x.var(axis=axes, ddof=1)
        found.append((mean, var))
    return found


@pytest.mark.parametrize("momentum", [0.1, 0.5, None], ids=lambda m: f"momentum={m}")
@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                        ("BatchNorm2d", (4, 3, 5, 2))], ids=str)
def test_batch_norm_running_statistics_over_several_steps_follow_the_update_rule(cls, shape, momentum, device):
    """Step after step in training, the buffers of handgrad.nn's module equal torch.nn's and the
    NumPy update rule's, num_batches_tracked counts the steps, and eval mode then normalises with
    the buffers as torch.nn does."""
    batches = _batches(shape, device)
    modules = [getattr(nn, cls)(3, momentum=momentum).to(device, torch.float64) for nn in (torch.nn, handgrad.nn)]
    axes = (0,) + tuple(range(2, len(shape)))
    for step, (x, (mean, var)) in enumerate(zip(batches, _running_stats_numpy(batches, momentum, axes)), start=1):
        for module in modules:
            module(x.clone().requires_grad_()).sum().backward()
        builtin, hand = modules
        for name in ("running_mean", "running_var"):
            expected = mean if name == "running_mean" else var
            actual = getattr(hand, name).cpu().numpy()
            assert np.allclose(actual, expected, rtol=1e-12, atol=1e-12), f"step {step}: {name} {actual}, rule {expected}"
            assert torch.allclose(getattr(hand, name), getattr(builtin, name), rtol=1e-12, atol=1e-12), (
                f"step {step}: {name} differs from torch.nn.{cls}'s")
        assert hand.num_batches_tracked.item() == builtin.num_batches_tracked.item() == step
    x = batches[0].clone()
    builtin, hand = (m.eval() for m in modules)
    assert torch.allclose(hand(x), builtin(x), rtol=1e-12, atol=1e-12), "eval output differs after training"
    assert hand.num_batches_tracked.item() == STEPS, "eval mode counted a batch"


def test_batch_norm_functional_updates_the_given_buffers_in_place_and_only_in_training(device):
    x = _batches((5, 3, 4), device)[1]
    running_mean, running_var = torch.zeros(3, dtype=torch.float64, device=device), torch.ones(3, dtype=torch.float64,
                                                                                               device=device)
    F.batch_norm(x, running_mean, running_var, training=True, momentum=0.25)
    (mean, var), = _running_stats_numpy([x], 0.25, (0, 2))
    assert np.allclose(running_mean.cpu().numpy(), mean) and np.allclose(running_var.cpu().numpy(), var), (
        "the running statistics given were not updated in place by the rule")
    before = running_mean.clone(), running_var.clone()
    F.batch_norm(x, running_mean, running_var, training=False, momentum=0.25)
    F.batch_norm(x[:0], running_mean, running_var, training=True, momentum=0.25)      # no values: no update
    assert torch.equal(running_mean, before[0]) and torch.equal(running_var, before[1]), (
        "eval mode or an empty batch changed the running statistics")


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_batch_norm_takes_a_bfloat16_input_with_float32_statistics_and_parameters_like_torch(training):
    """What a float32 BatchNorm2d sees after a convolution under CPU autocast: a bfloat16 input,
    computed with float32 statistics into a bfloat16 output; float32 gradients for γ and β."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 4, 4, generator=gen).bfloat16()
    results = []
    for nn in (torch.nn, handgrad.nn):
        torch.manual_seed(0)
        module = nn.BatchNorm2d(3).train(training)
        with torch.no_grad():
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.5, 0.5)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
        leaf = x.clone().requires_grad_()
        y = module(leaf)
        y.backward(torch.ones_like(y).mul_(torch.linspace(-1, 1, y.numel()).view(y.shape)).bfloat16())
        results.append((y, leaf.grad, module.weight.grad, module.bias.grad, module.running_mean, module.running_var))
    for name, hand, builtin in zip(("output", "dinput", "dweight", "dbias", "running_mean", "running_var"), *results[::-1]):
        assert hand.dtype == builtin.dtype, f"{name}: {hand.dtype}, torch {builtin.dtype}"
        d = testing.difference(name, hand, builtin, testing.TOLERANCES[torch.bfloat16])
        assert d.ok, d


def test_layer_norm_takes_a_bfloat16_input_with_float32_parameters_like_torch():
    """torch's dtypes; the values of the same computation in float64 (torch's own kernel sums dL/dβ
    in bfloat16 here and is off by 0.04 on entries of 0.9)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, 8, generator=gen).bfloat16()
    weight, bias = torch.rand(8, generator=gen) + 0.5, torch.randn(8, generator=gen)
    g = torch.linspace(-1, 1, x.numel()).view(x.shape).bfloat16()
    results = []
    for fn, dtype in ((torch_F.layer_norm, None), (torch_F.layer_norm, torch.float64), (F.layer_norm, None)):
        leaves = [t.to(dtype or t.dtype, copy=True).requires_grad_() for t in (x, weight, bias)]
        y = fn(leaves[0], (8,), leaves[1], leaves[2])
        y.backward(g.to(y.dtype))
        results.append((y, *(t.grad for t in leaves)))
    builtin, exact, hand = results
    for name, *tensors in zip(("output", "dinput", "dweight", "dbias"), hand, builtin, exact):
        assert tensors[0].dtype == tensors[1].dtype, f"{name}: {tensors[0].dtype}, torch {tensors[1].dtype}"
        d = testing.difference(name, tensors[0], tensors[2], testing.TOLERANCES[torch.bfloat16])
        assert d.ok, d


@pytest.mark.parametrize("op", ["layer_norm", "batch_norm"])
def test_norm_backward_inside_an_autocast_region_keeps_float32(op):
    """Backward called inside ``torch.autocast`` runs there too; the sums stay in float32."""
    gen = torch.Generator().manual_seed(0)
    x, weight, bias = torch.randn(6, 5, generator=gen), torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    stats = () if op == "layer_norm" else (None, None)
    shape = ((5,),) if op == "layer_norm" else ()
    extra = {} if op == "layer_norm" else {"training": True}
    grads = []
    for autocast in (False, True):
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = getattr(F, op)(leaves[0], *stats, *shape, leaves[1], leaves[2], **extra)
            grads.append(torch.autograd.grad(y, leaves, torch.linspace(-1, 1, y.numel()).view(y.shape)))
    for name, inside, outside in zip(("dinput", "dweight", "dbias"), grads[1], grads[0]):
        assert inside.dtype == torch.float32, f"{name}: {inside.dtype} inside autocast"
        d = testing.difference(name, inside, outside, testing.TOLERANCES[torch.float32])
        assert d.ok, d


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")], ids=lambda p: f"norm_type={p}")
def test_embedding_max_norm_rescales_the_looked_up_rows_in_place_as_torch_does(norm_type, device):
    """The rows looked up whose norm exceeds max_norm become max_norm · row / (norm + 1e-7), in the
    table itself; the rows not looked up are untouched; the gradient is the lookup's at the new table.
    Against torch on the CPU, whatever the device: its CUDA kernel takes no |x| in Σ xᵖ and gives
    every row norm 1 for p = inf (seen on an H100, torch 2.11)."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(8, 4, generator=gen, dtype=torch.float64) * 2
    x = torch.tensor([[1, 3, 3], [6, 1, 0]])
    results = []
    for fn, on in ((torch_F.embedding, "cpu"), (F.embedding, device)):
        W = table.clone().to(on).requires_grad_()
        y = fn(x.to(on), W, max_norm=1.0, norm_type=norm_type)
        y.backward(torch.ones_like(y))
        results.append((y.cpu(), W.detach().cpu(), W.grad.cpu()))
    (y_ref, W_ref, grad_ref), (y, W, grad) = results
    exact = device == "cpu"                 # elsewhere the norm's sum may round in another order
    tolerance = {"rtol": 0, "atol": 1e-15} if exact else {"rtol": 1e-14, "atol": 1e-15}
    assert torch.allclose(W, W_ref, **tolerance), "the table was not rescaled in place as torch rescales it"
    looked_up = torch.zeros(8, dtype=torch.bool)
    looked_up[x.flatten()] = True
    norms = table.norm(p=norm_type, dim=1)
    expected = torch.where((looked_up & (norms > 1.0)).unsqueeze(1), table / (norms + 1e-7).unsqueeze(1), table)
    assert torch.allclose(W, expected, rtol=1e-12, atol=1e-15), "not max_norm · row / (norm + 1e-7) on the rows looked up"
    assert torch.equal(W[~looked_up], table[~looked_up]), "a row not looked up changed"
    assert torch.equal(grad, grad_ref), "the gradient differs from torch's"
    assert torch.equal(y, y_ref) if exact else torch.allclose(y, y_ref, **tolerance), "the output differs from torch's"


def test_embedding_sparse_stays_on_the_builtin_and_coverage_says_why():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 3, sparse=True), torch.nn.Embedding(10, 3))
    handgrad.nn.convert(model)
    assert type(model[0]) is torch.nn.Embedding, "Embedding(sparse=True) was converted"
    assert type(model[1]) is handgrad.nn.Embedding, "a dense Embedding was not converted"
    entry = {e.path: e for e in handgrad.nn.coverage(model).entries}["0"]
    assert entry.status == "built-in" and "sparse=True" in entry.reason, entry


def test_embedding_gradient_is_the_scatter_of_gs_rows():
    """dL/dW row v = Σ of the rows of g whose index is v (÷ its count with scale_grad_by_freq), and
    zero on padding_idx: the derivation, with a loop over the indices."""
    gen = torch.Generator().manual_seed(0)
    W = testing.randn(gen, 6, 3)
    x = torch.tensor([[0, 2, 2], [5, 2, 0]])
    g = torch.randn(2, 3, 3, generator=gen, dtype=torch.float64)
    for options in ({}, {"scale_grad_by_freq": True}, {"padding_idx": 2}):
        (grad,) = torch.autograd.grad(F.embedding(x, W, **options), W, g)
        counts = torch.bincount(x.flatten(), minlength=6)
        expected = torch.zeros(6, 3, dtype=torch.float64)
        for i, v in enumerate(x.flatten().tolist()):
            if v != options.get("padding_idx"):
                expected[v] += g.reshape(-1, 3)[i] / (counts[v] if options.get("scale_grad_by_freq") else 1)
        assert torch.allclose(grad, expected, rtol=1e-12, atol=1e-15), f"{options}: {grad} vs {expected}"

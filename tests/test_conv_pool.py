"""What the registry-driven tests cannot see of the convolution and pooling ops: max_pool2d's
signature behind torch's boolean dispatch, the indices nn.MaxPool2d returns, Conv2d padding modes
that stay on the built-in, and the backward of a convolution being made of the hand Functions at
every order."""

import inspect

import pytest
import torch
import torch.nn.functional as torch_F

import handgrad.functional as F
import handgrad.nn
from handgrad import testing


def test_max_pool2d_signature_is_torchs():
    """torch's max_pool2d is ``boolean_dispatch(...)`` with the signature (*args, **kwargs); the
    signature it documents is that of the function it dispatches to without return_indices."""
    dispatched = torch._jit_internal.boolean_dispatched[torch_F.max_pool2d]["if_false"]
    ours, theirs = inspect.signature(F.max_pool2d), inspect.signature(dispatched)
    assert list(ours.parameters) == list(theirs.parameters), f"{ours}, torch has {theirs}"
    for name, p in theirs.parameters.items():
        assert ours.parameters[name].default == p.default, f"{name}: {ours.parameters[name].default}, torch {p.default}"


@pytest.mark.parametrize("shape", [(2, 3, 7, 6), (3, 7, 6)], ids=str)
def test_max_pool2d_module_returns_torchs_indices(shape, device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
    results = []
    for nn in (torch.nn, handgrad.nn):
        leaf = x.clone().requires_grad_()
        y, indices = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True, return_indices=True)(leaf)
        y.backward(torch.ones_like(y))
        results.append((y, indices, leaf.grad))
    (y_ref, i_ref, grad_ref), (y, i, grad) = results
    assert torch.equal(i, i_ref), "indices differ from torch.nn.MaxPool2d's"
    assert torch.equal(y, y_ref) and torch.equal(grad, grad_ref), "output or gradient differs from torch's"
    unpooled = torch_F.max_unpool2d(y, i, 3, 2, 1, output_size=shape[-2:])
    assert torch.equal(unpooled, torch_F.max_unpool2d(y_ref, i_ref, 3, 2, 1, output_size=shape[-2:]))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_mode_stays_on_the_builtin_and_coverage_says_why(mode):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode), torch.nn.Conv2d(4, 2, 3))
    handgrad.nn.convert(model)
    assert type(model[0]) is torch.nn.Conv2d, f"Conv2d(padding_mode={mode!r}) was converted"
    assert type(model[1]) is handgrad.nn.Conv2d, "Conv2d with zero padding was not converted"
    entry = {e.path: e for e in handgrad.nn.coverage(model).entries}["0"]
    assert entry.status == "built-in" and f"padding_mode={mode!r}" in entry.reason, entry


def _backward_functions(output, inputs, create_graph):
    """The hand Functions whose nodes the gradients of ``output`` come out of."""
    grads = torch.autograd.grad(output, inputs, torch.ones_like(output), create_graph=create_graph)
    return grads, {type(g.grad_fn).__name__ for g in grads if g.grad_fn is not None}


def test_conv2d_backward_is_made_of_the_hand_functions_at_every_order():
    """dL/dx and dL/dW are Conv2dInputGrad and Conv2dWeightGrad, whose own gradients are Conv2d and
    the other one: the family closes, so the third derivative is hand-derived too."""
    gen = torch.Generator().manual_seed(0)
    x = testing.randn(gen, 2, 3, 6, 5)
    W = testing.randn(gen, 4, 3, 3, 3)
    y = F.conv2d(x, W, padding=1, stride=2)
    assert type(y.grad_fn).__name__ == "Conv2dBackward"
    (gx, gW), first = _backward_functions(y, (x, W), create_graph=True)
    assert first == {"Conv2dInputGradBackward", "Conv2dWeightGradBackward"}, first
    (gx2, gW2), second = _backward_functions((gx * gx).sum() + (gW * gW).sum(), (x, W), create_graph=True)
    assert second <= {"Conv2dBackward", "Conv2dInputGradBackward", "Conv2dWeightGradBackward"}, second
    third = torch.autograd.grad((gx2 * gx2).sum() + (gW2 * gW2).sum(), (x, W))
    assert all(t is not None for t in third)


def test_conv2d_weight_gradient_sums_the_seeds_outer_products_over_positions():
    """dL/dW = Σ_{n,p,q} g patch(x)ᵀ with the patches taken by unfold: the derivation, literally."""
    gen = torch.Generator().manual_seed(1)
    x = testing.randn(gen, 2, 3, 7, 6)
    W = testing.randn(gen, 5, 3, 3, 2)
    y = F.conv2d(x, W, stride=(2, 1), padding=1, dilation=(1, 2))
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    (grad_W,) = torch.autograd.grad(y, W, g)
    patches = torch_F.unfold(x.detach(), (3, 2), dilation=(1, 2), padding=1, stride=(2, 1))      # (N, C·kh·kw, L)
    expected = torch.einsum("nol,nkl->ok", g.flatten(2), patches).view_as(W)                    # Σ g patchᵀ
    torch.testing.assert_close(grad_W, expected)

"""What the registry-driven tests cannot see of the convolution, pooling and padding ops: max_pool2d's
signature behind torch's boolean dispatch, the indices the max pooling modules return, the Conv
modules' padding modes, and the backward of a convolution, a transposed convolution and a padding
being made of the hand Functions at every order."""

import copy
import inspect

import pytest
import torch
import torch.nn.functional as torch_F

import handgrad
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


MAX_POOLS = [("MaxPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 9)),
             ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 7, 6)),
             ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (3, 7, 6)),
             ("MaxPool3d", ((2, 3, 2),), {"stride": 2, "padding": 1, "dilation": (1, 1, 2)}, (2, 2, 5, 6, 6)),
             ("AdaptiveMaxPool1d", (4,), {}, (2, 3, 9)),
             ("AdaptiveMaxPool2d", ((3, 2),), {}, (2, 3, 7, 6)),
             ("AdaptiveMaxPool3d", (2,), {}, (2, 4, 5, 4))]


@pytest.mark.parametrize("name, args, kwargs, shape", MAX_POOLS, ids=[f"{m[0]} {m[3]}" for m in MAX_POOLS])
def test_max_pool_module_returns_torchs_indices(name, args, kwargs, shape, device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
    results = []
    for nn in (torch.nn, handgrad.nn):
        leaf = x.clone().requires_grad_()
        y, indices = getattr(nn, name)(*args, return_indices=True, **kwargs)(leaf)
        y.backward(torch.ones_like(y))
        results.append((y, indices, leaf.grad))
    (y_ref, i_ref, grad_ref), (y, i, grad) = results
    assert torch.equal(i, i_ref), f"indices differ from torch.nn.{name}'s"
    assert torch.equal(y, y_ref) and torch.equal(grad, grad_ref), "output or gradient differs from torch's"
    if name == "MaxPool2d":
        unpooled = torch_F.max_unpool2d(y, i, 3, 2, 1, output_size=shape[-2:])
        assert torch.equal(unpooled, torch_F.max_unpool2d(y_ref, i_ref, 3, 2, 1, output_size=shape[-2:]))


PADDING_MODES = [(n, mode) for n in (1, 2, 3) for mode in ("reflect", "replicate", "circular")]


@pytest.mark.parametrize("n, mode", PADDING_MODES, ids=[f"Conv{n}d-{mode}" for n, mode in PADDING_MODES])
def test_conv_padding_mode_runs_hand_derived_and_equals_torch(n, mode):
    """Conv{n}d(padding_mode=...) pads with handgrad's pad, then convolves: converted, every gradient
    hand-derived (the fold of the padding included), equal to the built-in module's in float64."""
    torch.manual_seed(0)
    builtin = getattr(torch.nn, f"Conv{n}d")(2, 3, 3, padding=(1, 2, 1)[:n], padding_mode=mode).double()
    hand = handgrad.nn.convert(torch.nn.Sequential(copy.deepcopy(builtin)))[0]
    assert type(hand) is getattr(handgrad.nn, f"Conv{n}d"), f"Conv{n}d(padding_mode={mode!r}) was not converted"
    x = torch.randn(2, 2, *(5, 6, 4)[:n], dtype=torch.float64)
    outputs = []
    for module in (builtin, hand):
        leaf = x.clone().requires_grad_()
        y = module(leaf)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
        outputs.append((y, leaf.grad, module.weight.grad, module.bias.grad))
    report = handgrad.nn.audit(hand(x.clone().requires_grad_()))
    assert report.complete and report.hand["Pad"] == 1, str(report)
    for name, a, e in zip(("output", "dinput", "dweight", "dbias"), outputs[1], outputs[0]):
        assert testing.difference(name, a, e, testing.TOLERANCES[torch.float64]).ok, name


def _backward_functions(output, inputs, create_graph):
    """The hand Functions whose nodes the gradients of ``output`` come out of."""
    grads = torch.autograd.grad(output, inputs, torch.ones_like(output), create_graph=create_graph)
    return grads, {type(g.grad_fn).__name__ for g in grads if g.grad_fn is not None}


FAMILY = {"ConvNdBackward", "ConvTransposeNdBackward", "ConvWeightGradBackward"}


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
def test_conv_backward_is_made_of_the_hand_functions_at_every_order(transposed):
    """dL/dx and dL/dW are a transposed convolution and ConvWeightGrad, whose own gradients are
    ConvNd and the other one: the family closes, so the third derivative is hand-derived too (for a
    transposed convolution, the roles of ConvNd and ConvTransposeNd swap)."""
    gen = torch.Generator().manual_seed(0)
    x = testing.randn(gen, 2, 3, 6, 5)
    W = testing.randn(gen, 3, 4, 3, 3) if transposed else testing.randn(gen, 4, 3, 3, 3)
    y = F.conv_transpose2d(x, W, stride=2, padding=1, output_padding=1) if transposed else \
        F.conv2d(x, W, padding=1, stride=2)
    assert type(y.grad_fn).__name__ == ("ConvTransposeNdBackward" if transposed else "ConvNdBackward")
    (gx, gW), first = _backward_functions(y, (x, W), create_graph=True)
    expected = "ConvNdBackward" if transposed else "ConvTransposeNdBackward"
    assert first == {expected, "ConvWeightGradBackward"}, first
    (gx2, gW2), second = _backward_functions((gx * gx).sum() + (gW * gW).sum(), (x, W), create_graph=True)
    assert second <= FAMILY, second
    third = torch.autograd.grad((gx2 * gx2).sum() + (gW2 * gW2).sum(), (x, W))
    assert all(t is not None for t in third)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_backward_is_the_fold_and_its_backward_the_padding(mode):
    """dL/dx of a padding is PadFold, whose own gradient is Pad again; the fold of reflect padding
    adds the mirrored border back onto the rows it mirrors (checked on a hand-made case)."""
    x = torch.arange(1.0, 6.0, dtype=torch.float64).view(1, 1, 5).requires_grad_()
    g = torch.arange(1.0, 9.0, dtype=torch.float64).view(1, 1, 8).requires_grad_()
    (fold,) = torch.autograd.grad(F.pad(x, (2, 1), mode), x, g, create_graph=True)
    assert type(fold.grad_fn).__name__ == "PadFoldBackward", fold.grad_fn
    h = torch.linspace(-1, 1, 5, dtype=torch.float64).view(1, 1, 5).requires_grad_()
    (padded,) = torch.autograd.grad(fold, g, h, create_graph=True)
    assert type(padded.grad_fn).__name__ == "PadBackward", padded.grad_fn
    assert torch.equal(padded, torch_F.pad(h, (2, 1), mode)), "the fold's gradient is not the padding of h"
    expected = {"constant": [3, 4, 5, 6, 7], "reflect": [3, 4 + 2, 5 + 1, 6 + 8, 7],
                "replicate": [1 + 2 + 3, 4, 5, 6, 7 + 8], "circular": [3 + 8, 4, 5, 6 + 1, 7 + 2]}[mode]
    assert fold.flatten().tolist() == expected, f"{mode}: the fold of g is {fold.flatten().tolist()}"


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


@pytest.mark.parametrize("name, w_shape", [("conv1d", (3, 2, 3)), ("conv_transpose2d", (2, 3, 3, 3))])
def test_conv_of_complex_tensors_runs_the_builtin_inside_hand_derived(name, w_shape):
    """A complex convolution's gradients need conjugates this derivation leaves out: inside
    hand_derived() the built-in takes the call (and the audit names it), with torch's gradients."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, *(5,) * (len(w_shape) - 2), generator=gen, dtype=torch.complex128, requires_grad=True)
    W = torch.randn(w_shape, generator=gen, dtype=torch.complex128, requires_grad=True)
    with handgrad.hand_derived():
        y = getattr(torch_F, name)(x, W)
    g = torch.randn(y.shape, generator=gen, dtype=y.dtype)
    expected = torch.autograd.grad(getattr(torch_F, name)(x, W), (x, W), g)
    assert all(torch.equal(a, e) for a, e in zip(torch.autograd.grad(y, (x, W), g), expected))
    assert "ConvolutionBackward0" in handgrad.nn.audit(y).builtin


def test_pad_under_lean_memory_is_made_again_and_the_gradients_are_the_same():
    """A Conv with padding_mode='reflect' keeps its padded input; under memory="lean" that copy is
    made again in backward from the input, which the ReLU before keeps anyway."""
    from handgrad.testing.memory import Kept

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=2, padding_mode="reflect")).double()
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    results = {}
    for memory in ("plain", "lean"):
        m = handgrad.nn.convert(copy.deepcopy(model), memory=memory)
        with Kept(exclude=list(m.parameters())) as kept:
            loss = m(x).square().sum()
        loss.backward()
        results[memory] = kept.bytes, [p.grad for p in m.parameters()]
    (plain, plain_grads), (lean, lean_grads) = results["plain"], results["lean"]
    assert all(torch.equal(a, b) for a, b in zip(lean_grads, plain_grads)), "lean's gradients differ from plain's"
    padded = 2 * 8 * 16 * 16 * 8                                 # the reflect-padded input, in float64
    assert lean <= plain - padded, f"lean keeps {lean} bytes, plain {plain}: the padded input was kept"

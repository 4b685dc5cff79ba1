"""The hand Functions composed: networks of them against torch's, under double backward, torch.func,
inductor and autocast; and the seed's own formulas. (Each op alone is verified in test_ops.py.)"""

import copy

import pytest
import torch
import torch.nn.functional as torch_F
from torch.utils._python_dispatch import TorchDispatchMode

import handgrad.functional as F
import handgrad.nn
from handgrad import autograd, testing
from handgrad.testing.op_db import OP_DB
from handgrad.training import models


class _OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def _mlp_loss(x, params, target, activation):
    W1, b1, W2, b2 = params
    h = activation(F.linear(x, W1, b1))
    return F.cross_entropy(F.linear(h, W2, b2), target, label_smoothing=0.1)


@pytest.mark.parametrize("activation", [F.sigmoid, F.relu], ids=["sigmoid", "relu"])
def test_backward_never_calls_a_builtin_backward_kernel(activation, device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=gen).to(device).requires_grad_()
    params = [torch.randn(s, generator=gen).to(device).requires_grad_() for s in [(6, 5), (6,), (3, 6), (3,)]]
    target = torch.randint(0, 3, (8,), generator=gen).to(device)
    loss = _mlp_loss(x, params, target, activation)
    with _OpLog() as log:
        grads = torch.autograd.grad(loss, [x, *params], create_graph=True)
    with _OpLog() as log2:
        torch.autograd.grad(sum(g.sum() for g in grads), [x, *params], allow_unused=True)
    assert log.ops, "backward dispatched no ops at all: the log is not recording"
    kernels = [op for op in log.ops + log2.ops if "backward" in op]
    assert not kernels, f"hand backward called built-in backward kernels: {sorted(set(kernels))}"


def _ops_in_backward(out, inputs):
    with _OpLog() as log:
        torch.autograd.grad(out, inputs)
    return log.ops


@pytest.mark.parametrize("wanted", ["input", "weight", "bias"])
def test_linear_computes_only_requested_gradients(wanted):
    x, W, b = torch.randn(4, 3), torch.randn(2, 3), torch.randn(2)
    tensors = {"input": x, "weight": W, "bias": b}
    tensors[wanted].requires_grad_()
    ops = _ops_in_backward(F.linear(x, W, b).sum(), [tensors[wanted]])
    products = [op for op in ops if op in ("mm", "matmul", "bmm", "mv", "addmm")]
    assert len(products) == (0 if wanted == "bias" else 1), f"{wanted}: {ops}"
    assert ("sum" in ops) == (wanted == "bias"), f"{wanted}: {ops}"


def test_cross_entropy_computes_no_target_gradient_unless_asked():
    x = torch.randn(4, 3, requires_grad=True)
    q = torch.softmax(torch.randn(4, 3), 1).requires_grad_()
    only_x = _ops_in_backward(F.cross_entropy(x, q.detach()), [x])
    both = _ops_in_backward(F.cross_entropy(x, q), [x, q])
    assert len(both) > len(only_x), "the gradient with respect to the target cost nothing: it was computed anyway"


def test_per_sample_gradients_with_vmap_match_a_python_loop():
    from torch.func import functional_call, grad, vmap

    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Sigmoid(), torch.nn.Linear(7, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)
    ).double()
    import handgrad.nn

    handgrad.nn.convert(model)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=gen)

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi,)), yi, label_smoothing=0.1)

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(x.shape[0]):
        expected = torch.autograd.grad(loss(dict(model.named_parameters()), x[i], y[i]), list(model.parameters()))
        for (name, got), want in zip(per_sample.items(), expected):
            torch.testing.assert_close(got[i], want, msg=lambda m: f"sample {i} d{name}: {m}")


@pytest.mark.parametrize("op", ["linear", "sigmoid", "relu", "tanh", "softmax"])
def test_jacrev_matches_torch(op):
    from torch.func import jacrev

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    W = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    hand, builtin = OP_DB[op].function, OP_DB[op].reference
    args = {"linear": (W,), "softmax": (1,)}.get(op, ())
    torch.testing.assert_close(jacrev(lambda t: hand(t, *args))(x), jacrev(lambda t: builtin(t, *args))(x))


def test_cross_entropy_jacrev_matches_torch():
    from torch.func import jacrev

    x = torch.randn(4, 5, dtype=torch.float64)
    y = torch.tensor([0, 3, -100, 4])
    for reduction in ("mean", "none"):
        got = jacrev(lambda t: F.cross_entropy(t, y, reduction=reduction, label_smoothing=0.2))(x)
        want = jacrev(lambda t: torch_F.cross_entropy(t, y, reduction=reduction, label_smoothing=0.2))(x)
        torch.testing.assert_close(got, want, msg=lambda m: f"reduction={reduction}: {m}")


def _compiled_step(backend, device):
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=gen).to(device)
    params = [torch.randn(s, generator=gen).to(device).requires_grad_() for s in [(6, 5), (6,), (3, 6), (3,)]]
    target = torch.randint(0, 3, (8,), generator=gen).to(device)

    def step(activation):
        loss = _mlp_loss(x, params, target, activation)
        return loss, torch.autograd.grad(loss, params)

    compiled = torch.compile(_mlp_loss, backend=backend, fullgraph=True)
    for activation in (F.sigmoid, F.relu):
        eager_loss, eager_grads = step(activation)
        loss = compiled(x, params, target, activation)
        grads = torch.autograd.grad(loss, params)
        torch.testing.assert_close(loss, eager_loss)
        for g, e in zip(grads, eager_grads):
            torch.testing.assert_close(g, e)


def test_functions_compose_with_torch_compile(device):
    _compiled_step("aot_eager", device)


def test_functions_compile_with_inductor(device):
    _compiled_step("inductor", device)


AUTOCAST_DTYPES = {"cpu": [torch.bfloat16], "cuda": [torch.float16, torch.bfloat16]}


class _Tower(torch.nn.Module):
    """A deeper stack than the seed's, every handgrad op in it: Linear+Sigmoid, Linear+ReLU, Tanh,
    LeakyReLU, Dropout, LogSoftmax then the loss."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(12, 16), torch.nn.Sigmoid(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
            torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.LeakyReLU(0.1),
            torch.nn.Dropout(0.0), torch.nn.Linear(16, 5),
        )

    def forward(self, x):
        return self.body(x)


def _autocast_networks():
    def seed(name):
        return lambda: models.build(name, "torch"), (6, 1, 28, 28), 10

    return {**{name: seed(name) for name in ("quickstart", "basic", "better")}, "tower": (_Tower, (6, 12), 5)}


@pytest.mark.parametrize("name", list(_autocast_networks()))
def test_network_under_autocast_matches_the_builtin_network(name, device):
    """Every layer of a whole network takes the dtype autocast gives it, as the built-ins do: same
    output dtype and values, same loss, the same gradient dtype and values for every parameter."""
    build, shape, n_classes = _autocast_networks()[name]
    for dtype in AUTOCAST_DTYPES[device]:
        torch.manual_seed(0)
        builtin = build().to(device)
        hand = handgrad.nn.convert(copy.deepcopy(builtin))
        x = torch.randn(shape, device=device)
        y = torch.randint(0, n_classes, shape[:1], device=device)
        results = []
        for model, cross_entropy in ((hand, F.cross_entropy), (builtin, torch_F.cross_entropy)):
            with torch.autocast(device, dtype=dtype):
                logits = model(x)
                loss = cross_entropy(logits, y, label_smoothing=0.1)
            loss.backward()
            results.append((logits, loss, {n: p.grad for n, p in model.named_parameters()}))
        (logits, loss, grads), (logits_ref, loss_ref, grads_ref) = results
        context = f"{name} under autocast({dtype}) on {device}"
        assert logits.dtype == logits_ref.dtype == dtype, f"{context}: logits {logits.dtype} vs {logits_ref.dtype}"
        assert loss.dtype == loss_ref.dtype == torch.float32, f"{context}: loss {loss.dtype} vs {loss_ref.dtype}"
        tolerance = testing.TOLERANCES[dtype]
        diffs = [testing.difference("logits", logits, logits_ref, tolerance),
                 testing.difference("loss", loss, loss_ref, tolerance)]
        for n, g in grads_ref.items():
            assert grads[n].dtype == g.dtype, f"{context}: d{n} is {grads[n].dtype}, torch's {g.dtype}"
            diffs.append(testing.difference(f"d{n}", grads[n], g, tolerance))
        bad = [str(d) for d in diffs if not d.ok]
        assert not bad, f"{context}: " + "; ".join(bad)


def test_relu_inplace_on_a_leaf_that_requires_grad_is_refused():
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        F.relu(torch.randn(3, requires_grad=True), inplace=True)


def test_softmax_cross_entropy_returns_log_probabilities():
    x = torch.randn(6, 4, dtype=torch.float64)
    loss, log_p = autograd.SoftmaxCrossEntropy.apply(x, torch.tensor([0, 1, 2, 3, 0, 1]), None, -100, 0.0, "none")
    torch.testing.assert_close(log_p, torch.log_softmax(x, 1))
    torch.testing.assert_close(loss, torch_F.cross_entropy(x, torch.tensor([0, 1, 2, 3, 0, 1]), reduction="none"))


def test_cross_entropy_gradient_is_softmax_minus_onehot_as_in_the_seed():
    x = torch.randn(1, 10, dtype=torch.float64, requires_grad=True)
    F.cross_entropy(x, torch.tensor([3])).backward()
    expected = torch.softmax(x.detach(), 1) - torch_F.one_hot(torch.tensor([3]), 10)
    torch.testing.assert_close(x.grad, expected)


def test_sigmoid_gradient_is_sigma_times_one_minus_sigma_as_in_the_seed():
    z = torch.randn(7, dtype=torch.float64, requires_grad=True)
    F.sigmoid(z).sum().backward()
    s = 1 / (1 + torch.exp(-z.detach()))
    torch.testing.assert_close(z.grad, torch.exp(-z.detach()) / (1 + torch.exp(-z.detach())) ** 2)
    torch.testing.assert_close(z.grad, s * (1 - s))


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_hessian_and_jacfwd_match_torch(activation):
    """Forward mode (each Function's jvp) composed with reverse mode: torch.func.hessian."""
    from torch.func import hessian, jacfwd

    gen = torch.Generator().manual_seed(0)
    W1, b1 = torch.randn(6, 4, generator=gen, dtype=torch.float64), torch.randn(6, generator=gen, dtype=torch.float64)
    W2 = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, -100, 2])

    def loss(lib, act):
        return lambda t: lib.cross_entropy(lib.linear(act(lib.linear(t, W1, b1)), W2), y, label_smoothing=0.1)

    hand = loss(F, getattr(F, activation))
    builtin = loss(torch_F, getattr(torch, activation))
    torch.testing.assert_close(hessian(hand)(x), hessian(builtin)(x))
    torch.testing.assert_close(jacfwd(hand)(x), jacfwd(builtin)(x))


def test_apply_runs_the_old_style_twin_alike_and_the_function_itself_under_torch_func():
    """``ops._function.apply`` runs each Function through an old-style twin (forward(ctx, ...), a
    cheaper ``Function.apply``) when every input is given and no torch.func transform is active:
    its outputs, gradients and forward-mode tangents must be the Function's own. A call that leaves
    a default out, and every call under vmap, take the Function itself."""
    import torch.autograd.forward_ad as fwAD
    from torch.autograd.function import _SingleLevelFunction
    from torch.func import vmap

    from handgrad.ops._function import apply

    gen = torch.Generator().manual_seed(0)
    x, W, b = (torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True) for s in ((4, 3), (5, 3), (5,)))
    twin_out, own_out = apply(autograd.Linear, x, W, b), autograd.Linear.apply(x, W, b)
    ran = twin_out.grad_fn._forward_cls
    assert issubclass(ran, autograd.Linear) and ran is not autograd.Linear, f"apply ran {ran}, not the twin"
    assert ran.setup_context is _SingleLevelFunction.setup_context, "the twin must be old-style (no setup_context)"
    assert own_out.grad_fn._forward_cls is autograd.Linear
    torch.testing.assert_close(twin_out, own_out, rtol=0, atol=0)
    g = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    for got, want in zip(torch.autograd.grad(twin_out, (x, W, b), g), torch.autograd.grad(own_out, (x, W, b), g)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)

    short = apply(autograd.Linear, x, W)                     # b left to its default: the Function binds it
    assert short.grad_fn._forward_cls is autograd.Linear
    torch.testing.assert_close(short, x @ W.T)

    dx = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    with fwAD.dual_level():                                  # forward mode, no transform: the twin's jvp
        y = apply(autograd.Sigmoid, fwAD.make_dual(x.detach(), dx))
        tangent = fwAD.unpack_dual(y).tangent
    s = torch.sigmoid(x.detach())
    torch.testing.assert_close(tangent, dx * s * (1 - s))

    seen = []

    def per_row(row):
        out = apply(autograd.Linear, row, W, b)
        seen.append(torch._C._are_functorch_transforms_active())
        return out

    torch.testing.assert_close(vmap(per_row)(x), torch_F.linear(x, W, b))
    assert seen == [True], "under vmap the transform is active: apply takes the Function (the old style has no vmap rule)"

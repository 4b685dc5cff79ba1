"""The hand Functions against torch's built-ins, gradcheck and the NumPy reference, on every input
form in ``handgrad.testing.CASES``, and their behaviour under torch's transforms."""

import pytest
import torch
import torch.nn.functional as torch_F
from torch.utils._python_dispatch import TorchDispatchMode

import handgrad.functional as F
from handgrad import autograd, testing
from tests.conftest import case_params


def _check_supported(case, dtype, device):
    if dtype not in testing.case_dtypes(case):
        pytest.skip(f"{case.form}: result is outside {dtype}'s range")
    if case.builtin_devices is not None and device not in case.builtin_devices:
        pytest.skip(f"{case.op} is compared with the built-in on {case.builtin_devices} only")
    if not testing.builtin_supports(case, dtype, device):
        pytest.skip(f"torch's built-in {case.op} does not run in {dtype} on {device}")


@pytest.mark.parametrize("dtype", testing.DTYPES, ids=str)
@pytest.mark.parametrize("case", case_params())
def test_op_matches_torch(case, dtype, device):
    _check_supported(case, dtype, device)
    for seed in (0, 1):
        testing.assert_all_ok(testing.compare_with_builtin(case, dtype, device, seed), f"{case.id} {dtype} seed {seed}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", case_params())
def test_op_matches_numpy_reference(case, dtype, device):
    testing.assert_all_ok(testing.compare_with_reference(case, dtype, device), f"{case.id} {dtype}")


@pytest.mark.parametrize("case", case_params(differentiable_only=True))
def test_op_gradcheck_and_gradgradcheck(case, device):
    first, second = testing.gradchecks(case, device)
    assert first is True, f"gradcheck {case.id}: {first}"
    assert second is True, f"gradgradcheck {case.id}: {second}"


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


@pytest.mark.parametrize("op", ["linear", "sigmoid", "relu"])
def test_jacrev_matches_torch(op):
    from torch.func import jacrev

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    W = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    hand, builtin = testing.OPS[op]
    args = (W,) if op == "linear" else ()
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


def _autocast_dtype(device):
    return torch.bfloat16 if device == "cpu" else torch.float16


def test_linear_under_autocast_computes_in_the_autocast_dtype(device):
    dtype = _autocast_dtype(device)
    x = torch.randn(8, 5, device=device)
    W = torch.randn(3, 5, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    results = []
    for fn in (F.linear, torch_F.linear):
        with torch.autocast(device, dtype=dtype):
            y = fn(x, W, b)
        (y.float() ** 2).sum().backward()
        results.append((y, W.grad.clone(), b.grad.clone()))
        W.grad = b.grad = None
    (y, gW, gb), (y_ref, gW_ref, gb_ref) = results
    assert y.dtype == y_ref.dtype == dtype
    assert gW.dtype == gW_ref.dtype == torch.float32, "parameter gradients keep the parameter's dtype"
    tolerance = testing.TOLERANCES[dtype]
    for name, got, want in [("output", y, y_ref), ("dW", gW, gW_ref), ("db", gb, gb_ref)]:
        assert testing.difference(name, got, want, tolerance).ok, name


def test_cross_entropy_under_autocast_computes_in_float32(device):
    dtype = _autocast_dtype(device)
    x = torch.randn(8, 5, device=device, requires_grad=True)
    W = torch.randn(4, 5, device=device)
    y = torch.randint(0, 4, (8,), device=device)
    results = []
    for linear, cross_entropy in ((F.linear, F.cross_entropy), (torch_F.linear, torch_F.cross_entropy)):
        with torch.autocast(device, dtype=dtype):
            logits = linear(x, W)
            loss = cross_entropy(logits, y, label_smoothing=0.1)
        loss.backward()
        results.append((logits.dtype, loss, x.grad.clone()))
        x.grad = None
    (logits_dtype, loss, gx), (ref_logits_dtype, ref_loss, ref_gx) = results
    assert logits_dtype == ref_logits_dtype == dtype
    assert loss.dtype == ref_loss.dtype == torch.float32
    assert testing.difference("loss", loss, ref_loss, testing.TOLERANCES[torch.float32]).ok
    assert testing.difference("dx", gx, ref_gx, testing.TOLERANCES[dtype]).ok


def test_relu_inplace_overwrites_its_input_like_torch(device):
    x = torch.randn(5, 4, device=device, requires_grad=True)
    outs, grads = [], []
    for relu in (F.relu, torch_F.relu):
        z = x * 2
        y = relu(z, inplace=True)
        assert y is z or y.data_ptr() == z.data_ptr(), "inplace relu must reuse its input's storage"
        (y * torch.arange(20.0, device=device).view(5, 4)).sum().backward()
        outs.append(y.detach().clone())
        grads.append(x.grad.clone())
        x.grad = None
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


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

"""handgrad.nn as a drop-in for torch.nn: same class hierarchy, parameters, repr, state dicts and
initialisation; the same outputs and gradients; and ``convert`` switching a model over in place."""

import copy

import pytest
import torch
import torchvision

import handgrad.autograd
import handgrad.nn
from handgrad import testing

MODULE_NAMES = ("Linear", "Sigmoid", "ReLU", "Dropout", "CrossEntropyLoss")
FLOAT_DTYPES = (torch.float64, torch.float32)

# name: constructor taking a namespace (torch.nn or handgrad.nn); every option that changes state or repr
CONSTRUCTORS = {
    "Linear": lambda nn: nn.Linear(5, 3),
    "Linear no bias": lambda nn: nn.Linear(5, 3, bias=False),
    "Sigmoid": lambda nn: nn.Sigmoid(),
    "ReLU": lambda nn: nn.ReLU(),
    "ReLU inplace": lambda nn: nn.ReLU(inplace=True),
    "Dropout": lambda nn: nn.Dropout(0.3),
    "Dropout inplace": lambda nn: nn.Dropout(0.7, inplace=True),
    "CrossEntropyLoss": lambda nn: nn.CrossEntropyLoss(),
    "CrossEntropyLoss options": lambda nn: nn.CrossEntropyLoss(
        weight=torch.tensor([0.5, 1.0, 2.0]), ignore_index=1, reduction="sum", label_smoothing=0.1
    ),
}


def _pair(name, seed=0):
    """The same module from torch.nn and from handgrad.nn, built under the same seed."""
    torch.manual_seed(seed)
    builtin = CONSTRUCTORS[name](torch.nn)
    torch.manual_seed(seed)
    hand = CONSTRUCTORS[name](handgrad.nn)
    return builtin, hand


def _check_close(pairs, dtype, context):
    """``pairs``: (name, hand tensor, built-in tensor); fails naming every tensor that differs."""
    testing.assert_all_ok([testing.difference(n, a, e, testing.TOLERANCES[dtype]) for n, a, e in pairs], context)


def _randn(gen, *shape, dtype=torch.float64, device="cpu"):
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


# -- class, names, repr, state dict ----------------------------------------------------------------


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_is_subclass_of_torch_module(name):
    hand_cls, torch_cls = getattr(handgrad.nn, name), getattr(torch.nn, name)
    assert issubclass(hand_cls, torch_cls), f"handgrad.nn.{name} does not subclass torch.nn.{name}"
    assert hand_cls is not torch_cls, f"handgrad.nn.{name} is torch.nn.{name} itself"
    assert hand_cls.forward is not torch_cls.forward, f"handgrad.nn.{name} does not override forward"


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_module_instance_is_torch_instance(name):
    builtin, hand = _pair(name)
    assert isinstance(hand, type(builtin)), f"{name}: {type(hand)} is not an instance of {type(builtin)}"
    assert type(hand).__module__ == "handgrad.nn", f"{name}: built a {type(hand)}, not the handgrad class"


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_module_parameters_repr_and_state_dict_match_torch(name):
    builtin, hand = _pair(name)
    assert repr(hand) == repr(builtin), f"{name}: repr {hand!r} vs {builtin!r}"
    hand_params = {n: (tuple(p.shape), p.dtype) for n, p in hand.named_parameters()}
    torch_params = {n: (tuple(p.shape), p.dtype) for n, p in builtin.named_parameters()}
    assert hand_params == torch_params, f"{name}: parameters {hand_params} vs {torch_params}"
    assert list(hand.state_dict()) == list(builtin.state_dict()), (
        f"{name}: state_dict keys {list(hand.state_dict())} vs {list(builtin.state_dict())}"
    )
    for key, value in builtin.state_dict().items():
        assert torch.equal(hand.state_dict()[key], value), f"{name}: state_dict[{key!r}] differs under the same seed"


def _module_output(name, module, gen_seed, dtype):
    """Apply ``module`` to fresh data drawn from ``gen_seed`` (the same data for the same seed)."""
    gen = torch.Generator().manual_seed(gen_seed)
    if name.startswith("CrossEntropyLoss"):
        return module(_randn(gen, 6, 3, dtype=dtype), torch.randint(0, 3, (6,), generator=gen))
    if name.startswith("Dropout"):
        torch.manual_seed(testing.DROPOUT_SEED)
    return module(_randn(gen, 6, 5, dtype=dtype))


@pytest.mark.parametrize("direction", ["torch_to_hand", "hand_to_torch"])
@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_module_state_dict_loads_both_ways(name, direction):
    builtin, _ = _pair(name, seed=0)
    _, hand = _pair(name, seed=1)                            # different initial weights
    if name == "CrossEntropyLoss options":
        hand.weight.copy_(torch.tensor([3.0, 0.2, 1.0]))     # a different buffer to overwrite
    builtin, hand = builtin.double(), hand.double()
    source, target = (builtin, hand) if direction == "torch_to_hand" else (hand, builtin)
    result = target.load_state_dict(source.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys, f"{name}: {result}"
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), f"{name}: state_dict[{key!r}] not loaded"
    _check_close(
        [("output", _module_output(name, hand, 7, torch.float64), _module_output(name, builtin, 7, torch.float64))],
        torch.float64,
        f"{name} after loading {direction}",
    )


# -- initialisation --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (17, 64), (784, 512)], ids=str)
def test_linear_init_equals_torch_under_same_seed(size, bias, dtype, device):
    for seed in (0, 12345):
        torch.manual_seed(seed)
        builtin = torch.nn.Linear(*size, bias=bias, device=device, dtype=dtype)
        torch.manual_seed(seed)
        hand = handgrad.nn.Linear(*size, bias=bias, device=device, dtype=dtype)
        assert (hand.bias is None) == (not bias), f"bias={bias} but hand bias is {hand.bias}"
        for param_name, expected in builtin.named_parameters():
            actual = getattr(hand, param_name)
            assert actual.dtype == dtype and actual.device.type == device, (
                f"{param_name}: {actual.dtype} on {actual.device}, expected {dtype} on {device}"
            )
            assert torch.equal(actual, expected), f"{param_name} of Lin{size} seed {seed}: init differs from torch.nn"
        assert isinstance(hand.weight, torch.nn.Parameter), "weight is not a Parameter"


# -- outputs and gradients -------------------------------------------------------------------------


def _run(module, inputs, upstream):
    """Forward on fresh leaf copies of ``inputs`` and backward ``upstream``; returns output and grads."""
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = module(*leaves)
    out.backward(upstream)
    grads = {f"d{i}": leaf.grad for i, leaf in enumerate(leaves) if leaf.requires_grad}
    grads.update({f"d{n}": p.grad for n, p in module.named_parameters()})
    return out, grads


def _compare_module(builtin, hand, inputs, dtype, context, seed=0):
    """Same parameters, inputs and upstream gradient; output and every gradient must agree."""
    hand.load_state_dict(builtin.state_dict())
    out_builtin = builtin(*inputs)
    upstream = _randn(torch.Generator().manual_seed(seed), *out_builtin.shape, dtype=dtype, device=inputs[0].device)
    torch.manual_seed(testing.DROPOUT_SEED)                  # the same dropout mask on both sides (CPU)
    expected_out, expected_grads = _run(builtin, inputs, upstream)
    torch.manual_seed(testing.DROPOUT_SEED)
    out, grads = _run(hand, inputs, upstream)
    assert out.dtype == expected_out.dtype, f"{context}: output dtype {out.dtype} vs {expected_out.dtype}"
    assert set(grads) == set(expected_grads), f"{context}: gradients {set(grads)} vs {set(expected_grads)}"
    for name in expected_grads:
        assert (grads[name] is None) == (expected_grads[name] is None), f"{context}: {name} is None on one side only"
    _check_close(
        [("output", out, expected_out)]
        + [(n, grads[n], e) for n, e in expected_grads.items() if e is not None],
        dtype,
        context,
    )
    return out


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("x_shape", [(7, 5), (2, 3, 5), (5,), (1, 5)], ids=str)
def test_linear_module_matches_torch(x_shape, bias, dtype, device):
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        builtin = torch.nn.Linear(5, 4, bias=bias, device=device, dtype=dtype)
        hand = handgrad.nn.Linear(5, 4, bias=bias, device=device, dtype=dtype)
        x = _randn(gen, *x_shape, dtype=dtype, device=device)
        _compare_module(builtin, hand, [x], dtype, f"Linear x{x_shape} bias={bias} {dtype} seed {seed}", seed)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("name", ["Sigmoid", "ReLU"])
def test_activation_module_matches_torch(name, dtype, device):
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        x = _randn(gen, 4, 3, 6, dtype=dtype, device=device)
        x = x.sign() * (x.abs() + 0.1)                       # clear of ReLU's kink at 0
        builtin, hand = getattr(torch.nn, name)(), getattr(handgrad.nn, name)()
        _compare_module(builtin, hand, [x], dtype, f"{name} {dtype} seed {seed}", seed)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_relu_inplace_overwrites_input_and_matches_torch(dtype, device):
    gen = torch.Generator().manual_seed(0)
    x = _randn(gen, 5, 8, dtype=dtype, device=device)
    x = x.sign() * (x.abs() + 0.1)
    upstream = _randn(gen, 5, 8, dtype=dtype, device=device)
    results = {}
    for label, module in (("torch", torch.nn.ReLU(inplace=True)), ("hand", handgrad.nn.ReLU(inplace=True))):
        leaf = x.clone().requires_grad_()
        z = leaf * 1.5                                       # a non-leaf, which in-place ops may overwrite
        out = module(z)
        assert out.data_ptr() == z.data_ptr(), f"{label}: ReLU(inplace=True) output is not its input's storage"
        assert torch.equal(z, out), f"{label}: input z was not overwritten with the output"
        out.backward(upstream)
        results[label] = (out.detach(), leaf.grad)
    _check_close(
        [("output", results["hand"][0], results["torch"][0]), ("dinput", results["hand"][1], results["torch"][1])],
        dtype,
        f"ReLU(inplace=True) {dtype}",
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("inplace", [False, True], ids=["", "inplace"])
def test_dropout_module_matches_torch_on_cpu_under_same_seed(p, inplace, dtype):
    gen = torch.Generator().manual_seed(0)
    x = _randn(gen, 40, 30, dtype=dtype)
    upstream = _randn(gen, 40, 30, dtype=dtype)
    results = {}
    for label, module in (("torch", torch.nn.Dropout(p, inplace)), ("hand", handgrad.nn.Dropout(p, inplace))):
        leaf = x.clone().requires_grad_()
        z = leaf * 1.0                                       # a non-leaf, so inplace may overwrite it
        torch.manual_seed(testing.DROPOUT_SEED)
        out = module(z)
        out.backward(upstream)
        results[label] = (out.detach(), leaf.grad)
    hand_mask, torch_mask = results["hand"][0] != 0, results["torch"][0] != 0
    assert torch.equal(hand_mask, torch_mask), f"Dropout(p={p}) mask differs from torch's under the same seed"
    assert 0 < hand_mask.sum() < hand_mask.numel(), f"Dropout(p={p}) kept all or none of 1200 elements"
    _check_close(
        [("output", results["hand"][0], results["torch"][0]), ("dinput", results["hand"][1], results["torch"][1])],
        dtype,
        f"Dropout(p={p}, inplace={inplace}) {dtype}",
    )


class AddOneInPlace(torch.nn.Module):
    def forward(self, y):
        return y.add_(1.0)


INPLACE_OPS = {
    "ReLU(inplace=True)": lambda nn: nn.ReLU(inplace=True),
    "Dropout(inplace=True)": lambda nn: nn.Dropout(0.5, inplace=True),
    "add_": lambda nn: AddOneInPlace(),
}


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5), (5,)], ids=str)
@pytest.mark.parametrize("op", INPLACE_OPS)
def test_linear_output_accepts_inplace_op(op, shape):
    """torch.nn.Linear followed by an in-place op (ReLU(inplace=True), a residual ``+=``) is common."""
    gen = torch.Generator().manual_seed(0)
    x = _randn(gen, *shape)
    builtin = torch.nn.Sequential(torch.nn.Linear(5, 4).double(), INPLACE_OPS[op](torch.nn))
    hand = torch.nn.Sequential(handgrad.nn.Linear(5, 4).double(), INPLACE_OPS[op](handgrad.nn))
    _compare_module(builtin, hand, [x], torch.float64, f"Linear then {op}")


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_dropout_eval_mode_is_identity(p, device):
    gen = torch.Generator().manual_seed(0)
    leaf = _randn(gen, 6, 7, device=device).requires_grad_()
    upstream = _randn(gen, 6, 7, device=device)
    module = handgrad.nn.Dropout(p).eval()
    out = module(leaf)
    assert torch.equal(out, leaf), f"Dropout(p={p}).eval() changed its input"
    out.backward(upstream)
    assert torch.equal(leaf.grad, upstream), f"Dropout(p={p}).eval(): dinput is not the upstream gradient"


def test_dropout_training_mask_is_consistent_with_gradient(device):
    """On any device (CUDA's built-in draws another mask): kept elements are x / (1 − p), gradients
    flow exactly through the kept ones, and about 1 − p of them are kept."""
    p = 0.25
    gen = torch.Generator().manual_seed(0)
    leaf = (_randn(gen, 200, 50, device=device).abs() + 0.1).requires_grad_()
    out = handgrad.nn.Dropout(p)(leaf)
    out.backward(torch.ones_like(out))
    kept = out != 0
    _check_close(
        [("output (kept)", out[kept], leaf[kept] / (1 - p)), ("dinput", leaf.grad, kept.double() / (1 - p))],
        torch.float64,
        "Dropout(p=0.25)",
    )
    n = kept.numel()
    fraction = kept.double().mean().item()
    sd = ((1 - p) * p / n) ** 0.5                            # binomial proportion, n = 10000
    assert abs(fraction - (1 - p)) < 5 * sd, f"kept fraction {fraction:.4f}, expected {1 - p} ± {5 * sd:.4f}"


CROSS_ENTROPY_OPTIONS = {
    "default": {},
    "weight": {"weight": True},
    "ignore_index=-100": {"ignore_index": -100},
    "ignore_index=2": {"ignore_index": 2},
    "label_smoothing": {"label_smoothing": 0.2},
    "all options": {"weight": True, "ignore_index": 1, "label_smoothing": 0.3},
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", CROSS_ENTROPY_OPTIONS, ids=str)
@pytest.mark.parametrize("shape", [(9, 5), (2, 5, 3, 2)], ids=str)
def test_cross_entropy_loss_module_matches_torch(shape, options, reduction, dtype, device):
    spec = CROSS_ENTROPY_OPTIONS[options]
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        n_classes = shape[1]
        kwargs = {"reduction": reduction, "label_smoothing": spec.get("label_smoothing", 0.0)}
        if spec.get("weight"):
            kwargs["weight"] = (torch.rand(n_classes, generator=gen, dtype=torch.float64) + 0.1).to(device, dtype)
        target = torch.randint(0, n_classes, shape[:1] + shape[2:], generator=gen)
        if "ignore_index" in spec:
            kwargs["ignore_index"] = spec["ignore_index"]
            target = target.masked_fill(torch.rand(target.shape, generator=gen) < 0.3, spec["ignore_index"])
        x = _randn(gen, *shape, dtype=dtype, device=device)
        builtin, hand = torch.nn.CrossEntropyLoss(**kwargs), handgrad.nn.CrossEntropyLoss(**kwargs)
        _compare_module(builtin, hand, [x, target.to(device)], dtype, f"CrossEntropyLoss {options} {reduction} "
                        f"{shape} {dtype} seed {seed}", seed)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss_module_probability_target_matches_torch(reduction, dtype, device):
    gen = torch.Generator().manual_seed(0)
    x = _randn(gen, 8, 4, dtype=dtype, device=device)
    target = torch.softmax(_randn(gen, 8, 4, dtype=dtype, device=device), dim=1)
    weight = (torch.rand(4, generator=gen, dtype=torch.float64) + 0.1).to(device, dtype)
    kwargs = {"weight": weight, "reduction": reduction, "label_smoothing": 0.1}
    builtin, hand = torch.nn.CrossEntropyLoss(**kwargs), handgrad.nn.CrossEntropyLoss(**kwargs)
    _compare_module(builtin, hand, [x, target], dtype, f"CrossEntropyLoss probabilities {reduction} {dtype}")


# -- convert ---------------------------------------------------------------------------------------


class OwnLinear(torch.nn.Linear):
    """A user's Linear with a forward of its own, which convert must leave alone."""

    def forward(self, input):
        return torch.nn.functional.linear(input, 2 * self.weight, self.bias)


class Block(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(width, width),
            torch.nn.Sigmoid(),
        )
        self.loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1, weight=torch.linspace(0.5, 1.5, width))

    def forward(self, x):
        return self.body(x)


class NestedNet(torch.nn.Module):
    """Sequential inside a custom Module inside a ModuleList, heads in a ModuleDict."""

    def __init__(self, width=6, n_classes=3):
        super().__init__()
        self.stem = torch.nn.Linear(4, width)
        self.blocks = torch.nn.ModuleList([Block(width), Block(width)])
        self.heads = torch.nn.ModuleDict(
            {"plain": torch.nn.Linear(width, n_classes), "own": OwnLinear(width, n_classes)}
        )
        self.criterion = torch.nn.CrossEntropyLoss(reduction="sum")
        self.act = torch.nn.ReLU(inplace=True)

    def features(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        # In place on a Sigmoid's output minus 0.5, not on a Linear's: see test_linear_output_accepts_inplace_op.
        return self.act(h - 0.5)

    def forward(self, x):
        h = self.features(x)
        return self.heads["plain"](h) + self.heads["own"](h)

    def loss(self, x, target):
        h = self.features(x)
        internal = sum(block.loss(h, target) for block in self.blocks)
        return self.criterion(self.forward(x), target) + internal


REPLACEMENTS = {getattr(torch.nn, name): getattr(handgrad.nn, name) for name in (*MODULE_NAMES, "Sequential")}


def _nested(dtype, device):
    torch.manual_seed(0)
    return NestedNet().to(device=device, dtype=dtype)


def _mlp(dtype, device):
    torch.manual_seed(0)
    return torchvision.ops.MLP(in_channels=8, hidden_channels=[16, 16, 3], dropout=0.1).to(device=device, dtype=dtype)


def _squeezenet(dtype, device):
    torch.manual_seed(0)
    return torchvision.models.squeezenet1_1(weights=None, num_classes=3).to(device=device, dtype=dtype)


MODELS = {  # name: (build, input shape)
    "nested": (_nested, (5, 4)),
    "torchvision MLP": (_mlp, (5, 8)),
    "torchvision squeezenet1_1": (_squeezenet, (2, 3, 32, 32)),
}


def _loss(name, model, x, target):
    """The model's loss on (x, target); the nested model also runs its CrossEntropyLoss submodules."""
    if name == "nested":
        return model.loss(x, target)
    return torch.nn.functional.cross_entropy(model(x), target)


def _data(name, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = _randn(gen, *MODELS[name][1], dtype=dtype, device=device)
    target = torch.randint(0, 3, (MODELS[name][1][0],), generator=gen).to(device)
    return x, target


@pytest.mark.parametrize("name", MODELS)
def test_convert_switches_matching_modules_in_place(name):
    model = MODELS[name][0](torch.float64, "cpu")
    before = {n: type(m) for n, m in model.named_modules()}
    params_before = dict(model.named_parameters())
    buffers_before = dict(model.named_buffers())
    assert any(t in REPLACEMENTS for t in before.values()), f"{name}: nothing to convert, the test is vacuous"
    assert handgrad.nn.convert(model) is model, f"{name}: convert did not return the same object"
    for module_name, module in model.named_modules():
        expected = REPLACEMENTS.get(before[module_name], before[module_name])
        assert type(module) is expected, f"{name}.{module_name}: {type(module).__name__}, expected {expected}"
    params_after = dict(model.named_parameters())
    assert list(params_after) == list(params_before), f"{name}: parameter names changed"
    for param_name, param in params_before.items():
        assert params_after[param_name] is param, f"{name}: parameter {param_name} is a new object after convert"
    for buffer_name, buffer in buffers_before.items():
        assert dict(model.named_buffers())[buffer_name] is buffer, f"{name}: buffer {buffer_name} replaced"


def test_convert_leaves_user_subclass_alone():
    model = handgrad.nn.convert(NestedNet())
    assert type(model.heads["own"]) is OwnLinear, f"user subclass became {type(model.heads['own'])}"
    assert type(model.heads["plain"]) is handgrad.nn.Linear, "plain Linear in a ModuleDict was not converted"
    assert type(model.blocks[1].loss) is handgrad.nn.CrossEntropyLoss, "CrossEntropyLoss submodule not converted"
    assert type(model.blocks[0].body[2]) is handgrad.nn.Dropout, "Dropout in a nested Sequential not converted"
    own = model.heads["own"]
    x = torch.randn(3, own.in_features)
    assert torch.equal(own(x), torch.nn.functional.linear(x, 2 * own.weight, own.bias)), "OwnLinear.forward not run"


def test_convert_is_idempotent():
    model = handgrad.nn.convert(NestedNet())
    types = {n: type(m) for n, m in model.named_modules()}
    assert handgrad.nn.convert(model) is model
    assert types == {n: type(m) for n, m in model.named_modules()}, "a second convert changed module classes"


def test_convert_runs_hand_functions():
    model = handgrad.nn.convert(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid()))
    hidden = model[0](torch.randn(2, 3))
    assert hidden.grad_fn._forward_cls is handgrad.autograd.Linear, f"Linear ran {type(hidden.grad_fn).__name__}"
    out = model[1](hidden)
    assert out.grad_fn._forward_cls is handgrad.autograd.Sigmoid, f"Sigmoid ran {type(out.grad_fn).__name__}"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("name", MODELS)
def test_convert_outputs_and_gradients_match_unconverted_copy(name, dtype, device):
    build = MODELS[name][0]
    model = build(dtype, device)
    # Dropout masks agree with the built-in's only on the CPU: elsewhere compare in eval mode.
    model.train(device == "cpu")
    reference = copy.deepcopy(model)
    handgrad.nn.convert(model)
    x, target = _data(name, dtype, device)
    results = {}
    for label, m in (("builtin", reference), ("converted", model)):
        torch.manual_seed(testing.DROPOUT_SEED)
        out = m(x)
        torch.manual_seed(testing.DROPOUT_SEED)
        loss = _loss(name, m, x, target)
        loss.backward()
        results[label] = (out, loss, {n: p.grad for n, p in m.named_parameters()})
    (out_ref, loss_ref, grads_ref), (out, loss, grads) = results["builtin"], results["converted"]
    _check_close(
        [("output", out, out_ref), ("loss", loss, loss_ref)]
        + [(f"d{n}", grads[n], g) for n, g in grads_ref.items()],
        dtype,
        f"{name} {dtype} {device}",
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("name", ["nested", "torchvision MLP"])
def test_convert_sgd_steps_track_builtin(name, dtype):
    model = MODELS[name][0](dtype, "cpu")
    reference = copy.deepcopy(model)
    # The optimizer is created before convert: it must keep driving the very same parameters.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    handgrad.nn.convert(model)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    for step in range(5):
        x, target = _data(name, dtype, "cpu", seed=step)
        for m, opt in ((reference, reference_optimizer), (model, optimizer)):
            opt.zero_grad()
            torch.manual_seed(testing.DROPOUT_SEED + step)
            _loss(name, m, x, target).backward()
            opt.step()
        params_ref = dict(reference.named_parameters())
        _check_close(
            [(n, p, params_ref[n]) for n, p in model.named_parameters()],
            dtype,
            f"{name} {dtype} after SGD step {step + 1}",
        )
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, initial[n])]
    assert moved, f"{name}: SGD through the pre-convert optimizer changed no parameter"


# -- Sequential: Linear + activation fused -------------------------------------------------------


def _stack(nn, activation):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), getattr(nn, activation)(), nn.Linear(7, 3), nn.Dropout(0.0)).double()


@pytest.mark.parametrize("activation", ["Sigmoid", "ReLU"])
def test_sequential_fuses_linear_and_activation_and_matches_torch(activation, device):
    gen = torch.Generator().manual_seed(1)
    x = _randn(gen, 6, 5, device=device)
    hand, builtin = _stack(handgrad.nn, activation).to(device), _stack(torch.nn, activation).to(device)
    out = hand(x)
    fused = {"Sigmoid": "LinearSigmoidBackward", "ReLU": "LinearReLUBackward"}[activation]
    assert type(out.grad_fn.next_functions[0][0]).__name__ == fused or any(
        type(f[0]).__name__ == fused for f in out.grad_fn.next_functions
    ), f"Linear + {activation} did not run as one fused Function"
    assert isinstance(hand, torch.nn.Sequential) and hand.state_dict().keys() == builtin.state_dict().keys()
    _compare_module(builtin, hand, [x], torch.float64, f"Sequential(Linear, {activation}, Linear)")


def test_sequential_runs_hooked_modules_one_by_one():
    seen = []
    hand = _stack(handgrad.nn, "Sigmoid")
    hand[1].register_forward_hook(lambda module, inputs, output: seen.append(output.detach()))
    x = torch.randn(4, 5, dtype=torch.float64)
    out = hand(x)
    assert len(seen) == 1, "a forward hook on the activation was skipped by the fused path"
    torch.testing.assert_close(seen[0], torch.sigmoid(torch.nn.functional.linear(x, hand[0].weight, hand[0].bias)))
    torch.testing.assert_close(out, _stack(torch.nn, "Sigmoid")(x))

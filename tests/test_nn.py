"""handgrad.nn as a drop-in for torch.nn: same class hierarchy, parameters, repr, state dicts and
initialisation; the same outputs, gradients and buffers, in training and eval mode; and ``convert``
switching a model over in place. The modules come from the registry (``handgrad.ops.OPS``), their cases
from the test database (``handgrad.testing.op_db``: each op's ``OpInfo.modules``)."""

import copy
import inspect

import pytest
import torch
import torchvision

import handgrad.autograd
import handgrad.nn
from handgrad import testing
from handgrad.ops import _registry
from handgrad.testing.op_db import module_samples
from handgrad.testing.samples import outputs_of

_registry.resolve()                          # the classes of torchvision's that handgrad.nn stands in for
FLOAT_DTYPES = (torch.float64, torch.float32)
MODULE_CLASSES = [pytest.param(cls, id=cls.__name__) for cls in _registry.REPLACES]
MODULE_SAMPLES = [pytest.param(cls, sample, id=f"{cls.__name__}: {sample.name}")
                  for cls, sample in module_samples()]
DROPOUT_SEED = 1234


def _pair(cls, sample, seed=0, **factory):
    """The same module from torch.nn and from handgrad.nn, built under the same seed."""
    torch.manual_seed(seed)
    builtin = cls(*sample.args, **sample.kwargs, **factory)
    torch.manual_seed(seed)
    hand = getattr(handgrad.nn, cls.__name__)(*sample.args, **sample.kwargs, **factory)
    return builtin, hand


def _check_close(pairs, dtype, context):
    """``pairs``: (name, hand tensor, built-in tensor); fails naming every tensor that differs."""
    bad = [str(d) for d in (testing.difference(n, a, e, testing.TOLERANCES[dtype]) for n, a, e in pairs) if not d.ok]
    assert not bad, f"{context}: " + "; ".join(bad)


def _randn(gen, *shape, dtype=torch.float64, device="cpu"):
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def _has_factory_kwargs(cls):
    return "device" in inspect.signature(cls.__init__).parameters


# -- class, names, repr, state dict ----------------------------------------------------------------


def test_every_registered_module_has_samples():
    tested = {cls for cls, _ in module_samples()}
    assert tested == set(_registry.REPLACES), f"modules without samples: {set(_registry.REPLACES) - tested}"


@pytest.mark.parametrize("cls", MODULE_CLASSES)
def test_module_is_subclass_of_torch_module(cls):
    hand_cls = getattr(handgrad.nn, cls.__name__)
    assert issubclass(hand_cls, cls), f"handgrad.nn.{cls.__name__} does not subclass torch.nn.{cls.__name__}"
    assert hand_cls is not cls and hand_cls.__module__ == "handgrad.nn"
    assert hand_cls.forward is not cls.forward, f"handgrad.nn.{cls.__name__} does not override forward"


@pytest.mark.parametrize("cls, sample", MODULE_SAMPLES)
def test_module_parameters_repr_and_state_dict_match_torch(cls, sample):
    builtin, hand = _pair(cls, sample)
    assert isinstance(hand, cls) and type(hand).__module__ == "handgrad.nn"
    assert repr(hand) == repr(builtin), f"{sample.name}: repr {hand!r} vs {builtin!r}"
    hand_params = {n: (tuple(p.shape), p.dtype) for n, p in hand.named_parameters()}
    torch_params = {n: (tuple(p.shape), p.dtype) for n, p in builtin.named_parameters()}
    assert hand_params == torch_params, f"{sample.name}: parameters {hand_params} vs {torch_params}"
    assert list(hand.state_dict()) == list(builtin.state_dict())
    for key, value in builtin.state_dict().items():
        assert torch.equal(hand.state_dict()[key], value), f"{sample.name}: state_dict[{key!r}] differs under the same seed"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("cls, sample", MODULE_SAMPLES)
def test_module_init_equals_torch_under_same_seed(cls, sample, dtype, device):
    if not _has_factory_kwargs(cls):                         # torchvision's classes, parameter-free ones
        builtin, hand = _pair(cls, sample)
        for name, expected in builtin.named_parameters():
            assert torch.equal(dict(hand.named_parameters())[name], expected), f"{sample.name} {name}: init differs"
        return
    for seed in (0, 12345):
        builtin, hand = _pair(cls, sample, seed, device=device, dtype=dtype)
        for name, expected in builtin.named_parameters():
            actual = dict(hand.named_parameters())[name]
            assert actual.dtype == dtype and actual.device.type == device, f"{name}: {actual.dtype} on {actual.device}"
            assert torch.equal(actual, expected), f"{sample.name} {name}, seed {seed}: init differs from torch.nn"


def _inputs(sample, dtype, device, seed):
    """Fresh leaves of the sample's input; those that require grad enter the module as a non-leaf
    copy, which in-place modules may overwrite."""
    drawn = sample.input(torch.Generator().manual_seed(seed))
    leaves = [t.detach().to(device=device, dtype=dtype if t.is_floating_point() else None).requires_grad_(t.requires_grad)
              for t in drawn]
    return leaves, [t * 1 if t.requires_grad else t for t in leaves]


def _compare_module(builtin, hand, inputs, dtype, context):
    """Same parameters, inputs and upstream gradient: output and every gradient must agree."""
    hand.load_state_dict(builtin.state_dict())
    results = []
    for module in (builtin, hand):
        leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
        torch.manual_seed(DROPOUT_SEED)
        out = module(*leaves)
        out.backward(_randn(torch.Generator().manual_seed(0), *out.shape, dtype=dtype, device=out.device))
        grads = {f"dinput {i}": t.grad for i, t in enumerate(leaves) if t.requires_grad}
        results.append((out, {**grads, **{f"d{n}": p.grad for n, p in module.named_parameters()}}))
    (out_ref, grads_ref), (out, grads) = results
    _check_close([("output", out, out_ref)] + [(n, grads[n], g) for n, g in grads_ref.items()], dtype, context)


def _run(module, sample, dtype, device, seed):
    """(outputs, gradients, state dict): every tensor output differentiated for a random upstream
    gradient (MultiheadAttention returns its output and its weights)."""
    leaves, inputs = _inputs(sample, dtype, device, seed)
    call = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else None) if isinstance(v, torch.Tensor) else v
            for k, v in sample.forward_kwargs.items()}
    torch.manual_seed(DROPOUT_SEED)                          # the same dropout mask on both sides (CPU)
    outputs = [o for o in outputs_of(module(*inputs, **call)) if isinstance(o, torch.Tensor)]
    gen = torch.Generator().manual_seed(seed + 1)
    upstream = [_randn(gen, *o.shape, dtype=dtype, device=device) for o in outputs]
    torch.autograd.backward(outputs, upstream)
    grads = {f"dinput {i}": t.grad for i, t in enumerate(leaves) if t.requires_grad}
    grads.update({f"d{n}": p.grad for n, p in module.named_parameters()})
    return outputs, grads, module.state_dict()


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("cls, sample", MODULE_SAMPLES)
def test_module_matches_torch(cls, sample, dtype, mode, device):
    """Same parameters, input and upstream gradient: the same output, the gradient of every input and
    parameter, and the same buffers afterwards (running statistics)."""
    if mode == "train" and sample.train_devices is not None and device not in sample.train_devices:
        pytest.skip(f"{sample.name}: training mode is compared with torch on {sample.train_devices} only")
    for seed in (0, 1):
        builtin, hand = _pair(cls, sample, seed)
        builtin, hand = builtin.to(device, dtype).train(mode == "train"), hand.to(device, dtype).train(mode == "train")
        context = f"{sample.name} {dtype} {mode} seed {seed}"
        (outs_ref, grads_ref, state_ref), (outs, grads, state) = (_run(m, sample, dtype, device, seed) for m in (builtin, hand))
        assert len(outs) == len(outs_ref), f"{context}: {len(outs)} tensor outputs, torch.nn gives {len(outs_ref)}"
        for out, out_ref in zip(outs, outs_ref):
            assert out.dtype == out_ref.dtype, f"{context}: output dtype {out.dtype} vs {out_ref.dtype}"
        assert set(grads) == set(grads_ref) and all((grads[n] is None) == (g is None) for n, g in grads_ref.items())
        _check_close([(f"output {i}", out, out_ref) for i, (out, out_ref) in enumerate(zip(outs, outs_ref))]
                     + [(n, grads[n], g) for n, g in grads_ref.items() if g is not None]
                     + [(f"buffer {k}", state[k], v) for k, v in state_ref.items()], dtype, context)


@pytest.mark.parametrize("direction", ["torch_to_hand", "hand_to_torch"])
@pytest.mark.parametrize("cls, sample", MODULE_SAMPLES)
def test_module_state_dict_loads_both_ways(cls, sample, direction):
    builtin, _ = _pair(cls, sample, seed=0)
    _, hand = _pair(cls, sample, seed=1)                     # different initial weights
    builtin, hand = builtin.double(), hand.double()
    source, target = (builtin, hand) if direction == "torch_to_hand" else (hand, builtin)
    result = target.load_state_dict(source.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys, f"{sample.name}: {result}"
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), f"{sample.name}: state_dict[{key!r}] not loaded"
    builtin.eval(), hand.eval()
    outs, outs_ref = _run(hand, sample, torch.float64, "cpu", 7)[0], _run(builtin, sample, torch.float64, "cpu", 7)[0]
    _check_close([(f"output {i}", out, out_ref) for i, (out, out_ref) in enumerate(zip(outs, outs_ref, strict=True))],
                 torch.float64, f"{sample.name} after loading {direction}")


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


REPLACEMENTS = {**_registry.REPLACES, torch.nn.Sequential: handgrad.nn.Sequential}


def _nested(dtype, device):
    torch.manual_seed(0)
    return NestedNet().to(device=device, dtype=dtype)


def _mlp(dtype, device):
    torch.manual_seed(0)
    return torchvision.ops.MLP(in_channels=8, hidden_channels=[16, 16, 3], dropout=0.1).to(device=device, dtype=dtype)


def _squeezenet(dtype, device):
    torch.manual_seed(0)
    return torchvision.models.squeezenet1_1(weights=None, num_classes=3).to(device=device, dtype=dtype)


def _resnet18(dtype, device):
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=3).to(device=device, dtype=dtype)


MODELS = {  # name: (build, input shape)
    "nested": (_nested, (5, 4)),
    "torchvision MLP": (_mlp, (5, 8)),
    "torchvision squeezenet1_1": (_squeezenet, (2, 3, 32, 32)),
    # 8 images: at layer4 each batch norm sees 8 values per channel (1 × 1 maps); with 2, a
    # normalisation over 2 numbers amplifies the last bit of any difference into the first.
    "torchvision resnet18": (_resnet18, (8, 3, 32, 32)),
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
    assert issubclass(hidden.grad_fn._forward_cls, handgrad.autograd.Linear), f"Linear ran {type(hidden.grad_fn).__name__}"
    out = model[1](hidden)
    assert issubclass(out.grad_fn._forward_cls, handgrad.autograd.Sigmoid), f"Sigmoid ran {type(out.grad_fn).__name__}"


def _model_dtypes(names):
    """(name, dtype) pairs; resnet18 in float64 only: float32's rounding through 20 convolutions and
    batch norms in another summation order moves its gradients by more than float32's tolerance."""
    return [pytest.param(n, d, id=f"{n}-{d}") for n in names for d in FLOAT_DTYPES if "resnet" not in n or d == torch.float64]


@pytest.mark.parametrize("name, dtype", _model_dtypes(MODELS))
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
        torch.manual_seed(DROPOUT_SEED)
        out = m(x)
        torch.manual_seed(DROPOUT_SEED)
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


@pytest.mark.parametrize("name, dtype", _model_dtypes(["nested", "torchvision MLP", "torchvision resnet18"]))
def test_convert_sgd_steps_track_builtin(name, dtype):
    model = MODELS[name][0](dtype, "cpu")
    reference = copy.deepcopy(model)
    # The optimizer is created before convert: it must keep driving the very same parameters.
    lr = 0.01 if "resnet" in name else 0.1
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    handgrad.nn.convert(model)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=lr, momentum=0.9)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    # Each step's gradients differ in the last bits (sums in another order); through resnet18's
    # 20 batch norms, momentum carries that into the parameters at ~1e-10 after a few steps.
    tolerance = testing.Tolerance(atol=1e-9, rtol=1e-7) if "resnet" in name else testing.TOLERANCES[dtype]
    for step in range(5):
        x, target = _data(name, dtype, "cpu", seed=step)
        for m, opt in ((reference, reference_optimizer), (model, optimizer)):
            opt.zero_grad()
            torch.manual_seed(DROPOUT_SEED + step)
            _loss(name, m, x, target).backward()
            opt.step()
        params_ref = dict(reference.named_parameters())
        diffs = [testing.difference(n, p, params_ref[n], tolerance) for n, p in model.named_parameters()]
        bad = [str(d) for d in diffs if not d.ok]
        assert not bad, f"{name} {dtype} after SGD step {step + 1}: " + "; ".join(bad)
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, initial[n])]
    assert moved, f"{name}: SGD through the pre-convert optimizer changed no parameter"


def test_resnet18_converts_entirely():
    model = handgrad.nn.convert(_resnet18(torch.float32, "cpu"))
    report = handgrad.nn.coverage(model)
    assert report.complete, f"resnet18 keeps modules on a built-in backward:\n{report}"
    counts = {}
    for entry in report.of("hand"):
        counts[entry.cls] = counts.get(entry.cls, 0) + 1
    assert counts == {"Conv2d": 20, "BatchNorm2d": 20, "ReLU": 9, "MaxPool2d": 1, "AdaptiveAvgPool2d": 1, "Linear": 1}, counts
    assert {e.cls for e in report.of("structural")} == {"ResNet", "Sequential", "BasicBlock"}


class _Scaled(torch.nn.Module):
    """A module of one's own holding a parameter: its forward is the user's, not hand-derived."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.scale


def _mixed():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.PReLU(3), OwnLinear(3, 3),
                               _Scaled(), torch.nn.Identity())


def test_coverage_says_what_runs_hand_derived_and_why_the_rest_does_not():
    model = _mixed()
    before = {e.path: e for e in handgrad.nn.coverage(model).entries}
    assert before["1"].status == "built-in" and "not converted: run handgrad.nn.convert(model)" in before["1"].reason
    report = handgrad.nn.coverage(handgrad.nn.convert(model))
    after = {e.path: (e.cls, e.status, e.reason) for e in report.entries}
    assert after["(model)"][:2] == ("Sequential", "structural")
    assert after["0"][:2] == ("Flatten", "structural") and after["5"][:2] == ("Identity", "structural")
    assert after["1"] == ("Linear", "hand", "")
    assert after["2"] == ("PReLU", "built-in", "handgrad has no hand-derived PReLU")
    # Their forwards' own calls are intercepted: hand-derived by the tensor algebra's rules.
    assert after["3"][1] == "hand" and "a subclass of torch.nn.Linear with a forward of its own" in after["3"][2]
    assert after["4"][1] == "hand" and "a module of your own holding tensors (scale)" in after["4"][2]
    assert not report.complete
    graph = handgrad.nn.audit(model(torch.randn(2, 4, requires_grad=True)))
    assert set(graph.builtin) == {"PreluKernelBackward0"}, str(graph)           # the audit agrees: PReLU alone
    text = str(report)
    assert text.splitlines()[0] == "hand-derived: 3 modules, built-in: 1, structural: 3", text
    assert "PReLU" in text and "handgrad has no hand-derived PReLU" in text


def test_convert_strict_refuses_a_model_with_gaps_and_converts_nothing():
    model = _mixed()
    with pytest.raises(RuntimeError, match=r"3 module\(s\) would stay on a built-in backward:\n"
                                           r"  PReLU ×1 \(handgrad has no hand-derived PReLU\): 2\n"):
        handgrad.nn.convert(model, strict=True)
    assert type(model[1]) is torch.nn.Linear, "strict=True converted part of the model before refusing"


def test_convert_strict_converts_a_model_without_gaps():
    model = handgrad.nn.convert(_mlp(torch.float32, "cpu"), strict=True)
    assert handgrad.nn.coverage(model).complete


# -- Sequential: Linear + activation fused -------------------------------------------------------


def _stack(nn, activation):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), getattr(nn, activation)(), nn.Linear(7, 3), nn.Dropout(0.0)).double()


def _functions_run(out):
    """Names of the autograd nodes between ``out`` and the leaves."""
    names, stack = [], [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.append(type(node).__name__)
            stack.extend(f for f, _ in node.next_functions)
    return names


STACKS = {  # name: (builder taking a namespace, the hand Functions that must run)
    "Linear, Sigmoid, Linear": (lambda nn: [nn.Linear(5, 7), nn.Sigmoid(), nn.Linear(7, 3)], ["LinearChainBackward"]),
    "Linear, ReLU, Linear, ReLU, Linear": (
        lambda nn: [nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(inplace=True), nn.Linear(6, 3)],
        ["LinearChainBackward"]),
    "Linear, Linear (no bias)": (lambda nn: [nn.Linear(5, 7, bias=False), nn.Linear(7, 3, bias=False)],
                                 ["LinearChainBackward"]),
    "Linear, Sigmoid, Dropout, Linear": (lambda nn: [nn.Linear(5, 7), nn.Sigmoid(), nn.Dropout(0.0), nn.Linear(7, 3)],
                                         ["LinearSigmoidBackward", "LinearBackward"]),
    "Linear, ReLU": (lambda nn: [nn.Linear(5, 7), nn.ReLU()], ["LinearReLUBackward"]),
    "Linear, Tanh, Linear": (lambda nn: [nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)],
                             ["LinearBackward", "TanhBackward", "LinearBackward"]),
}


@pytest.mark.parametrize("stack", STACKS)
def test_sequential_fuses_linear_stacks_and_matches_torch(stack, device):
    build, expected = STACKS[stack]
    gen = torch.Generator().manual_seed(1)
    x = _randn(gen, 6, 5, device=device)
    torch.manual_seed(0)
    builtin = torch.nn.Sequential(*build(torch.nn)).double().to(device)
    torch.manual_seed(0)
    hand = handgrad.nn.Sequential(*build(handgrad.nn)).double().to(device)
    ran = [n for n in _functions_run(hand(x)) if n != "AccumulateGrad"]
    assert sorted(ran) == sorted(expected), f"{stack} ran {ran}, expected {expected}"
    assert hand.state_dict().keys() == builtin.state_dict().keys()
    _compare_module(builtin, hand, [x], torch.float64, f"Sequential({stack})")


def test_sequential_runs_hooked_modules_one_by_one():
    seen = []
    hand = _stack(handgrad.nn, "Sigmoid")
    hand[1].register_forward_hook(lambda module, inputs, output: seen.append(output.detach()))
    x = torch.randn(4, 5, dtype=torch.float64)
    out = hand(x)
    assert len(seen) == 1, "a forward hook on the activation was skipped by the fused path"
    torch.testing.assert_close(seen[0], torch.sigmoid(torch.nn.functional.linear(x, hand[0].weight, hand[0].bias)))
    torch.testing.assert_close(out, _stack(torch.nn, "Sigmoid")(x))


# -- Sequential.loss: the last stack and the cross-entropy as one Function ------------------------


LOSS_STACKS = {  # name: (layers from a namespace, loss options, whether the fused Function must run)
    "Linear, Sigmoid, Linear, Sigmoid, Linear": (
        lambda nn: [nn.Linear(5, 7), nn.Sigmoid(), nn.Linear(7, 6), nn.Sigmoid(), nn.Linear(6, 4)], {}, True),
    "Flatten, Linear, ReLU, Linear; label smoothing": (
        lambda nn: [torch.nn.Flatten(), nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4)], {"label_smoothing": 0.1}, True),
    "Linear, ReLU, Dropout, Linear; ignore_index=2, sum": (
        lambda nn: [nn.Linear(5, 7), nn.ReLU(), nn.Dropout(0.0), nn.Linear(7, 4)],
        {"ignore_index": 2, "reduction": "sum"}, True),
    "Linear, Linear (no bias)": (lambda nn: [nn.Linear(5, 7, bias=False), nn.Linear(7, 4, bias=False)], {}, True),
    "class weight: apart": (lambda nn: [nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4)],
                            {"weight": torch.tensor([0.5, 1.0, 2.0, 0.1], dtype=torch.float64)}, False),
    "sigmoid on the logits: apart": (lambda nn: [nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4), nn.Sigmoid()], {}, False),
    "Linear, Tanh (no stack at the end): apart": (lambda nn: [nn.Linear(5, 4), nn.Tanh()], {}, False),
}


def _loss_pair(stack, device):
    build, options, fused = LOSS_STACKS[stack]
    torch.manual_seed(0)
    builtin = torch.nn.Sequential(*build(torch.nn)).double().to(device)
    hand = handgrad.nn.Sequential(*build(handgrad.nn)).double().to(device)
    hand.load_state_dict(builtin.state_dict())
    options = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in options.items()}
    return builtin, hand, torch.nn.CrossEntropyLoss(**options), handgrad.nn.CrossEntropyLoss(**options), fused


@pytest.mark.parametrize("stack", LOSS_STACKS)
def test_sequential_loss_fuses_the_stack_and_the_loss_and_matches_torch(stack, device):
    builtin, hand, torch_loss, hand_loss, fused = _loss_pair(stack, device)
    gen = torch.Generator().manual_seed(2)
    x = _randn(gen, 9, 5, device=device)
    y = torch.randint(0, 4, (9,), generator=gen).to(device)
    y[::4] = 2                                               # some rows on the ignore_index case's class
    loss = hand.loss(x, y, hand_loss)
    ran = "LinearChainCrossEntropyBackward" in _functions_run(loss)
    assert ran == fused, f"{stack}: the fused Function {'did not run' if fused else 'ran'}"
    loss.backward()
    expected = torch_loss(builtin(x.detach()), y)
    expected.backward()
    pairs = [("loss", loss, expected)] + [(f"d{n}", p.grad, q.grad) for (n, p), q in
                                          zip(hand.named_parameters(), builtin.parameters())]
    _check_close(pairs, torch.float64, f"Sequential({stack}).loss")


@pytest.mark.parametrize("where", ["loss", "sequential", "last linear"])
def test_sequential_loss_with_hooks_runs_apart_and_calls_them(where):
    builtin, hand, torch_loss, hand_loss, _ = _loss_pair("Linear, Sigmoid, Linear, Sigmoid, Linear", "cpu")
    seen = []
    module = {"loss": hand_loss, "sequential": hand, "last linear": hand[4]}[where]
    module.register_forward_hook(lambda m, inputs, output: seen.append(m))
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.randint(0, 4, (6,))
    loss = hand.loss(x, y, hand_loss)
    assert seen == [module], f"a forward hook on the {where} was not called once"
    assert "LinearChainCrossEntropyBackward" not in _functions_run(loss)
    torch.testing.assert_close(loss, torch_loss(builtin(x), y))


def test_sequential_loss_with_another_loss_is_that_loss_of_the_output():
    _, hand, _, _, _ = _loss_pair("Linear, Sigmoid, Linear, Sigmoid, Linear", "cpu")
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(hand.loss(x, y, handgrad.nn.MSELoss()), torch.nn.functional.mse_loss(hand(x), y))


def test_sequential_loss_follows_modules_and_hooks_changed_after_a_call():
    """Sequential.loss works out its top stack once per arrangement of modules: a hook added after a
    fused call, a layer replaced or appended, must each be seen on the next call."""
    builtin, hand, torch_loss, hand_loss, _ = _loss_pair("Linear, Sigmoid, Linear, Sigmoid, Linear", "cpu")
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.randint(0, 4, (6,))

    def fused():
        loss = hand.loss(x, y, hand_loss)
        torch.testing.assert_close(loss, torch_loss(builtin(x), y))
        return "LinearChainCrossEntropyBackward" in _functions_run(loss)

    assert fused()
    seen = []
    handle = hand[2].register_forward_hook(lambda m, inputs, output: seen.append(m))
    assert not fused() and seen == [hand[2]], "a hook added after a fused call was skipped"
    handle.remove()
    assert fused()
    for model in (builtin, hand):                            # a new last layer, 4 → 3 classes
        model[4] = type(model[4])(6, 3).double()
    hand[4].load_state_dict(builtin[4].state_dict())
    y = y % 3
    assert fused()
    for model in (builtin, hand):                            # a module appended: logits end in a Sigmoid
        model.append(type(model[3])())
    assert not fused()

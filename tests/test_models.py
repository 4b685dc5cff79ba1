"""The seed's three networks built from handgrad and from torch.nn layers, against each other and
against the NumPy reference of the seed's math: names, initialisation, gradients and training."""

import math

import numpy as np
import pytest
import torch

import handgrad.nn
from handgrad import reference, testing
from handgrad.training import models
from tests.test_nn import _functions_run

NETWORKS = ("quickstart", "basic", "better")
IMPLS = ("hand", "torch")
HAND_CLASSES = {getattr(handgrad.nn, name) for name in ("Linear", "Sigmoid", "ReLU", "Dropout")}
TORCH_CLASSES = {torch.nn.Linear, torch.nn.Sigmoid, torch.nn.ReLU, torch.nn.Dropout}
F64 = testing.TOLERANCES[torch.float64]

# The seed's module and state-dict names (the quickstart's from the PyTorch tutorial).
STATE_DICT_KEYS = {
    "quickstart": [f"linear_relu_stack.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")],
    "basic": [f"layers.{i}.weight" for i in (0, 1, 2)],
    "better": [f"layers.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")],
}
LAYER_TYPES = {  # the Sequential's children, by torch.nn class name
    "quickstart": ["Linear", "ReLU", "Linear", "ReLU", "Linear"],
    "basic": ["Linear", "Linear", "Linear"],
    "better": ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"],
}
STACK = {"quickstart": "linear_relu_stack", "basic": "layers", "better": "layers"}


def _build(network, impl, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return models.build(network, impl, dropout)


def _linears(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def _check(name, actual, expected, tolerance=F64):
    d = testing.difference(name, torch.as_tensor(actual), torch.as_tensor(expected), tolerance)
    assert d.ok, str(d)


def _batch(seed, n):
    """Images in [0, 1) shaped as FashionMNIST's (N, 1, 28, 28), float64, and labels in [0, 10)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=gen, dtype=torch.float64), torch.randint(0, 10, (n,), generator=gen)


# -- structure and names ---------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("network", NETWORKS)
def test_network_module_names_are_the_seeds(network, impl):
    model = _build(network, impl)
    children = [name for name, _ in model.named_children()]
    assert children == ["flatten", STACK[network]], f"{network}: children {children}"
    assert type(model.flatten) is torch.nn.Flatten, f"{network}.flatten is {type(model.flatten)}"
    keys = list(model.state_dict())
    assert keys == STATE_DICT_KEYS[network], f"{network} state_dict keys {keys}"
    stack = getattr(model, STACK[network])
    layer_types = [next(c.__name__ for c in type(m).__mro__ if c.__module__.startswith("torch.nn")) for m in stack]
    assert layer_types == LAYER_TYPES[network], f"{network} layers {layer_types}"
    shapes = [tuple(layer.weight.shape) for layer in _linears(model)]
    assert shapes == [(512, 784), (512, 512), (10, 512)], f"{network} weight shapes {shapes}"


def test_basic_network_has_no_biases():
    for impl in IMPLS:
        biases = [layer.bias for layer in _linears(_build("basic", impl))]
        assert biases == [None, None, None], f"basic ({impl}) has biases"


@pytest.mark.parametrize("network", NETWORKS)
def test_network_impl_classes(network):
    hand, builtin = _build(network, "hand"), _build(network, "torch")
    for name, module in hand.named_modules():
        if isinstance(module, tuple(TORCH_CLASSES)):
            assert type(module) in HAND_CLASSES, f"{network} hand: {name} is {type(module)}"
    for name, module in builtin.named_modules():
        if isinstance(module, tuple(TORCH_CLASSES)):
            assert type(module) in TORCH_CLASSES, f"{network} torch: {name} is {type(module)}"
    n_layers = len(LAYER_TYPES[network])
    assert sum(type(m) in HAND_CLASSES for m in hand.modules()) == n_layers, f"{network}: hand layers missing"


@pytest.mark.parametrize("network", NETWORKS)
def test_network_same_seed_same_state_dict_across_impls(network):
    for seed in (0, 3):
        hand, builtin = _build(network, "hand", seed), _build(network, "torch", seed)
        hand_state, torch_state = hand.state_dict(), builtin.state_dict()
        assert list(hand_state) == list(torch_state), f"{network}: keys differ"
        for key in torch_state:
            assert torch.equal(hand_state[key], torch_state[key]), f"{network} seed {seed}: {key} differs"


@pytest.mark.parametrize("direction", [("torch", "hand"), ("hand", "torch")], ids=["torch_to_hand", "hand_to_torch"])
@pytest.mark.parametrize("network", NETWORKS)
def test_network_state_dict_loads_across_impls(network, direction):
    source_impl, target_impl = direction
    source, target = _build(network, source_impl, seed=0).double(), _build(network, target_impl, seed=1).double()
    with torch.no_grad():                                    # nonzero biases, so that loading them is visible
        for layer in _linears(source):
            if layer.bias is not None:
                layer.bias.normal_(0.0, 0.1)
    result = target.load_state_dict(source.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys, f"{network}: {result}"
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), f"{network}: {key} not loaded {direction}"
    x, _ = _batch(0, 4)
    _check(f"{network} logits after loading {source_impl} -> {target_impl}", target(x), source(x))


# -- initialisation --------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("network", ["basic", "better"])
def test_network_init_is_normal_with_variance_one_over_fan_in(network, impl):
    for seed in (0, 1):
        for i, layer in enumerate(_linears(_build(network, impl, seed)), start=1):
            w = layer.weight.detach().double()
            n, fan_in = w.numel(), layer.in_features
            sigma = math.sqrt(1.0 / fan_in)
            # For n iid N(0, σ²) samples the sample std has standard error ≈ σ / √(2n) and the mean
            # σ / √n; 5 standard errors (smallest n = 5120 for W³: 7 % of σ) fail a wrong init,
            # e.g. PyTorch's default U(±σ) whose std is σ / √3, but not a right one.
            std_tol, mean_tol = 5 * sigma / math.sqrt(2 * n), 5 * sigma / math.sqrt(n)
            assert abs(w.std().item() - sigma) < std_tol, (
                f"{network} W{i} (seed {seed}): std {w.std().item():.5f}, expected {sigma:.5f} ± {std_tol:.5f}"
            )
            assert abs(w.mean().item()) < mean_tol, (
                f"{network} W{i}: mean {w.mean().item():.2e}, expected 0 ± {mean_tol:.2e}"
            )
            # Normal, not uniform: a normal's excess kurtosis is 0, a uniform's −1.2 (s.e. ≈ √(24 / n)).
            kurtosis = (((w - w.mean()) / w.std()) ** 4).mean().item() - 3
            assert abs(kurtosis) < 5 * math.sqrt(24 / n), f"{network} W{i}: excess kurtosis {kurtosis:.3f}, expected 0"
            if layer.bias is not None:
                assert torch.equal(layer.bias, torch.zeros_like(layer.bias)), f"{network} b{i} is not zero"


@pytest.mark.parametrize("impl", IMPLS)
def test_quickstart_init_is_pytorch_default(impl):
    """The quickstart keeps PyTorch's default U(−√k, √k), k = 1/fan_in, for weights and biases."""
    for i, layer in enumerate(_linears(_build("quickstart", impl)), start=1):
        bound = math.sqrt(1.0 / layer.in_features)
        for name, p in (("W", layer.weight), ("b", layer.bias)):
            assert p.abs().max().item() <= bound, f"quickstart {name}{i} exceeds the default bound {bound:.4f}"
        # With n ≥ 5120 uniform draws, P(max |W| < 0.9 bound) = 0.9ⁿ: a narrower init fails, the default cannot.
        assert layer.weight.abs().max().item() > 0.9 * bound, f"quickstart W{i} does not fill U(±{bound:.4f})"


# -- gradients: NumPy reference = handgrad = torch autograd ----------------------------------------


def _torch_grads(model, x, y):
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)    # the mean over the batch, as the reference
    loss.backward()
    return loss, _linears(model)


@pytest.mark.parametrize("network", NETWORKS)
def test_network_gradients_match_numpy_reference_and_torch(network):
    hand = _build(network, "hand", seed=0).double()
    with torch.no_grad():                                    # nonzero biases, so the forward uses them
        for layer in _linears(hand):
            if layer.bias is not None:
                layer.bias.normal_(0.0, 0.1)
    builtin = models.build(network, "torch").double()
    builtin.load_state_dict(hand.state_dict())
    x, y = _batch(1, 16)

    params = models.seed_parameters(hand)
    expected_names = [f"{p}{i}" for i in (1, 2, 3) for p in ("W", "b") if p == "W" or network != "basic"]
    assert sorted(params) == sorted(expected_names), f"{network}: seed_parameters gave {sorted(params)}"
    np_loss, np_grads = reference.loss_and_grads(params, x.reshape(len(x), -1).numpy(), y.numpy(), network)
    assert sorted(np_grads) == sorted(params), f"{network}: reference grads for {sorted(np_grads)}"

    for impl, model in (("hand", hand), ("torch", builtin)):
        loss, linears = _torch_grads(model, x, y)
        _check(f"{network} {impl} loss", loss, np_loss)
        for i, layer in enumerate(linears, start=1):
            module = {m: n for n, m in model.named_modules()}[layer]
            _check(f"{network} {impl} dW{i} ({module}.weight.grad.T)", layer.weight.grad.T, np_grads[f"W{i}"])
            if layer.bias is not None:
                db = layer.bias.grad.reshape(1, -1)
                _check(f"{network} {impl} db{i} ({module}.bias.grad)", db, np_grads[f"b{i}"])
    for (name, p_hand), p_torch in zip(hand.named_parameters(), builtin.parameters()):
        _check(f"{network} {name}.grad hand vs torch", p_hand.grad, p_torch.grad)


def test_seed_parameters_are_copies_in_seed_layout():
    model = _build("better", "hand")
    params = models.seed_parameters(model)
    for i, layer in enumerate(_linears(model), start=1):
        W, b = params[f"W{i}"], params[f"b{i}"]
        assert W.shape == (layer.in_features, layer.out_features), f"W{i} shape {W.shape}"
        assert b.shape == (1, layer.out_features), f"b{i} shape {b.shape}"
        assert W.dtype == b.dtype == np.float64, f"W{i}, b{i} dtypes {W.dtype}, {b.dtype}"
        np.testing.assert_array_equal(W, layer.weight.detach().double().numpy().T, err_msg=f"W{i} is not weight.T")
        W += 1.0                                             # the reference trains in place: not the model
        assert not torch.equal(layer.weight.T.double(), torch.from_numpy(W)), f"W{i} shares memory with weight"


# -- training: the seed's per-sample loop = SGD with batch 1 ---------------------------------------


@pytest.mark.parametrize("network", NETWORKS)
def test_network_sgd_batch_one_matches_seed_training_loop(network):
    n_samples, lr = 20, 0.02
    model = _build(network, "hand", seed=0).double()
    params = models.seed_parameters(model)
    images, labels = _batch(2, n_samples)

    reference.train_per_sample(params, images.reshape(n_samples, -1).numpy(), labels.numpy(), network, lr)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    initial = [p.detach().clone() for p in model.parameters()]
    for image, label in zip(images, labels):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(image[None]), label[None]).backward()
        optimizer.step()

    assert any(not torch.equal(p, p0) for p, p0 in zip(model.parameters(), initial)), f"{network}: nothing trained"
    for i, layer in enumerate(_linears(model), start=1):
        _check(f"{network} W{i} after {n_samples} steps", layer.weight.T, params[f"W{i}"])
        if layer.bias is not None:
            _check(f"{network} b{i} after {n_samples} steps", layer.bias.reshape(1, -1), params[f"b{i}"])


# -- build -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"network": "resnet"}, "network must be one of"),
        ({"network": "Basic"}, "network must be one of"),
        ({"network": "basic", "impl": "numpy"}, "impl must be one of"),
        ({"network": "better", "impl": "Hand"}, "impl must be one of"),
        ({"network": "better", "dropout": -0.1}, "dropout must be in"),
        ({"network": "quickstart", "dropout": 1.0}, "dropout must be in"),
        ({"network": "quickstart", "dropout": 1.5}, "dropout must be in"),
        ({"network": "quickstart", "dropout": float("nan")}, "dropout must be in"),
        ({"network": "basic", "dropout": 0.5}, "basic network has no hidden activations"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_build_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build(**kwargs)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("network", ["quickstart", "better"])
def test_build_dropout_inserts_dropout_after_each_activation(network, impl):
    model = _build(network, impl, dropout=0.3)
    stack = getattr(model, STACK[network])
    nn = handgrad.nn if impl == "hand" else torch.nn
    activation = LAYER_TYPES[network][1]
    expected = ["Linear", activation, "Dropout", "Linear", activation, "Dropout", "Linear"]
    classes = [type(m) for m in stack]
    assert classes == [getattr(nn, name) for name in expected], f"{network} ({impl}) layers {classes}"
    assert all(m.p == 0.3 for m in stack if isinstance(m, torch.nn.Dropout)), f"{network}: dropout p is not 0.3"
    # The dropout layers hold no state: the same seed gives the same weights as without dropout.
    plain = _build(network, impl, dropout=0.0)
    for (key, value), plain_value in zip(model.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(value, plain_value), f"{network}: {key} differs from the dropout-free network's"
    model.eval()
    x, _ = _batch(0, 3)
    _check(f"{network} eval logits with dropout", model.double()(x), plain.double()(x))


@pytest.mark.parametrize("network", NETWORKS)
def test_build_dropout_zero_keeps_seed_names(network):
    for impl in IMPLS:
        model = models.build(network, impl, dropout=0.0)
        assert list(model.state_dict()) == STATE_DICT_KEYS[network], f"{network} ({impl}) keys changed"
        assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules()), f"{network} ({impl}) has Dropout"


# -- the CNN past the seed ---------------------------------------------------------------------------


def test_cnn_hand_runs_every_layer_hand_derived():
    report = handgrad.nn.coverage(_build("cnn", "hand", dropout=0.3))
    assert report.complete, str(report)
    classes = {type(m).__name__ for m in _build("cnn", "hand", dropout=0.3).modules()}
    assert {"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Linear", "Dropout"} <= classes
    builtin = _build("cnn", "torch", dropout=0.3)
    assert not any(type(m).__module__.startswith("handgrad") for m in list(builtin.modules())[1:])
    assert not handgrad.nn.coverage(builtin).complete


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_cnn_hand_equals_torch_outputs_gradients_and_running_statistics(train):
    hand, builtin = _build("cnn", "hand", seed=3).double(), _build("cnn", "torch", seed=3).double()
    assert list(hand.state_dict()) == list(builtin.state_dict())
    for key, value in hand.state_dict().items():
        assert torch.equal(value, builtin.state_dict()[key]), f"cnn: {key} differs under the same seed"
    x, y = _batch(4, 12)
    x = (x - 0.3) / 0.35
    for step in range(2):                                    # twice: the running statistics carry over
        losses = []
        for model in (hand, builtin):
            model.train(train)
            model.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            losses.append(loss)
        _check(f"cnn loss, step {step}", losses[0], losses[1])
        for (name, p_hand), p_torch in zip(hand.named_parameters(), builtin.parameters()):
            _check(f"cnn {name}.grad, step {step}", p_hand.grad, p_torch.grad)
        for (name, b_hand), b_torch in zip(hand.named_buffers(), builtin.buffers()):
            _check(f"cnn buffer {name}, step {step}", b_hand, b_torch)


def test_cnn_refuses_flattened_images_in_one_sentence():
    with pytest.raises(ValueError, match=r"cnn network takes images of shape \(N, 1, 28, 28\), got \(4, 784\)"):
        _build("cnn", "hand")(torch.rand(4, 784))


def test_cnn_learns_a_small_batch():
    torch.manual_seed(0)
    model = models.build("cnn", "hand", dropout=0.0)
    x, y = _batch(5, 32)
    x = x.float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss = handgrad.nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.1 * first, f"cnn did not fit 32 images: loss {first:.3f} -> {loss.item():.3f}"


# -- the vision transformer past the CNN --------------------------------------------------------------


def test_vit_hand_equals_torch_with_only_hand_derived_nodes_in_its_graph():
    """Same weights under the same seed; loss and every gradient equal torch.nn's in float64; the
    hand model's autograd graph holds handgrad Functions and movement only (patches, class token,
    positions, attention, MLP, residuals, norms)."""
    from tests.test_transformer import _computing_builtin_nodes

    hand, builtin = _build("vit", "hand", seed=3).double(), _build("vit", "torch", seed=3).double()
    assert list(hand.state_dict()) == list(builtin.state_dict())
    for key, value in hand.state_dict().items():
        assert torch.equal(value, builtin.state_dict()[key]), f"vit: {key} differs under the same seed"
    x, y = _batch(4, 6)
    losses = []
    for model, loss_fn in ((hand, handgrad.nn.CrossEntropyLoss()), (builtin, torch.nn.CrossEntropyLoss())):
        loss = loss_fn(model(x), y)
        loss.backward()
        losses.append(loss)
    _check("vit loss", losses[0], losses[1])
    for (name, p_hand), p_torch in zip(hand.named_parameters(), builtin.parameters()):
        _check(f"vit {name}.grad", p_hand.grad, p_torch.grad)
    assert _computing_builtin_nodes([losses[0]]) == [], "the hand vit computes with built-in nodes"
    assert _computing_builtin_nodes([losses[1]]), "the torch vit must run the built-ins"
    report = handgrad.nn.coverage(hand)                   # modules: every layer, the network's own forward aside
    assert [e.path for e in report.of("built-in")] == ["(model)"], str(report)


def test_vit_refuses_flattened_images_in_one_sentence():
    with pytest.raises(ValueError, match=r"vit network takes images of shape \(N, 1, 28, 28\), got \(4, 784\)"):
        _build("vit", "hand")(torch.rand(4, 784))


def test_vit_learns_a_small_batch():
    torch.manual_seed(0)
    model = models.build("vit", "hand")
    x, y = _batch(5, 32)
    x = x.float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = model.loss(x, y, handgrad.nn.CrossEntropyLoss())
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.1 * first, f"vit did not fit 32 images: loss {first:.3f} -> {loss.item():.3f}"


@pytest.mark.parametrize("network,dropout", [(n, 0.0) for n in NETWORKS] + [("quickstart", 0.3), ("cnn", 0.3), ("vit", 0.0)])
def test_network_loss_fuses_the_top_and_the_loss_and_equals_torch(network, dropout):
    """``model.loss`` (what train.py's training step calls): with handgrad layers and loss, the top
    stack and the cross-entropy run as one Function; loss and every gradient equal torch.nn's."""
    torch.manual_seed(0)
    hand = models.build(network, "hand", dropout).double()
    builtin = models.build(network, "torch", dropout).double()
    builtin.load_state_dict(hand.state_dict())
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(8, 1, 28, 28, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), generator=gen)
    losses = []
    for model, loss_fn in ((hand, handgrad.nn.CrossEntropyLoss(label_smoothing=0.1)),
                           (builtin, torch.nn.CrossEntropyLoss(label_smoothing=0.1))):
        torch.manual_seed(1)                                  # the same dropout masks
        losses.append(model.loss(x, y, loss_fn))
        losses[-1].backward()
    assert "LinearChainCrossEntropyBackward" in _functions_run(losses[0])
    pairs = [("loss", losses[0], losses[1])] + [(f"d{n}", p.grad, q.grad) for (n, p), q in
                                                zip(hand.named_parameters(), builtin.parameters())]
    bad = [str(d) for d in (testing.difference(n, a, e, F64) for n, a, e in pairs) if not d.ok]
    assert not bad, "; ".join(bad)


def test_network_loss_with_a_hook_on_the_network_calls_it():
    model = models.build("better", "hand").double()
    seen = []
    model.register_forward_hook(lambda m, inputs, output: seen.append(output))
    x, y = torch.rand(4, 1, 28, 28, dtype=torch.float64), torch.randint(0, 10, (4,))
    loss = model.loss(x, y, handgrad.nn.CrossEntropyLoss())
    assert len(seen) == 1, "the network's forward hook was skipped"
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(seen[0], y))

"""Every gradient hand-derived: calls written in any module run handgrad's rules (``hand_derived``),
proved by ``audit`` from the autograd graph on every torchvision classification model, and equal to
the built-in model's loss and gradients in float64 on a representative of each family."""

import copy
import math

import pytest
import torch
import torch.nn.functional as torch_F
import torchvision
from torchvision.models import convnext, maxvit, regnet, resnet, swin_transformer, vgg

import handgrad
import handgrad.nn
from handgrad import testing
from handgrad.nn import audit
from tests.test_transformer import _compare

F64 = testing.TOLERANCES[torch.float64]
MODELS = torchvision.models.list_models(module=torchvision.models)


def _input_size(name):
    if name.startswith(("vit", "maxvit", "swin")):
        return 224                                   # fixed by the model (vit, maxvit) or its windows
    return 75 if name == "inception_v3" else 64


@pytest.fixture
def on_meta(monkeypatch):
    """Models built on the meta device (shapes, no values: the 600M-parameter ones cost nothing);
    regnet computes its block widths from tensor values, so those few lines run on the CPU."""
    build = regnet.BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return build(cls, *args, **kwargs)

    monkeypatch.setattr(regnet.BlockParams, "from_init_params", classmethod(on_cpu))
    with torch.device("meta"):
        yield


def test_every_torchvision_classification_model_is_audited():
    assert len(MODELS) >= 80, MODELS


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_converted_has_every_gradient_hand_derived(name, on_meta):
    options = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    model = handgrad.nn.convert(torchvision.models.get_model(name, num_classes=10, **options))
    size = _input_size(name)
    report = audit(model(torch.randn(2, 3, size, size)))
    assert report.complete, f"{name}: {report}"


def _small_classifier(features):
    """VGG's and AlexNet's classifier, narrower: the same layers (dropout, linear, ReLU)."""
    return torch.nn.Sequential(torch.nn.Dropout(), torch.nn.Linear(features, 16), torch.nn.ReLU(True), torch.nn.Dropout(),
                               torch.nn.Linear(16, 16), torch.nn.ReLU(True), torch.nn.Linear(16, 10))


def _alexnet():
    model = torchvision.models.alexnet(num_classes=10)
    model.classifier = _small_classifier(256 * 6 * 6)
    return model, 96


def _vgg():
    model = vgg.VGG(vgg.make_layers([8, "M", 512, "M"], batch_norm=True), num_classes=10)
    model.classifier = _small_classifier(512 * 7 * 7)
    return model, 64


def _swin(block, downsample):
    return swin_transformer.SwinTransformer([2, 2], 8, [2, 1], [2, 2], [2, 2], stochastic_depth_prob=0.2,
                                            num_classes=10, block=block, downsample_layer=downsample), 32


# A small member of each family of torchvision's classification models, with the family's own
# blocks: (model, image size), the images large enough that no batch norm sees fewer than 16 values
# (over fewer, its gradients are cancellation noise), at batch 8. The vision transformer is in test_transformer.py.
FAMILIES = {
    "alexnet": _alexnet,
    "vgg": _vgg,
    "resnet (basic blocks)": lambda: (torchvision.models.resnet18(num_classes=10), 64),
    "resnext / wide resnet (bottlenecks, groups)": lambda: (resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], groups=4,
                                                                          width_per_group=8, num_classes=10), 64),
    "densenet": lambda: (torchvision.models.DenseNet(8, (2, 2), 16, 2, num_classes=10), 64),
    "convnext": lambda: (convnext.ConvNeXt([convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)],
                                           stochastic_depth_prob=0.2, num_classes=10), 64),
    "efficientnet v2": lambda: (torchvision.models.efficientnet_v2_s(num_classes=10, stochastic_depth_prob=0.2), 64),
    "googlenet": lambda: (torchvision.models.googlenet(num_classes=10, aux_logits=False, init_weights=False), 64),
    "inception": lambda: (torchvision.models.inception_v3(num_classes=10, aux_logits=False, init_weights=False), 107),
    "mnasnet": lambda: (torchvision.models.mnasnet0_5(num_classes=10), 64),
    "mobilenet v2": lambda: (torchvision.models.mobilenet_v2(num_classes=10), 64),
    "mobilenet v3": lambda: (torchvision.models.mobilenet_v3_small(num_classes=10), 64),
    "regnet x": lambda: (torchvision.models.regnet_x_400mf(num_classes=10), 64),
    "regnet y (squeeze-excitation)": lambda: (torchvision.models.regnet_y_400mf(num_classes=10), 64),
    "shufflenet": lambda: (torchvision.models.shufflenet_v2_x0_5(num_classes=10), 64),
    "squeezenet": lambda: (torchvision.models.squeezenet1_1(num_classes=10), 48),
    "swin": lambda: _swin(swin_transformer.SwinTransformerBlock, swin_transformer.PatchMerging),
    "swin v2": lambda: _swin(swin_transformer.SwinTransformerBlockV2, swin_transformer.PatchMergingV2),
    "maxvit": lambda: (maxvit.MaxVit((32, 32), 8, 2, [8, 16], [1, 1], 4, 0.2, num_classes=10), 32),
}


# mobilenet v3 in training mode is ill-conditioned in float64: gradients that cancel to nearly 0
# through its batch norms come out as rounding noise (1e-6 relative), from handgrad's modules with or
# without the interception alike, so it is compared in eval mode, its batch norms affine.
EVAL = {"mobilenet v3"}


@pytest.mark.parametrize("family", FAMILIES)
def test_torchvision_family_converted_equals_builtin_in_float64(family):
    """Training mode (batch statistics, dropout and stochastic depth drawn from the same seed)."""
    torch.manual_seed(0)
    model, size = FAMILIES[family]()
    model = model.double().train(family not in EVAL)
    hand, computing = _compare(model, [torch.randn(8, 3, size, size, dtype=torch.float64)])
    assert computing == [], f"{family}: built-in computing nodes {computing}"


class GPT(torch.nn.Module):
    """A GPT-2 decoder in nanoGPT's layout: token and position embeddings, pre-norm blocks of causal
    self-attention (written out: q kᵀ / √d, the mask, softmax) and a GELU MLP, a final layer norm,
    and a head tied to the token embedding; the loss is computed in forward, as nanoGPT does."""

    def __init__(self, vocab=11, block=8, width=16, heads=2, layers=2):
        super().__init__()
        self.heads = heads
        self.wte, self.wpe = torch.nn.Embedding(vocab, width), torch.nn.Embedding(block, width)
        self.blocks = torch.nn.ModuleList(torch.nn.ModuleDict({
            "ln_1": torch.nn.LayerNorm(width), "c_attn": torch.nn.Linear(width, 3 * width),
            "c_proj": torch.nn.Linear(width, width), "ln_2": torch.nn.LayerNorm(width),
            "mlp": torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(),
                                       torch.nn.Linear(4 * width, width), torch.nn.Dropout(0.1)),
        }) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(width)
        self.lm_head = torch.nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        self.register_buffer("causal", torch.tril(torch.ones(block, block, dtype=torch.bool)))

    def attention(self, block, x):
        B, T, C = x.shape
        q, k, v = block["c_attn"](x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(~self.causal[:T, :T], float("-inf"))
        y = torch_F.softmax(att, dim=-1) @ v
        return block["c_proj"](y.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = x + self.attention(block, block["ln_1"](x))
            x = x + block["mlp"](block["ln_2"](x))
        logits = self.lm_head(self.ln_f(x))
        return torch_F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def test_gpt2_decoder_in_nanogpts_layout_converted_equals_builtin_in_float64():
    torch.manual_seed(0)
    model = GPT().double().train()
    idx, targets = torch.randint(0, 11, (3, 8)), torch.randint(0, 11, (3, 8))
    hand = handgrad.nn.convert(copy.deepcopy(model))
    losses = []
    for m in (model, hand):
        torch.manual_seed(1)
        loss = m(idx, targets)
        loss.backward()
        losses.append(loss)
    assert audit(losses[1]).complete, str(audit(losses[1]))
    assert testing.difference("loss", losses[1], losses[0], F64).ok
    for (name, p), q in zip(model.named_parameters(), hand.parameters()):
        d = testing.difference(f"d{name}", q.grad, p.grad, F64)
        assert d.ok, str(d)


def _expression(x, w, b, mask):
    """The tensor algebra, as a user writes it: operators, methods, torch.* and F.*."""
    h = (x @ w + b).relu() * 2 - x.mean(-1, keepdim=True) / (1 + x.pow(2).sum(-1, keepdim=True)).sqrt()
    h = torch.where(mask, h, h.exp().clamp(max=3.0)).masked_fill(~mask, 0.5) + torch.maximum(h, -h.abs())
    h = torch.einsum("ij,jk->ik", torch_F.normalize(h, dim=-1), w.T) + h.amax(-1, keepdim=True).lgamma().neg()
    return torch.softmax(h, dim=-1).rsqrt().sum() + torch.tanh(h).sigmoid().mean()


def test_hand_derived_runs_the_tensor_algebra_written_anywhere_by_hand():
    gen = torch.Generator().manual_seed(0)
    x, w, b = (testing.randn(gen, *s) for s in ((4, 5), (5, 5), (5,)))
    mask = torch.rand(4, 5, generator=gen) > 0.3
    want = _expression(x, w, b, mask)
    want_grads = torch.autograd.grad(want, (x, w, b))
    with handgrad.hand_derived():
        got = _expression(x, w, b, mask)
    report = audit(got)
    assert set(report.builtin) == {"LgammaBackward0"}, str(report)    # lgamma: no rule, so it stays built-in
    assert report.hand["Matmul"] == 1 and report.hand["Einsum"] == 1, str(report)
    for name, g, e in zip(("x", "W", "b"), torch.autograd.grad(got, (x, w, b)), want_grads):
        d = testing.difference(f"dL/d{name}", g, e, F64)
        assert d.ok, str(d)


def test_hand_derived_strict_names_the_op_without_a_rule():
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"torch\.lgamma would run PyTorch's built-in backward \(LgammaBackward0\)"):
        with handgrad.hand_derived(strict=True):
            torch.lgamma(x)


def test_convert_strict_forward_raises_on_a_builtin_computing_call():
    class LogGamma(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.linear(x).lgamma()

    model = handgrad.nn.convert(LogGamma(), strict=True)
    with pytest.raises(RuntimeError, match=r"torch\.Tensor\.lgamma would run PyTorch's built-in backward"):
        model(torch.randn(2, 3))


def test_in_place_add_writes_the_input_with_torchs_values_and_gradients():
    results = []
    for intercept in (False, True):
        a, b = (torch.arange(6.0, dtype=torch.float64).reshape(2, 3).requires_grad_() for _ in range(2))
        with handgrad.hand_derived() if intercept else torch.enable_grad():
            z = a * 1.5
            storage = z.data_ptr()
            z += b
            z *= b
        assert z.data_ptr() == storage, "z += b did not write into z"
        z.sum().backward()
        results.append((z.detach(), a.grad, b.grad, audit(z)))
    (z0, da0, db0, _), (z1, da1, db1, report) = results
    assert report.complete and {"AddInPlace", "MulInPlace"} <= set(report.hand), str(report)
    for name, got, want in (("z", z1, z0), ("dL/da", da1, da0), ("dL/db", db1, db0)):
        assert torch.equal(got, want), name


def test_in_place_on_a_leaf_that_requires_grad_raises_as_torch():
    leaf = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        with handgrad.hand_derived():
            leaf += 1


def test_audit_of_an_unconverted_model_names_its_builtin_nodes():
    model = torchvision.models.resnet18(num_classes=10)
    report = audit(model(torch.randn(2, 3, 32, 32)))
    assert not report.complete and report.builtin["AddBackward0"] == 8 and report.builtin["ConvolutionBackward0"] == 20
    assert "NOT every gradient hand-derived" in str(report) and "AddBackward0 8" in str(report)
    assert report.as_dict()["builtin"]["AddBackward0"] == 8


def test_audit_refuses_a_tensor_without_a_graph():
    with pytest.raises(ValueError, match="audit: no output has an autograd graph"):
        audit(torch.ones(3))
    with pytest.raises(TypeError, match="audit: expected tensors"):
        audit([1.0])


class _Residual(torch.nn.Module):
    """resnet's and mobilenet v3's patterns: in-place activations, ``out += identity``, a layer scale."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(True)
        self.conv2, self.act = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Hardswish(inplace=True)
        self.scale = torch.nn.Parameter(torch.full((8, 1, 1), 0.5))
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        identity = out = self.relu(self.bn1(self.conv1(x)))
        out = self.act(self.conv2(out)) * self.scale
        out += identity
        return self.head(torch_F.relu(out, inplace=True).mean((2, 3)))


def test_converted_model_compiles_to_the_builtins_result():
    """torch.compile of a converted model's training step, its calls intercepted while Dynamo traces."""
    torch.manual_seed(0)
    model = _Residual()
    hand = handgrad.nn.convert(copy.deepcopy(model))
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([1, 7])
    report = audit(hand(x))
    assert report.complete and {"AddInPlace", "Mul", "ReLU", "Hardswish"} <= set(report.hand), str(report)
    compiled = torch.compile(hand)
    losses = []
    for m in (model, compiled):
        logits = m(x)
        loss = torch_F.cross_entropy(logits, y)
        loss.backward()
        losses.append(loss)
    assert type(logits.grad_fn).__name__ == "CompiledFunctionBackward"
    tolerance = testing.TOLERANCES[torch.float32]
    assert testing.difference("loss", losses[1], losses[0], tolerance).ok
    for (name, p), q in zip(model.named_parameters(), hand.parameters()):
        d = testing.difference(f"d{name}", q.grad, p.grad, tolerance)
        assert d.ok, str(d)


def test_converted_model_under_torch_func_grad_equals_builtin():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).double().eval()
    hand = handgrad.nn.convert(copy.deepcopy(model))
    x, y = torch.randn(2, 3, 32, 32, dtype=torch.float64), torch.tensor([1, 3])

    def loss(m):
        return lambda params: torch_F.cross_entropy(torch.func.functional_call(m, params, (x,)), y)

    want = torch.func.grad(loss(model))(dict(model.named_parameters()))
    got = torch.func.grad(loss(hand))(dict(hand.named_parameters()))
    for name, g in want.items():
        d = testing.difference(f"d{name}", got[name], g, F64)
        assert d.ok, str(d)


def test_converted_model_under_autocast_computes_in_the_builtins_dtypes():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    hand = handgrad.nn.convert(copy.deepcopy(model))
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = model(x), hand(x)
    assert got.dtype == want.dtype == torch.bfloat16
    assert audit(got).complete, str(audit(got))
    assert testing.difference("logits", got.float(), want.float(), testing.TOLERANCES[torch.bfloat16]).ok


def test_converted_model_under_ddp_equals_builtin(tmp_path):
    """DistributedDataParallel (one process, gloo) around a converted model: its forward, intercepted
    inside DDP's, gives the built-in model's gradients, all-reduced."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = _Residual().double()
        hand = torch.nn.parallel.DistributedDataParallel(handgrad.nn.convert(copy.deepcopy(model)))
        x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([1, 7, 0, 3])
        logits = hand(x)
        assert audit(logits).complete, str(audit(logits))
        torch_F.cross_entropy(logits, y).backward()
        torch_F.cross_entropy(model(x), y).backward()
        for (name, p), q in zip(model.named_parameters(), hand.module.parameters()):
            d = testing.difference(f"d{name}", q.grad, p.grad, F64)
            assert d.ok, str(d)
    finally:
        dist.destroy_process_group()


def test_converted_model_trains_in_lightnings_loop(tmp_path):
    """Lightning's fit loop (automatic optimisation, its closure and hooks) around a converted model:
    every training step's loss is hand-derived, and the loss falls."""
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net, self.losses = handgrad.nn.convert(_Residual()), []

        def training_step(self, batch, batch_idx):
            x, y = batch
            with handgrad.hand_derived():
                loss = torch_F.cross_entropy(self.net(x), y)
            assert audit(loss).complete, str(audit(loss))
            self.losses.append(loss.item())
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    module = Module()
    L.Trainer(max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(module, data)
    assert len(module.losses) == 6 and module.losses[-1] < module.losses[0], module.losses

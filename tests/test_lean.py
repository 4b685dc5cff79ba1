"""``memory="lean"``: the outputs of elementwise ops, norms and the copies between layers made again in
backward instead of kept twice. On models nobody here wrote (a GPT in nanoGPT's layout, Hugging Face's
GPT-2 and Llama, torchvision's ViT) the values and gradients are exactly those of the plain conversion,
fewer bytes are kept, and double backward, torch.func, torch.compile, DDP and FSDP still work."""

import copy

import pytest
import torch
import torch.nn.functional as torch_F

import handgrad
import handgrad.nn
from handgrad import _lean
from handgrad.nn import audit
from handgrad.testing.memory import Kept


class NanoGPT(torch.nn.Module):
    """nanoGPT's model.py, its layout and calls: a LayerNorm of its own calling F.layer_norm without
    bias, attention through F.scaled_dot_product_attention with is_causal, the heads split with view
    and transpose and joined with contiguous, a GELU MLP, a head tied to the token embedding and the
    loss in forward."""

    def __init__(self, vocab=17, block=16, width=32, heads=4, layers=2):
        super().__init__()
        self.wte, self.wpe = torch.nn.Embedding(vocab, width), torch.nn.Embedding(block, width)
        self.blocks = torch.nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.ln_f = _LayerNorm(width)
        self.lm_head = torch.nn.Linear(width, vocab, bias=False)
        self.wte.weight = self.lm_head.weight

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return torch_F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


class _Block(torch.nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = _LayerNorm(width), _LayerNorm(width)
        self.c_attn = torch.nn.Linear(width, 3 * width, bias=False)
        self.c_proj = torch.nn.Linear(width, width, bias=False)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, 4 * width, bias=False), torch.nn.GELU(),
                                       torch.nn.Linear(4 * width, width, bias=False), torch.nn.Dropout(0.0))

    def attention(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))   # (B, nh, T, hs)
        y = torch_F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _LayerNorm(torch.nn.Module):
    """nanoGPT's: layer norm with a weight and no bias."""

    def __init__(self, width):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(width))

    def forward(self, x):
        return torch_F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


def _nanogpt():
    model = NanoGPT()
    idx = torch.randint(0, 17, (3, 16))
    return model, lambda m: m(idx, torch.roll(idx, -1, 1))


def _hugging_face(kind):
    pytest.importorskip("transformers")
    from handgrad.bench.gpt import hugging_face

    model = hugging_face("GPT-2" if kind == "gpt2" else "Llama", layers=2, width=32, heads=4, positions=16, vocab=50,
                         mlp=48, kv_heads=2)
    ids = torch.randint(0, 50, (3, 16))
    return model, lambda m: m(input_ids=ids, labels=ids).loss


class _Classifier(torch.nn.Module):
    """A network and its loss in forward."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x, y):
        return torch_F.cross_entropy(self.network(x), y)


def _vit():
    torchvision = pytest.importorskip("torchvision")
    model = _Classifier(torchvision.models.VisionTransformer(16, 4, 2, 4, 32, 64, num_classes=5, dropout=0.0))
    x, y = torch.randn(3, 3, 16, 16), torch.tensor([0, 3, 4])
    return model, lambda m: m(x.to(next(m.parameters()).dtype), y)


MODELS = {"nanoGPT's layout": _nanogpt, "Hugging Face GPT-2": lambda: _hugging_face("gpt2"),
          "Hugging Face Llama": lambda: _hugging_face("llama"), "torchvision ViT": _vit}


def _made(name, dtype=torch.float32):
    torch.manual_seed(0)
    model, loss_of = MODELS[name]()
    return model.to(dtype).train(), loss_of


def _step(model, loss_of):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    loss = loss_of(model)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def _kept(model, loss_of):
    with Kept(exclude=list(model.parameters())) as kept:
        loss = loss_of(model)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return kept.bytes


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", MODELS)
def test_lean_gives_the_plain_conversions_values_and_gradients_exactly(name, dtype):
    model, loss_of = _made(name, dtype)
    plain = handgrad.nn.convert(copy.deepcopy(model))
    lean = handgrad.nn.convert(copy.deepcopy(model), memory="lean")
    (plain_loss, plain_grads), (lean_loss, lean_grads) = _step(plain, loss_of), _step(lean, loss_of)
    assert torch.equal(lean_loss, plain_loss), f"{name}: loss {lean_loss} lean, {plain_loss} plain"
    assert plain_grads.keys() == lean_grads.keys()
    for key, g in plain_grads.items():
        assert torch.equal(lean_grads[key], g), f"{name}: d{key} differs between lean and plain"
    assert audit(loss_of(lean)).complete


@pytest.mark.parametrize("name", MODELS)
def test_lean_keeps_fewer_bytes_and_plain_no_more_than_builtin(name):
    """Plain keeps no more than autograd; lean keeps less, the bytes it makes again being the outputs
    of the norms and the activations."""
    model, loss_of = _made(name)
    builtin = _kept(model, loss_of)
    plain = _kept(handgrad.nn.convert(copy.deepcopy(model)), loss_of)
    with _lean.recorded() as made_again:
        lean = _kept(handgrad.nn.convert(copy.deepcopy(model), memory="lean"), loss_of)
    assert plain <= builtin, f"{name}: plain conversion keeps {plain} bytes, autograd {builtin}"
    assert lean < 0.8 * plain, f"{name}: lean keeps {lean} bytes, plain {plain}"
    assert set(made_again) & {"LayerNorm", "RMSNorm", "Mul", "GELU", "SiLU"}, made_again


def test_lean_double_backward_equals_plain():
    model, loss_of = _made("nanoGPT's layout", torch.float64)
    results = []
    for memory in ("plain", "lean"):
        m = handgrad.nn.convert(copy.deepcopy(model), memory=memory)
        params = list(m.parameters())
        grads = torch.autograd.grad(loss_of(m), params, create_graph=True)
        second = torch.autograd.grad(sum((g * g).sum() for g in grads), params)
        results.append(second)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_lean_under_torch_func_grad_equals_plain():
    """torch.func's transforms take no saved-tensor hooks: the lean context steps aside there."""
    model, loss_of = _made("nanoGPT's layout", torch.float64)
    grads = []
    for memory in ("plain", "lean"):
        m = handgrad.nn.convert(copy.deepcopy(model), memory=memory)
        params = dict(m.named_parameters())
        grads.append(torch.func.grad(lambda p: loss_of(lambda *a: torch.func.functional_call(m, p, a)))(params))
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], rtol=0, atol=0)


def _compiled(loss_of, graphs):
    """``loss_of`` compiled with AOTAutograd's eager backend, counting the graphs it compiles in ``graphs``."""
    aot_eager = torch._dynamo.backends.registry.lookup_backend("aot_eager")

    def backend(gm, inputs):
        graphs.append(gm)
        return aot_eager(gm, inputs)

    return torch.compile(loss_of, backend=backend)


@pytest.mark.parametrize("name", MODELS)
def test_lean_compiled_keeps_less_and_equals_eager_plain(name):
    """Under torch.compile the recomputable calls are traced inside torch.utils.checkpoint, so the
    compiled graph makes their outputs again in backward as the eager context does: it keeps fewer
    bytes than the compiled plain model, in as many graphs (a copy inside a region, Llama's rotary
    cat, once broke the graph at every layer), gives the eager plain model's gradients, and an eager
    step in between does not make it compile again."""
    model, loss_of = _made(name)
    _, want = _step(handgrad.nn.convert(copy.deepcopy(model)), loss_of)
    kept, got, graphs = {}, {}, {}
    for memory in ("plain", "lean"):
        m = handgrad.nn.convert(copy.deepcopy(model), memory=memory)
        torch._dynamo.reset()
        try:
            compiled = _compiled(loss_of, graphs.setdefault(memory, []))
            compiled(m).backward()                                    # compiles
            with Kept(exclude=list(m.parameters())) as k:
                loss = compiled(m)
            loss.backward()
            kept[memory] = k.bytes
            _step(m, loss_of)                                         # an eager step between compiled ones
            with torch._dynamo.config.patch(error_on_recompile=True):   # ... leaves nothing to compile again
                _, got[memory] = _step(m, compiled)
        finally:
            torch._dynamo.reset()
        assert not handgrad.ops._function.LEAN_TRACED                 # nothing left behind by the trace
    assert len(graphs["lean"]) == len(graphs["plain"]), {k: len(v) for k, v in graphs.items()}
    assert kept["lean"] < 0.75 * kept["plain"], kept
    for memory in got:
        for key, g in want.items():
            torch.testing.assert_close(got[memory][key], g, rtol=1e-4, atol=1e-5)


class _KeptShapes(Kept):
    """``Kept``, with the shape of each storage counted."""

    def __init__(self, exclude):
        super().__init__(exclude)
        self.shapes = []

    def add(self, t):
        before = len(self.storages)
        super().add(t)
        if len(self.storages) > before:
            self.shapes.append(tuple(t.shape))


def test_lean_compiled_blocks_keep_no_residual_sum_inside_a_block():
    """convert(memory="lean") counts the model's blocks (a forward pre-hook on each), and compiled, the
    checkpoint regions of a block are one to the partitioner: the residual sum after the attention
    is made again (with the output projection, from attention's output), not kept as the boundary of
    two regions. The blocks of a GPT are its layers; not the MLP inside a layer, nor the layers of a
    Sequential of plain layers (whose Linear layers run fused); converting again takes the hooks off."""
    model, loss_of = _made("nanoGPT's layout")
    lean = handgrad.nn.convert(copy.deepcopy(model), memory="lean")
    hooked = [name for name, m in lean.named_modules() if handgrad.nn._enter_block in m._forward_pre_hooks.values()
              and handgrad.nn._leave_block in m._forward_hooks.values()]
    assert hooked == ["blocks.0", "blocks.1"], hooked
    handgrad.nn.convert(lean, memory="lean")
    assert sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in lean.modules()) == 4
    mlp = handgrad.nn.convert(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU(), torch.nn.Linear(4, 2)),
                              memory="lean")
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in mlp.modules())

    kept, residuals = {}, {}
    for blocks in (True, False):
        m = handgrad.nn.convert(copy.deepcopy(lean), memory="lean")
        if not blocks:
            m._handgrad_blocks = handgrad.nn._count_blocks(m, False)    # each call its own region
        torch._dynamo.reset()
        try:
            compiled = torch.compile(loss_of, backend="aot_eager")
            compiled(m).backward()
            with _KeptShapes(exclude=list(m.parameters())) as k:
                loss = compiled(m)
            loss.backward()
            kept[blocks] = k.bytes
            residuals[blocks] = k.shapes.count((3, 16, 32))  # batch 3, context 16, width 32
        finally:
            torch._dynamo.reset()
    # the second block's input, and nothing else of its width: the first block's input is made again
    # with it, from the embeddings (the calls before the first block are its region)
    assert residuals[True] == 1, residuals
    assert residuals[False] == 5, residuals                 # ... and, each call its own region, the sums besides
    assert kept[True] < kept[False], kept
    assert kept[True] <= _kept(lean, loss_of), kept         # no more than the eager context keeps
    handgrad.nn.convert(lean)                               # plain again
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in lean.modules())


def test_hand_derived_lean_compiled_recomputes():
    """``hand_derived(memory="lean")`` around code outside modules: compiled, its elementwise op runs
    inside a checkpoint region (made again in backward), plain it does not."""
    x, w = torch.randn(4, 8), torch.randn(8, 8, requires_grad=True)
    regions = {}
    for memory in ("plain", "lean"):
        def f(x, w):
            with handgrad.hand_derived(memory=memory):
                return torch_F.gelu(x @ w).square().sum()

        explained = torch._dynamo.explain(f)(x, w)
        assert explained.graph_break_count == 0
        regions[memory] = sum("checkpoint" in str(n.target) for g in explained.graphs for n in g.graph.nodes)
    torch._dynamo.reset()
    assert regions == {"plain": 0, "lean": 2}, regions        # GELU and the square


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp"])
def test_lean_under_ddp_and_fsdp_equals_plain(wrapper, tmp_path):
    """DistributedDataParallel and FSDP's fully_shard (one process, gloo) around a lean model."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model, loss_of = _made("nanoGPT's layout", torch.float64)
        _, want = _step(handgrad.nn.convert(copy.deepcopy(model)), loss_of)
        lean = copy.deepcopy(model)
        if wrapper == "ddp":
            wrapped = torch.nn.parallel.DistributedDataParallel(handgrad.nn.convert(lean, memory="lean"))
            forward = lambda *args: wrapped(*args)                                       # noqa: E731
        else:
            from torch.distributed.fsdp import fully_shard
            for block in lean.blocks:
                fully_shard(block)
            fully_shard(lean)
            handgrad.nn.convert(lean, memory="lean")
            forward = lean
        torch.manual_seed(1)
        loss_of(forward).backward()
        for name, p in lean.named_parameters():
            grad = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
            assert torch.equal(grad, want[name]), f"{wrapper}: d{name} differs"
    finally:
        dist.destroy_process_group()


def test_lean_hand_derived_outside_modules():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    grads = []
    for memory in ("plain", "lean"):
        with Kept() as kept, handgrad.hand_derived(memory=memory):
            loss = torch_F.gelu(torch_F.layer_norm(x, (8,)) @ w).tanh().sum()
        grads.append((kept.bytes, torch.autograd.grad(loss, (x, w))))
    (plain_bytes, plain), (lean_bytes, lean) = grads
    assert lean_bytes < plain_bytes
    assert all(torch.equal(a, b) for a, b in zip(plain, lean))


def test_lean_input_changed_in_place_after_forward_raises():
    """A recipe's input changed in place before backward cannot make its output again: an error, as
    autograd raises for a saved tensor changed in place."""
    x = torch.randn(4, 8, requires_grad=True)
    w = torch.randn(8, 8, requires_grad=True)
    with handgrad.hand_derived(memory="lean"):
        h = x * 1.0
        y = torch_F.gelu(h) @ w
    with torch.no_grad():
        h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_convert_refuses_an_unknown_memory_setting():
    with pytest.raises(ValueError, match=r"convert: memory must be one of \('plain', 'lean'\), got 'fast'"):
        handgrad.nn.convert(torch.nn.Linear(2, 2), memory="fast")
    with pytest.raises(ValueError, match="memory must be one of"):
        handgrad.hand_derived(memory="fast")

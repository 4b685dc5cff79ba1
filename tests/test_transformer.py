"""Transformers converted whole: torch.nn.Transformer and torchvision's vision transformer give the
built-in model's loss and gradients in float64 with nothing but handgrad Functions and movement in
their autograd graph; torchvision's modern networks convert with every module hand-derived."""

import copy

import pytest
import torch
import torchvision

import handgrad.nn
from handgrad.testing.memory import Kept
from handgrad import testing
from handgrad.testing.graph import MOVEMENT, graph


def _computing_builtin_nodes(outputs):
    """The built-in autograd nodes of the graph that compute (not movement: views, concatenations)."""
    return sorted({name for name in graph(outputs)[1] if not MOVEMENT.fullmatch(name)})


def _compare(model, inputs, forward=lambda m, *xs: m(*xs), seed=0, excess=0):
    """Loss and every parameter and input gradient of ``model`` and of its converted copy, in float64,
    and the bytes the converted copy keeps for backward no more than the built-in's (but a known
    ``excess`` the caller names); returns the converted copy and its built-in computing nodes."""
    torch.manual_seed(seed)
    hand = handgrad.nn.convert(copy.deepcopy(model))
    results = []
    for m in (model, hand):
        leaves = [x.detach().clone().requires_grad_() for x in inputs]
        torch.manual_seed(1)
        with Kept(exclude=list(m.parameters()) + list(m.buffers())) as kept:
            out = forward(m, *leaves)
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()
        computing = _computing_builtin_nodes([out]) if m is hand else None
        loss.backward()
        results.append((loss, [x.grad for x in leaves], {n: p.grad for n, p in m.named_parameters()}, computing,
                        kept.bytes))
    (loss_ref, dx_ref, dp_ref, _, kept_ref), (loss, dx, dp, computing, kept) = results
    assert kept <= kept_ref + excess, f"the converted model keeps {kept} bytes for backward, the built-in {kept_ref}"
    bad = [str(d) for d in [testing.difference("loss", loss, loss_ref, testing.TOLERANCES[torch.float64])]
           + [testing.difference(f"dinput {i}", a, e, testing.TOLERANCES[torch.float64]) for i, (a, e) in
              enumerate(zip(dx, dx_ref))]
           + [testing.difference(f"d{n}", dp[n], g, testing.TOLERANCES[torch.float64]) for n, g in dp_ref.items()]
           if not d.ok]
    assert not bad, "; ".join(bad)
    assert dp_ref and all(g is not None for g in dp_ref.values()), "a parameter got no gradient: the test is vacuous"
    return hand, computing


def test_transformer_converts_whole_and_matches_builtin():
    torch.manual_seed(0)
    model = torch.nn.Transformer(8, 2, 2, 2, 16, dropout=0.1, norm_first=True, activation="gelu").double().train()
    src, tgt = torch.randn(7, 3, 8, dtype=torch.float64), torch.randn(5, 3, 8, dtype=torch.float64)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[0, -2:] = True
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    # Dropout in training mode would draw torch's attention masks differently: compare in eval mode,
    # then check training mode runs hand-derived too.
    model.eval()

    def forward(m, src, tgt):
        return m(src, tgt, tgt_mask=causal, tgt_is_causal=True, src_key_padding_mask=padding,
                 memory_key_padding_mask=padding)

    hand, computing = _compare(model, [src, tgt], forward)
    assert computing == [], f"converted Transformer still computes with built-in nodes: {computing}"
    assert handgrad.nn.coverage(hand).complete, str(handgrad.nn.coverage(hand))
    hand.train()
    assert _computing_builtin_nodes([forward(hand, src, tgt)]) == []


def test_vision_transformer_converts_whole_and_matches_builtin():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(16, 4, 2, 2, 8, 16, num_classes=3).double()
    hand, computing = _compare(model, [torch.randn(2, 3, 16, 16, dtype=torch.float64)])
    assert computing == [], f"converted VisionTransformer still computes with built-in nodes: {computing}"
    assert handgrad.nn.coverage(hand).complete, str(handgrad.nn.coverage(hand))


def test_efficientnet_stochastic_depth_draws_torchvisions_mask():
    """Training mode, where StochasticDepth drops whole samples: the same seed drops the same ones."""
    torch.manual_seed(0)
    model = torchvision.models.efficientnet_b0(num_classes=3).double().train()
    _compare(model, [torch.randn(8, 3, 32, 32, dtype=torch.float64)])


@pytest.mark.parametrize("name", ["vit_b_16", "mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf"])
def test_torchvision_model_converts_every_module(name):
    model = handgrad.nn.convert(torchvision.models.get_model(name, weights=None))
    report = handgrad.nn.coverage(model)
    assert report.complete, str(report)
    assert report.of("hand"), f"{name}: no module is hand-derived, the test is vacuous"


def test_multihead_attention_with_an_unknown_activation_function_says_why():
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, activation=torch.tanh)
    report = handgrad.nn.coverage(handgrad.nn.convert(layer))
    entry = next(e for e in report.entries if e.cls == "TransformerEncoderLayer")
    assert entry.status == "built-in" and "'tanh' is a function handgrad has no derivation for" in entry.reason
    with pytest.raises(RuntimeError, match="TransformerEncoderLayer"):
        handgrad.nn.convert(torch.nn.TransformerEncoderLayer(8, 2, 16, activation=torch.tanh), strict=True)


def test_bench_section_10_runs_with_each_side_checked_against_the_other(monkeypatch, capsys):
    """The benchmark's transformer section, at a small batch and head: it checks the converted ViT's
    loss and gradients against the built-in's and the three heads' losses against each other before
    it reports, and reports every row."""
    from handgrad.bench import transformer as section

    monkeypatch.setattr(section, "BATCH", 4)
    monkeypatch.setattr(section, "HEAD_SIZE", dict(rows=64, features=16, classes=512))
    report = section.bench_transformer(torch.device("cpu"), {"repeats": 1, "sample_s": 0.001, "process_repeats": 1})
    assert [r["op"] for r in report["layers"]] == ["layer_norm", "gelu", "softmax", "scaled_dot_product_attention",
                                                   "multi_head_attention_forward"]
    assert all(r["hand_s"] > 0 and r["torch_s"] > 0 for r in report["layers"])
    step = report["vit_step"]
    assert 0 < step["hand_bytes"] <= step["torch_bytes"], "the converted ViT keeps more for backward than torch's"
    assert all(r["hand_faults"] >= 0 and r["torch_faults"] >= 0 for r in [*report["layers"], step])
    variants = [r["variant"] for r in report["head"]]
    assert variants[0] == "linear + cross_entropy" and variants[-1] == "handgrad"
    assert len({round(r["loss"], 4) for r in report["head"]}) == 1, report["head"]
    assert "VisionTransformer step (convert)" in capsys.readouterr().out


@pytest.mark.parametrize("batch_first", [True, False])
def test_self_attention_projects_query_key_and_value_once(batch_first):
    """Self-attention (the same tensor as query, key and value) runs one packed in-projection, batch
    first or not, as torch's module does: two linear Functions in the graph, not four."""
    torch.manual_seed(0)
    mha = handgrad.nn.convert(torch.nn.MultiheadAttention(8, 2, batch_first=batch_first)).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    out, _ = mha(x, x, x, need_weights=False)
    seen, stack = set(), [out.grad_fn]
    while stack:                                          # every node once
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(n for n, _ in node.next_functions)
    linears = [type(n).__name__ for n in seen if type(n).__name__.startswith("Linear")]
    assert len(linears) == 2, linears
    builtin = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    builtin.load_state_dict(mha.state_dict())
    torch.testing.assert_close(out, builtin(x, x, x, need_weights=False)[0])

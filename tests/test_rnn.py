"""The recurrent layers beyond their OpInfo cases (tests/test_ops.py, tests/test_nn.py): packed
sequences, given initial states, the bytes kept for backward against the built-in's, calls inside
``hand_derived`` that handgrad leaves to torch, and a model nobody here wrote, timm's Sequencer2d,
converted and equal to the built-in in float64."""

import copy

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import handgrad
import handgrad.functional as F
from handgrad import testing
from handgrad.testing.memory import Kept

TOLERANCE = testing.TOLERANCES[torch.float64]


def _pair(cls, **kwargs):
    torch.manual_seed(0)
    builtin = cls(**kwargs).double()
    hand = getattr(handgrad.nn, cls.__name__)(**kwargs).double()
    hand.load_state_dict(builtin.state_dict())
    return builtin, hand


def _flat(outputs):
    """Every tensor among (output, h_n) or (output, (h_n, c_n)), a PackedSequence unpacked."""
    flat = []
    for o in outputs:
        if isinstance(o, (tuple, list)):
            flat += _flat(o)
        elif isinstance(o, torch.Tensor):
            flat.append(o)
    return flat


def _outputs_and_grads(module, run, leaves):
    """``run(module, *leaves)``'s tensors and the gradient of a fixed weighted sum of them with respect
    to the leaves and every parameter (named)."""
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    outputs = _flat(run(module, *leaves))
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum() for o in outputs)
    names = [f"input {i}" for i in range(len(leaves))] + [n for n, _ in module.named_parameters()]
    grads = torch.autograd.grad(loss, [*leaves, *module.parameters()])
    return outputs, dict(zip(names, grads))


def _assert_same(hand, builtin, context):
    (outputs, grads), (outputs_ref, grads_ref) = hand, builtin
    diffs = [testing.difference(f"output {i}", a, e, TOLERANCE) for i, (a, e) in enumerate(zip(outputs, outputs_ref))]
    diffs += [testing.difference(f"gradient of {n}", grads[n], g, TOLERANCE) for n, g in grads_ref.items()]
    assert len(outputs) == len(outputs_ref), f"{context}: {len(outputs)} outputs, torch gives {len(outputs_ref)}"
    bad = [str(d) for d in diffs if not d.ok]
    assert not bad, f"{context}: " + "; ".join(bad)


# -- packed sequences ---------------------------------------------------------------------------------

PACKED = [
    pytest.param(torch.nn.RNN, dict(nonlinearity="relu"), id="RNN relu"),
    pytest.param(torch.nn.LSTM, dict(num_layers=2, bidirectional=True), id="LSTM 2 layers bidirectional"),
    pytest.param(torch.nn.LSTM, dict(proj_size=2, bidirectional=True), id="LSTM projections bidirectional"),
    pytest.param(torch.nn.GRU, dict(num_layers=2, bidirectional=True), id="GRU 2 layers bidirectional"),
]


def _packed_run(lengths, enforce_sorted):
    def run(module, x, *states):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=enforce_sorted)
        hx = (states if len(states) == 2 else states[0]) if states else None
        output, hidden = module(packed, hx)
        return pad_packed_sequence(output, batch_first=True)[0], hidden
    return run


@pytest.mark.parametrize("enforce_sorted, with_state", [(True, False), (False, True)], ids=["sorted", "unsorted, hx"])
@pytest.mark.parametrize("cls, options", PACKED)
def test_rnn_packed_sequences_match_torch(cls, options, enforce_sorted, with_state):
    """A PackedSequence of sequences of different lengths (torch's packed form, ``lstm(data,
    batch_sizes, ...)``): the output, h_n (and c_n) and every gradient equal torch's in float64, and
    from the padded batch to the loss, packing and unpacking included, every gradient is hand-derived."""
    builtin, hand = _pair(cls, input_size=3, hidden_size=4, **options)
    directions = 2 if options.get("bidirectional") else 1
    layers, size = options.get("num_layers", 1), options.get("proj_size") or 4
    gen = torch.Generator().manual_seed(1)
    shapes = [(4, 5, 3)] + ([(layers * directions, 4, size)] if with_state else [])
    shapes += [(layers * directions, 4, 4)] if with_state and cls is torch.nn.LSTM else []
    leaves = [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in shapes]
    run = _packed_run([5, 4, 2, 1] if enforce_sorted else [2, 5, 1, 4], enforce_sorted)
    hand_result = _outputs_and_grads(hand, run, leaves)
    _assert_same(hand_result, _outputs_and_grads(builtin, run, leaves), f"{cls.__name__} {options}")
    audit = handgrad.nn.audit(*_flat(run(hand, *(t.requires_grad_() for t in leaves))))
    assert audit.complete, audit


def test_lstm_packed_form_gradcheck_and_gradgradcheck():
    """torch.lstm's packed form, batch sizes shrinking (forwards) and growing (backwards): finite
    differences agree with the hand-derived gradients and their derivatives, h0 and c0 included."""
    gen = torch.Generator().manual_seed(2)

    def leaf(*shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64).mul_(0.5).requires_grad_()

    batch_sizes = torch.tensor([3, 2, 1])
    data, h0, c0 = leaf(6, 2), leaf(2, 3, 2), leaf(2, 3, 2)
    params = [leaf(8, 2), leaf(8, 2), leaf(8), leaf(8), leaf(8, 2), leaf(8, 2), leaf(8), leaf(8)]

    def f(data, h0, c0, *params):
        return F.lstm(data, batch_sizes, (h0, c0), list(params), True, 1, 0.0, False, True)

    torch.autograd.gradcheck(f, (data, h0, c0, *params), check_forward_ad=True)
    torch.autograd.gradgradcheck(f, (data, h0, c0, *params))


# -- initial states given --------------------------------------------------------------------------------


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_lstm_with_initial_states_matches_torch(batched):
    """nn.LSTM(x, (h0, c0)): output, h_n, c_n and the gradients of x, h0, c0 and every weight."""
    builtin, hand = _pair(torch.nn.LSTM, input_size=3, hidden_size=4, num_layers=2, proj_size=3)
    gen = torch.Generator().manual_seed(3)
    batch = (2,) if batched else ()
    x = torch.randn((5, *batch, 3), generator=gen, dtype=torch.float64)
    h0 = torch.randn((2, *batch, 3), generator=gen, dtype=torch.float64)
    c0 = torch.randn((2, *batch, 4), generator=gen, dtype=torch.float64)

    def run(module, x, h0, c0):
        return module(x, (h0, c0))

    _assert_same(_outputs_and_grads(hand, run, (x, h0, c0)), _outputs_and_grads(builtin, run, (x, h0, c0)), "LSTM")


@pytest.mark.parametrize("cls", [torch.nn.LSTMCell, torch.nn.GRUCell, torch.nn.RNNCell], ids=lambda c: c.__name__)
def test_cell_steps_through_a_sequence_like_torch(cls):
    """A cell applied step after step, its state fed back (the cells' own BPTT, by autograd over
    hand-derived steps): outputs and gradients equal torch's."""
    builtin, hand = _pair(cls, input_size=3, hidden_size=4)
    x = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def run(module, x):
        state, outputs = None, []
        for step in x:
            state = module(step, state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return outputs

    _assert_same(_outputs_and_grads(hand, run, (x,)), _outputs_and_grads(builtin, run, (x,)), cls.__name__)


# -- memory -------------------------------------------------------------------------------------------


def _kept_bytes(module, x):
    """Bytes autograd keeps for backward (``handgrad.testing.memory.Kept``: unique storages, ctx
    attributes included), the module's parameters left out on both sides."""
    with Kept(exclude=list(module.parameters())) as kept:
        outputs = _flat(module(x))
    return kept.count(outputs).bytes


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("cls, options", [
    (torch.nn.RNN, {}), (torch.nn.LSTM, {}), (torch.nn.GRU, {}), (torch.nn.LSTM, dict(proj_size=8)),
    (torch.nn.LSTM, dict(num_layers=2, bidirectional=True, dropout=0.5)), (torch.nn.GRU, dict(batch_first=True)),
    (torch.nn.RNNCell, {}), (torch.nn.LSTMCell, {}), (torch.nn.GRUCell, {}),
], ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_rnn_keeps_no_more_than_torch(cls, options, dtype):
    """The bytes kept for backward are at most the built-in's (float32: oneDNN's LSTM; float64: the
    composite kernels), with a sequence that asks for its gradient and with one that does not (a
    model's data): one Function per layer and direction keeps the states and gates it returns."""
    builtin, hand = _pair(cls, input_size=16, hidden_size=16, **options)
    builtin, hand = builtin.to(dtype), hand.to(dtype)
    shape = (4, 16) if "Cell" in cls.__name__ else (12, 4, 16)
    for asks in (True, False):
        x = torch.randn(shape, dtype=dtype, requires_grad=asks)
        kept, kept_builtin = _kept_bytes(hand, x), _kept_bytes(builtin, x)
        assert kept <= kept_builtin, (f"{cls.__name__} {options} {dtype}, x.requires_grad={asks}: keeps {kept} "
                                      f"bytes, torch {kept_builtin}")


# -- hand_derived and convert ----------------------------------------------------------------------------


def test_torch_lstm_inside_hand_derived_is_hand_derived():
    """torch.lstm called directly (a kernel torch.nn.LSTM calls) inside hand_derived(strict=True)."""
    module = torch.nn.LSTM(3, 4, num_layers=2).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.zeros(2, 2, 4, dtype=torch.float64)
    with handgrad.hand_derived(strict=True):
        output, h_n, c_n = torch.lstm(x, (h0, h0), module._flat_weights, True, 2, 0.0, False, False, False)
    audit = handgrad.nn.audit(output, h_n, c_n)
    assert audit.complete and audit.hand["LSTMLayer"] == 2, audit


def test_lstm_call_handgrad_does_not_take_runs_the_builtin():
    """Inside hand_derived, a call of mixed dtypes under autocast (which torch casts itself) runs the
    built-in, as the audit shows, rather than raising."""
    module = torch.nn.LSTM(3, 4)
    x = torch.randn(5, 2, 3, dtype=torch.bfloat16, requires_grad=True)
    with handgrad.hand_derived(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = torch.lstm(x, (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)), module._flat_weights, True, 1, 0.0,
                            False, False, False)[0]
    assert not handgrad.nn.audit(output).complete


def test_sequencer2d_converted_is_hand_derived_and_equals_the_builtin():
    """timm's Sequencer2d (sequencer2d_s's architecture: bidirectional LSTMs along the rows and the
    columns of the image, batch_first; here one block a stage and narrow, for time), converted:
    every gradient of the loss hand-derived, and the logits and every parameter's gradient equal to
    the built-in model's in float64."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("sequencer2d_s", pretrained=False, num_classes=10, layers=[1, 1, 1, 1],
                              embed_dims=[16, 32, 32, 32], hidden_sizes=[4, 8, 8, 8],
                              mlp_ratios=[2.0, 2.0, 2.0, 2.0]).double()
    hand = handgrad.nn.convert(copy.deepcopy(model), strict=True)
    assert handgrad.nn.coverage(hand).complete
    gen = torch.Generator().manual_seed(5)
    x, target = torch.randn(2, 3, 28, 28, generator=gen, dtype=torch.float64), torch.tensor([1, 7])
    results = []
    for net, loss_fn in ((model, torch.nn.functional.cross_entropy), (hand, F.cross_entropy)):
        logits = net(x)
        loss = loss_fn(logits, target)
        if net is hand:
            audit = handgrad.nn.audit(loss)
            assert audit.complete and audit.hand["LSTMLayer"] == 16, audit
        grads = torch.autograd.grad(loss, list(net.parameters()))
        results.append(([logits], dict(zip([n for n, _ in net.named_parameters()], grads))))
    _assert_same(results[1], results[0], "sequencer2d")


def test_sequencer2d_s_at_full_size_converted_on_meta_is_hand_derived():
    """timm's sequencer2d_s itself (27 M parameters, 224 × 224), built and run on the meta device
    (shapes, no values): every node of its graph that computes is hand-derived."""
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = handgrad.nn.convert(timm.create_model("sequencer2d_s", pretrained=False, num_classes=10))
        audit = handgrad.nn.audit(model(torch.randn(2, 3, 224, 224)))
    assert audit.complete and audit.hand["LSTMLayer"] == 2 * 2 * 18, audit

"""Property: on shapes, dtypes and options drawn at random, ``handgrad.functional`` gives the output
of ``torch.nn.functional`` and, for a random upstream gradient, the same gradient of every
differentiable input, within ``testing.TOLERANCES[dtype]`` and with NaN in the same places.

Hypothesis draws the shapes, options, dtype and a seed; torch draws the tensors from that seed, and
``testing.verify`` (``seed=``) draws the upstream gradient from it too.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad import testing
from handgrad.ops import OPS
from handgrad.testing.op_db import OP_DB
from handgrad.ops._function import Elementwise

FLOAT_DTYPES = (torch.float64, torch.float32)
ELEMENTWISE_DTYPES = FLOAT_DTYPES + (torch.bfloat16,)
REDUCTIONS = ("none", "mean", "sum")

seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 4)


def _problem(tensors, options, wrt):
    """A ``testing.Sample``: the tensors as positional arguments, those named in ``wrt`` differentiated."""
    args = tuple(t.requires_grad_(name in wrt) if t.is_floating_point() else t for name, t in tensors.items())
    return testing.Sample(args, options)


def _check_matches_torch(op, spec, make, dtype, seed):
    sample = make(torch.Generator().manual_seed(seed))
    report = testing.verify(OP_DB[op].function, OP_DB[op].reference, [sample], checks=("reference",), dtypes=(dtype,),
                            devices=["cpu"], seed=seed)
    assert report.passed, f"{op} {spec} {dtype} seed {seed}:\n{report}"
    (outcome,) = report.outcomes
    assert outcome.status == "pass", f"{op} {spec}: not compared ({outcome.detail})"
    compared = {d.name.split(" differs")[0] for d in outcome.diffs}
    wanted = {"output", *(f"gradient of input {i}" for i, a in enumerate(sample.args) if a.requires_grad)}
    assert compared == wanted, f"{op} {spec}: compared only {compared}"


def _sometimes_empty(draw, shape, dims):
    """``shape`` with one of ``dims`` set to 0 in about one example in four."""
    shape = list(shape)
    if dims and draw(st.sampled_from([False, False, False, True])):
        shape[draw(st.sampled_from(dims))] = 0
    return tuple(shape)


def _randn(gen, shape):
    return torch.randn(shape, generator=gen, dtype=torch.float64)


# -- linear --------------------------------------------------------------------------------------


@st.composite
def linear_specs(draw):
    drawn = draw(st.lists(sizes, min_size=2, max_size=5))            # (*, in, out)
    *batch, n_in, n_out = _sometimes_empty(draw, drawn, range(len(drawn)))
    batch = tuple(batch)
    weight_1d = draw(st.booleans())
    out_shape = batch + (n_out,)
    # A bias of the output's full shape only for 1-D and 2-D input: for more dimensions torch's
    # linear refuses some (a (B, T, 1) bias with out_features = 1), leaving nothing to compare with.
    full = [out_shape] if len(batch) <= 1 else []
    bias_shapes = [None] if weight_1d else [None, (n_out,), (1,), (), *full]
    return {"input": batch + (n_in,), "weight": (n_in,) if weight_1d else (n_out, n_in),
            "bias": draw(st.sampled_from(bias_shapes))}


def _linear_problem(spec):
    def make(gen):
        tensors = {"input": _randn(gen, spec["input"]), "weight": _randn(gen, spec["weight"])}
        if spec["bias"] is not None:
            tensors["bias"] = _randn(gen, spec["bias"])
        return _problem(tensors, {}, tuple(tensors))
    return make


@settings(max_examples=100, deadline=None)
@given(spec=linear_specs(), dtype=st.sampled_from(FLOAT_DTYPES), seed=seeds)
def test_linear_matches_torch(spec, dtype, seed):
    _check_matches_torch("linear", spec, _linear_problem(spec), dtype, seed)


# -- sigmoid, relu -------------------------------------------------------------------------------


@st.composite
def elementwise_specs(draw):
    shape = draw(st.lists(sizes, max_size=4))
    return {
        "shape": _sometimes_empty(draw, shape, range(len(shape))),
        "scale": draw(st.sampled_from([1.0, 10.0, 1000.0])),
        "zeros": draw(st.sampled_from([0.0, 0.3])),   # fraction set exactly to 0, ReLU's kink
    }


def _elementwise_problem(spec):
    def make(gen):
        x = _randn(gen, spec["shape"]) * spec["scale"]
        x = x.masked_fill(torch.rand(spec["shape"], generator=gen, dtype=torch.float64) < spec["zeros"], 0.0)
        return _problem({"input": x}, {}, ("input",))
    return make


ELEMENTWISE_OPS = [name for name, op in OPS.items() if all(issubclass(f, Elementwise) for f in op.functions)]


@pytest.mark.parametrize("op", ELEMENTWISE_OPS)
@settings(max_examples=60, deadline=None)
@given(spec=elementwise_specs(), dtype=st.sampled_from(ELEMENTWISE_DTYPES), seed=seeds)
def test_elementwise_op_matches_torch(op, spec, dtype, seed):
    _check_matches_torch(op, spec, _elementwise_problem(spec), dtype, seed)


# -- cross_entropy -------------------------------------------------------------------------------


@st.composite
def cross_entropy_specs(draw):
    n_classes = draw(st.integers(1, 6))
    layout = draw(st.sampled_from(["(C)", "(N, C)", "(N, C, d1, ...)"]))
    if layout == "(C)":
        shape = (n_classes,)
    elif layout == "(N, C)":
        shape = _sometimes_empty(draw, (draw(sizes), n_classes), [0])
    else:
        shape = (draw(sizes), n_classes, *draw(st.lists(sizes, min_size=1, max_size=3)))
        shape = _sometimes_empty(draw, shape, [0, *range(2, len(shape))])
    target = draw(st.sampled_from(["indices", "probabilities"]))
    spec = {
        "shape": shape,
        "target": target,
        "reduction": draw(st.sampled_from(REDUCTIONS)),
        "label_smoothing": draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0))),
        "weight": draw(st.booleans()),
        "scale": draw(st.sampled_from([1.0, 10.0])),
    }
    if target == "probabilities":
        spec["normalised"] = draw(st.booleans())   # torch takes any non-negative scores too
    else:
        spec["ignore_index"] = draw(st.one_of(st.sampled_from([-100, -1]), st.integers(0, n_classes - 1)))
        spec["ignored"] = draw(st.sampled_from([0.0, 0.3, 0.6, 1.0]))   # fraction set to it
    return spec


def _cross_entropy_problem(spec):
    shape = spec["shape"]
    class_dim = 0 if len(shape) == 1 else 1
    n_classes = shape[class_dim]

    def make(gen):
        x = _randn(gen, shape) * spec["scale"]
        options = {"reduction": spec["reduction"], "label_smoothing": spec["label_smoothing"]}
        if spec["weight"]:
            options["weight"] = torch.rand(n_classes, generator=gen, dtype=torch.float64) + 0.1
        if spec["target"] == "probabilities" and spec["normalised"]:
            target = torch.softmax(_randn(gen, shape), class_dim)
        elif spec["target"] == "probabilities":
            target = torch.rand(shape, generator=gen, dtype=torch.float64) * 2
        else:
            target_shape = shape[:class_dim] + shape[class_dim + 1:]
            target = torch.randint(0, n_classes, target_shape, generator=gen)
            ignored = torch.rand(target_shape, generator=gen) < spec["ignored"]
            target = target.masked_fill(ignored, spec["ignore_index"])
            options["ignore_index"] = spec["ignore_index"]
            return _problem({"input": x, "target": target}, options, ("input",))
        return _problem({"input": x, "target": target}, options, ("input", "target"))
    return make


@settings(max_examples=400, deadline=None)
@given(spec=cross_entropy_specs(), dtype=st.sampled_from(FLOAT_DTYPES), seed=seeds)
def test_cross_entropy_matches_torch(spec, dtype, seed):
    _check_matches_torch("cross_entropy", spec, _cross_entropy_problem(spec), dtype, seed)

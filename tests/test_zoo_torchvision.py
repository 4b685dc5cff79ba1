"""torchvision beyond classification (``handgrad.zoo.torchvision_models``): every segmentation, video
and optical-flow model audited on the meta device at its own size in training mode, and one model of
each kind compared with the built-in in float64 (a detector in training and in eval mode). The
detectors are audited where they are compared: their box selection needs values. ``python -m
handgrad.zoo --torchvision`` compares every model."""

import pytest

from handgrad.zoo import torchvision_models

# Models whose graph keeps built-in computing nodes: name → (those nodes by count, why). None: every
# model is hand-derived end to end. A model that regresses, or one listed here that is fixed, fails.
KNOWN_GAPS = {}

AUDITED = [name for name, model in torchvision_models.MODELS.items() if model.meta is not None]
COMPARED = ["lraspp_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn (train)",
            "fasterrcnn_mobilenet_v3_large_320_fpn (eval)", "r2plus1d_18", "raft_small"]


@pytest.mark.parametrize("name", AUDITED)
def test_torchvision_model_hand_derived_on_meta(name):
    found, parameters = torchvision_models.audit(name)
    assert parameters > 0 and found.hand, f"{name}: nothing audited: {found}"
    left, _ = KNOWN_GAPS.get(name, ({}, None))
    assert dict(found.builtin) == left, f"{name}: built-in computing nodes {dict(found.builtin)}, known {left}"


def test_torchvision_compared_cover_each_kind():
    kinds = {torchvision_models.MODELS[name].kind for name in COMPARED}
    assert kinds == {model.kind for model in torchvision_models.MODELS.values()}
    assert {name.split(" ")[-1] for name in COMPARED if "(" in name} == {"(train)", "(eval)"}


@pytest.mark.parametrize("name", COMPARED)
def test_torchvision_model_equals_builtin_in_float64(name):
    comparison = torchvision_models.compare_model(name)
    assert comparison.equal, f"{name}: " + "; ".join(comparison.problems())
    left, _ = KNOWN_GAPS.get(name, ({}, None))
    assert dict(comparison.audit.builtin) == left, f"{name}: built-in computing nodes {dict(comparison.audit.builtin)}"

"""Models nobody here wrote, whose gradients ran through the built-in for want of the resampling ops
(interpolate, unfold/fold, grid_sample): each converted, in float64 equal to the built-in model (loss,
every parameter's and the input's gradient), and every node of its graph hand-derived but those an op
of another family still leaves built-in, named here.

Random weights, the smallest configurations of each family's own classes and small inputs, so that
each runs in seconds."""

import pytest
import timm
import torch
from timm.models import ghostnet, volo
from torchvision.models import optical_flow, segmentation
from torchvision.models.optical_flow import raft

from handgrad._intercept import intercepted
from handgrad.nn import audit
from tests.test_transformer import _compare

RESAMPLING = {"Interpolate", "InterpolateNearest", "Unfold", "Fold", "GridSample"}

# GhostNetV3's first five stages: the later ones add nothing new (its DFC attention, F.interpolate
# of the attention map, starts at the third).
_GHOST_STAGES = [[[3, 16, 16, 0, 1]], [[3, 48, 24, 0, 2]], [[3, 72, 24, 0, 1]], [[5, 72, 40, 0.25, 2]],
                 [[5, 120, 40, 0.25, 1]]]


def _first(output):
    return output[0] if isinstance(output, (tuple, list)) else output


# name: (build, input shapes, training mode, forward, the built-in computing nodes another family leaves,
# by count).
# Mobile networks are compared in eval mode: their batch norms see too few values at these sizes in
# training mode (see tests/test_hand_derived.py).
MODELS = {
    "timm coat_tiny (bilinear)": (
        lambda: timm.create_model("coat_tiny", num_classes=5, img_size=32, embed_dims=[16] * 4, serial_depths=[1] * 4,
                                  parallel_depth=1, mlp_ratios=[2] * 4), [(2, 3, 32, 32)], True, _first, {}),
    "timm hrnet_w18_small (nearest)": (
        lambda: timm.create_model("hrnet_w18_small", num_classes=5), [(2, 3, 64, 64)], True, _first, {}),
    "timm ghostnetv3 (nearest)": (
        lambda: ghostnet.GhostNet(_GHOST_STAGES, num_classes=5, width=0.5, version="v3"), [(2, 3, 64, 64)], False,
        _first, {}),
    "timm efficientformerv2_s0 (bilinear)": (
        lambda: timm.create_model("efficientformerv2_s0", num_classes=5, img_size=64, depths=(1, 1, 2, 2), num_vit=1,
                                  mlp_ratios=(4, 4, (4, 3), (3, 4))), [(2, 3, 64, 64)], True, _first, {}),
    "timm sam2_hiera_tiny / hieradet (bicubic)": (
        lambda: timm.create_model("sam2_hiera_tiny", num_classes=5, embed_dim=32, num_heads=1, stages=(1, 1, 2, 1),
                                  global_att_blocks=(3,)), [(2, 3, 64, 64)], True, _first, {}),
    "timm tnt_s_legacy_patch16_224 (unfold)": (
        lambda: timm.create_model("tnt_s_legacy_patch16_224", num_classes=5, img_size=32, depth=2, embed_dim=48,
                                  inner_dim=8, num_heads_outer=2, num_heads_inner=2),
        [(2, 3, 32, 32)], True, _first, {}),
    "timm volo_d1 (unfold, fold)": (
        lambda: volo.VOLO(layers=(1, 1, 1, 1), embed_dims=(32, 64, 64, 64), num_heads=(2, 4, 4, 4), img_size=32,
                          num_classes=5, stem_hidden_dim=16), [(2, 3, 32, 32)], True, _first, {}),
    "torchvision fcn_resnet50 (bilinear)": (
        lambda: segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=3, aux_loss=True),
        [(2, 3, 32, 32)], True, lambda out: torch.cat([out["out"].flatten(), out["aux"].flatten()]), {}),
    "torchvision deeplabv3_mobilenet_v3_large (bilinear)": (
        lambda: segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3),
        [(2, 3, 32, 32)], False, lambda out: out["out"], {}),
    "torchvision lraspp_mobilenet_v3_large (bilinear)": (
        lambda: segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3),
        [(2, 3, 32, 32)], False, lambda out: out["out"], {}),
}


def _compare_and_audit(model, inputs, forward):
    """tests/test_transformer.py's comparison, with the audit of the converted model's own graph."""
    audits = []

    def recorded(m, *xs):
        output = forward(m, *xs)
        if intercepted(m):
            audits.append(audit(output))
        return output

    _compare(model, inputs, recorded)
    return audits[0]


@pytest.mark.parametrize("name", MODELS)
def test_model_converted_equals_builtin_in_float64_with_resampling_by_hand(name):
    build, shapes, training, pick, left = MODELS[name]
    torch.manual_seed(0)
    model = build().double().train(training)
    report = _compare_and_audit(model, [torch.randn(shape, dtype=torch.float64) for shape in shapes],
                                lambda m, x: pick(m(x)))
    assert dict(report.builtin) == left, f"{name}: built-in computing nodes {dict(report.builtin)}, expected {left}"
    assert RESAMPLING & set(report.hand), f"{name}: no resampling op in its graph: {report}"


def test_raft_small_converted_equals_builtin_in_float64(monkeypatch):
    """torchvision's optical flow, two refinement steps: grid_sample and bilinear upsampling by hand, and
    its feature encoder's 21 InstanceNorm2d (batch norm of each sample on its own).
    RAFT makes its coordinate grids in float32 whatever the model's dtype (``make_coords_grid``'s
    ``.float()``): here in float64, for a float64 comparison."""
    make_coords_grid = raft.make_coords_grid
    monkeypatch.setattr(raft, "make_coords_grid", lambda *args, **kwargs: make_coords_grid(*args, **kwargs).double())
    torch.manual_seed(0)
    model = optical_flow.raft_small(weights=None).double().eval()
    images = [torch.randn(1, 3, 128, 128, dtype=torch.float64) for _ in range(2)]
    report = _compare_and_audit(model, images, lambda m, a, b: torch.stack(m(a, b, num_flow_updates=2)))
    assert report.complete, str(report)
    assert report.hand["GridSample"] == 8 and report.hand["Interpolate"] == 2, str(report)
    assert report.hand["BatchNorm"] == 21, str(report)                 # the instance norms, in eval mode too

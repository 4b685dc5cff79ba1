"""roi_align beyond its OpInfo: taken from torchvision's own operator inside ``hand_derived`` (and so
from ``RoIAlign`` and ``MultiScaleRoIAlign``), equal to torchvision's in float64 with every node
hand-derived, and nearer float64 than torchvision's CPU kernel in float16."""

import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign

import handgrad
from handgrad import testing
from handgrad.nn import audit
from handgrad.testing.op_db.roi import _boxes

F64 = testing.TOLERANCES[torch.float64]


def test_roi_align_inside_hand_derived_takes_torchvisions_operator():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    boxes = [_boxes(gen, 3, 8, 9, 1)[:, 1:], _boxes(gen, 2, 8, 9, 1)[:, 1:]]
    module = torchvision.ops.RoIAlign((3, 2), spatial_scale=0.9, sampling_ratio=-1, aligned=True)
    want = module(x, boxes)
    with handgrad.hand_derived():
        got = module(x, boxes)
    assert type(got.grad_fn).__name__ == "RoIAlignBackward", got.grad_fn
    g = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    for name, a, e in (("y", got, want), ("dL/dx", *(torch.autograd.grad(y, x, g)[0] for y in (got, want)))):
        d = testing.difference(name, a, e, F64)
        assert d.ok, str(d)


def test_multiscale_roi_align_of_a_feature_pyramid_is_hand_derived_and_equal():
    """Faster R-CNN's box pooler: each box pooled on the pyramid level its size picks, the levels'
    rows written into one output (an index_put, movement)."""
    gen = torch.Generator().manual_seed(1)
    features = {name: torch.randn(2, 4, size, size, generator=gen, dtype=torch.float64, requires_grad=True)
                for name, size in (("0", 16), ("1", 8), ("2", 4))}
    boxes = [_boxes(gen, 6, 64, 64, 1)[:, 1:] * scale for scale in (1.0, 0.5)]
    pooler = MultiScaleRoIAlign(["0", "1", "2"], 3, sampling_ratio=2)
    sizes = [(64, 64), (64, 64)]
    want = pooler(features, boxes, sizes)
    with handgrad.hand_derived():
        got = pooler(features, boxes, sizes)
    report = audit(got)
    assert report.complete and report.hand["RoIAlign"] == 3, str(report)
    g = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    for name, a, e in zip(features, torch.autograd.grad(got, list(features.values()), g),
                          torch.autograd.grad(want, list(features.values()), g)):
        d = testing.difference(f"dL/dfeatures[{name}]", a, e, F64)
        assert d.ok, str(d)


def test_roi_align_float16_is_nearer_float64_than_torchvisions_kernel():
    """torchvision's CPU kernel computes float16 in float16; handgrad in float32, rounded once."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    rois = _boxes(gen, 5, 6, 7, 2)
    g = torch.randn(5, 3, 3, 2, generator=gen, dtype=torch.float64)

    def run(roi_align, dtype):
        leaf = x.to(dtype).requires_grad_()
        y = roi_align(leaf, rois.to(dtype), (3, 2), 1.0, 2)
        return y.double(), torch.autograd.grad(y, leaf, g.to(dtype))[0].double()

    exact = run(torchvision.ops.roi_align, torch.float64)
    theirs, ours = (run(f, torch.float16) for f in (torchvision.ops.roi_align, handgrad.functional.roi_align))
    for name, t, o, e in zip(("y", "dL/dx"), theirs, ours, exact):
        assert (o - e).abs().max() <= (t - e).abs().max(), f"{name}: handgrad's float16 is farther from float64"

"""The regions-of-interest family's cases (``handgrad.ops.roi``): a NumPy oracle transcribed from
torchvision's CPU kernel, a loop over boxes, bins and sample points; samples, bad inputs, bench sizes.
The reference is torchvision's own ``roi_align`` (imported when a case runs: handgrad does not need
torchvision)."""

import math

import numpy as np
import torch

from handgrad.testing import ErrorInput, Sample, Tolerance, randn
from handgrad.testing.op_db._common import OpInfo, bench_randn, x32


def _torchvision_roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    from torchvision.ops import roi_align

    return roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned)


def _sample_taps(t, size):
    """The kernel's bilinear taps of a point t along an axis of ``size``: [(index, weight), ...], or []
    outside [−1, size]."""
    if t < -1.0 or t > size:
        return []
    t = max(t, 0.0)
    low = int(t)
    if low >= size - 1:
        return [(size - 1, 1.0), (size - 1, 0.0)]
    return [(low, 1 - (t - low)), (low + 1, t - low)]


def roi_align_numpy(x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """For each box, bin and sample point, its four taps (torchvision's ``pre_calc_for_bilinear_interpolate``),
    the bin the average of its G_h G_w samples; the vjp spreads g back along the same taps."""
    ph_n, pw_n = (output_size, output_size) if isinstance(output_size, int) else output_size
    rois = boxes if isinstance(boxes, np.ndarray) else np.concatenate(
        [np.concatenate([np.full((len(b), 1), n), b], 1) for n, b in enumerate(boxes)])
    _, c, height, width = x.shape
    offset = 0.5 if aligned else 0.0
    reads = []                                              # (k, ph, pw, row, column, weight)
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        w, h = x2 * spatial_scale - offset - sx, y2 * spatial_scale - offset - sy
        if not aligned:
            w, h = max(w, 1.0), max(h, 1.0)
        bin_h, bin_w = h / ph_n, w / pw_n
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(h / ph_n)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(w / pw_n)
        count = max(grid_h * grid_w, 1)
        for ph in range(ph_n):
            for pw in range(pw_n):
                for iy in range(grid_h):
                    t = sy + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        u = sx + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        if not (_sample_taps(t, height) and _sample_taps(u, width)):
                            continue                        # a point outside the map reads 0
                        for row, a in _sample_taps(t, height):
                            for column, bw in _sample_taps(u, width):
                                reads.append((k, int(b), ph, pw, row, column, a * bw / count))
    y = np.zeros((len(rois), c, ph_n, pw_n))
    for k, b, ph, pw, row, column, weight in reads:
        y[k, :, ph, pw] += weight * x[b, :, row, column]

    def vjp(g):
        dx = np.zeros_like(x)
        for k, b, ph, pw, row, column, weight in reads:
            dx[b, :, row, column] += weight * g[k, :, ph, pw]
        return (dx,)

    return y, vjp


def _boxes(gen, n_boxes, height, width, maps):
    """Random boxes (x₁, y₁, x₂, y₂) around the map, some reaching past its edges, as (K, 5) rows with
    their map index."""
    corner = torch.rand(n_boxes, 2, generator=gen, dtype=torch.float64) * torch.tensor([width, height]) * 1.2 - 1.5
    extent = torch.rand(n_boxes, 2, generator=gen, dtype=torch.float64) * torch.tensor([width, height]) * 0.8 + 0.3
    index = torch.randint(0, maps, (n_boxes, 1), generator=gen).to(torch.float64)
    return torch.cat([index, corner, corner + extent], 1)


# Adaptive sampling takes as many samples a bin as the largest box needs.
_ADAPTIVE = "adaptive sampling, ⌈box extent / bins⌉ samples a bin"


def _roi_align_samples(gen):
    rois = _boxes(gen, 5, 6, 7, 2)
    per_map = [_boxes(gen, 3, 6, 7, 1)[:, 1:], _boxes(gen, 2, 6, 7, 1)[:, 1:]]
    degenerate = torch.tensor([[0.0, 2.0, 1.0, 2.0, 4.5], [1.0, 3.0, 3.0, 5.5, 3.0]], dtype=torch.float64)
    return [
        Sample((randn(gen, 2, 3, 6, 7), rois, (3, 2), 1.0, 2), name="(K, 5) boxes, 2 × 2 samples a bin"),
        Sample((randn(gen, 2, 3, 6, 7), per_map, 2, 0.8, -1, True), dtypes=(torch.float64,),   # a list is not cast
               name="boxes per map, adaptive samples, aligned, scale 0.8", data_dependent=_ADAPTIVE),
        Sample((randn(gen, 1, 2, 5, 5), _boxes(gen, 3, 10, 10, 1), (2, 3), 0.5, -1), name="adaptive, legacy, scale 0.5",
               data_dependent=_ADAPTIVE),
        Sample((randn(gen, 2, 2, 5, 6), degenerate, 2, 1.0, -1, True), name="boxes of no height or width, aligned",
               data_dependent=_ADAPTIVE),
        Sample((randn(gen, 2, 2, 4, 4), torch.zeros(0, 5, dtype=torch.float64), 2, 1.0, 2), name="no boxes"),
    ]


_ROI_ALIGN_ERRORS = (
    ErrorInput("3-D input", lambda F, nn: F.roi_align(x32(3, 6, 6), torch.zeros(1, 5), 2), ValueError,
               r"roi_align: input must be \(N, C, H, W\), got shape \(3, 6, 6\)"),
    ErrorInput("(K, 4) tensor of boxes", lambda F, nn: F.roi_align(x32(1, 3, 6, 6), torch.zeros(2, 4), 2), ValueError,
               r"roi_align: boxes as a tensor must be \(K, 5\).*got shape \(2, 4\)"),
    ErrorInput("a list holding a (L, 5) tensor", lambda F, nn: F.roi_align(x32(1, 3, 6, 6), [torch.zeros(2, 5)], 2),
               ValueError, r"roi_align: each tensor of the list of boxes must be \(L, 4\).*got shape \(2, 5\)"),
    ErrorInput("float64 boxes on float32 input",
               lambda F, nn: F.roi_align(x32(1, 3, 6, 6), torch.zeros(1, 5, dtype=torch.float64), 2), RuntimeError,
               r"roi_align: boxes must have input's dtype torch\.float32, got torch\.float64"),
    ErrorInput("output_size 0", lambda F, nn: F.roi_align(x32(1, 3, 6, 6), torch.zeros(1, 5), 0), ValueError,
               r"roi_align: output_size must be a positive int or a pair of them, got 0"),
)


def _roi_align_bench(device):
    gen = torch.Generator().manual_seed(0)
    rois = _boxes(gen, 512, 50, 50, 2).to(device=device, dtype=torch.float32)
    return [("FPN level (2, 256, 50, 50), 512 boxes, 7 × 7, 2 × 2 samples",
             (bench_randn(device, 2, 256, 50, 50), rois, 7, 1.0, 2), {})]


# torchvision's CPU kernel computes float16 in float16, handgrad in float32: its gradients are the
# farther from float64's, by up to 2e-3 on values of 0.2 (tests/test_roi.py compares both with float64).
_ROI_ALIGN_TOLERANCES = {torch.float16: Tolerance(atol=5e-3, rtol=5e-3)}

OP_INFOS = (
    OpInfo("roi_align", _torchvision_roi_align, _roi_align_samples, roi_align_numpy, _roi_align_bench,
           errors=_ROI_ALIGN_ERRORS, tolerances=_ROI_ALIGN_TOLERANCES),
)

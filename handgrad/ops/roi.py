"""Regions of interest: torchvision's ``roi_align``, each box of a feature map pooled to a P_h × P_w grid
by averaging bilinear samples (Mask R-CNN), the op every two-stage detector of torchvision runs
(``MultiScaleRoIAlign``).

Notation: x (N, C, H, W) the feature maps; box k (x₁, y₁, x₂, y₂) on map b_k, scaled by s and shifted
by −½ when ``aligned``; its height h_k = y₂ − y₁ (at least 1 unless aligned) cut into P_h bins of
height h_k / P_h, each sampled at G_k rows (the ``sampling_ratio``, or ⌈h_k / P_h⌉), and likewise
along the width. A sample at row t is read by bilinear interpolation from rows ⌊t⌋ and ⌊t⌋ + 1 with
weights 1 − (t − ⌊t⌋) and t − ⌊t⌋, under the kernel's rules: a point outside [−1, H] reads 0, one in
[−1, 0] is read at row 0, one at or past H − 1 at row H − 1.

Every weight factors into a row part and a column part, so box k's output is a product of matrices:

    y_k = A_k x_{b_k} B_kᵀ        (C, P_h, P_w) = (P_h, H) · (C, H, W) · (W, P_w)

A_k[p, r] = (1 / G_k) Σ_i (the weight sample i of bin p gives row r), B_k likewise for the columns,
and the average over the G_h G_w samples of a bin is the product of the two averages. y is linear in
x, and its backward is the adjoint (the seed's dL/dx = g W once more, for each box):

    dL/dx_n = Σ_{k : b_k = n} A_kᵀ g_k B_k        (C, H, W)

each sample spreading g back onto the four pixels it read, with the weights it read them with. The
boxes get no gradient (torchvision's neither). The matrices are kept sparse, as each sample's two
taps per axis (``axis_taps``): forward gathers the taps' pixels and weighs them, backward weighs g and
adds it onto the same pixels (``index_add``, whose derivative is the gather). Nothing but the boxes
is kept for backward, from which the taps are made again.
"""

import torch

from handgrad.ops._checks import FLOAT32, as_dtype, autocast, check_floating, check_tensor, computed_in
from handgrad.ops._function import HandFunction, apply, multilinear_jvp
from handgrad.ops._registry import Derivative, Op, register


def axis_taps(start, length, pooled, sampling_ratio, size, dtype):
    """The two taps of every sample of every bin along one axis of each box: (index, weight), both
    (K, P, G, 2) for K boxes, P bins, G samples per bin (the most any box takes).

    start, length (K,): the boxes' first coordinate and extent on this axis, in map units; ``size``
    the map's extent. A box samples its bins at start + p · bin + (i + ½) · bin / G_k (in the
    kernel's order of operations, so that the points are the kernel's to the last bit), G_k its own
    grid: samples past it, and points outside [−1, size], weigh 0; each weight is divided by G_k, the
    axis's share of the bin's average.
    """
    bin_size = length / pooled                                           # (K,)
    if sampling_ratio > 0:
        grid = torch.full_like(length, sampling_ratio)
        samples = sampling_ratio
    else:
        grid = torch.ceil(length / pooled)                               # ⌈extent / P⌉ per box
        samples = int(grid.max()) if grid.numel() else 0
    divisor = grid.clamp(min=1)[:, None, None]                          # a box with no sample reads 0
    p = torch.arange(pooled, device=start.device, dtype=dtype)[None, :, None]
    i = torch.arange(samples, device=start.device, dtype=dtype)[None, None, :]
    t = start[:, None, None] + p * bin_size[:, None, None] + (i + 0.5) * bin_size[:, None, None] / divisor
    read = (t >= -1) & (t <= size) & (i < grid[:, None, None])          # (K, P, G): inside [−1, size], on the grid
    t = t.clamp(min=0)                                                   # [−1, 0] read at 0
    low = t.long()
    edge = low >= size - 1                                               # at or past the last row: read there
    low = torch.where(edge, size - 1, low)
    high = torch.where(edge, size - 1, low + 1)
    frac = torch.where(edge, 0.0, t - low)                               # t − ⌊t⌋
    weight = torch.stack((1 - frac, frac), -1) * (read / divisor)[..., None]     # (K, P, G, 2)
    return torch.stack((low, high), -1), weight


def box_taps(rois, spatial_scale, pooled, sampling_ratio, aligned, height, width, dtype):
    """(rows, row weights, columns, column weights) of every box (``axis_taps``), each flattened to
    (K, P, G · 2): the row taps of bin p and the column taps of bin q read pixel (row, column) with the
    product of their weights."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, j].to(dtype) * spatial_scale - offset for j in range(1, 5))
    w, h = x2 - x1, y2 - y1
    if not aligned:
        w, h = w.clamp(min=1.0), h.clamp(min=1.0)                       # the legacy boxes: at least a pixel
    taps = [axis_taps(y1, h, pooled[0], sampling_ratio, height, dtype),
            axis_taps(x1, w, pooled[1], sampling_ratio, width, dtype)]
    return tuple(t.flatten(2) for pair in taps for t in pair)


class RoIAlign(HandFunction):
    """y_k = A_k x_{b_k} B_kᵀ for each box k (the module docstring); returns y (K, C, P_h, P_w).

    x (N, C, H, W); rois (K, 5), rows (b, x₁, y₁, x₂, y₂); keeps the rois only.
    """

    @staticmethod
    def forward(x, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
        dtype = computed_in(x.dtype)
        rows, wy, cols, wx = box_taps(rois, spatial_scale, (pooled_height, pooled_width), sampling_ratio, aligned,
                                      x.shape[2], x.shape[3], dtype)
        b = rois[:, 0].long()
        k, c = rois.shape[0], x.shape[1]
        # every tap pixel of every box: x[b_k, :, row, column], (K, P_h·2G, P_w·2G, C)
        v = x[b[:, None, None], :, rows.flatten(1)[:, :, None], cols.flatten(1)[:, None, :]].to(dtype)
        v = v.view(k, pooled_height, wy.shape[-1], pooled_width, wx.shape[-1], c)
        y = torch.einsum("kpa,kqb,kpaqbc->kcpq", wy, wx, v)              # y = A x Bᵀ, (K, C, P_h, P_w)
        return y.to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, rois, *options = inputs
        ctx.save_for_backward(rois)
        ctx.save_for_forward(rois)
        ctx.options, ctx.x_shape, ctx.x_dtype = options, x.shape, x.dtype

    @staticmethod
    def backward(ctx, g):
        (rois,) = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = roi_align_backward(g, rois, ctx.x_shape, ctx.x_dtype, *ctx.options)
        return grad_x, None, None, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        """Forward mode: dy = A dx Bᵀ, the forward on the tangent."""
        (rois,) = ctx.saved_tensors
        return multilinear_jvp(RoIAlign.forward, (None, rois, *ctx.options), (dx, None, None, None, None, None, None))


def roi_align_backward(g, rois, x_shape, x_dtype, spatial_scale, pooled_height, pooled_width, sampling_ratio,
                       aligned):
    """dL/dx_n = Σ_{k: b_k = n} A_kᵀ g_k B_k: each sample's g · (its row weight · its column weight) added
    onto the pixel each of its four taps read. g (K, C, P_h, P_w) → dL/dx (N, C, H, W)."""
    n, c, height, width = x_shape
    dtype = computed_in(x_dtype)
    rows, wy, cols, wx = box_taps(rois, spatial_scale, (pooled_height, pooled_width), sampling_ratio, aligned,
                                  height, width, dtype)
    # g_k weighed by each tap's row and column weight, (K, P_h, 2G, P_w, 2G, C)
    spread = torch.einsum("kcpq,kpa,kqb->kpaqbc", g.to(dtype), wy, wx)
    b = rois[:, 0].long()
    # the pixel each tap reads, n·H·W + row·W + column, (K, P_h, 2G, P_w, 2G)
    pixel = (b[:, None, None, None, None] * height + rows[:, :, :, None, None]) * width + cols[:, None, None, :, :]
    grad = spread.new_zeros(n * height * width, c).index_add(0, pixel.flatten(), spread.reshape(-1, c))
    return grad.view(n, height, width, c).permute(0, 3, 1, 2).to(x_dtype)           # dL/dx, (N, C, H, W)


def rois_of(fn, boxes, dtype):
    """The boxes as torchvision's roi format, (K, 5) rows (b, x₁, y₁, x₂, y₂): a (K, 5) tensor as it
    is, a list of (L_n, 4) tensors (one per map) with each box's map index put in front."""
    if isinstance(boxes, torch.Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"{fn}: boxes as a tensor must be (K, 5), rows (map index, x1, y1, x2, y2), got shape "
                             f"{tuple(boxes.shape)}; give a list of (L, 4) tensors for boxes per map")
        return boxes
    if not isinstance(boxes, (list, tuple)) or not all(isinstance(b, torch.Tensor) for b in boxes):
        raise TypeError(f"{fn}: boxes must be a (K, 5) tensor or a list of (L, 4) tensors, got {type(boxes).__name__}")
    for b in boxes:
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(f"{fn}: each tensor of the list of boxes must be (L, 4), rows (x1, y1, x2, y2), got shape "
                             f"{tuple(b.shape)}")
    index = [torch.full_like(b[:, :1], n) for n, b in enumerate(boxes)]
    return torch.cat([torch.cat(index), torch.cat(list(boxes))], 1) if boxes else torch.zeros(0, 5, dtype=dtype)


def _pair(fn, output_size):
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"{fn}: output_size must be a positive int or a pair of them, got {output_size!r}")
    return size


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """Each box of ``boxes`` on its map of ``input`` pooled to ``output_size`` bins, each the average of
    bilinear samples, as ``torchvision.ops.roi_align`` (and the ``torch.ops.torchvision.roi_align`` it
    calls, which ``hand_derived`` intercepts).

    Shapes: input (N, C, H, W); boxes (K, 5) rows (map index, x₁, y₁, x₂, y₂), or a list of N tensors
    (L_n, 4); output (K, C, P_h, P_w). ``spatial_scale`` maps box coordinates to the map's;
    ``sampling_ratio`` samples per bin and axis (≤ 0: ⌈box extent / bins⌉ for each box); ``aligned``
    shifts the boxes by −½ pixel (Detectron2's), else a box is at least a pixel wide and high.
    """
    fn = "roi_align"
    check_floating(fn, "input", input)
    if input.dim() != 4:
        raise ValueError(f"{fn}: input must be (N, C, H, W), got shape {tuple(input.shape)}")
    rois = rois_of(fn, boxes, input.dtype)
    check_tensor(fn, "boxes", rois)
    input, rois = autocast(FLOAT32, input, rois)
    if rois.dtype != input.dtype:
        raise RuntimeError(f"{fn}: boxes must have input's dtype {input.dtype}, got {rois.dtype}")
    if rois.device != input.device:
        raise RuntimeError(f"{fn}: boxes must be on input's device {input.device}, got {rois.device}")
    pooled_height, pooled_width = _pair(fn, output_size)
    return apply(RoIAlign, input, rois, float(spatial_scale), pooled_height, pooled_width, int(sampling_ratio),
                 bool(aligned))


def _torchvision_roi_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    """``torch.ops.torchvision.roi_align``'s arguments, for ``roi_align``."""
    return roi_align(input, rois, (pooled_height, pooled_width), spatial_scale, sampling_ratio, aligned)


register(Op(
    "roi_align", roi_align, (RoIAlign,),
    Derivative("y_k = A_k x_{b_k} B_kᵀ: bilinear samples of box k averaged over each bin",
               "dL/dx_n = Σ_{k: b_k = n} A_kᵀ g_k B_k (each sample's g spread back onto its four pixels); "
               "the boxes get none",
               "x (N, C, H, W), boxes (K, 5), A_k (P_h, H), B_k (P_w, W), y and g (K, C, P_h, P_w)"),
    fused_by="`torchvision.ops.roi_align`, `RoIAlign`, `MultiScaleRoIAlign`",
    intercepts={"torch.ops.torchvision.roi_align": _torchvision_roi_align},
))

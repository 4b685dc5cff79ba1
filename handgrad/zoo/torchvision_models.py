"""torchvision's models beyond classification: segmentation, detection, video and optical flow.

``MODELS``: name → ``Model``, every model ``torchvision.models.list_models`` lists in those four
modules. Each is audited on the meta device at its own size (``audit``), but the detectors, whose
box selection (non-maximum suppression) needs values: those are audited where they are compared.
Each is compared in float64 (``compare``) at a small size: the segmentation and optical-flow models
as torchvision builds them on 32 × 32 and 128 × 128 images, the detectors as torchvision builds them
with random weights, on two images of 64 × 64 and 48 × 64 (SSD: 96 × 96 and 80 × 96) with two and one
boxes, in training mode (the loss dictionary, from the boxes and classes the heads sample from the
same seed) and in eval mode (the detections: boxes, scores, masks, keypoints); the video models at
4 frames of 32 × 32 (S3D 8) with their own blocks, fewer of them where the model is large (``small``).

Batch norms run with their running statistics wherever they would normalise over a handful of
values (the detectors' backbones, in training mode too: torchvision freezes them when it loads
pretrained weights); each entry says what it does.
"""

import dataclasses
from typing import Callable

import torch

from handgrad.zoo import audit_on_meta, compare

SEGMENTATION = ("deeplabv3_mobilenet_v3_large", "deeplabv3_resnet101", "deeplabv3_resnet50", "fcn_resnet101",
                "fcn_resnet50", "lraspp_mobilenet_v3_large")
DETECTION = ("fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn",
             "fasterrcnn_resnet50_fpn_v2", "fcos_resnet50_fpn", "keypointrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn",
             "maskrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2", "ssd300_vgg16",
             "ssdlite320_mobilenet_v3_large")
VIDEO = ("mc3_18", "mvit_v1_b", "mvit_v2_s", "r2plus1d_18", "r3d_18", "s3d", "swin3d_b", "swin3d_s", "swin3d_t")
OPTICAL_FLOW = ("raft_large", "raft_small")


@dataclasses.dataclass(frozen=True)
class Model:
    """One of torchvision's models, as audited and compared.

    Args:
        kind: "segmentation", "detection", "video" or "optical flow"
        build: ``build(dtype)`` → the model as compared (small), random weights from seed 0
        inputs: the input tensors of the comparison, float64
        forward: ``forward(model, *inputs)`` → one tensor, what is compared
        meta: input shapes of the audit on the meta device at the model's own size, or None where
            the model is audited where it is compared (the detectors)
        note: how it is built and run, where that is not torchvision's default
    """

    kind: str
    build: Callable
    inputs: Callable
    forward: Callable
    meta: tuple = None
    note: str = ""


def _get(name, **kwargs):
    from torchvision import models

    return models.get_model(name, weights=None, **kwargs)


# -- segmentation ------------------------------------------------------------------------------------


def _segmentation(name):
    backbone = {"weights_backbone": None}
    aux = name.startswith(("fcn", "deeplabv3_resnet"))

    def build():
        return _get(name, num_classes=3, aux_loss=aux, **backbone) if aux else _get(name, num_classes=3, **backbone)

    def forward(model, x):
        out = model(x)
        return torch.cat([out["out"].flatten(), out["aux"].flatten()]) if "aux" in out else out["out"]

    def seeded(dtype):
        torch.manual_seed(0)
        return build().to(dtype).train(not mobile)

    mobile = "mobilenet" in name
    return Model("segmentation", seeded,
                 lambda: [torch.randn(2, 3, 32, 32, dtype=torch.float64)], forward, ((2, 3, 224, 224),),
                 "eval mode (its batch norms see a few values in training)" if mobile else
                 "training mode, with the auxiliary head")


# -- detection -------------------------------------------------------------------------------------


def _targets(images):
    """Two boxes on the first image and one on the second, each with a class, a mask and 3 keypoints."""
    targets = []
    for n, image in enumerate(images):
        height, width = image.shape[1:]
        boxes = torch.tensor([[5.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 45.0]], dtype=image.dtype)[: 2 - n]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(max=width - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(max=height - 1)
        masks = torch.zeros(len(boxes), height, width, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        steps = 3 * torch.arange(1.0, 4.0, dtype=image.dtype)[None, :, None]
        # Keypoint R-CNN takes float32 keypoints only, whatever the model's dtype (its heatmap targets
        # are indices).
        keypoints = torch.cat([boxes[:, None, :2] + steps, torch.ones(len(boxes), 3, 1, dtype=image.dtype)], 2).float()
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2])[: len(boxes)], "masks": masks,
                        "keypoints": keypoints})
    return targets


def _detection(name, training):
    ssd = name.startswith("ssd")
    size = 96 if ssd else 64

    def build(dtype):
        options = {"weights_backbone": None, "num_classes": 3}
        if not ssd:
            options.update(min_size=size, max_size=size)           # the transform's resize: to 64 pixels
        if name.startswith("keypoint"):
            options["num_keypoints"] = 3
        if not training:                                             # every detection kept, none thresholded away
            options["box_score_thresh" if "rcnn" in name else "score_thresh"] = 0.0
        torch.manual_seed(0)
        model = _get(name, **options).to(dtype).train(training)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        return model

    def inputs():
        return [torch.rand(3, size, size, dtype=torch.float64), torch.rand(3, size - 16, size, dtype=torch.float64)]

    def forward(model, *images):
        if training:
            losses = model(list(images), _targets(images))
            return torch.stack([losses[key] for key in sorted(losses)])
        detections = model(list(images))
        return torch.cat([value.flatten() for found in detections for _, value in sorted(found.items())
                          if value.is_floating_point()])

    mode = ("training mode, the loss dictionary for two images' boxes" if training else
            "eval mode, every detection (score threshold 0)")
    return Model("detection", build, inputs, forward, None, f"{mode}; batch norms with running statistics")


# -- video -----------------------------------------------------------------------------------------


def _video_resnet(block, conv_makers, stem):
    from torchvision.models.video import resnet

    return resnet.VideoResNet(getattr(resnet, block), [getattr(resnet, c) for c in conv_makers] * 4, [1, 1, 1, 1],
                              getattr(resnet, stem), num_classes=10)


def _s3d():
    """S3D whose final pooling spans the 1 × 1 × 1 map an 8 × 32 × 32 clip leaves (its own 2 × 7 × 7
    takes 16 × 224 × 224)."""
    model = _get("s3d", num_classes=10)
    model.avgpool = torch.nn.AvgPool3d(kernel_size=1, stride=1)
    return model


def _mvit(version):
    """MViT (v1: absolute positions; v2: mvit_v2_s's relative positions, residual pooling, projection
    after attention) in three blocks at 4 × 32 × 32, the second pooling queries and keys."""
    from torchvision.models.video import mvit

    blocks = [mvit.MSBlockConfig(heads, inputs, outputs, [3, 3, 3], [3, 3, 3], stride_q, stride_kv)
              for heads, inputs, outputs, stride_q, stride_kv in ((1, 16, 16, [1, 1, 1], [1, 2, 2]),
                                                                  (2, 16, 32, [1, 2, 2], [1, 2, 2]),
                                                                  (2, 32, 32, [1, 1, 1], [1, 1, 1]))]
    v2 = version == 2
    return mvit.MViT((32, 32), 4, blocks, residual_pool=v2, residual_with_cls_embed=not v2, rel_pos_embed=v2,
                     proj_after_attn=v2, num_classes=10)


def _swin3d():
    """Swin3D's blocks (swin3d_t's), two stages of depth 2, patches of 2 × 4 × 4, windows of 2 × 4 × 4."""
    from torchvision.models.video import swin_transformer

    return swin_transformer.SwinTransformer3d([2, 4, 4], 16, [2, 2], [2, 4], [2, 4, 4], stochastic_depth_prob=0.1,
                                              num_classes=10)


_SMALL_VIDEO = {
    "mc3_18": (lambda: _get("mc3_18", num_classes=10), 4, "as torchvision builds it"),
    "r3d_18": (lambda: _video_resnet("BasicBlock", ["Conv3DSimple"], "BasicStem"), 4, "r3d_18's blocks, one a stage"),
    "r2plus1d_18": (lambda: _video_resnet("BasicBlock", ["Conv2Plus1D"], "R2Plus1dStem"), 4,
                    "r2plus1d_18's blocks, one a stage"),
    "s3d": (_s3d, 8, "its final pooling spanning what an 8 × 32 × 32 clip leaves"),
    "mvit_v1_b": (lambda: _mvit(1), 4, "mvit_v1_b's blocks, three"),
    "mvit_v2_s": (lambda: _mvit(2), 4, "mvit_v2_s's blocks, three"),
    "swin3d_t": (_swin3d, 4, "swin3d's blocks, two stages of two"),
    "swin3d_s": (_swin3d, 4, "swin3d's blocks, two stages of two (swin3d_t's, swin3d_s's and swin3d_b's are one class)"),
    "swin3d_b": (_swin3d, 4, "swin3d's blocks, two stages of two (swin3d_t's, swin3d_s's and swin3d_b's are one class)"),
}


def _video(name):
    make, frames, note = _SMALL_VIDEO[name]
    meta = (1, 3, 16, 224, 224) if name in ("s3d", "mvit_v1_b", "mvit_v2_s") or name.startswith("swin3d") \
        else (1, 3, 4, 32, 32)

    def build(dtype):
        torch.manual_seed(0)
        return make().to(dtype).eval()

    return Model("video", build, lambda: [torch.randn(1, 3, frames, 32, 32, dtype=torch.float64)],
                 lambda model, x: model(x), (meta,), f"eval mode; {note}")


# -- optical flow ----------------------------------------------------------------------------------


def _raft(name):
    def build(dtype):
        torch.manual_seed(0)
        return _get(name).to(dtype).eval()

    def forward(model, a, b):
        from torchvision.models.optical_flow import raft

        # RAFT makes its coordinate grids in float32 whatever the model's dtype: in the model's, here.
        make = raft.make_coords_grid
        raft.make_coords_grid = lambda *args, **kwargs: make(*args, **kwargs).to(a.dtype)
        try:
            return torch.stack(model(a, b, num_flow_updates=2))
        finally:
            raft.make_coords_grid = make

    return Model("optical flow", build, lambda: [torch.randn(1, 3, 128, 128, dtype=torch.float64) for _ in range(2)],
                 forward, ((1, 3, 128, 128), (1, 3, 128, 128)), "eval mode, two refinement steps")


MODELS = {
    **{name: _segmentation(name) for name in SEGMENTATION},
    **{f"{name} ({'train' if training else 'eval'})": _detection(name, training) for name in DETECTION
       for training in (True, False)},
    **{name: _video(name) for name in VIDEO},
    **{name: _raft(name) for name in OPTICAL_FLOW},
}


def _own(name):
    """The model as torchvision builds it (random weights), for the audit at its own size."""
    return _get(name, weights_backbone=None) if name in SEGMENTATION else _get(name)


def audit(name):
    """``name`` audited on the meta device at its own size, in training mode: (audit, parameters)."""
    model = MODELS[name]
    return audit_on_meta(lambda: _own(name), model.meta, model.forward)


def compare_model(name):
    """``name``'s small build compared with its converted copy in float64 (``handgrad.zoo.compare``)."""
    model = MODELS[name]
    return compare(model.build(torch.float64), model.inputs(), model.forward)

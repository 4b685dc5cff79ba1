"""Models nobody here wrote, whose gradients need the 1-D and 3-D convolutions, the 1-D, 3-D and
adaptive max poolings and the padding modes: timm's ECA-Net, blur-pool, TResNet, BAT, Next-ViT,
lambda, EfficientViM and LowFormer families and torchvision's video models, converted, equal to the
built-in model in float64 (the loss and every parameter and input gradient), with every computing
node of the graph hand-derived.

Each is the smallest member of its family at a small input, in eval mode (its batch norms use their
running statistics: at these sizes a batch norm in training mode normalises over a handful of
values, and its gradients are cancellation noise). Where a model's own size forces a large input
(S3D's final 2×7×7 pooling, MViT's 16×224×224 positional tables), it is audited at that size on the
meta device, and compared in float64 with the same blocks at a small size.
"""

import dataclasses

import pytest
import timm
import torch
import torchvision
from timm.models import byobnet
from torchvision.models.video import mvit, resnet

import handgrad.nn
from tests.test_transformer import _compare


def _bat_resnext26ts():
    """timm's bat_resnext26ts, its bilinear attention blocks 2 × 2 instead of 8 × 8, so that every
    stage's map divides into them at 64 × 64 (8 × 8 would take 256 × 256 images)."""
    cfg = dataclasses.replace(byobnet.model_cfgs["bat_resnext26ts"], attn_kwargs={"block_size": 2})
    return byobnet.ByobNet(cfg, num_classes=10)


# The smallest member of each family (by parameters) and what in it needs the new rules.
TIMM = {
    "eca_resnext26ts": "Conv1d (ECA's channel attention)",
    "resnetblur18": "reflection padding (blur pooling)",
    "tresnet_m": "reflection padding (anti-aliased downsampling)",
    "densenetblur121d": "reflection padding (blur pooling)",
    "nextvit_small": "AvgPool1d (efficient multi-head self-attention)",
    "lambda_resnet26t": "Conv3d (the lambda layer's position convolution)",
    "efficientvim_m1": "Conv1d (hidden-state mixer)",
    "lowformer_b0": "Conv1d",
}




@pytest.mark.parametrize("name", [*TIMM, "bat_resnext26ts"], ids=lambda name: f"{name}: {TIMM.get(name, 'adaptive max pooling')}")
def test_timm_model_converted_equals_builtin_in_float64(name):
    torch.manual_seed(0)
    model = _bat_resnext26ts() if name == "bat_resnext26ts" else timm.create_model(name, num_classes=10)
    _, computing = _compare(model.double().eval(), [torch.randn(2, 3, 64, 64, dtype=torch.float64)])
    assert computing == [], f"{name}: built-in computing nodes {computing}"


def _video_resnet(block, conv_makers, stem):
    """torchvision's video ResNets with one block per stage (r3d_18 and r2plus1d_18 have two)."""
    return resnet.VideoResNet(block, conv_makers, [1, 1, 1, 1], stem, num_classes=10)


def _s3d():
    """torchvision's S3D whose final average pooling spans the 1 × 1 × 1 map an 8 × 32 × 32 clip leaves
    (its own 2 × 7 × 7 takes 16 × 224 × 224 clips; it is audited at that size below)."""
    model = torchvision.models.video.s3d(num_classes=10)
    model.avgpool = torch.nn.AvgPool3d(kernel_size=1, stride=1)
    return model


def _mvit_v2(spatial=(32, 32), temporal=4):
    """MViT v2 (rel_pos_embed, residual_pool, proj_after_attn, as mvit_v2_s), three blocks, the
    second pooling queries and keys."""
    blocks = [mvit.MSBlockConfig(heads, inputs, outputs, [3, 3, 3], [3, 3, 3], stride_q, stride_kv)
              for heads, inputs, outputs, stride_q, stride_kv in ((1, 16, 16, [1, 1, 1], [1, 2, 2]),
                                                                  (2, 16, 32, [1, 2, 2], [1, 2, 2]),
                                                                  (2, 32, 32, [1, 1, 1], [1, 1, 1]))]
    return mvit.MViT(spatial, temporal, blocks, residual_pool=True, residual_with_cls_embed=False, rel_pos_embed=True,
                     proj_after_attn=True, num_classes=10)


# name → (model, clip frames): 4 frames of 32 × 32, 8 for S3D, which halves time three times.
VIDEO = {
    "mc3_18": (lambda: torchvision.models.video.mc3_18(num_classes=10), 4),
    "r3d (r3d_18's blocks)": (lambda: _video_resnet(resnet.BasicBlock, [resnet.Conv3DSimple] * 4, resnet.BasicStem), 4),
    "r2plus1d (r2plus1d_18's blocks)": (lambda: _video_resnet(resnet.BasicBlock, [resnet.Conv2Plus1D] * 4,
                                                              resnet.R2Plus1dStem), 4),
    "s3d": (_s3d, 8),
    "mvit v2 (mvit_v2_s's blocks)": (_mvit_v2, 4),
}


@pytest.mark.parametrize("name", VIDEO)
def test_torchvision_video_model_converted_equals_builtin_in_float64(name):
    torch.manual_seed(0)
    build, frames = VIDEO[name]
    _, computing = _compare(build().double().eval(), [torch.randn(1, 3, frames, 32, 32, dtype=torch.float64)])
    assert computing == [], f"{name}: built-in computing nodes {computing}"


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s"])
def test_torchvision_video_model_at_its_own_size_has_every_gradient_hand_derived(name):
    """Built and run on the meta device (shapes, no values) at the size the model is made for."""
    size = (16, 224, 224) if name in ("s3d", "mvit_v2_s") else (4, 32, 32)
    with torch.device("meta"):
        model = handgrad.nn.convert(torchvision.models.get_model(name, num_classes=10))
        report = handgrad.nn.audit(model(torch.randn(1, 3, *size, requires_grad=True)))
    assert report.complete, f"{name}: {report}"

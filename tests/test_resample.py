"""What the registry-driven tests cannot see of the resampling family: PyTorch's own OpInfo samples of
these ops run inside ``hand_derived()``; the nearest kernels' index rules; the gradient being the
derivative of the forward where torch's own backward is not; the bytes each Function keeps;
unfold and fold being each other's backward at every order; grid_sample in half precision."""

import functools

import pytest
import torch
import torch.nn.functional as torch_F

import handgrad
import handgrad.functional as F
import handgrad.nn
from handgrad import testing
from handgrad.nn import audit

F64 = testing.TOLERANCES[torch.float64]

# PyTorch's OpInfo entries (name, variant) of the ops handgrad intercepts here (F.upsample_* call
# interpolate; fold and affine_grid have none).
PYTORCH_ENTRIES = [("nn.functional.interpolate", mode) for mode in
                   ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")] + [
    (f"nn.functional.{name}", "") for name in ("upsample_bilinear", "upsample_nearest", "unfold", "grid_sample",
                                               "pixel_shuffle", "pixel_unshuffle", "channel_shuffle")]


@functools.cache
def _pytorch_op_db():
    """PyTorch's OpInfo database, imported when first needed: importing it forbids setting torch.backends
    flags from then on (``disable_global_flags``), which conftest.py does once the session starts."""
    from torch.testing._internal.common_methods_invocations import op_db

    return {(info.name, info.variant_test_name): info for info in op_db}


def _run(info, sample, intercept):
    """The sample's output and the gradient of every input that requires one, for a fixed upstream gradient."""
    leaves = []

    def fresh(value):
        if not isinstance(value, torch.Tensor):
            return value
        copy = value.detach().clone().requires_grad_(value.requires_grad)
        if value.requires_grad:
            leaves.append(copy)
        return copy

    args = [fresh(sample.input), *map(fresh, sample.args)]
    kwargs = {k: fresh(v) for k, v in sample.kwargs.items()}
    with handgrad.hand_derived() if intercept else torch.enable_grad():
        output = info.op(*args, **kwargs)
    g = torch.randn(output.shape, generator=torch.Generator().manual_seed(0), dtype=output.dtype)
    return output, torch.autograd.grad(output, leaves, g, allow_unused=True)


def test_pytorch_opinfo_entries_of_the_family_are_all_found():
    names = {entry[0] for entry in PYTORCH_ENTRIES}
    found = sorted(key for key in _pytorch_op_db() if key[0] in names)
    assert found == sorted(PYTORCH_ENTRIES), found


@pytest.mark.filterwarnings("ignore:`nn.functional.upsample.*` is deprecated")
@pytest.mark.parametrize("entry", PYTORCH_ENTRIES, ids=lambda entry: ".".join(filter(None, entry)))
def test_resample_ops_equal_torch_on_pytorchs_own_opinfo_samples_inside_hand_derived(entry):
    """Every sample of PyTorch's own OpInfo (float64): inside hand_derived() the built-in's output and
    gradients, and not one built-in node that computes."""
    info = _pytorch_op_db()[entry]
    samples = list(info.sample_inputs("cpu", torch.float64, requires_grad=True))
    assert samples, f"{info.name}: no samples"
    for i, sample in enumerate(samples):
        expected, expected_grads = _run(info, sample, intercept=False)
        output, grads = _run(info, sample, intercept=True)
        name = f"{info.name} sample {i} ({tuple(sample.input.shape)}, {sample.args}, {sample.kwargs})"
        for label, got, want in [("output", output, expected), *(
                (f"gradient {k}", a, b) for k, (a, b) in enumerate(zip(grads, expected_grads)))]:
            d = testing.difference(f"{name}: {label}", got, want, F64)
            assert d.ok, str(d)
        report = audit(output)
        assert report.complete, f"{name}: {report}"


# -- interpolation: torch's kernels' index rules --------------------------------------------------------


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("layout", [
    ((2, 5, 6, 7), {"size": (9, 4)}, None),                          # H' + W' ≤ 128: the vectorized CPU kernel
    ((1, 2, 70, 90), {"size": (71, 100)}, None),                     # H' + W' > 128: the generic kernel
    ((1, 5, 40, 50), {"size": (70, 90)}, torch.channels_last),       # channels last, C > 3: vectorized
    ((1, 2, 5, 7), {"scale_factor": 1.1}, None),                     # an axis keeps its size: copied (vectorized)
    ((1, 2, 60, 70), {"scale_factor": (1.1, 2.05)}, None),           # kept / doubled size, generic: not copied
    ((1, 2, 5), {"scale_factor": 2.05}, None),                       # 1-D: generic
    ((1, 5, 3, 4, 5), {"scale_factor": 2.05}, torch.channels_last_3d),   # 3-D channels last, C > 3: vectorized
], ids=["small 2-D", "large 2-D", "channels last", "kept size", "generic kept and doubled", "1-D", "3-D channels last"])
def test_interpolate_nearest_copies_the_pixels_torchs_kernels_copy(mode, layout):
    shape, kwargs, memory_format = layout
    x = torch.randn(shape, dtype=torch.float64)
    x = x if memory_format is None else x.contiguous(memory_format=memory_format)
    y = F.interpolate(x.requires_grad_(), mode=mode, **kwargs)
    want = torch_F.interpolate(x, mode=mode, **kwargs)
    assert torch.equal(y, want)
    # laid out as torch's output (channels last in, channels last out), where a dropout after it draws
    assert y.stride() == want.stride(), (y.stride(), want.stride())


@pytest.mark.parametrize("call", [
    ("bicubic", (1, 1, 5, 5), {"mode": "bicubic", "scale_factor": 1.1, "align_corners": False}),
    ("bilinear, antialias", (1, 1, 5, 5), {"mode": "bilinear", "scale_factor": 1.1, "antialias": True}),
    ("nearest, 1-D", (1, 1, 5), {"scale_factor": 1.1}),
    ("nearest, 3-D, doubled", (1, 1, 5, 5, 5), {"scale_factor": 2.05}),
], ids=lambda call: call[0])
def test_interpolate_gradient_is_the_derivative_of_its_forward_where_torchs_is_not(call):
    """With a scale_factor (not recomputed) that keeps or doubles an axis's size, torch's backward
    kernels copy (or halve) that axis while its forward kernels interpolate it (bicubic, nearest in 1-D
    and 3-D), or the reverse (antialias): torch's gradient is not the derivative of its output, and
    gradcheck fails on it. handgrad's is that of the very same output."""
    _, shape, kwargs = call
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(F.interpolate(x, **kwargs), torch_F.interpolate(x, **kwargs), rtol=0, atol=1e-14)
    assert torch.autograd.gradcheck(lambda t: F.interpolate(t, **kwargs), (x,))
    assert not torch.autograd.gradcheck(lambda t: torch_F.interpolate(t, **kwargs), (x,), raise_exception=False), (
        "torch's interpolate gradient is now the derivative of its forward here: update docs/differences.md")


def test_interpolate_lanczos_stays_on_the_builtin_and_strict_names_it():
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    with handgrad.hand_derived():
        y = torch_F.interpolate(x, size=(5, 5), mode="lanczos", antialias=True)
    assert set(audit(y).builtin) == {"UpsampleLanczos2DAaBackward0"}, str(audit(y))
    with pytest.raises(RuntimeError, match=r"interpolate would run PyTorch's built-in backward"):
        with handgrad.hand_derived(strict=True):
            torch_F.interpolate(x, size=(5, 5), mode="lanczos", antialias=True)
    model = handgrad.nn.convert(torch.nn.Sequential(torch.nn.Upsample(scale_factor=2.0, mode="lanczos")))
    entry = handgrad.nn.coverage(model).entries[-1]
    assert entry.status == "built-in" and "mode='lanczos'" in entry.reason, entry


# -- memory: what each Function keeps -------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda x: F.interpolate(x, scale_factor=2.0, mode="bilinear"),
    lambda x: F.interpolate(x, size=(3, 9), mode="bicubic", antialias=True),
    lambda x: F.interpolate(x, scale_factor=1.5),
    lambda x: F.unfold(x, 2),
    lambda x: F.pixel_shuffle(x, 2),
    lambda x: F.channel_shuffle(x, 2),
], ids=["bilinear", "bicubic antialias", "nearest", "unfold", "pixel_shuffle", "channel_shuffle"])
def test_resampling_keeps_no_tensor_for_backward(call):
    """Linear maps: the backward needs the sizes and options, never x (torch's own nodes keep x for none
    of these either)."""
    y = call(torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True))
    assert y.grad_fn.saved_tensors == (), type(y.grad_fn).__name__


def test_grid_sample_keeps_the_input_only_when_the_grid_needs_a_gradient():
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(1, 3, 3, 2, dtype=torch.float64) * 2 - 1
    kept = F.grid_sample(x, grid, align_corners=False).grad_fn.saved_tensors
    assert [t is None for t in kept] == [True, False] and kept[1].shape == grid.shape
    kept = F.grid_sample(x, grid.requires_grad_(), align_corners=False).grad_fn.saved_tensors
    assert [t.shape for t in kept] == [x.shape, grid.shape]


# -- unfold and fold --------------------------------------------------------------------------------------


def test_unfold_and_fold_are_each_others_adjoint():
    """⟨unfold(x), c⟩ = ⟨x, fold(c)⟩ for overlapping, dilated, padded windows."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    window = dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(1, 2))
    columns = F.unfold(x, **window)
    c = torch.randn(columns.shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close((columns * c).sum(), (x * F.fold(c, (6, 7), **window)).sum(), rtol=1e-13, atol=0)


def test_unfold_and_fold_backward_are_each_other_at_every_order():
    """dL/dx of unfold is Fold of g, whose own derivative with respect to g is Unfold again."""
    gen = torch.Generator().manual_seed(1)
    x = testing.randn(gen, 2, 3, 5, 5)
    y = F.unfold(x, 3, padding=1)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(y, x, g, create_graph=True)
    assert type(gx.grad_fn).__name__ == "FoldBackward"
    v = torch.randn(gx.shape, generator=gen, dtype=torch.float64, requires_grad=True)
    (gg,) = torch.autograd.grad(gx, g, v, create_graph=True)
    assert type(gg.grad_fn).__name__ == "UnfoldBackward"
    torch.testing.assert_close(gg, torch_F.unfold(v, 3, padding=1))


def test_fold_output_holds_its_own_bytes_where_col2ims_holds_its_inputs():
    """torch's col2im leaves its output in a buffer the size of its input, nine times the output's
    for a 3×3 kernel at stride 1; handgrad's fold copies it out, so a layer that keeps it keeps its
    own bytes (VOLO's projection after its fold: tests/test_resample_models.py)."""
    c = torch.randn(2, 4 * 9, 25, dtype=torch.float64, requires_grad=True)
    theirs, ours = torch_F.fold(c, (5, 5), 3, padding=1), F.fold(c, (5, 5), 3, padding=1)
    assert theirs.untyped_storage().nbytes() == c.untyped_storage().nbytes() == 9 * theirs.nbytes
    assert ours.untyped_storage().nbytes() == ours.nbytes and torch.equal(ours, theirs)


# -- grid_sample in half precision ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_grid_sample_in_half_precision_is_closer_to_float64_than_torchs(dtype):
    """torch's CPU kernel computes a half-precision grid's pixel coordinates in half precision; handgrad's
    backward computes them in float32 (docs/differences.md): its gradients are nearer the float64 ones."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 9, generator=gen).to(dtype)
    grid = (torch.rand(2, 5, 6, 2, generator=gen) * 2.2 - 1.1).to(dtype)
    g = torch.randn(2, 3, 5, 6, generator=gen).to(dtype)

    def grads(function, precision):
        leaves = [t.to(precision).requires_grad_() for t in (x, grid)]
        return torch.autograd.grad(function(*leaves, align_corners=False), leaves, g.to(precision))

    truth = grads(torch_F.grid_sample, torch.float64)
    for k, name in enumerate(("input", "grid")):
        ours = (grads(F.grid_sample, dtype)[k].double() - truth[k]).abs().max()
        theirs = (grads(torch_F.grid_sample, dtype)[k].double() - truth[k]).abs().max()
        assert ours < theirs, f"dL/d{name}: handgrad is {ours:.3g} from float64, torch {theirs:.3g}"

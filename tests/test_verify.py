"""``handgrad.testing.verify`` on a user's own Functions: a correct one passes, and each kind of
mistake fails with a sentence naming the check, the sample and the tensor."""

import pytest
import torch

from handgrad import testing


def _x(*shape):
    return torch.randn(shape, dtype=torch.float64, requires_grad=True)


SAMPLES = [(_x(5, 3),), (_x(2, 3, 4),), testing.Sample((_x(7),), name="a vector")]


def _tanh_function(derivative=lambda g, y: g * (1 - y * y), vmap=False, jvp=False):
    """A user's hand-derived tanh, written as a new user would after PyTorch's extending.rst."""

    class MyTanh(torch.autograd.Function):
        generate_vmap_rule = vmap

        @staticmethod
        def forward(x):
            return torch.tanh(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)
            ctx.save_for_forward(output)

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return derivative(g, y)

    if jvp:
        MyTanh.jvp = staticmethod(lambda ctx, dx: derivative(dx, ctx.saved_tensors[0]))
    return MyTanh


def _failures(report, check):
    return [f for f in report.failures if f": {check}: " in f]


def test_verify_passes_a_correct_hand_derived_function():
    MyTanh = _tanh_function()
    report = testing.verify(MyTanh.apply, torch.tanh, SAMPLES)
    assert report.passed, report
    assert report.failures == []
    assert str(report).splitlines()[-1].startswith("all passed"), str(report)
    statuses = {o.check: o.status for o in report.outcomes if o.device == "cpu" and o.sample == "a vector"}
    for check in ("reference", "gradcheck", "gradgradcheck", "compile", "strided", "needs_input_grad", "hand_derived",
                  "autocast"):
        assert statuses[check] == "pass", f"{check}: {statuses[check]}"
    assert statuses["vmap"] == "n/a", "a Function without a vmap rule cannot be vmapped: nothing to check"
    rows = {(r["device"], r["dtype"]) for r in report.rows}
    assert ("cpu", "float64") in rows and ("cpu", "bfloat16") in rows


def test_verify_checks_vmap_and_forward_mode_where_the_function_has_them():
    MyTanh = _tanh_function(vmap=True, jvp=True)
    report = testing.verify(MyTanh.apply, torch.tanh, SAMPLES)
    assert report.passed, report
    vmap = [o for o in report.outcomes if o.check == "vmap"]
    assert vmap and all(o.status == "pass" for o in vmap)
    gradchecks = [o for o in report.outcomes if o.check == "gradcheck"]
    assert all(o.detail == "forward mode included" for o in gradchecks), gradchecks


def test_verify_catches_a_wrong_derivative():
    MyTanh = _tanh_function(derivative=lambda g, y: g * (1 - y))            # forgot to square
    report = testing.verify(MyTanh.apply, torch.tanh, SAMPLES)
    assert not report.passed
    reference = _failures(report, "reference")
    assert reference, report
    assert "gradient of input 0 differs from the reference, max abs" in reference[0]
    assert reference[0].startswith("MyTanh cpu float64 [sample 0]: reference: "), reference[0]
    assert "FAIL" in str(report)


def test_verify_names_the_worst_element_of_a_wrong_gradient_once_with_every_check_it_failed():
    MyTanh = _tanh_function(derivative=lambda g, y: g * (1 - y))            # forgot to square
    x = torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=torch.float64, requires_grad=True)
    report = testing.verify(MyTanh.apply, torch.tanh, [(x,)], devices=["cpu"])
    (line, *others) = [f for f in report.failures if "gradient of input 0" in f]
    assert not others, "the same wrong gradient reported more than once:\n" + "\n".join(report.failures)
    g = torch.randn(2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tanh(x.detach())
    hand, right = g * (1 - y), g * (1 - y * y)
    worst = ((hand - right).abs() - 1e-7 * right.abs()).argmax()
    i, j = divmod(int(worst), 2)
    assert f"worst at [{i}, {j}]: {hand[i, j].item():.6g} instead of {right[i, j].item():.6g}" in line, line
    assert f"(input 0 = {x[i, j].item():.6g} there)" in line, line
    assert "also failed: reference in float32, bfloat16, float16; gradcheck; strided; autocast in bfloat16" in line, line


def test_verify_ends_a_gradcheck_failure_as_a_sentence():
    MyTanh = _tanh_function(derivative=lambda g, y: g * (1 - y))
    report = testing.verify(MyTanh.apply, torch.tanh, SAMPLES[:1], devices=["cpu"], checks=("gradgradcheck",))
    (failure,) = report.failures
    assert failure.endswith("GradcheckError: Jacobian mismatch for output 0 with respect to input 0."), failure


def test_verify_catches_a_builtin_backward_kernel():
    MyTanh = _tanh_function(derivative=lambda g, y: torch.ops.aten.tanh_backward(g, y))
    report = testing.verify(MyTanh.apply, torch.tanh, SAMPLES)
    assert not report.passed
    (failure, *_) = _failures(report, "hand_derived")
    assert "built-in backward kernels ran during backward: tanh_backward" in failure


def test_verify_names_the_op_whose_derivative_ran_in_double_backward():
    """A SiLU whose backward uses torch.sigmoid is hand-derived to first order; its double backward
    differentiates torch.sigmoid with PyTorch's kernel. The report says so, in that pass, with the fix."""

    class SiLU(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x * torch.sigmoid(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            s = torch.sigmoid(x)
            return g * (s + x * s * (1 - s))                     # dL/dx = g (σ + x σ (1 − σ))

    report = testing.verify(SiLU.apply, torch.nn.functional.silu, SAMPLES, checks=("hand_derived", "double_backward"))
    assert not _failures(report, "hand_derived"), report
    (failure, *_) = _failures(report, "double_backward")
    assert ("built-in backward kernels ran during double backward: sigmoid_backward (SiLU.backward called "
            "torch's sigmoid, whose derivative it is: use handgrad.functional.sigmoid there") in failure, failure


def test_verify_refuses_a_function_class_in_place_of_its_apply():
    with pytest.raises(TypeError, match=r"MyTanh is a torch\.autograd\.Function class; pass .*MyTanh\.apply"):
        testing.verify(_tanh_function(), torch.tanh, SAMPLES)


def test_verify_refuses_the_builtin_itself():
    report = testing.verify(torch.tanh, torch.tanh, SAMPLES, checks=("hand_derived",))
    assert not report.passed
    (failure, *_) = _failures(report, "hand_derived")
    assert "the output does not come from a custom autograd Function" in failure


def test_verify_catches_builtin_autograd_around_the_function():
    MyTanh = _tanh_function()
    report = testing.verify(lambda x: 2 * MyTanh.apply(x), lambda x: 2 * torch.tanh(x), SAMPLES,
                            checks=("hand_derived",))
    (failure, *_) = _failures(report, "hand_derived")
    assert "built-in autograd nodes compute part of the result: MulBackward0" in failure


@pytest.mark.parametrize("samples, message", [
    ([], "no samples were given, so nothing was verified"),
    ([(torch.randn(3, dtype=torch.float64),)], "no sample has an input with requires_grad=True"),
    ([(torch.randn(3, requires_grad=True),)], "input 0 is torch.float32 on cpu; samples are float64 CPU tensors"),
], ids=["no samples", "nothing requires grad", "float32 sample"])
def test_verify_fails_when_there_is_nothing_to_verify(samples, message):
    report = testing.verify(_tanh_function().apply, torch.tanh, samples)
    assert not report.passed and not report
    assert any(message in f for f in report.failures), report.failures
    assert "FAIL" in str(report)


class _Scale(torch.autograd.Function):
    """y = a x, whose backward computes both gradients whether asked for or not."""

    @staticmethod
    def forward(a, x):
        return a * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        a, x = ctx.saved_tensors
        return (g * x).sum_to_size(a.shape), g * a


def test_verify_advises_on_gradients_computed_for_inputs_that_did_not_ask():
    """Legal PyTorch (autograd drops them): advice that costs time, not a failure."""
    samples = [(_x(1), _x(4, 3))]
    report = testing.verify(_Scale.apply, torch.mul, samples, checks=("needs_input_grad",))
    assert report.passed, report
    (advice, *_) = report.advice
    assert "_Scale.backward computes a gradient for its input(s) [1], which did not ask for one" in advice
    assert "NOTE " in str(report)


def test_verify_catches_an_op_that_refuses_non_contiguous_input():
    class ViewOnly(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x.view(-1).tanh().view(x.shape)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y * y)

    report = testing.verify(ViewOnly.apply, torch.tanh, SAMPLES[:1], checks=("strided",))
    (failure, *_) = _failures(report, "strided")
    assert "non-contiguous inputs: RuntimeError: view size is not compatible" in failure


def test_verify_strided_compares_with_contiguous_inputs_where_the_reference_raises():
    def refuses(x):
        raise RuntimeError("tensor does not have a device")        # as CUDA's batch norm did with β but no γ

    report = testing.verify(_tanh_function().apply, refuses, SAMPLES, checks=("strided",))
    statuses = [o.status for o in report.outcomes if o.check == "strided"]
    assert len(statuses) >= len(SAMPLES) and set(statuses) == {"pass"}, report

    class LayoutDependent(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return torch.tanh(x) if x.is_contiguous() else torch.tanh(x) + 1

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(torch.tanh(inputs[0]))

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y * y)

    report = testing.verify(LayoutDependent.apply, refuses, SAMPLES[:1], checks=("strided",))
    (failure, *_) = _failures(report, "strided")
    assert "output differs from contiguous inputs" in failure, failure


def test_verify_catches_a_vmap_rule_that_does_not_batch():
    MyTanh = _tanh_function(derivative=lambda g, y: g * (1 - y * y) if g.sum() > -1e9 else g, vmap=True)
    report = testing.verify(MyTanh.apply, torch.tanh, SAMPLES[:1], checks=("vmap",))
    (failure, *_) = _failures(report, "vmap")
    assert "under vmap" in failure


def test_verify_catches_an_op_that_ignores_autocast():
    class MyLinear(torch.autograd.Function):
        @staticmethod
        def forward(x, W):
            with torch.autocast("cpu", enabled=False):      # computes in float32 whatever autocast says
                return x @ W.t()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            x, W = ctx.saved_tensors
            return g @ W, g.t() @ x

    report = testing.verify(MyLinear.apply, torch.nn.functional.linear, [(_x(4, 3), _x(2, 3))], checks=("autocast",),
                            devices=["cpu"])
    (failure, *_) = _failures(report, "autocast")
    assert ("output dtype differs: torch.float32 here, torch.bfloat16 from the reference under "
            "autocast(torch.bfloat16)") in failure
    assert "max abs inf" not in failure


def test_verify_compares_with_a_numpy_oracle():
    import numpy as np

    def tanh_numpy(x):
        y = np.tanh(x)
        return y, lambda g: (g * (1 - y * y),)

    def wrong_numpy(x):
        y = np.tanh(x)
        return y, lambda g: (g * (1 - y),)

    MyTanh = _tanh_function()
    assert testing.verify(MyTanh.apply, torch.tanh, SAMPLES, numpy=tanh_numpy, checks=("numpy",)).passed
    report = testing.verify(MyTanh.apply, torch.tanh, SAMPLES, numpy=wrong_numpy, checks=("numpy",))
    (failure, *_) = _failures(report, "numpy")
    assert "gradient of input 0 differs from the NumPy oracle" in failure


def test_verify_options_narrow_what_runs():
    MyTanh = _tanh_function()
    report = testing.verify(MyTanh.apply, torch.tanh, SAMPLES, dtypes=(torch.float64,), devices=["cpu"],
                            checks=("reference", "gradcheck"))
    assert report.passed, report
    assert {o.check for o in report.outcomes} == {"reference", "gradcheck"}
    assert {o.dtype for o in report.outcomes} == {torch.float64}
    with pytest.raises(ValueError, match=r"unknown checks \['gradchek'\]"):
        testing.verify(MyTanh.apply, torch.tanh, SAMPLES, checks=("gradchek",))


def test_verify_tolerances_can_be_loosened_for_one_dtype():
    MyTanh = _tanh_function(derivative=lambda g, y: g * (1 - y * y) * (1 + 1e-3))   # off by 0.1 %
    tight = testing.verify(MyTanh.apply, torch.tanh, SAMPLES, dtypes=(torch.float32,), checks=("reference",))
    assert not tight.passed
    loose = testing.verify(MyTanh.apply, torch.tanh, SAMPLES, dtypes=(torch.float32,), checks=("reference",),
                           tolerances={torch.float32: testing.Tolerance(atol=1e-2, rtol=1e-2)})
    assert loose.passed, loose

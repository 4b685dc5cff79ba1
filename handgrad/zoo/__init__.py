"""The model zoos, converted: every architecture family of timm and torchvision's segmentation,
detection, video and optical-flow models, each audited (every node of its graph hand-derived or
movement) and compared with the built-in model in float64 (the output, every parameter's and every
input's gradient, and the bytes kept for backward).

- ``compare(model, inputs, forward)``: the built-in model and its converted copy on the same inputs,
  a ``Comparison``;
- ``audit_on_meta(build, inputs, forward)``: a model built and run on the meta device (shapes, no
  values), at its own size, for nothing;
- ``handgrad.zoo.timm_models``: timm's families (one representative each, ``FAMILIES``) and how each
  is built small enough to compare; ``handgrad.zoo.torchvision_models``: torchvision's models
  beyond classification;
- ``python -m handgrad.zoo``: the whole zoo, audited and compared, one line a model (minutes on a CPU;
  ``--help``). tests/test_zoo_timm.py and tests/test_zoo_torchvision.py run the audits of every model
  and the comparison of a subset.

timm and torchvision are imported by the modules that need them, never by ``import handgrad``.
"""

import contextlib
import copy
import dataclasses

import torch
from torch.overrides import TorchFunctionMode

import handgrad.nn
from handgrad.testing import TOLERANCES, difference
from handgrad.testing.memory import Kept

F64 = TOLERANCES[torch.float64]


def tolerance(expected):
    """float64's tolerance for ``expected``, its absolute part a fraction of the tensor's largest
    magnitude where that is over 1. A deep network's gradients grow to thousands (deeplabv3_resnet101's
    first batch norm's bias: 1.3e4), and an entry among them that cancels to near zero carries the
    rounding of the large ones it was summed from, 1e-14 of the scale: over 1e-10 absolute, however
    exact both computations are."""
    if expected is None or not expected.numel() or expected.abs().max() <= 1:
        return F64
    return dataclasses.replace(F64, scaled=True)


def call(model, *inputs):
    """The forward of a classifier: the model on its inputs, the first output where it gives several."""
    output = model(*inputs)
    return output[0] if isinstance(output, (tuple, list)) else output


@dataclasses.dataclass
class Comparison:
    """The built-in model and its converted copy on the same inputs.

    Attributes:
        differences: ``handgrad.testing.Difference`` of the output and of every input's and parameter's
            gradient (converted against built-in)
        kept: bytes kept for backward, (converted, built-in), the parameters not counted
        audit: ``handgrad.nn.audit`` of the converted model's output
        graded: how many parameters the built-in model's loss reaches (those it does not reach, a
            detector's proposal network in eval mode, get no gradient on either side)
    """

    differences: list
    kept: tuple
    audit: object
    graded: int

    @property
    def equal(self):
        """Every gradient within float64's tolerance, no more bytes kept than the built-in, and at
        least one parameter compared."""
        return all(d.ok for d in self.differences) and self.kept[0] <= self.kept[1] and self.graded > 0

    def problems(self):
        """What is not equal, in words."""
        found = [str(d) for d in self.differences if not d.ok]
        if self.kept[0] > self.kept[1]:
            found.append(f"the converted model keeps {self.kept[0]} bytes for backward, the built-in {self.kept[1]}")
        if not self.graded:
            found.append("no parameter gets a gradient: nothing was compared")
        return found


class ExactHardsigmoid(TorchFunctionMode):
    """``F.hardsigmoid`` as relu6(x + 3) / 6 in torch's own ops. torch's CPU hardsigmoid backward
    multiplies g by 1/6 rounded to float32 (0.1666666716), in float64 too (docs/differences.md), off
    float64's gradient by 3e-8 relative; ``compare`` runs the built-in model under this, so that it
    compares float64 with float64."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.hardsigmoid:
            x, inplace = args[0], (args[1:] or [kwargs.get("inplace", False)])[0]
            y = torch.nn.functional.relu6(x + 3) / 6
            return x.copy_(y) if inplace else y
        return func(*args, **kwargs)


def compare(model, inputs, forward=call, seed=0):
    """``model`` and its converted copy (``handgrad.nn.convert`` of a deep copy) run by
    ``forward(model, *inputs)`` on leaves made from ``inputs``, each from the same seed (dropout and
    stochastic depth draw the same masks, a detector samples the same boxes); the loss is the output's
    elementwise product with a ramp from −1 to 1, so that every output counts differently. Returns a
    ``Comparison``."""
    torch.manual_seed(seed)
    hand = handgrad.nn.convert(copy.deepcopy(model))
    runs = []
    for m in (model, hand):
        leaves = [x.detach().clone().requires_grad_() for x in inputs]
        params = dict(m.named_parameters())
        torch.manual_seed(seed + 1)
        with Kept(exclude=[*params.values(), *m.buffers()]) as kept, \
                ExactHardsigmoid() if m is model else contextlib.nullcontext():
            out = forward(m, *leaves)
        report = handgrad.nn.audit(out) if m is hand else None
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()
        wrt = [*leaves, *params.values()]
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
        runs.append((out, dict(zip([f"input {i}" for i in range(len(leaves))] + list(params), grads)), kept.bytes,
                     report))
    (out_ref, grads_ref, kept_ref, _), (out, grads, kept_hand, report) = runs
    differences = [difference("output", out, out_ref, tolerance(out_ref))]
    differences += [difference(f"d{name}", grads[name], g, tolerance(g)) for name, g in grads_ref.items()
                    if g is not None or grads[name] is not None]
    graded = sum(g is not None for name, g in grads_ref.items() if not name.startswith("input "))
    return Comparison(differences, (kept_hand, kept_ref), report, graded)


def audit_on_meta(build, inputs, forward=call, training=True):
    """``handgrad.nn.audit`` of a model built by ``build()`` and run by ``forward`` on the meta device
    at ``inputs``' shapes (shapes only, nothing computed: a model of any size, at its own input size,
    for nothing). Returns (audit, parameter count)."""
    with torch.device("meta"):
        model = handgrad.nn.convert(build()).train(training)
        output = forward(model, *(torch.empty(shape, requires_grad=True) for shape in inputs))
        return handgrad.nn.audit(output), sum(p.numel() for p in model.parameters())

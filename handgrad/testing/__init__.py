"""Verify a hand-derived Function in one call: ``verify(function, reference, samples)``.

``function`` applies your ``torch.autograd.Function`` (a functional face, such as
``handgrad.functional.tanh``); ``reference`` is a callable with the same signature that computes
the same thing another way (a torch built-in, or your own plain-torch formula); ``samples`` is a
list of argument tuples (or ``Sample`` objects, which add keyword arguments and a name) of float64
CPU tensors, the ones with ``requires_grad=True`` being differentiated::

    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    report = handgrad.testing.verify(my_tanh, torch.tanh, [(x,)])
    assert report.passed, report

Per sample, on every device present (CPU, and CUDA where there is one), the checks of the table
``handgrad.testing.checks.TABLE``:

- ``reference``: output and the gradient of every differentiable input against the reference's,
  for the same random upstream gradient, in float64, float32, bfloat16 and float16 (``TOLERANCES``);
- ``numpy``: the same against a NumPy oracle, when one is given;
- ``gradcheck``, ``gradgradcheck``: finite differences in float64, forward mode included where
  every Function of the op defines ``jvp``;
- ``vmap``: per-sample outputs and gradients with ``torch.func.vmap`` against a Python loop, where
  the Functions support vmap;
- ``compile``: ``torch.compile`` (AOTAutograd, which traces the backward too) gives the eager result;
- ``strided``: non-contiguous inputs give the reference's result on the same inputs;
- ``needs_input_grad``: backward returns None for every input that did not ask for a gradient;
- ``hand_derived``: the output comes from a custom Function, no built-in ``*_backward`` kernel is
  dispatched during backward (nor during double backward), and no built-in autograd node other
  than reshaping and casting sits between the inputs and the output;
- ``autocast``: under ``torch.autocast`` (CPU bfloat16; CUDA float16) the output and gradients
  have the reference's dtypes and values.

No samples, or no sample with an input that requires grad, is a failure, never a pass.

The package, by concern: ``compare`` (tolerances, ``difference``), ``samples`` (what a test calls,
and how a sample is run), ``graph`` (what the autograd graph holds), ``checks`` (the table),
``report`` and ``verify``. handgrad's own cases, op by op, are the test database
``handgrad.testing.op_db``, which ``import handgrad.testing`` does not load.
"""

from handgrad.testing.checks import CHECKS
from handgrad.testing.compare import DTYPES, TOLERANCES, Difference, Tolerance, difference
from handgrad.testing.report import Report, format_markdown, format_table, summary
from handgrad.testing.samples import ErrorInput, ModuleSample, Sample, randn
from handgrad.testing.verify import available_devices, verify

__all__ = ["Sample", "ErrorInput", "ModuleSample", "Tolerance", "TOLERANCES", "DTYPES", "CHECKS", "verify", "Report",
           "available_devices", "difference", "Difference", "randn", "format_table", "format_markdown", "summary"]

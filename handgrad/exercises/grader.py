"""Grading a learner's Function: ``handgrad.testing.verify``, and when a gradient is wrong, a diagnosis.

``check(name, function)`` runs verify twice. First its comparison with the reference alone, in
float64 on the CPU: while a gradient is wrong, every other check fails with it (gradcheck, strided,
autocast, each dtype), so the report is the diagnosis, in a second. Once the gradients are right,
verify runs in full, every check on every dtype and device, exactly as on handgrad's own ops: the
exercise passes when that passes.

The diagnosis runs the learner's Function again on each sample, for the upstream gradient verify
used, and records what its backward returned before autograd checks it (so a gradient of the wrong
shape is seen, not only autograd's complaint). Each wrong gradient is compared with the exercise's
catalogue of classic mistakes, then with the mistakes any gradient can make (None, another
input's gradient, transposed, the wrong shape, the wrong sign, a constant factor); failing those,
the report says which element is off, by how much, on which sample. An exception in the learner's
forward or backward is one sentence naming the line it came from and the shapes of the tensors
there, never a traceback.
"""

import dataclasses
import linecache
import math
import textwrap
import traceback
from pathlib import Path

import torch

from handgrad.exercises._exercise import EXERCISES, Mistake, grad_name
from handgrad.testing import TOLERANCES, difference, verify
from handgrad.testing.checks import TABLE, exception_line
from handgrad.testing.graph import graph, recording_backward
from handgrad.testing.samples import differentiable_outputs, outputs_of, run, seeded, upstream

WIDTH = 88                                    # the report's lines fit a terminal of 88 columns or more
SEED = 0                                      # of the upstream gradients, verify's and the diagnosis's
UNWRITTEN = "not written yet"                 # what a skeleton's backward raises


def get(name):
    """The exercise called ``name``."""
    if name not in EXERCISES:
        raise ValueError(f"no exercise {name!r}; the exercises are {', '.join(EXERCISES)}")
    return EXERCISES[name]


def check(name, function):
    """Grade ``function``, the learner's answer to exercise ``name``; returns a ``Report``.

    Args:
        name: the exercise (``handgrad.exercises.names()``)
        function: the learner's ``torch.autograd.Function`` class, its ``apply``, or a function that
            calls it with the exercise's arguments

    Returns:
        ``Report``: ``passed``, and printed, what was checked and what is wrong.
    """
    exercise = get(name)
    apply, classes = _applying(function)
    samples = exercise.make_samples()
    label = getattr(classes[0], "__name__", name) if classes else name
    first = verify(apply, exercise.reference, samples, name=label, checks=("reference",), dtypes=(torch.float64,),
                   devices=["cpu"], seed=SEED)
    if not first.passed:
        diagnosis = Diagnosis(exercise, apply, classes, samples)
        return Report(exercise, first, diagnosis.findings(first), graded=False, mistakes=diagnosis.named)
    return Report(exercise, verify(apply, exercise.reference, samples, name=label, seed=SEED), [], graded=True)


def _applying(function):
    """(what applies it, its Function classes where known) for a class, its apply, or a function."""
    if isinstance(function, type) and issubclass(function, torch.autograd.Function):
        return function.apply, [function]
    owner = getattr(function, "__self__", None)
    if isinstance(owner, type) and issubclass(owner, torch.autograd.Function):
        return function, [owner]
    if not callable(function):
        raise TypeError(f"check: expected a torch.autograd.Function class or its apply, got {type(function).__name__}")
    return function, []


# -- the report ------------------------------------------------------------------------------------


def _wrap(text, indent=""):
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def _hanging(head, text):
    """``head`` then ``text``, its further lines indented to where the text began."""
    if not text:
        return head.rstrip()
    return textwrap.fill(text, WIDTH, initial_indent=head, subsequent_indent=" " * len(head), break_on_hyphens=False)


def _number(value):
    return "0" if value == 0 else f"{value:.2g}"


class Report:
    """What ``check`` found: ``passed``, ``findings`` (what is wrong, one paragraph each),
    ``mistakes`` (those of the exercise's catalogue that a gradient matched), ``verification``
    (verify's ``Report``: of every check once ``graded``, else of the comparison with the reference
    alone) and, printed, a report that fits a terminal."""

    def __init__(self, exercise, verification, findings, graded, mistakes=()):
        self.exercise = exercise
        self.verification = verification
        self.findings = findings
        self.graded = graded
        self.mistakes = list(mistakes)

    @property
    def passed(self):
        return self.graded and self.verification.passed

    def __bool__(self):
        return self.passed

    def _checks(self):
        """One line per check of verify: pass, FAIL or n/a, with the largest differences or why not."""
        lines = []
        for check in TABLE:
            outcomes = [o for o in self.verification.outcomes if o.check == check.name]
            if not outcomes:
                continue
            statuses = {o.status for o in outcomes}
            status = "FAIL" if "FAIL" in statuses else "pass" if "pass" in statuses else "n/a"
            detail = ""
            if status == "n/a":
                detail = outcomes[0].detail
            elif status == "pass" and check.numeric:
                largest = {}
                for o in outcomes:
                    name = str(o.dtype).removeprefix("torch.")
                    largest[name] = max([largest.get(name, 0.0)] + [d.max_abs for d in o.diffs if math.isfinite(d.max_abs)])
                detail = "largest difference: " + ", ".join(f"{k} {_number(v)}" for k, v in largest.items())
            lines.append(_hanging(f"  {check.name:<18}{status:<6}", detail))
        return lines

    def __str__(self):
        name, n = self.exercise.name, len(self.exercise.make_samples())
        devices = sorted({o.device for o in self.verification.outcomes})
        if self.passed:
            out = [_wrap(f"{name}: passed. Every check of handgrad.testing.verify, on its {n} samples "
                         f"({', '.join(devices)}):"), *self._checks()]
            if self.verification.advice:
                out.append(_wrap("note: backward computes gradients that no input asked for (legal: autograd drops "
                                 "them); `if ctx.needs_input_grad[i]:` around each one skips that work.", "  "))
            return "\n".join(out)
        if not self.graded:
            count = "" if len(self.findings) == 1 else f" {len(self.findings)} things to mend:"
            return "\n\n".join([f"{name}: not passed.{count}", *(_wrap(f, "  ") for f in self.findings),
                                _wrap(f"(Compared in float64 with handgrad's {name} on {n} samples; the other "
                                      "checks of verify run once the gradients are right.)")])
        failed = list(dict.fromkeys(o.check for o in self.verification.outcomes if o.status == "FAIL"))
        out = [_wrap(f"{name}: not passed. The gradients are right, but handgrad.testing.verify failed "
                     f"{', '.join(failed)} ({', '.join(devices)}):"), *self._checks(), ""]
        out += [_hanging("  FAIL ", f) for f in self.verification.failures]
        out += ["", *(_wrap(f"{check}: {MEANING[check]}", "  ") for check in failed if check in MEANING)]
        return "\n".join(out)

    __repr__ = __str__


# What a check that fails once the gradients are right asks of a learner's backward.
MEANING = {
    "reference": "in a lower precision the result drifts from the reference's: a formula that loses "
                 "precision (an exp without the maximum subtracted, a difference of large numbers), or "
                 "a tensor kept in another dtype than g's.",
    "gradcheck": "finite differences disagree with backward somewhere the float64 comparison did not look.",
    "gradgradcheck": "it differentiates backward itself: compute it with differentiable tensor operations "
                     "on g and the saved tensors, without .detach(), .numpy(), .item(), torch.no_grad() or "
                     "in-place writes into them.",
    "compile": "torch.compile traces forward and backward: values read into Python (.item(), .tolist()) "
               "or code that depends on them stop it.",
    "strided": "inputs that are not contiguous in memory: .view() refuses some of them, .reshape() does not.",
    "hand_derived": "backward must compute the gradient itself: no torch.autograd.grad, .backward(), nor a "
                    "built-in *_backward function.",
    "double_backward": "backward's own derivative must be hand-derived too: a torch.softmax, torch.sigmoid "
                       "or torch.tanh in backward brings PyTorch's derivative kernel along (handgrad.functional's "
                       "are hand-derived all the way); where it raised, the message says why.",
    "autocast": "under torch.autocast, forward's built-ins compute in bfloat16 (float16 on CUDA): keep the "
                "saved tensors in the output's dtype (the skeleton's setup_context does) so that backward "
                "computes in g's.",
    "kept_bytes": "forward keeps more for backward than the built-in: save only what backward reads (the "
                  "output where the derivative is written with it, as σ' = σ (1 − σ)), and no copies.",
}


# -- the diagnosis ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Attempt:
    """What the learner's Function gave on one sample: its outputs, and the gradient of each input
    by name (what backward returned for it, or autograd's result where that is known), or the one
    sentence saying why there is none."""

    outputs: list = None
    grads: dict = None
    error: str = None


class Diagnosis:
    """The learner's gradients on every sample, against the reference's and each mistake's."""

    def __init__(self, exercise, apply, classes, samples):
        self.exercise, self.apply, self.classes, self.samples = exercise, apply, list(classes), samples
        self.tolerance = TOLERANCES[torch.float64]
        self.named = []                       # the catalogue's mistakes that a gradient matched

    def findings(self, verification):
        """What is wrong, one paragraph each; verify's own failures where nothing else is found."""
        found = []
        runs = []
        for sample in self.samples:
            attempt = self._attempt(sample)
            if attempt.error is not None:
                return [attempt.error]
            expected = run(self.exercise.reference, sample, torch.float64, "cpu", SEED)
            runs.append((sample, attempt, expected))
        found += self._outputs(runs)
        found += self._gradients(runs)
        return found or [f"handgrad.testing.verify failed: {f}" for f in verification.failures]

    # -- running the learner's Function

    def _attempt(self, sample):
        args, kwargs = sample.call_args(torch.float64, "cpu")
        try:
            with seeded("cpu"):
                outputs = outputs_of(self.apply(*args, **kwargs))
        except Exception as error:
            return Attempt(error=self._located(error, "forward"))
        if not self.classes:
            self.classes = graph(outputs)[0]
        wanted = differentiable_outputs(outputs)
        keys = [key for _, key in sample.differentiable()]
        if not wanted:
            return Attempt(error="No output requires grad: forward's result is cut off from its inputs (a "
                                 "torch.no_grad(), a .detach() or an integer dtype?), so there is nothing to "
                                 "differentiate.")
        failure = None
        with recording_backward(self.classes) as (calls, _):
            try:
                found = torch.autograd.grad(wanted, [args[k] for k in keys], upstream(wanted, SEED), allow_unused=True)
            except Exception as error:
                found, failure = None, error
        if failure is not None and not calls:
            return Attempt(error=self._located(failure, "backward"))
        returned = self._returned(calls, len(args))
        if isinstance(returned, str):
            return Attempt(error=returned)
        strange = [(self.exercise.inputs[k], returned[k]) for k in keys if returned is not None
                   and returned[k] is not None and not isinstance(returned[k], torch.Tensor)]
        if strange:
            name, value = strange[0]
            return Attempt(error=f"Backward returned a {type(value).__name__} for {name}; a gradient is a tensor "
                                 f"of {name}'s shape.")
        if found is None and returned is None:
            return Attempt(error=f"Backward failed: {exception_line(failure)}")
        names = self.exercise.inputs
        grads = {names[k]: (returned[k] if found is None else found[i]) for i, k in enumerate(keys)}
        return Attempt(outputs=outputs, grads=grads)

    def _returned(self, calls, n_inputs):
        """What the one backward call returned, one value per input; None where the graph is not one
        call of the learner's Function; a sentence where it returned the wrong number of values."""
        if len(calls) != 1:
            return None
        cls, _, returned = calls[0]
        if len(returned) != n_inputs:
            inputs = ", ".join(self.exercise.inputs)
            return (f"{cls.__name__}.backward returned {len(returned)} "
                    f"{'value' if len(returned) == 1 else 'values'}; forward takes {n_inputs} "
                    f"{'input' if n_inputs == 1 else 'inputs'} ({inputs}): "
                    "backward returns one gradient per input, in that order, None for an input without one.")
        return returned

    def _located(self, error, stage):
        """One sentence: the exception, the line of the learner's code it came from, and the shapes
        of the tensors there."""
        functions = [f for cls in self.classes for f in _functions_of(cls)]
        if hasattr(self.apply, "__code__"):
            functions.append(self.apply)
        files = {f.__code__.co_filename for f in functions}
        frames = [(frame, line) for frame, line in traceback.walk_tb(error.__traceback__)
                  if frame.f_code.co_filename in files]
        if isinstance(error, NotImplementedError) and stage == "backward":
            return self._unwritten(error, frames)
        if not frames:
            return f"Your {stage} failed: {exception_line(error)}"
        frame, line = frames[-1]
        owner = next((cls.__name__ for cls in self.classes
                      if frame.f_code in {f.__code__ for f in _functions_of(cls)}), None)
        where = f"{owner}.{frame.f_code.co_name}" if owner else frame.f_code.co_name
        code = linecache.getline(frame.f_code.co_filename, line).strip()
        text = (f"{where} raised an exception, line {line} of {Path(frame.f_code.co_filename).name}"
                f"{f' ({code})' if code else ''}: {exception_line(error).rstrip('.')}.")
        shapes = [f"{k} {tuple(v.shape)}" for k, v in frame.f_locals.items() if isinstance(v, torch.Tensor)]
        return text + (f" Tensors there: {', '.join(shapes)}." if shapes else "")

    def _unwritten(self, error, frames):
        where = ""
        if frames:
            frame, line = frames[-1]
            where = f" (line {line} of {Path(frame.f_code.co_filename).name})"
        name = self.exercise.name
        written = UNWRITTEN not in str(error)
        return (f"Backward is not written yet: it raises NotImplementedError{where}"
                f"{'' if written else ', as the skeleton does'}. Replace that line with the gradients: backward "
                f"returns {self.exercise.returns}. What to derive is at the top of the skeleton; "
                f"`handgrad-learn hint {name}` (or handgrad.exercises.hints({name!r})) gives its first step.")

    # -- comparing

    def _close(self, actual, expected):
        return (actual is not None and expected is not None and actual.shape == expected.shape
                and difference("", actual, expected, self.tolerance).ok)

    def _outputs(self, runs):
        for sample, attempt, expected in runs:
            for i, e in enumerate(o for o in expected.outputs if isinstance(o, torch.Tensor)):
                a = attempt.outputs[i] if i < len(attempt.outputs) else None
                if not isinstance(a, torch.Tensor) or a.shape != e.shape:
                    shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
                    return [f"The output is wrong: forward returns {shape} where {tuple(e.shape)} is expected "
                            f"(sample {sample.name!r})."]
                d = difference("output", a, e, self.tolerance)
                if not d.ok:
                    return [f"The output is wrong: forward computes something else than "
                            f"{self.exercise.forward} ({_worst(d, sample)})."]
        return []

    def _gradients(self, runs):
        names = self.exercise.inputs
        expected_by_name = [{names[int(k.split()[-1])]: g for k, g in e.grads.items()} for _, _, e in runs]
        wrong = [name for name in runs[0][1].grads
                 if any(not self._close(a.grads.get(name), e[name]) for (_, a, _), e in zip(runs, expected_by_name))]
        if not wrong:
            return []
        predictions = [[m.gradients(self.exercise.arguments(s.call_args(torch.float64, "cpu")[0]), *e.upstream)
                        for m in self.exercise.mistakes] for (s, _, e) in runs]
        found = {}                            # a named mistake, or an input's own finding → the inputs it covers
        for name in wrong:
            mistake = next((m for j, m in enumerate(self.exercise.mistakes)
                            if all(self._matches(a.grads.get(name), p[j].get(name))
                                   for (_, a, _), p in zip(runs, predictions))), None)
            found.setdefault(mistake or name, []).append(name)
        findings = []
        for key, inputs in found.items():
            if not isinstance(key, Mistake):
                findings.append(self._generic(key, runs, expected_by_name))
                continue
            self.named.append(key)
            grads = ", ".join(grad_name(n) for n in inputs[:-1]) + (" and " if len(inputs) > 1 else "")
            grads += grad_name(inputs[-1])
            verb = "is" if len(inputs) == 1 else "are"
            findings.append(f"{grads} {verb} wrong: {key.name}. {key.why}{self._shape_note(inputs, runs)}")
        return findings

    def _matches(self, actual, prediction):
        if prediction is None or actual is None:
            return False
        alternatives = prediction if isinstance(prediction, tuple) else (prediction,)
        return any(self._close(actual, p) for p in alternatives)

    def _shape_note(self, inputs, runs):
        """Where a named mistake has the wrong shape, the two shapes."""
        attempt = runs[0][1]
        args = runs[0][0].call_args(torch.float64, "cpu")[0]
        notes = []
        for name in inputs:
            shape = tuple(args[self.exercise.inputs.index(name)].shape)
            got = attempt.grads.get(name)
            if got is not None and tuple(got.shape) != shape:
                notes.append(f"shape {tuple(got.shape)} for {name}, which is {shape}")
        return f" (Your backward returned {'; '.join(notes)}.)" if notes else ""

    def _generic(self, name, runs, expected_by_name):
        """The mistakes any gradient can make, or else where it is off."""
        grad = grad_name(name)
        pairs = [(s, a.grads.get(name), e[name]) for (s, a, _), e in zip(runs, expected_by_name)]
        if any(actual is None for _, actual, _ in pairs):
            return (f"{grad} is missing: backward returned None for {name}, which requires a gradient; return "
                    f"{grad} in its place, the {_ordinal(self.exercise.inputs.index(name))} value.")
        other = next((o for o in expected_by_name[0] if o != name
                      and all(self._close(actual, e[o]) for (_, actual, _), e in zip(pairs, expected_by_name))), None)
        if other is not None:
            return (f"{grad} is the gradient of {other}: what backward returns for {name} is {grad_name(other)}. "
                    f"Backward returns one gradient per input of forward, in its order "
                    f"({', '.join(self.exercise.inputs)}).")
        if all(e.dim() >= 2 and self._close(actual, e.mT) for _, actual, e in pairs):
            return (f"{grad} is transposed: backward returned shape {tuple(pairs[0][1].shape)} for {name}, "
                    f"which is {tuple(pairs[0][2].shape)}. A gradient has the shape of its tensor; transposing "
                    "a product swaps and transposes its factors, (AB)ᵀ = BᵀAᵀ.")
        sample, actual, expected = next((p for p in pairs if not self._close(p[1], p[2])), pairs[0])
        if actual.shape != expected.shape:
            return (f"{grad} has the wrong shape: backward returned {tuple(actual.shape)} for {name}, which is "
                    f"{tuple(expected.shape)} (sample {sample.name!r}); the gradient of a tensor has its shape.")
        if all(self._close(-a, e) for _, a, e in pairs):
            return f"{grad} has the wrong sign: it is −1 × the right gradient everywhere. Check each term's sign."
        factor = self._factor(pairs)
        if factor is not None:
            return (f"{grad} is off by a constant factor: it is {factor} the right gradient everywhere (sample "
                    f"{sample.name!r}). A scale is missing or applied twice: a mean's 1/N, a 1/√d, or the "
                    f"upstream gradient g itself.")
        d = difference(grad, actual, expected, self.tolerance)
        return (f"{grad} is wrong, and like none of the classic mistakes of {self.exercise.name}: {_worst(d, sample)}. "
                f"Compare each step with the derivation (`handgrad-learn hint {self.exercise.name}`).")

    def _factor(self, pairs):
        """"5 ×" or "1/5 of", when each sample's gradient is the right one times a constant (not 1)."""
        first = None
        for _, actual, expected in pairs:
            scale = (expected * expected).sum()
            if scale == 0:
                return None
            c = ((actual * expected).sum() / scale).item()
            if not self._close(actual, c * expected) or abs(c - 1) < 1e-6:
                return None
            first = c if first is None else first
        if abs(first) < 1 and abs(1 / first - round(1 / first)) < 1e-6:
            return f"1/{round(1 / first)} of"
        return f"{first:.4g} ×"


def _functions_of(cls):
    """The plain functions defined in a Function class (its static methods), to find its frames."""
    found = []
    for value in vars(cls).values():
        function = getattr(value, "__func__", value)
        if hasattr(function, "__code__"):
            found.append(function)
    return found


def _ordinal(i):
    return ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"][i] if i < 8 else f"#{i + 1}"


def _worst(d, sample):
    """Where a tensor is furthest off, and by how much, on which sample."""
    if d.worst is None:
        return f"on sample {sample.name!r}, off by up to {_number(d.max_abs)}"
    index, actual, expected = d.worst
    if d.special_mismatch:
        return f"on sample {sample.name!r} it has NaN or inf at {list(index)}, where {expected:.4g} is right"
    return (f"on sample {sample.name!r}, at {list(index)} it is {actual:.4g} where {expected:.4g} is right, "
            f"and it is off by up to {_number(d.max_abs)}")

"""handgrad.exercises: every solution passes every check of verify, every mistake of every catalogue
is named when a Function makes it, wrong answers written as a learner writes them are diagnosed,
exceptions are one sentence, an untouched skeleton says what to do, and ``handgrad-learn`` works end
to end in a scratch directory."""

import importlib
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from handgrad import exercises
from handgrad.exercises import cli, solutions
from handgrad.exercises.skeleton import LearnerError, load
from handgrad.testing import CHECKS

REPO = Path(__file__).resolve().parents[1]
NAMES = exercises.names()
MISTAKES = [(name, mistake) for name in NAMES for mistake in exercises.get(name).mistakes]
WIDEST = 100                                   # the report fits a terminal this wide


def _one_line_each(text):
    return " ".join(text.split())


def _fits(report):
    text = str(report)
    assert "Traceback" not in text, text
    assert max(map(len, text.splitlines())) <= WIDEST, f"a line of the report is wider than {WIDEST}:\n{text}"
    return text


def test_exercises_start_with_the_seeds_three_then_the_curriculum():
    assert NAMES[:3] == ["sigmoid", "linear", "cross_entropy"]
    assert len(NAMES) >= 10
    for name in ("tanh", "layer_norm", "batch_norm", "embedding", "conv2d", "max_pool2d", "attention", "lstm_cell",
                 "seed_network"):
        assert name in NAMES, f"the curriculum has no {name}"
    assert NAMES[-1] == "seed_network"


@pytest.mark.parametrize("name", NAMES)
def test_exercise_solution_passes_every_check_of_verify(name):
    report = exercises.check(name, exercises.solution(name))
    assert report.passed, report
    checked = {o.check for o in report.verification.outcomes}
    assert checked == set(CHECKS), f"{name}: graded without {sorted(set(CHECKS) - checked)}"
    ran = {o.check for o in report.verification.outcomes if o.status == "pass"}
    assert {"reference", "gradcheck", "gradgradcheck", "compile", "strided", "hand_derived", "double_backward",
            "autocast"} <= ran, f"{name}: checks that did not run: {sorted(set(CHECKS) - ran)}\n{report}"
    text = _fits(report)
    assert text.startswith(f"{name}: passed.")


def _making(exercise, mistake):
    """The solution's Function, its backward returning ``mistake``'s gradients where the mistake has them."""
    solution = exercise.function

    class Wrong(solution):
        @staticmethod
        def setup_context(ctx, inputs, output):
            solution.setup_context(ctx, inputs, output)
            ctx.inputs = inputs

        @staticmethod
        def backward(ctx, *g):
            right = solution.backward(ctx, *g)
            right = list(right) if isinstance(right, tuple) else [right]
            for name, wrong in mistake.gradients(exercise.arguments(ctx.inputs), *g).items():
                right[exercise.inputs.index(name)] = wrong[0] if isinstance(wrong, tuple) else wrong
            return tuple(right)

    return Wrong


@pytest.mark.parametrize("name, mistake", MISTAKES, ids=[f"{n}: {m.name}" for n, m in MISTAKES])
def test_exercise_mistake_is_named(name, mistake):
    report = exercises.check(name, _making(exercises.get(name), mistake))
    assert not report.passed
    assert report.mistakes == [mistake], f"expected {mistake.name!r}:\n{report}"
    assert _one_line_each(mistake.name) in _one_line_each(_fits(report))


# -- wrong answers as a learner writes them ---------------------------------------------------------


class LinearWTransposed(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, x.T @ g, g.sum(0)                 # xᵀg: (in, out)


class LinearBiasAveraged(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, g.T @ x, g.mean(0)


class LinearInOrderOfTheSeed(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g.T @ x, g @ W, g.sum(0)                 # dL/dW first: a gradient for the wrong input


class LinearSignOfX(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return -g @ W, g.T @ x, g.sum(0)


class LinearWithoutBias(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, g.T @ x, None


class LinearWScaled(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, 3 * g.T @ x, g.sum(0)


class LinearOneEntryOff(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        grad_x = g @ W
        grad_x[1, 2] += 0.25
        return grad_x, g.T @ x, g.sum(0)


class LinearShapeBug(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        grad_x = g @ W.T                                # (N, out) @ (in, out): no such product
        return grad_x, g.T @ x, g.sum(0)


class LinearWrongShape(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, (g.T @ x)[:, :2], g.sum(0)


class LinearTwoGradients(solutions.Linear):
    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        return g @ W, g.T @ x


class LinearForwardBug(solutions.Linear):
    @staticmethod
    def forward(x, W, b):
        return x @ W + b                                # W is (out, in)


class SigmoidWithZ(solutions.Sigmoid):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * z * (1 - z)


class CrossEntropyWithoutMean(solutions.CrossEntropy):
    @staticmethod
    def backward(ctx, g):
        z, t = ctx.saved_tensors
        p = solutions.hf.softmax(z, dim=1)
        p[torch.arange(len(t)), t] -= 1                # softmax − onehot, as the seed's code does it
        return g * p, None


class CrossEntropyWithoutOnehot(solutions.CrossEntropy):
    @staticmethod
    def backward(ctx, g):
        z, t = ctx.saved_tensors
        return g * solutions.hf.softmax(z, dim=1) / len(t), None


class SoftmaxDiagonalOnly(solutions.Softmax):
    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return y * g                                    # the Σ term forgotten


class LayerNormConstantStatistics(solutions.LayerNorm):
    @staticmethod
    def backward(ctx, g):
        x, gamma = ctx.saved_tensors
        x_hat, r = solutions.LayerNorm.normalize(x)
        return gamma * g * r, (g * x_hat).sum(0), g.sum(0)


class AttentionUnscaled(solutions.Attention):
    @staticmethod
    def backward(ctx, g):
        q, k, v = ctx.saved_tensors
        P = solutions.hf.softmax(q @ k.mT / math.sqrt(q.shape[-1]), dim=-1)
        grad_P = g @ v.mT
        grad_S = P * (grad_P - (grad_P * P).sum(-1, keepdim=True))
        return grad_S @ k, grad_S.mT @ q, P.mT @ g     # the 1/√E of S left behind


WRONG = [
    ("linear", LinearWTransposed, ["dL/dW is wrong: dL/dW transposed", "shape (3, 4) for W, which is (4, 3)"]),
    ("linear", LinearBiasAveraged, ["dL/db is wrong: the bias gradient averaged instead of summed"]),
    ("linear", LinearInOrderOfTheSeed, ["dL/dx is the gradient of W", "dL/dW is the gradient of x",
                                        "in its order (x, W, b)"]),
    ("linear", LinearSignOfX, ["dL/dx has the wrong sign"]),
    ("linear", LinearWithoutBias, ["dL/db is missing: backward returned None for b", "the third value"]),
    ("linear", LinearWScaled, ["dL/dW is off by a constant factor: it is 3 × the right gradient"]),
    ("linear", LinearOneEntryOff, ["dL/dx is wrong, and like none of the classic mistakes of linear",
                                   "on sample 'x (5, 3), W (4, 3)', at [1, 2]", "off by up to 0.25"]),
    ("linear", LinearWrongShape, ["dL/dW has the wrong shape: backward returned (4, 2) for W, which is (4, 3)"]),
    ("linear", LinearTwoGradients, ["LinearTwoGradients.backward returned 2 values; forward takes 3 inputs "
                                    "(x, W, b)"]),
    ("linear", LinearForwardBug, ["LinearForwardBug.forward raised an exception, line",
                                  "(return x @ W + b", "Tensors there: x (5, 3), W (4, 3), b (4,)"]),
    ("linear", LinearShapeBug, ["LinearShapeBug.backward raised an exception, line", "(grad_x = g @ W.T",
                                "RuntimeError: mat1 and mat2 shapes cannot be multiplied", "g (5, 4)"]),
    ("sigmoid", SigmoidWithZ, ["σ'(z) written with z where y belongs"]),
    ("cross_entropy", CrossEntropyWithoutMean, ["the mean's 1/N missing"]),
    ("cross_entropy", CrossEntropyWithoutOnehot, ["the one-hot term of softmax − onehot missing"]),
    ("softmax", SoftmaxDiagonalOnly, ["the softmax Jacobian's Σ term missing"]),
    ("layer_norm", LayerNormConstantStatistics, ["dL/dx is wrong: the mean terms missing"]),
    ("attention", AttentionUnscaled, ["dL/dQ and dL/dK are wrong: attention's scale 1/√E missing"]),
]


@pytest.mark.parametrize("name, function, says", WRONG, ids=[f"{n}: {f.__name__}" for n, f, _ in WRONG])
def test_exercise_wrong_answer_is_diagnosed(name, function, says):
    report = exercises.check(name, function.apply)
    assert not report.passed
    text = _one_line_each(_fits(report))
    for words in says:
        assert words in text, f"{words!r} not in:\n{report}"


def test_exercise_check_grades_a_function_calling_the_class_too():
    assert exercises.check("linear", lambda x, W, b: solutions.Linear.apply(x, W, b)).passed
    report = exercises.check("linear", lambda x, W, b: LinearWTransposed.apply(x, W, b))
    assert report.mistakes == [exercises.get("linear").mistakes[0]], report


def test_exercise_right_gradients_failing_a_later_check_say_which():
    class CrossEntropyTorchSoftmax(solutions.CrossEntropy):
        @staticmethod
        def backward(ctx, g):
            z, t = ctx.saved_tensors
            p = torch.softmax(z, dim=1)                 # its own derivative is PyTorch's kernel
            return g * (p - torch.nn.functional.one_hot(t, z.shape[1]).to(p.dtype)) / z.shape[0], None

    report = exercises.check("cross_entropy", CrossEntropyTorchSoftmax)
    assert not report.passed and report.graded
    text = _one_line_each(_fits(report))
    assert "The gradients are right, but handgrad.testing.verify failed double_backward" in text
    assert "use handgrad.functional.softmax there" in text


# -- skeletons -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_exercise_skeleton_runs_forward_and_says_to_write_backward(name, tmp_path):
    path = tmp_path / f"{name}.py"
    path.write_text(exercises.skeleton(name))
    function = load(path, name)
    report = exercises.check(name, function)
    assert not report.passed
    text = _one_line_each(_fits(report))
    assert "Backward is not written yet" in text and "as the skeleton does" in text, text
    assert f"handgrad-learn hint {name}" in text
    exercise = exercises.get(name)
    args = exercise.make_samples()[0].args
    with torch.no_grad():                                # forward is given, and it is the solution's
        ours, theirs = function.forward(*args), exercise.function.forward(*args)
    for a, b in zip(ours if isinstance(ours, tuple) else (ours,), theirs if isinstance(theirs, tuple) else (theirs,)):
        assert torch.equal(a, b)


def test_exercise_skeleton_holds_no_line_of_the_answer():
    for name in NAMES:
        exercise = exercises.get(name)
        text = exercises.skeleton(name)
        backward = exercise.function.backward.__code__
        source = [line.strip() for line in Path(backward.co_filename).read_text().splitlines()
                  [backward.co_firstlineno:backward.co_firstlineno + 40]]
        answer = next(line for line in source if line.startswith("return"))
        assert answer not in text, f"{name}: the skeleton gives away {answer!r}"
        assert exercise.derivation.split()[0] in text and "Hint 1:" in text


def test_exercise_learner_file_errors_are_one_sentence(tmp_path):
    path = tmp_path / "linear.py"
    path.write_text("import torch\n\nclass Linear(torch.autograd.Function:\n    pass\n")
    with pytest.raises(LearnerError, match=r"linear\.py, line 3: SyntaxError"):
        load(path, "linear")
    path.write_text("import torch\n\nx = 1 / 0\n")
    with pytest.raises(LearnerError, match=r"linear\.py, line 3: importing it raised ZeroDivisionError"):
        load(path, "linear")
    path.write_text("import torch\n")
    with pytest.raises(LearnerError, match="defines no torch.autograd.Function class"):
        load(path, "linear")


# -- the command line ------------------------------------------------------------------------------


def _run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_handgrad_learn_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = _run(capsys, "list")
    assert status == 0 and all(name in out for name in NAMES) and "0 passed" in out

    status, out, _ = _run(capsys, "start", "sigmoid")
    path = tmp_path / "handgrad-exercises" / "sigmoid.py"
    assert status == 0 and path.is_file() and "handgrad-learn check sigmoid" in out

    status, out, err = _run(capsys, "start", "sigmoid")
    assert status == 2 and not out and len(err.strip().splitlines()) == 1 and "exists already" in err

    status, out, _ = _run(capsys, "check", "sigmoid")
    assert status == 1 and "Backward is not written yet" in _one_line_each(out)

    status, out, _ = _run(capsys, "hint", "sigmoid")
    assert status == 0 and "hint 2 of 4" in out                  # the skeleton shows the first
    hints = exercises.hints("sigmoid")
    assert _one_line_each(hints[1]) in _one_line_each(out)
    for _ in range(3):
        status, out, _ = _run(capsys, "hint", "sigmoid")
    assert "hint 4 of 4 (the last" in out and _one_line_each(hints[-1]) in _one_line_each(out)

    raise_line = '        raise NotImplementedError("backward of sigmoid: not written yet")'
    text = path.read_text()
    assert raise_line in text
    path.write_text(text.replace(raise_line, "        return y * (1 - y)"))
    status, out, _ = _run(capsys, "check", "sigmoid")
    assert status == 1 and "dL/dz is wrong: the upstream gradient g missing" in _one_line_each(out)

    path.write_text(text.replace(raise_line, "        return g * y * (1 - y)"))
    status, out, _ = _run(capsys, "check", "sigmoid")
    assert status == 0 and out.startswith("sigmoid: passed.") and "Next: handgrad-learn start linear" in out

    progress = json.loads((tmp_path / "handgrad-exercises" / "progress.json").read_text())
    assert progress["sigmoid"] == {"hints": 4, "checks": 3, "passed": True}
    status, out, _ = _run(capsys, "list")
    assert "1 passed" in out and any(line.split()[1:3] == ["sigmoid", "passed"] for line in out.splitlines())


def test_handgrad_learn_start_elsewhere_and_check_that_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = _run(capsys, "start", "linear", "mine")
    assert status == 0 and "handgrad-learn check linear mine/linear.py" in out
    path = tmp_path / "mine" / "linear.py"
    path.write_text(path.read_text().replace('raise NotImplementedError("backward of linear: not written yet")',
                                             "return g @ W, x.T @ g, g.sum(0)"))
    status, out, _ = _run(capsys, "check", "linear", str(path))
    assert status == 1 and "dL/dW transposed" in _one_line_each(out)
    assert json.loads((tmp_path / "mine" / "progress.json").read_text())["linear"]["checks"] == 1
    path.write_text("def backward(:\n")
    status, out, _ = _run(capsys, "check", "linear", str(path))
    assert status == 1 and "SyntaxError" in out and "Traceback" not in out


@pytest.mark.parametrize("argv, says", [
    (["check", "sigmod"], "no exercise 'sigmod' (did you mean sigmoid?"),
    (["start", "nothing"], "no exercise 'nothing'"),
    (["check", "linear"], "no file handgrad-exercises/linear.py: write it first with `handgrad-learn start linear`"),
    (["hint"], "the following arguments are required: name"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required"),
], ids=["misspelt", "unknown", "no file", "no name", "no such command", "no command"])
def test_handgrad_learn_mistake_in_the_command_is_one_line_and_status_2(argv, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(capsys, *argv)
    assert status == 2 and not out
    assert len(err.strip().splitlines()) == 1 and says in err, err


def test_handgrad_learn_is_a_console_script_and_a_module(tmp_path):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["handgrad-learn"] == "handgrad.exercises.cli:main"
    result = subprocess.run([sys.executable, "-m", "handgrad.exercises", "hint", "linear"], cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("linear, hint 1 of 4:")


def test_handgrad_learn_module_runs_only_as_a_program(capsys):
    importlib.import_module("handgrad.exercises.__main__")     # as mkdocstrings' inspection imports it
    assert capsys.readouterr() == ("", "")


def test_import_handgrad_loads_the_exercises_on_first_use():
    code = ("import sys, handgrad; print('handgrad.exercises' in sys.modules); "
            "print(handgrad.exercises.names()[0])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "sigmoid"]

"""``python -m handgrad.check`` / ``handgrad-check``: the verification users run themselves."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from handgrad import check, testing
from handgrad.ops import OPS
from handgrad.testing.op_db import OP_DB


def test_check_reports_progress_and_none_of_its_own_samples_warnings():
    """The samples that warn on purpose (mse_loss's broadcast target) print nothing; each op is
    reported on stderr as it is done; a relative difference is printed only where it means something."""
    command = Path(sys.executable).parent / "handgrad-check"
    result = subprocess.run([str(command), "--op", "mse_loss", "--op", "relu", "--device", "cpu"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "warn" not in result.stderr, result.stderr
    progress = result.stderr.strip().splitlines()
    assert [line.split(" (")[0] for line in progress] == ["handgrad-check: mse_loss passed",
                                                         "handgrad-check: relu passed"], progress
    assert "e+294" not in result.stdout and " / 1.0e+00" not in result.stdout, result.stdout


def test_check_passes_and_prints_one_row_per_function_device_dtype(capsys):
    assert check.main(["--op", "sigmoid", "--op", "leaky_relu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("sigmoid", "leaky_relu"))]
    expected = 2 * len(testing.available_devices()) * len(testing.DTYPES)
    assert len(rows) == expected, out
    assert all(line.rstrip().endswith("pass") for line in rows), out
    assert out.strip().splitlines()[-1].startswith(f"all passed: {expected} rows"), out


def test_check_json_reports_errors_and_every_check(capsys):
    assert check.main(["--op", "linear", "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    (linear,) = report["reports"]
    float64 = next(r for r in linear["rows"] if r["dtype"] == "float64")
    for name in ("gradcheck", "gradgradcheck", "vmap", "compile", "strided", "needs_input_grad", "hand_derived",
                 "double_backward"):
        assert float64[name]["status"] == "pass", (name, float64[name])
    assert 0 <= float64["reference"]["max_abs"] < 1e-10
    assert 0 <= float64["numpy"]["max_abs"] < 1e-10
    assert float64["samples"] == len(OP_DB["linear"].samples(torch.Generator().manual_seed(0)))


class _WrongSigmoid(torch.autograd.Function):
    """σ with the derivative off by a factor of 1.01: the check must notice."""

    @staticmethod
    def forward(z):
        return torch.sigmoid(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return 1.01 * g * y * (1 - y)


def test_check_fails_with_exit_status_1_on_a_wrong_gradient(monkeypatch, capsys):
    monkeypatch.setitem(OPS, "sigmoid", dataclasses.replace(OPS["sigmoid"], function=_WrongSigmoid.apply))
    assert check.main(["--op", "sigmoid", "--device", "cpu", "--check", "reference", "--check", "gradcheck"]) == 1
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("FAIL sigmoid cpu float64 [(N, D)]: reference: "))
    assert "gradient of input 0 differs from the reference" in line
    assert "also failed: reference in float32" in line and "; gradcheck" in line, line
    assert "FAILED" in out.splitlines()[-1]


def test_check_fails_for_an_op_without_samples(monkeypatch, capsys):
    monkeypatch.setitem(OP_DB, "tanh", dataclasses.replace(OP_DB["tanh"], samples=lambda generator: []))
    assert check.main(["--op", "tanh", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "FAIL tanh: no samples were given, so nothing was verified" in out
    assert out.splitlines()[-1].startswith("FAILED"), out


def test_check_refuses_a_device_that_is_not_there(capsys):
    missing = "cuda" if not torch.cuda.is_available() else "xpu"
    with pytest.raises(SystemExit) as exit:
        check.main(["--device", missing])
    assert exit.value.code == 2
    assert f"device {missing!r} is not available" in capsys.readouterr().err


def test_check_is_installed_as_a_command():
    command = Path(sys.executable).parent / "handgrad-check"
    assert command.exists(), f"{command} missing: install the package (pip install -e .)"
    result = subprocess.run([str(command), "--op", "relu", "--device", "cpu"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "all passed" in result.stdout

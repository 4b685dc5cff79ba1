"""``python -m handgrad.check`` / ``handgrad-check``: the verification users run themselves."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from handgrad import check, testing


def test_check_passes_and_prints_one_row_per_function_device_dtype(capsys):
    assert check.main(["--op", "sigmoid", "--op", "cross_entropy"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("sigmoid", "cross_entropy"))]
    expected = 2 * len(testing.devices()) * len(testing.DTYPES)
    assert len(rows) == expected, out
    assert all(line.rstrip().endswith("pass") for line in rows), out
    assert out.strip().splitlines()[-1].startswith(f"all passed: {expected} rows"), out


def test_check_json_reports_errors_and_gradchecks(capsys):
    assert check.main(["--op", "linear", "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    float64 = next(r for r in report["rows"] if r["dtype"] == "float64")
    assert float64["gradcheck"] is True and float64["gradgradcheck"] is True
    assert 0 <= float64["vs_torch"]["max_abs"] < 1e-10
    assert 0 <= float64["vs_numpy"]["max_abs"] < 1e-10
    assert float64["forms"] == len(testing.cases("linear"))


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
    monkeypatch.setitem(testing.OPS, "sigmoid", (_WrongSigmoid.apply, torch.sigmoid))
    assert check.main(["--op", "sigmoid", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "FAIL sigmoid cpu float64" in out and "dinput" in out and "gradcheck" in out
    assert "FAILED" in out.splitlines()[-1]


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

"""One declaration per op: every registered op is complete, and everything else follows from it
(the namespaces, the README's table of derivatives); the library is a library."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import handgrad.autograd
import handgrad.functional
import handgrad.nn
from handgrad.ops import OPS, _registry, derivative_table
from handgrad.ops._function import HandFunction
from handgrad.testing.op_db import OP_DB

OP_PARAMS = [pytest.param(op, id=name) for name, op in OPS.items()]
INFO_PARAMS = [pytest.param(info, id=name) for name, info in OP_DB.items()]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("op", OP_PARAMS)
def test_op_is_in_every_namespace(op):
    assert getattr(handgrad.functional, op.name) is op.function, f"handgrad.functional.{op.name} is not its face"
    assert op.name in handgrad.functional.__all__
    for function in op.functions:
        assert getattr(handgrad.autograd, function.__name__) is function, f"handgrad.autograd lacks {function.__name__}"
        assert issubclass(function, HandFunction), f"{function.__name__} is not a HandFunction"
        assert "traceable_apply" in vars(function), f"{function.__name__} has no twin for torch.compile"
    for key in op.modules:
        torch_cls = _registry.module_class(key)
        hand_cls = getattr(handgrad.nn, torch_cls.__name__)
        assert issubclass(hand_cls, torch_cls) and torch_cls.__name__ in handgrad.nn.__all__


@pytest.mark.parametrize("op", INFO_PARAMS)
def test_op_samples_are_fresh_random_data_with_something_to_differentiate(op):
    first, again, other = (op.samples(torch.Generator().manual_seed(seed)) for seed in (0, 0, 1))
    assert first, f"{op.name} has no samples"
    assert any(s.differentiable() for s in first), f"{op.name}: no sample has an input that requires grad"
    assert len({s.name for s in first}) == len(first), f"{op.name}: two samples share a name"
    for a, b, c in zip(first, again, other):
        for (_, _, ta), (_, _, tb), (_, _, tc) in zip(a.tensors(), b.tensors(), c.tensors()):
            assert torch.equal(ta, tb) or ta.isnan().any(), f"{op.name} [{a.name}]: the same seed drew different data"
    drawn = [t for s in first for _, _, t in s.tensors() if t.is_floating_point() and t.numel() > 1]
    redrawn = [t for s in other for _, _, t in s.tensors() if t.is_floating_point() and t.numel() > 1]
    assert any(not torch.equal(a, b) for a, b in zip(drawn, redrawn) if a.shape == b.shape), (
        f"{op.name}: another seed drew the same data")


@pytest.mark.parametrize("op", INFO_PARAMS)
def test_op_declares_benchmark_inputs(op):
    cases = op.bench("cpu")
    assert cases, f"{op.name} declares no benchmark sizes"
    for size, args, kwargs in cases:
        assert any(isinstance(a, torch.Tensor) and a.requires_grad for a in args), f"{op.name} {size}: nothing to differentiate"


def test_readme_table_of_derivatives_is_the_registrys():
    """README shows the rows of README_OPS (the documentation's derivations page has all of them)."""
    assert set(_registry.README_OPS) <= set(OPS), sorted(set(_registry.README_OPS) - set(OPS))
    table = derivative_table(_registry.README_OPS)
    assert table in README.read_text(), (
        "README.md's table of derivatives is not the registry's; paste `python -c \"from handgrad.ops import "
        f"_registry, derivative_table; print(derivative_table(_registry.README_OPS))\"` into it:\n{table}")


def test_import_handgrad_imports_no_training_dependency():
    code = ("import sys, handgrad, handgrad.check; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'lightning', 'pytorch_lightning', 'matplotlib', 'jsonargparse', 'torchmetrics', 'torchvision'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"import handgrad pulled in {result.stdout.strip()}"


def test_import_handgrad_loads_no_test_code():
    code = ("import sys, handgrad, handgrad.nn, handgrad.functional, handgrad.autograd; "
            "print(sorted(m for m in sys.modules if m.startswith(('handgrad.testing', 'handgrad.reference'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"import handgrad loaded {result.stdout.strip()}"
    lazy = subprocess.run([sys.executable, "-c", "import handgrad; print(handgrad.testing.verify.__name__)"],
                          capture_output=True, text=True, check=True)
    assert lazy.stdout.strip() == "verify", "handgrad.testing is not loaded on first use"


def test_every_registered_op_has_its_cases_in_the_test_database():
    assert list(OP_DB) == list(OPS), "the test database does not follow the registry, op for op"
    for name, info in OP_DB.items():
        assert info.op is OPS[name] and info.function is OPS[name].function
        assert set(info.modules) == set(OPS[name].modules), (
            f"{name}: module cases for {sorted(_registry.module_name(key) for key in info.modules)}, "
            f"modules {sorted(_registry.module_name(key) for key in OPS[name].modules)}")

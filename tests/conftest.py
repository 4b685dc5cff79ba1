import pytest
import torch

from handgrad import testing

# Every device test runs on CPU, and on CUDA whenever a GPU is present; skipped cleanly otherwise.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def case_params(op=None, differentiable_only=False):
    return [
        pytest.param(c, id=c.id)
        for c in testing.cases(op)
        if c.differentiable or not differentiable_only
    ]

import pytest
import torch

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

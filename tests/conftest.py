import os

import pytest
import torch

# Every device test runs on CPU, and on CUDA whenever a GPU is present; skipped cleanly otherwise.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


@pytest.fixture(autouse=True, scope="session")
def _float32_as_float32():
    """cuDNN runs float32 convolutions in TF32 by default (10-bit mantissas): a hand gradient and
    the built-in's then differ by ~1e-3 relative through a deep network (squeezenet, an H100), more
    than float32's tolerance. The tests compare float32 as float32."""
    torch.backends.cudnn.allow_tf32 = False


def pytest_configure(config):
    """Under pytest-xdist, the cores shared out among the workers: a worker's torch threads waiting
    on cores that another worker holds make every kernel many times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // workers))


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param

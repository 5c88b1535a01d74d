"""Shared pytest fixtures: every `solutions` test runs on each available device."""
import pytest
import torch

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """A `torch.device`: CPU always, CUDA when one is present (skipped otherwise)."""
    return torch.device(request.param)


@pytest.fixture
def one_thread():
    """Run a test on one CPU thread: the models here are small, and extra threads on shared cores only
    slow them down (`make test` already sets OMP_NUM_THREADS=1; this covers a plain `pytest` run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

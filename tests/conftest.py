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

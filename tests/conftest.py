"""Shared pytest fixtures: every `solutions` test runs on each available device.

Plain helper functions shared by the test files live in `helpers.py` (`from helpers import rand`).
"""
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


@pytest.fixture(scope="session")
def make_dates():
    """Builds the date-translation splits: ``make_dates(n, seed)`` returns (train, valid, test)
    ``TranslationData`` from ``generate_dates(n, seed=seed)``, split 80/10/10 with split seed 0.

    Each test module keeps its own size and seed in a module-scoped fixture that calls this one:
    ``def dates(make_dates): return make_dates(500, seed=3)``. Each call builds fresh data, so one
    module's tests cannot change another module's.
    """
    from solutions.data import TranslationData, generate_dates  # here, so test_book etc. need not import it

    def make(n: int, seed: int, split_seed: int = 0):
        return TranslationData.from_pairs(generate_dates(n, seed=seed), seed=split_seed)
    return make

"""The course's one source of seeds (solutions.seeding) and the check that nothing seeds around it."""
import ast

import pytest
import torch

import seed_literals
from solutions import seeding
from solutions.data.lookups import contains_task
from solutions.taxonomy.source import AttentionClassifier, SourceConfig, train_lookup


@pytest.fixture
def offset(monkeypatch):
    """Sets COURSE_SEED_OFFSET for one test: ``offset(1000)``; ``offset(None)`` unsets it."""
    def set_offset(value):
        if value is None:
            monkeypatch.delenv(seeding.OFFSET_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(seeding.OFFSET_VARIABLE, str(value))
    return set_offset


def test_offset_defaults_to_zero_and_is_added(offset):
    offset(None)
    assert seeding.offset() == 0 and seeding.seed(3) == 3 and seeding.seeds(3) == (0, 1, 2)
    offset("")
    assert seeding.seed() == 0
    offset(1000)
    assert seeding.seed(3) == 1003 and seeding.seeds(2, start=5) == (1005, 1006)
    assert seeding.or_default(None) == 1000 and seeding.or_default(7) == 7, "a seed the caller gave is kept as is"


@pytest.mark.parametrize("bad", ["ten", "1.5", "-3"])
def test_a_bad_offset_is_refused_with_its_name(offset, bad):
    offset(bad)
    with pytest.raises(ValueError, match=seeding.OFFSET_VARIABLE):
        seeding.seed(0)


@pytest.mark.parametrize("bad", [-1, 1.0, "2", True])
def test_a_bad_seed_number_is_refused(bad):
    with pytest.raises(ValueError, match="seed number"):
        seeding.seed(bad)


def test_manual_seed_seeds_torch_python_and_numpy(offset):
    import random

    import numpy as np
    offset(1000)
    assert seeding.manual_seed(2) == 1002
    drawn = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(1002), random.seed(1002), np.random.seed(1002)
    assert torch.equal(drawn[0], torch.rand(3)) and drawn[1:] == (random.random(), np.random.rand())
    assert seeding.generator(2).initial_seed() == 1002


def _training_record():
    """One small model trained the way a chapter does it: data, initialisation, dropout and batch order
    all drawn from the course's seeds."""
    task = contains_task(256, length=4, vocab=7)  # the default seed: seeding.seed(0)
    seeding.manual_seed(0)
    model = AttentionClassifier(SourceConfig.tiny())
    dropout = torch.nn.functional.dropout(torch.ones(64), 0.5)  # sampling from the global generator
    history = train_lookup(model, task, epochs=2, batch_size=64)
    return task.inputs.clone(), [p.detach().clone() for p in model.parameters()], dropout, \
        [round(h["loss"], 12) for h in history]


def test_the_offset_reaches_data_initialisation_sampling_and_training(offset, one_thread):
    offset(None)
    first, again = _training_record(), _training_record()
    offset(1000)
    other = _training_record()
    for name, a, b, c in zip(("data", "weights", "dropout", "losses"), first, again, other):
        same = (lambda x, y: torch.equal(x, y)) if isinstance(a, torch.Tensor) else (
            lambda x, y: all(torch.equal(u, v) for u, v in zip(x, y)) if isinstance(x[0], torch.Tensor) else x == y)
        assert same(a, b), f"{name}: two runs with the same offset differ"
        assert not same(a, c), f"{name}: offsets 0 and 1000 gave the same {name}"


# --- the check that every seed comes from solutions.seeding ---------------------------------------------------

def _problems(code: str) -> list[str]:
    problems: list[str] = []
    seed_literals._Scanner(set(), "snippet", problems).visit(ast.parse(code))
    return problems


@pytest.mark.parametrize("code", [
    "torch.manual_seed(0)",
    "gen = torch.Generator().manual_seed(3)",
    "np.random.seed(1)",
    "rng = np.random.default_rng(4)",
    "random.Random(5).shuffle(x)",
    "data = make(100, seed=7)",
    "data = make(100, split_seed=100 + epoch)",
    "SEEDS = (0, 1, 2)",
    "SEEDS, LR = [0, 1, 2], 1e-3",
    "def make(n, seed=0): pass",
    "for seed in range(3):\n    torch.manual_seed(seed)",
    "label = 'first' if seed == 0 else None",
    "def canvases(indices, first_seed):\n    return draw(indices, seed=first_seed)\npool = canvases(x, 1000 + 10)",
])
def test_the_check_finds_a_literal_seed(code):
    assert _problems(code), f"not flagged: {code}"


@pytest.mark.parametrize("code", [
    "from solutions import seeding\nseeding.manual_seed(0)",
    "from solutions import seeding\ngen = seeding.generator(3)",
    "from solutions.seeding import seed\ndata = make(100, seed=seed(7))",
    "from solutions import seeding\nSEEDS = seeding.seeds(3)\nfor s in SEEDS:\n    torch.manual_seed(s)\n"
    "    order = random.Random(s)\n    fit(seed=s)\nfirst = [s for s in SEEDS if s == SEEDS[0]]",
    "def make(n, seed=None):\n    gen = torch.Generator().manual_seed(or_default(seed))\n    return shuffle(seed=1000 * seed)",
    "batches(64, seed=None)",
])
def test_the_check_accepts_seeds_from_the_seeding_module(code):
    assert not _problems(code), _problems(code)


def test_every_seed_comes_from_the_seeding_module():
    files = seed_literals.sources()
    assert any(f.suffix == ".ipynb" for f in files) and any(f.name == "measure.py" for f in files)
    problems = [problem for path in files for problem in seed_literals.literal_seeds(path)]
    assert not problems, "seeds that do not come from solutions.seeding:\n" + "\n".join(problems)

"""The one training loop: fit(), fit_one_cycle() and evaluating()."""
import math
from typing import NamedTuple

import pytest
import torch
from torch import nn

from solutions.train import EarlyStopping, count_parameters, evaluating, fit, fit_one_cycle


def _regression(device, n=12):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=gen).to(device)
    y = x @ torch.tensor([1.0, -2.0, 0.5], device=device) + 0.3
    return x, y


def _mse(model, batch):
    x, y = batch
    return (model(x).squeeze(-1) - y).square().mean(), {"size": len(x), "twice": 2.0}


def test_fit_learns_and_records_weighted_means(device):
    torch.manual_seed(0)
    model = nn.Linear(3, 1).to(device)
    x, y = _regression(device)
    batches = [(x[:8], y[:8]), (x[8:], y[8:])]  # sizes 8 and 4
    untrained = _mse(model, (x, y))[0].item()
    history = fit(model, batches, _mse, torch.optim.SGD(model.parameters(), lr=0.1), epochs=30, progress=False)
    assert [r["epoch"] for r in history] == list(range(1, 31))
    assert all(r["twice"] == pytest.approx(2.0) for r in history)  # extras are averaged too
    assert history[-1]["loss"] < 0.01 < untrained  # a linear target is learned
    assert history[-1]["loss"] < history[0]["loss"] / 50


def test_fit_weighs_batches_by_size():
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    batches = [(torch.ones(3, 1), torch.full((3,), 1.0)), (torch.ones(1, 1), torch.full((1,), 3.0))]
    # lr 0 keeps the model at w = 0: batch losses are 1 and 9, sizes 3 and 1 -> mean (3·1 + 1·9) / 4 = 3
    history = fit(model, batches, _mse, torch.optim.SGD(model.parameters(), lr=0.0), progress=False)
    assert history[0]["loss"] == pytest.approx(3.0)


def test_fit_steps_the_scheduler_clips_and_calls_after_epoch():
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    seen = []

    def batches(epoch):
        seen.append(epoch)
        return [(torch.ones(1, 1), torch.full((1,), 100.0))] * 2

    def after(epoch):
        assert model.training  # fit hands the model over in training mode
        model.eval()
        return {"w": model.weight.item()}

    history = fit(model, batches, _mse, optimizer, epochs=2, scheduler=scheduler, clip=1.0, after_epoch=after,
                  progress=False)
    assert seen == [1, 2]  # a fresh iterable per epoch
    # each step moves w by lr · 1 (the gradient -200 clipped to norm 1), lr halving every step: 1 + 0.5 + 0.25 + 0.125
    assert [r["w"] for r in history] == pytest.approx([1.5, 1.875])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1 / 16)
    assert model.training  # after_epoch's eval() is undone


def test_fit_errors():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(model, [], _mse, opt, epochs=0)
    with pytest.raises(ValueError, match="no batches"):
        fit(model, [], _mse, opt, progress=False)


def test_evaluating_restores_the_mode_and_stops_gradients():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    with evaluating(model):
        assert not model.training and not torch.is_grad_enabled()
        assert not model(torch.ones(1, 2)).requires_grad
    assert model.training and torch.is_grad_enabled()
    model.eval()
    with pytest.raises(RuntimeError), evaluating(model):
        raise RuntimeError("boom")
    assert not model.training  # an eval model stays in eval, even after an error


def test_count_parameters():
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    assert count_parameters(model) == 6


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    batches = [(torch.ones(1, 1), torch.full((1,), 100.0))]
    weights = []

    def after(epoch):  # validation loss falls to its best at epoch 3, then rises; the weight grows every epoch
        weights.append(model.weight.item())
        return {"valid_loss": [5.0, 4.0, 1.0, 2.0, 3.0, 0.5, 0.1, 0.1][epoch - 1]}

    history = fit(model, batches, _mse, torch.optim.SGD(model.parameters(), lr=0.01), epochs=8, after_epoch=after,
                  early_stopping=EarlyStopping(patience=2), progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5], "two epochs without improvement after epoch 3: stop"
    assert len(set(weights)) == 5, "the weight changes every epoch"
    assert model.weight.item() == pytest.approx(weights[2]), "the weights of epoch 3, the best, are restored"


def test_early_stopping_max_mode_min_delta_and_no_restore():
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    batches = [(torch.ones(1, 1), torch.full((1,), 100.0))]
    accuracy, weights = [0.5, 0.9, 0.905, 0.91, 0.95, 0.99], []

    def after(epoch):
        weights.append(model.weight.item())
        return {"valid_accuracy": accuracy[epoch - 1]}

    stop = EarlyStopping(monitor="valid_accuracy", mode="max", patience=2, min_delta=0.02, restore_best=False)
    history = fit(model, batches, _mse, torch.optim.SGD(model.parameters(), lr=0.01), epochs=6, after_epoch=after,
                  early_stopping=stop, progress=False)
    # 0.905 and 0.91 are not 0.02 above 0.9: stop after epoch 4 and keep the last weights
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert model.weight.item() == weights[3] != weights[1], "no restore: the weights after epoch 4 stay"
    # never stopping early: all epochs run, and the best (last) weights stay
    history = fit(model, batches, _mse, torch.optim.SGD(model.parameters(), lr=0.0), epochs=3,
                  after_epoch=lambda e: {"valid_loss": 3.0 - e}, early_stopping=EarlyStopping(), progress=False)
    assert len(history) == 3


def test_early_stopping_errors():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.ones(1, 1), torch.ones(1))]
    with pytest.raises(ValueError, match="valid_loss.*after_epoch"):
        fit(model, batches, _mse, opt, epochs=2, early_stopping=EarlyStopping(), progress=False)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="lowest")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


def test_early_stopping_ends_at_a_best_epoch_that_is_good_enough():
    model = nn.Linear(1, 1, bias=False)
    batches = [(torch.ones(1, 1), torch.full((1,), 100.0))]
    records = [{"valid_loss": 3.0, "valid_accuracy": 0.5}, {"valid_loss": 2.0, "valid_accuracy": 1.0},
               {"valid_loss": 1.0, "valid_accuracy": 1.0}]
    stop = EarlyStopping(patience=5, enough=("valid_accuracy", 1.0))
    history = fit(model, batches, _mse, torch.optim.SGD(model.parameters(), lr=0.01), epochs=3,
                  after_epoch=lambda e: records[e - 1], early_stopping=stop, progress=False)
    assert [r["epoch"] for r in history] == [1, 2], "epoch 2 is the best so far and reaches the goal: stop there"
    # a record that reaches the goal but is not a best epoch does not end training
    records = [{"valid_loss": 1.0, "valid_accuracy": 0.9}, {"valid_loss": 2.0, "valid_accuracy": 1.0},
               {"valid_loss": 3.0, "valid_accuracy": 1.0}]
    history = fit(model, batches, _mse, torch.optim.SGD(model.parameters(), lr=0.01), epochs=3,
                  after_epoch=lambda e: records[e - 1], early_stopping=stop, progress=False)
    assert len(history) == 3


class _Canvases(NamedTuple):
    images: torch.Tensor
    labels: torch.Tensor


def _pool(device, sizes=(10, 7, 9)):
    gen = torch.Generator().manual_seed(1)
    return [_Canvases(torch.randn(n, 4, generator=gen).to(device), torch.randint(0, 3, (n,), generator=gen).to(device))
            for n in sizes]


def _cross_entropy(model, batch):
    images, labels = batch
    return nn.functional.cross_entropy(model(images), labels), {"size": len(labels)}


class _TwoParts(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.transformer(x)))


def _by_hand(model, pool, groups, seed, batch_size):
    """The recipe fit_one_cycle stands for, written out: Adam, a one-cycle schedule, batches shuffled per epoch."""
    optimizer = torch.optim.Adam(groups)
    steps = sum(math.ceil(len(data.labels) / batch_size) for data in pool)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups], total_steps=steps)
    order = torch.Generator().manual_seed(seed)

    def batches(epoch):
        data = pool[epoch - 1]
        for index in torch.randperm(len(data.labels), generator=order).split(batch_size):
            yield data.images[index], data.labels[index]

    return fit(model, batches, _cross_entropy, optimizer, epochs=len(pool), scheduler=scheduler, progress=False)


@pytest.mark.parametrize("two_groups", [False, True])
def test_fit_one_cycle_is_adam_one_cycle_and_fresh_data_every_epoch(device, two_groups):
    pool = _pool(device)
    torch.manual_seed(0)
    mine, theirs = _TwoParts().to(device), _TwoParts().to(device)
    theirs.load_state_dict(mine.state_dict())

    def groups(model):
        if not two_groups:
            return [{"params": list(model.parameters()), "lr": 0.01}]
        return [{"params": list(model.head.parameters()), "lr": 0.01},
                {"params": list(model.transformer.parameters()), "lr": 0.002}]

    seen = []
    history = fit_one_cycle(mine, pool, _cross_entropy, lr=0.01, seed=3, batch_size=4,
                            param_groups=groups(mine) if two_groups else None,
                            after_epoch=lambda epoch: seen.append(epoch) or {"seen": float(epoch)}, progress=False)
    expected = _by_hand(theirs, pool, groups(theirs), seed=3, batch_size=4)
    assert seen == [1, 2, 3] and [r["seen"] for r in history] == [1.0, 2.0, 3.0]  # one epoch per data set
    assert [r["loss"] for r in history] == [r["loss"] for r in expected]  # the same steps, bit for bit
    for a, b in zip(mine.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    assert history[-1]["loss"] != history[0]["loss"]


def test_fit_one_cycle_errors():
    model = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="no data set"):
        fit_one_cycle(model, [], _cross_entropy)
    with pytest.raises(ValueError, match="batch_size"):
        fit_one_cycle(model, _pool("cpu"), _cross_entropy, batch_size=0)


def test_the_compute_clock_counts_work_not_waiting(device):
    import time

    from solutions.train import compute_clock, elapsed
    if device.type == "cpu":  # on the CPU: this process's CPU time, so time spent waiting is not counted
        assert compute_clock(device) is time.process_time and compute_clock() is time.process_time
        assert elapsed(lambda: time.sleep(0.2)) < 0.05, "sleeping (or waiting for a core) counted as compute"
    else:  # a GPU: wall-clock seconds between synchronisations
        assert elapsed(lambda: time.sleep(0.2), device) >= 0.2
    start = time.perf_counter()
    busy = elapsed(lambda: sum(range(3_000_000)), device)
    assert 0 < busy <= time.perf_counter() - start + 0.01, "work is counted, and never more than the wall time"

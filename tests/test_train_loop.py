"""The one training loop: fit() and evaluating()."""
import pytest
import torch
from torch import nn

from solutions.train import count_parameters, evaluating, fit


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


def test_fit_stops_when_asked():
    model = nn.Linear(3, 1)
    x, y = _regression("cpu")
    asked = []

    def stop(history):
        asked.append(len(history))
        return history[-1]["epoch"] == 3

    history = fit(model, [(x, y)], _mse, torch.optim.SGD(model.parameters(), lr=0.1), epochs=10, stop=stop,
                  progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3], "training ends after the epoch stop() says True"
    assert asked == [1, 2, 3], "stop() sees the history after every epoch"

"""Tests for solutions.foundations.nadaraya_watson: attention pooling as Gaussian kernel regression."""
import math

import pytest
import torch

from solutions.foundations.nadaraya_watson import (LearnedKernelRegression, fit_kernel_regression, gaussian_kernel_weights, leave_one_out_mask, nadaraya_watson)
from solutions.data import RegressionData, make_regression_data, target_function


def test_weights_are_positive_and_rows_sum_to_one(device):
    g = torch.Generator().manual_seed(0)
    queries = (5 * torch.rand(2, 7, generator=g)).to(device)
    keys = (5 * torch.rand(2, 11, generator=g)).to(device)
    weights = gaussian_kernel_weights(queries, keys, bandwidth=0.7)
    assert weights.shape == (2, 7, 11)
    assert weights.device.type == device.type
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 7, device=device))


def test_equidistant_keys_share_the_weight(device):
    queries = torch.tensor([1.0], device=device)
    keys = torch.tensor([0.0, 2.0], device=device)  # both at distance 1 from the query
    weights = gaussian_kernel_weights(queries, keys, bandwidth=0.3)
    torch.testing.assert_close(weights, torch.tensor([[0.5, 0.5]], device=device))


def test_hand_computed_weights(device):
    # query 0, keys 0 and 1, sigma 1: kernel values exp(0) = 1 and exp(-1/2).
    weights = gaussian_kernel_weights(torch.tensor([0.0], device=device), torch.tensor([0.0, 1.0], device=device))
    e = math.exp(-0.5)
    torch.testing.assert_close(weights, torch.tensor([[1 / (1 + e), e / (1 + e)]], device=device))


def test_query_on_a_key_with_small_bandwidth_is_one_hot(device):
    keys = torch.tensor([0.0, 1.0, 2.0, 3.0], device=device)
    weights = gaussian_kernel_weights(torch.tensor([2.0], device=device), keys, bandwidth=0.05)
    torch.testing.assert_close(weights, torch.tensor([[0.0, 0.0, 1.0, 0.0]], device=device))


def test_far_away_keys_do_not_underflow_to_nan(device):
    # every kernel value exp(-d^2 / 2 sigma^2) underflows to 0 in float32: a naive K / sum K gives 0/0.
    keys = torch.tensor([100.0, 101.0], device=device)
    weights = gaussian_kernel_weights(torch.tensor([0.0], device=device), keys, bandwidth=0.5)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, torch.tensor([[1.0, 0.0]], device=device))


def test_predictions_are_weights_times_values(device):
    g = torch.Generator().manual_seed(1)
    queries, keys, values = (torch.rand(3, n, generator=g).to(device) for n in (4, 6, 6))
    predictions, weights = nadaraya_watson(queries, keys, values, bandwidth=0.5)
    assert predictions.shape == (3, 4)
    expected = torch.einsum("bqk,bk->bq", weights, values)
    torch.testing.assert_close(predictions, expected)


def test_large_bandwidth_gives_the_mean_of_the_values(device):
    keys = torch.tensor([0.0, 1.0, 2.0, 4.0], device=device)
    values = torch.tensor([1.0, -2.0, 5.0, 0.0], device=device)
    predictions, _ = nadaraya_watson(torch.tensor([0.3, 3.7], device=device), keys, values, bandwidth=1e4)
    torch.testing.assert_close(predictions, torch.full((2,), 1.0, device=device))


def test_small_bandwidth_gives_the_nearest_keys_value(device):
    keys = torch.tensor([0.0, 1.0, 2.0, 4.0], device=device)
    values = torch.tensor([1.0, -2.0, 5.0, 0.0], device=device)
    queries = torch.tensor([0.2, 0.9, 2.6, 3.5], device=device)  # nearest keys 0, 1, 2, 4
    predictions, _ = nadaraya_watson(queries, keys, values, bandwidth=1e-2)
    torch.testing.assert_close(predictions, torch.tensor([1.0, -2.0, 5.0, 0.0], device=device))


def test_batched_leading_dims_match_a_loop(device):
    g = torch.Generator().manual_seed(2)
    queries = torch.rand(2, 3, 5, generator=g).to(device)
    keys = torch.rand(2, 3, 8, generator=g).to(device)
    values = torch.rand(2, 3, 8, generator=g).to(device)
    predictions, weights = nadaraya_watson(queries, keys, values, bandwidth=0.4)
    assert predictions.shape == (2, 3, 5) and weights.shape == (2, 3, 5, 8)
    for i in range(2):
        for j in range(3):
            p, w = nadaraya_watson(queries[i, j], keys[i, j], values[i, j], bandwidth=0.4)
            torch.testing.assert_close(predictions[i, j], p)
            torch.testing.assert_close(weights[i, j], w)


def test_shared_queries_broadcast_against_batched_keys(device):
    queries = torch.linspace(0, 1, 5, device=device)  # (5,)
    keys = torch.rand(3, 8, generator=torch.Generator().manual_seed(3)).to(device)  # (3, 8)
    weights = gaussian_kernel_weights(queries, keys, bandwidth=0.5)
    assert weights.shape == (3, 5, 8)
    torch.testing.assert_close(weights[1], gaussian_kernel_weights(queries, keys[1], bandwidth=0.5))


def test_vector_values(device):
    g = torch.Generator().manual_seed(4)
    queries = torch.rand(2, 5, generator=g).to(device)
    keys = torch.rand(2, 6, generator=g).to(device)
    values = torch.rand(2, 6, 3, generator=g).to(device)
    predictions, weights = nadaraya_watson(queries, keys, values, bandwidth=0.3)
    assert predictions.shape == (2, 5, 3)
    for d in range(3):  # each value coordinate is pooled like a scalar value
        scalar, _ = nadaraya_watson(queries, keys, values[..., d], bandwidth=0.3)
        torch.testing.assert_close(predictions[..., d], scalar)


def test_tensor_bandwidth_matches_float(device):
    queries, keys = torch.rand(4, device=device), torch.rand(6, device=device)
    expected = gaussian_kernel_weights(queries, keys, bandwidth=0.25)
    actual = gaussian_kernel_weights(queries, keys, bandwidth=torch.tensor(0.25, device=device))
    torch.testing.assert_close(actual, expected)


def test_mask_zeroes_masked_keys_and_renormalises(device):
    queries = torch.tensor([0.0, 1.0], device=device)
    keys = torch.tensor([0.0, 0.5, 3.0], device=device)
    mask = torch.tensor([True, False, True], device=device)
    weights = gaussian_kernel_weights(queries, keys, bandwidth=1.0, mask=mask)
    assert (weights[:, 1] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, device=device))
    # the unmasked keys keep their relative weights
    unmasked = gaussian_kernel_weights(queries, keys[[0, 2]], bandwidth=1.0)
    torch.testing.assert_close(weights[:, [0, 2]], unmasked)


def test_leave_one_out_mask(device):
    mask = leave_one_out_mask(4, device=device)
    assert mask.shape == (4, 4) and mask.dtype == torch.bool and mask.device.type == device.type
    assert not mask.diagonal().any()
    assert mask.sum() == 4 * 3
    x = torch.tensor([0.0, 1.0, 2.0, 3.0], device=device)
    weights = gaussian_kernel_weights(x, x, bandwidth=0.01, mask=mask)
    assert (weights.diagonal() == 0).all()  # nobody attends to itself


def test_gradcheck_queries_keys_values_bandwidth(device):
    g = torch.Generator().manual_seed(5)
    queries = torch.rand(2, 3, generator=g, dtype=torch.float64).to(device).requires_grad_()
    keys = torch.rand(2, 4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    values = torch.rand(2, 4, 2, generator=g, dtype=torch.float64).to(device).requires_grad_()
    bandwidth = torch.tensor(0.6, dtype=torch.float64, device=device, requires_grad=True)
    mask = torch.tensor([True, True, False, True], device=device)

    def f(q, k, v, s):
        return nadaraya_watson(q, k, v, s, mask=mask)

    assert torch.autograd.gradcheck(f, (queries, keys, values, bandwidth))


def test_learned_bandwidth_is_positive_parameter(device):
    model = LearnedKernelRegression(bandwidth=0.5).to(device)
    torch.testing.assert_close(model.bandwidth, torch.tensor(0.5, device=device))
    assert [name for name, _ in model.named_parameters()] == ["log_bandwidth"]
    with torch.no_grad():
        model.log_bandwidth.fill_(-30.0)  # any real number is a valid parameter value
    assert model.bandwidth.item() > 0
    x = torch.tensor([0.0, 1.0, 2.0], device=device)
    predictions, weights = model(x, x, torch.tensor([1.0, 2.0, 3.0], device=device))
    assert predictions.shape == (3,) and weights.shape == (3, 3)


def test_fit_reduces_loss_without_collapsing_the_bandwidth(device):
    data = make_regression_data(40, 10, seed=0, device=device)
    model = LearnedKernelRegression(bandwidth=2.0).to(device)
    losses = fit_kernel_regression(model, data.x_train, data.y_train, epochs=60, lr=0.1)
    assert len(losses) == 60
    assert losses[-1] < 0.8 * losses[0]
    assert model.bandwidth.item() > 0.05, "leave-one-out should keep the bandwidth away from 0"
    assert model.bandwidth.item() < 2.0


def test_training_with_itself_as_key_prefers_zero_bandwidth(device):
    # why leave_one_out_mask exists: with its own key, shrinking sigma always lowers the training loss
    data = make_regression_data(40, 10, seed=0, device=device)
    x, y = data.x_train, data.y_train
    losses_self = [((nadaraya_watson(x, x, y, s)[0] - y) ** 2).mean().item() for s in (0.3, 0.1, 0.01)]
    # far below the noise variance 0.25: the model repeats its own noisy targets
    assert losses_self[0] > losses_self[1] > losses_self[2] and losses_self[2] < 0.01
    mask = leave_one_out_mask(40, device=device)
    loo = [((nadaraya_watson(x, x, y, s, mask=mask)[0] - y) ** 2).mean().item() for s in (0.3, 0.01)]
    assert loo[1] > loo[0]


def test_fit_is_deterministic(device):
    data = make_regression_data(30, 5, seed=1, device=device)
    runs = []
    for _ in range(2):
        model = LearnedKernelRegression(bandwidth=1.0).to(device)
        runs.append((fit_kernel_regression(model, data.x_train, data.y_train, epochs=10), model.bandwidth.item()))
    assert runs[0] == runs[1]


def test_make_regression_data(device):
    data = make_regression_data(20, 11, noise=0.5, seed=3, device=device, dtype=torch.float64)
    assert isinstance(data, RegressionData)
    x_train, y_train, x_test, y_test = data
    assert x_train.shape == y_train.shape == (20,) and x_test.shape == y_test.shape == (11,)
    assert all(t.device.type == device.type and t.dtype == torch.float64 for t in data)
    assert (x_train[1:] >= x_train[:-1]).all() and x_train.min() >= 0 and x_train.max() <= 5
    torch.testing.assert_close(x_test, torch.linspace(0, 5, 11, dtype=torch.float64, device=device))
    # hand-checked target: f(0) = 0, f(pi) = pi^0.8
    torch.testing.assert_close(y_test[0], torch.tensor(0.0, dtype=torch.float64, device=device))
    torch.testing.assert_close(
        target_function(torch.tensor(math.pi, dtype=torch.float64)), torch.tensor(math.pi**0.8, dtype=torch.float64)
    )
    residuals = y_train - target_function(x_train)
    assert residuals.abs().max() > 0 and residuals.abs().max() < 5 * 0.5
    noiseless = make_regression_data(20, 11, noise=0.0, seed=3, device=device, dtype=torch.float64)
    torch.testing.assert_close(noiseless.y_train, target_function(noiseless.x_train))


def test_make_regression_data_is_seeded_and_leaves_global_rng_alone(device):
    state = torch.get_rng_state()
    a = make_regression_data(15, 5, seed=7, device=device)
    b = make_regression_data(15, 5, seed=7, device=device)
    c = make_regression_data(15, 5, seed=8, device=device)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    assert not torch.equal(a.x_train, c.x_train)


@pytest.mark.parametrize("bandwidth", [0.0, -1.0])
def test_nonpositive_bandwidth_raises(device, bandwidth):
    x = torch.rand(3, device=device)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        gaussian_kernel_weights(x, x, bandwidth=bandwidth)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        gaussian_kernel_weights(x, x, bandwidth=torch.tensor(bandwidth, device=device))
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        LearnedKernelRegression(bandwidth=bandwidth)


def test_mismatched_keys_and_values_raise(device):
    queries, keys = torch.rand(2, device=device), torch.rand(7, device=device)
    with pytest.raises(ValueError, match=r"keys have 7 positions but values have 5"):
        nadaraya_watson(queries, keys, torch.rand(5, device=device))
    with pytest.raises(ValueError, match=r"keys have 7 positions but values have 5"):
        nadaraya_watson(queries, keys, torch.rand(5, 3, device=device))
    with pytest.raises(ValueError, match=r"keys \(7,\) and values \(2, 7, 3\)"):
        nadaraya_watson(queries, keys, torch.rand(2, 7, 3, device=device))


def test_bad_masks_and_shapes_raise(device):
    queries, keys = torch.rand(3, device=device), torch.rand(7, device=device)
    with pytest.raises(ValueError, match="keys have 7 positions but mask has 5"):
        gaussian_kernel_weights(queries, keys, mask=torch.ones(5, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 7\) does not broadcast to scores of shape \(3, 7\)"):
        gaussian_kernel_weights(queries, keys, mask=torch.ones(2, 7, dtype=torch.bool, device=device))
    with pytest.raises(TypeError, match="bool"):
        gaussian_kernel_weights(queries, keys, mask=torch.ones(7, device=device))
    with pytest.raises(ValueError, match="do not broadcast"):
        gaussian_kernel_weights(torch.rand(2, 3, device=device), torch.rand(4, 7, device=device))
    with pytest.raises(ValueError, match="at least 2 points"):
        leave_one_out_mask(1)


def test_infinite_bandwidth_is_average_pooling(device):
    # Chapter 1 uses sigma = inf for the average-pooling baseline: every weight is exactly 1/n.
    queries, keys = torch.rand(4, device=device), torch.rand(5, device=device)
    weights = gaussian_kernel_weights(queries, keys, bandwidth=float("inf"))
    torch.testing.assert_close(weights, torch.full((4, 5), 0.2, device=device))
    masked = gaussian_kernel_weights(keys, keys, bandwidth=float("inf"), mask=leave_one_out_mask(5, device=device))
    torch.testing.assert_close(masked, (1 - torch.eye(5, device=device)) / 4)


def test_all_masked_query_attends_to_nothing_as_everywhere(device):
    # One masked softmax for the whole course: a query with no key left gets zero weights and a zero
    # prediction here too, exactly as solutions.attention.masking.masked_softmax gives.
    from solutions.attention import masked_softmax

    queries, keys, values = torch.rand(3, device=device), torch.rand(4, device=device), torch.rand(4, device=device)
    mask = torch.tensor([[True, False, True, True], [False] * 4, [True] * 4], device=device)
    predictions, weights = nadaraya_watson(queries, keys, values, bandwidth=0.7, mask=mask)
    assert torch.equal(weights[1], torch.zeros(4, device=device)) and predictions[1] == 0
    scores = -(queries[:, None] - keys[None, :]) ** 2 / (2 * 0.7**2)
    torch.testing.assert_close(weights, masked_softmax(scores, mask))

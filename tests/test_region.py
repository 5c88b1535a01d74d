"""Attention by region: the glimpse task, soft, hard and local weights over glimpse locations, REINFORCE.

Oracles: explicit slicing for the patches (``F.unfold``), the core's ``masked_softmax`` for every weight
vector, the softmax spy of ``test_attention_core`` for "the weights come from the core", and an enumerated
expectation for the REINFORCE gradient. Properties: a hard glimpse depends on its own patch only; sampled
locations follow softmax(e); local weights live in their window; pixel counts. Gradients are checked in
float64. Every test runs on each available device.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import rand
from solutions.attention import masked_softmax
from solutions.data.digits import make_digit_canvases
from solutions.taxonomy import (GLIMPSE_TASK, MODES, FullImageClassifier, GlimpseClassifier, GlimpseConfig,
                                extract_patches, glimpse_accuracy, glimpse_canvases, glimpse_loss, grid_side,
                                grid_window_mask, hard_weights, local_weights, patch_centres, pixels_seen,
                                reinforce_terms, soft_weights, train_glimpses)
from solutions.train import count_parameters
from solutions.vision import ConvNet, ConvNetConfig
from test_attention_core import PACKAGE, _SoftmaxCallers


# ------------------------------------------------------------------------------ the data
def test_the_glimpse_task_is_deterministic_translated_and_cluttered():
    a = glimpse_canvases(torch.arange(30), seed=3)
    b = glimpse_canvases(torch.arange(30), seed=3)
    c = glimpse_canvases(torch.arange(30), seed=4)
    s = GLIMPSE_TASK["canvas"]
    assert a.images.shape == (30, 1, s, s) and torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert torch.equal(a.images, make_digit_canvases(torch.arange(30), seed=3, **GLIMPSE_TASK).images)
    clean = glimpse_canvases(torch.arange(30), seed=3, clutter=0)
    assert torch.equal(clean.centres, a.centres), "the clutter does not move the digits"
    assert a.images.sum() > 1.2 * clean.images.sum(), "the clutter adds ink"
    assert a.centres.std(0).min() > 2, "the digits are spread over the canvas"


def test_every_digit_lies_within_reach_of_a_glimpse_location():
    config = GlimpseConfig()
    data = glimpse_canvases(torch.arange(200), seed=0)
    nearest = torch.cdist(data.centres.float(), patch_centres(config.canvas, config.patch, config.stride)).min(-1).values
    assert nearest.max() <= config.stride / 2 * 2 ** 0.5 + 1e-4, "half a grid step in x and in y at most"


# ------------------------------------------------------------------------------ the grid of locations
@pytest.mark.parametrize("canvas, patch, stride", [(28, 12, 4), (16, 8, 4), (10, 4, 2), (6, 6, 1)])
def test_patches_equal_explicit_slices(device, canvas, patch, stride):
    images = rand(3, 1, canvas, canvas, device=device)
    patches = extract_patches(images, patch, stride)
    g = grid_side(canvas, patch, stride)
    assert patches.shape == (3, g * g, patch * patch)
    centres = patch_centres(canvas, patch, stride)
    for k in range(g * g):
        row, col = divmod(k, g)
        window = images[:, 0, row * stride:row * stride + patch, col * stride:col * stride + patch]
        torch.testing.assert_close(patches[:, k], window.flatten(1), rtol=0, atol=0)
        assert centres[k].tolist() == [col * stride + patch / 2, row * stride + patch / 2]


def test_a_grid_that_does_not_tile_is_refused():
    with pytest.raises(ValueError, match="divisible by stride"):
        grid_side(28, 12, 5)
    with pytest.raises(ValueError, match=r"\(B, 1, S, S\)"):
        extract_patches(torch.zeros(2, 3, 8, 8), 4, 2)
    with pytest.raises(ValueError, match="coarse factor"):
        GlimpseConfig(coarse=3)


def test_the_window_is_a_square_of_locations(device):
    side = 5
    centres = torch.tensor([12, 0, 4, 2], device=device)  # the middle, two corners, an edge
    mask = grid_window_mask(centres, side, radius=1)
    assert mask.shape == (4, 25) and mask.sum(-1).tolist() == [9, 4, 4, 6]
    assert mask[torch.arange(4), centres].all(), "the centre is in its window"
    assert torch.equal(grid_window_mask(centres, side, 0), F.one_hot(centres, 25).bool())
    assert grid_window_mask(centres, side, 4).all()
    with pytest.raises(ValueError):
        grid_window_mask(centres, side, -1)


# ------------------------------------------------------------------------------ soft, hard, local weights
def test_soft_weights_are_the_cores_softmax(device):
    logits = rand(4, 9, device=device)
    weights = soft_weights(logits)
    torch.testing.assert_close(weights, masked_softmax(logits))
    assert (weights > 0).all() and torch.allclose(weights.sum(-1), torch.ones(4, device=device, dtype=torch.float64))


def test_hard_weights_are_one_hot_at_the_argmax_or_a_sample(device):
    logits = rand(6, 9, device=device)
    weights, location = hard_weights(logits, sample=False)
    assert torch.equal(location, logits.argmax(-1)) and weights.dtype == logits.dtype
    assert torch.equal(weights, F.one_hot(location, 9).to(logits.dtype))
    weights, location = hard_weights(logits, sample=True)
    assert torch.equal(weights.sum(-1), torch.ones(6, device=device, dtype=logits.dtype))
    assert torch.equal(weights.argmax(-1), location)
    assert not weights.requires_grad


def test_sampled_locations_follow_the_softmax_of_the_scores(device):
    """20,000 draws: each frequency lies within 5 standard errors of its probability (a false alarm has
    probability below 1e-5 per location)."""
    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]], device=device)
    n = 20_000
    _, location = hard_weights(logits.expand(n, -1), sample=True)
    frequency = torch.bincount(location, minlength=5).double() / n
    p = masked_softmax(logits.double())[0]
    assert ((frequency - p).abs() <= 5 * (p * (1 - p) / n).sqrt()).all(), (frequency, p)


def test_local_weights_are_a_softmax_inside_the_window(device):
    logits = rand(3, 25, device=device, requires_grad=True)
    centres = torch.tensor([12, 0, 24], device=device)
    weights = local_weights(logits, centres, side=5, radius=1)
    inside = grid_window_mask(centres, 5, 1)
    assert (weights[~inside] == 0).all() and (weights[inside] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, device=device, dtype=torch.float64))
    expected = logits.masked_fill(~inside, float("-inf")).exp()
    torch.testing.assert_close(weights, expected / expected.sum(-1, keepdim=True))
    assert torch.autograd.gradcheck(lambda x: local_weights(x, centres, 5, 1), (logits,))


@pytest.mark.parametrize("mode", MODES)
def test_every_glimpse_mode_normalises_its_scores_with_the_core(device, mode):
    torch.manual_seed(0)
    model = GlimpseClassifier(GlimpseConfig.tiny()).to(device)
    images = torch.rand(4, 1, 16, 16, device=device)
    with _SoftmaxCallers() as spy:
        model(images, mode, sample=True)
    core = (PACKAGE / "attention").resolve()
    assert (core / "masking.py") in spy.callers
    assert all(c is not None and c.parent == core for c in spy.callers), spy.callers


# ------------------------------------------------------------------------------ pixels seen
def test_pixels_seen_by_each_kind_of_glimpse(device):
    canvas, patch, stride = 28, 12, 4
    logits = rand(2, 25, device=device)
    assert pixels_seen(soft_weights(logits), canvas, patch, stride).tolist() == [784, 784]
    one_hot, _ = hard_weights(logits, sample=False)
    assert pixels_seen(one_hot, canvas, patch, stride).tolist() == [144, 144]
    centres = torch.tensor([12, 0], device=device)  # the middle, a corner
    local = local_weights(logits, centres, 5, radius=1)
    assert pixels_seen(local, canvas, patch, stride).tolist() == [(patch + 2 * stride) ** 2, (patch + stride) ** 2]
    model = GlimpseClassifier(GlimpseConfig()).to(device)
    assert model.pixels_read(one_hot).tolist() == [144 + 49, 144 + 49], "the glimpse plus the 7 × 7 coarse view"


# ------------------------------------------------------------------------------ the model
@pytest.mark.parametrize("mode", MODES)
def test_the_model_runs_in_every_mode_on_any_dtype(device, mode):
    torch.manual_seed(0)
    config = GlimpseConfig.tiny()
    model = GlimpseClassifier(config).to(device).double()
    images = torch.rand(5, 1, 16, 16, device=device, dtype=torch.float64)
    out = model(images, mode, sample=True)
    assert out.logits.shape == (5, 10) and out.weights.shape == (5, config.locations) == out.location_logits.shape
    assert out.logits.dtype == torch.float64 and out.logits.device.type == device.type
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(5, device=device, dtype=torch.float64))
    torch.testing.assert_close(out.logits, model.classify(images, out.weights))
    if mode == "soft":
        assert out.location is None and out.log_prob is None
    else:
        assert out.location.shape == (5,) and out.weights[torch.arange(5), out.location].gt(0).all()
        expected = masked_softmax(out.location_logits).gather(-1, out.location[:, None]).squeeze(-1).log()
        torch.testing.assert_close(out.log_prob, expected)


def test_the_most_likely_location_is_used_when_not_sampling(device):
    torch.manual_seed(0)
    model = GlimpseClassifier(GlimpseConfig.tiny()).to(device).eval()
    images = torch.rand(8, 1, 16, 16, device=device)
    out = model(images, "hard")
    assert torch.equal(out.location, out.location_logits.argmax(-1))


def test_a_hard_glimpse_depends_on_its_own_patch_only(device):
    """What pixels_seen counts: change every pixel outside the chosen patch, the class logits stay."""
    torch.manual_seed(0)
    config = GlimpseConfig.tiny()
    model = GlimpseClassifier(config).to(device).double()
    images = torch.rand(4, 1, 16, 16, device=device, dtype=torch.float64)
    weights = F.one_hot(torch.tensor([0, 4, 8, 5], device=device), config.locations).double()
    outside = F.fold(weights.unsqueeze(1).expand(4, 64, 9), (16, 16), kernel_size=8, stride=4) == 0  # (B, 1, S, S)
    changed = torch.where(outside, torch.rand_like(images), images)
    torch.testing.assert_close(model.classify(changed, weights), model.classify(images, weights))
    soft = soft_weights(model.location_logits(images))
    assert not torch.allclose(model.classify(changed, soft), model.classify(images, soft)), "a soft glimpse sees all"


def test_the_glimpse_is_the_weighted_sum_of_patch_features(device):
    torch.manual_seed(0)
    config = GlimpseConfig.tiny()
    model = GlimpseClassifier(config).to(device).double()
    images = torch.rand(3, 1, 16, 16, device=device, dtype=torch.float64)
    weights = torch.rand(3, config.locations, device=device, dtype=torch.float64)
    features = model.what(extract_patches(images, config.patch, config.stride))  # (B, K, N)
    torch.testing.assert_close(model.glimpse(images, weights), torch.einsum("bk,bkn->bn", weights, features))
    with pytest.raises(ValueError, match=r"weights must be \(B, K\)"):
        model.classify(images, weights[:, :4])
    with pytest.raises(ValueError, match="mode must be"):
        model(images, "sharp")


def test_gradients_in_float64(device):
    torch.manual_seed(0)
    model = GlimpseClassifier(GlimpseConfig.tiny(hidden=4, features=4)).to(device).double()
    images = torch.rand(2, 1, 16, 16, device=device, dtype=torch.float64)
    weights = torch.rand(2, 9, device=device, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: model.classify(images, w), (weights,))
    pixels = images.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: model.location_logits(x), (pixels,))


def test_which_paths_carry_gradient_to_the_location_scores(device):
    """Soft and local: the classification loss reaches the location network; hard: only REINFORCE does."""
    torch.manual_seed(0)
    data = glimpse_canvases(torch.arange(16), seed=0, canvas=16, digit_size=8, device=device)
    batch = (data.images, data.labels)
    for mode, reaches in (("soft", True), ("local", True), ("hard", False)):
        model = GlimpseClassifier(GlimpseConfig.tiny()).to(device)
        out = model(data.images, mode, sample=True)
        F.cross_entropy(out.logits, data.labels).backward()
        grad = model.key.weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == reaches, mode
        model.zero_grad()
        loss, extras = glimpse_loss(model, batch, mode)
        loss.backward()
        assert model.key.weight.grad.abs().sum() > 0, f"{mode}: the whole loss trains the location network"
        assert (model.value.weight.grad is not None) == (mode != "soft"), "only REINFORCE trains the baseline"


# ------------------------------------------------------------------------------ REINFORCE
def test_reinforce_terms_as_written(device):
    log_prob = rand(5, device=device, requires_grad=True)
    reward = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], device=device, dtype=torch.float64)
    baseline = rand(5, device=device, requires_grad=True)
    policy, fit_baseline = reinforce_terms(log_prob, reward, baseline)
    torch.testing.assert_close(policy, -((reward - baseline) * log_prob).mean())
    torch.testing.assert_close(fit_baseline, (reward - baseline).square().mean())
    (grad_b,) = torch.autograd.grad(policy, baseline, retain_graph=True, allow_unused=True)
    assert grad_b is None, "the advantage is held constant in the policy loss"
    (grad_p,) = torch.autograd.grad(policy, log_prob)
    torch.testing.assert_close(grad_p, -(reward - baseline.detach()) / 5)


def test_reinforce_estimates_the_gradient_of_the_expected_reward(device):
    """∇_e E_{ℓ~softmax(e)}[r(ℓ)] enumerated vs the mean REINFORCE estimate over 40,000 samples. The
    estimate's standard error per component is below 0.003 here; the tolerance 0.015 is 5 of them."""
    torch.manual_seed(0)
    logits = torch.tensor([0.5, -1.0, 1.0, 0.0], device=device, dtype=torch.float64, requires_grad=True)
    reward = torch.tensor([1.0, 0.0, 0.3, 0.8], device=device, dtype=torch.float64)
    (exact,) = torch.autograd.grad((masked_softmax(logits) * reward).sum(), logits)
    n = 40_000
    scores = logits.expand(n, -1)
    _, location = hard_weights(scores, sample=True)
    log_prob = masked_softmax(scores).gather(-1, location[:, None]).squeeze(-1).log()
    baseline = torch.full((n,), 0.5, device=device, dtype=torch.float64)
    policy, _ = reinforce_terms(log_prob, reward[location], baseline)
    (estimate,) = torch.autograd.grad(-policy, logits)
    torch.testing.assert_close(estimate, exact, rtol=0, atol=0.015)


# ------------------------------------------------------------------------------ training
def test_the_models_have_similar_sizes():
    glimpse, full = count_parameters(GlimpseClassifier(GlimpseConfig())), count_parameters(FullImageClassifier())
    assert abs(glimpse - full) < 0.1 * full, (glimpse, full)


@pytest.mark.parametrize("mode", MODES + ("full", "convnet"))
def test_training_through_fit(device, one_thread, mode):
    torch.manual_seed(0)
    kw = dict(canvas=16, digit_size=8, clutter=1, fragment=3, device=device)
    pool = [glimpse_canvases(torch.arange(64), seed=e, **kw) for e in range(2)]
    builds = {"full": lambda: FullImageClassifier(canvas=16), "convnet": lambda: ConvNet(ConvNetConfig.tiny())}
    model = builds.get(mode, lambda: GlimpseClassifier(GlimpseConfig.tiny()))().to(device)
    if mode == "convnet":  # a model that returns (logits, extras) trains and tests as "full"
        mode = "full"
    trained = {n: p for n, p in model.named_parameters() if not (mode == "soft" and n.startswith("value."))}
    before = {n: p.detach().clone() for n, p in trained.items()}
    record = train_glimpses(model, pool, mode, seed=0, batch_size=16)
    assert record["epoch"] == 2 and record["seconds"] > 0 and torch.isfinite(torch.tensor(record["loss"]))
    assert all(not torch.equal(before[n], p) for n, p in trained.items()), "every parameter was trained"
    accuracy, pixels = glimpse_accuracy(model, pool[0], mode)
    assert 0 <= accuracy <= 1
    if mode == "local":  # a window of 2 × 2 locations in a corner of the 3 × 3 grid, all 9 in the middle
        assert 144 + 16 <= pixels <= 256 + 16
    else:
        assert pixels == {"full": 256, "soft": 256 + 16, "hard": 64 + 16}[mode]

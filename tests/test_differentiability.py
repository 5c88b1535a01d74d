"""Attention by differentiability: the score-function (REINFORCE) estimator, the Gumbel-softmax and its
straight-through version, and the exact gradient of a categorical choice by enumeration.

Oracles: PyTorch's ``F.gumbel_softmax`` given the same noise; the enumerated expectation differentiated by
autograd; ``torch.autograd.gradcheck`` in float64. Statistical tests use a fixed seed and a tolerance in
standard errors of the Monte Carlo mean, and each is shown to reject a biased estimator, so it can fail.
Every test runs on each available device.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from helpers import rand
from solutions.attention import masked_softmax, weighted_sum
from solutions.taxonomy.differentiability import (ESTIMATORS, TRAINING_ESTIMATORS, attention_estimator_loss,
                                                  categorical_log_prob, estimator_accuracy, estimator_statistics,
                                                  exact_gradient, expected_value, gradient_samples, gumbel_max,
                                                  gumbel_softmax, sample_gumbel, score_function_surrogate,
                                                  straight_through, train_attention_estimator)
from test_attention_core import PACKAGE, _SoftmaxCallers

F64 = torch.float64


def generator(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


def quadratic_problem(device, K=5, D=3, seed=0):
    """A categorical attention problem whose expectation can be enumerated: the loss of the context y V is
    f(y) = ‖y V − t‖², for one-hot y (hard attention) or y on the simplex (soft, relaxed)."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(K, generator=gen, dtype=F64).to(device)
    values = torch.randn(K, D, generator=gen, dtype=F64).to(device)
    target = torch.randn(D, generator=gen, dtype=F64).to(device)

    def objective(weights):  # (S, K) -> (S,)
        return (weights @ values - target).square().sum(-1)

    f_hard = objective(torch.eye(K, dtype=F64, device=device))  # (K,): f(e_k)
    return scores, objective, f_hard


# ------------------------------------------------------------------------------ Gumbel noise and sampling
def test_gumbel_noise_has_the_gumbel_distribution(device):
    g = sample_gumbel((200_000,), generator=generator(device), device=device, dtype=F64)
    assert g.device.type == device.type and g.dtype == F64 and torch.isfinite(g).all()
    # Gumbel(0, 1): mean = Euler's γ, variance = π²/6 ≈ 1.645; standard errors sqrt(1.645/2e5) ≈ 0.0029 and
    # (for the variance, kurtosis 5.4) about sqrt((5.4 + 2) * 1.645² / 2e5) ≈ 0.010: 5 of them asked
    assert abs(g.mean().item() - 0.5772156649) < 0.015, g.mean().item()
    assert abs(g.var().item() - math.pi ** 2 / 6) < 0.05, g.var().item()


def test_gumbel_max_samples_the_categorical_distribution(device):
    """Jang et al. eq. (1): argmax(s + g) is distributed as softmax(s). A chi-square test with K − 1 = 5
    degrees of freedom; the 0.9999 quantile is 25.7, so a correct sampler fails once in 10,000 seeds."""
    scores = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5, -3.0], dtype=F64, device=device)
    n = 100_000
    z = gumbel_max(scores.expand(n, -1), generator=generator(device, 1))  # (n,)
    counts = torch.bincount(z, minlength=6).to(F64)
    expected = n * masked_softmax(scores)
    chi2 = ((counts - expected).square() / expected).sum().item()
    assert chi2 < 25.7, f"chi-square {chi2:.1f} with 5 degrees of freedom"
    # the same test rejects a wrong sampler: argmax(s + g) with g at twice its scale samples softmax(s / 2)
    z_wrong = gumbel_max(scores.expand(n, -1) / 2, generator=generator(device, 1))
    wrong = torch.bincount(z_wrong, minlength=6).to(F64)
    assert ((wrong - expected).square() / expected).sum().item() > 1000


def test_gumbel_max_never_picks_a_masked_candidate(device):
    scores = torch.zeros(1000, 4, device=device)
    keep = torch.tensor([True, False, True, False], device=device)
    z = gumbel_max(scores, mask=keep, generator=generator(device))
    assert keep[z].all()


# ------------------------------------------------------------------------------ against F.gumbel_softmax
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("temperature", [0.3, 1.0, 4.0])
def test_gumbel_softmax_equals_pytorch_with_the_same_noise(device, hard, temperature):
    torch.manual_seed(0)
    scores = rand(3, 4, 7, device=device, requires_grad=True)
    torch.manual_seed(123)
    theirs = F.gumbel_softmax(scores, tau=temperature, hard=hard)
    torch.manual_seed(123)  # the noise PyTorch drew: −log of standard exponentials, in the same order
    noise = -torch.empty_like(scores).exponential_().log()
    ours = gumbel_softmax(scores, temperature, noise=noise, hard=hard)
    torch.testing.assert_close(ours, theirs)  # theirs, z − y.detach() + y, may differ from one-hot by an ulp
    if hard:
        assert ((ours == 0) | (ours == 1)).all(), "ours is exactly one-hot"
    upstream = rand(3, 4, 7, device=device)
    grad_ours, = torch.autograd.grad((ours * upstream).sum(), scores)
    grad_theirs, = torch.autograd.grad((theirs * upstream).sum(), scores)
    torch.testing.assert_close(grad_ours, grad_theirs)


def test_gumbel_softmax_properties(device):
    torch.manual_seed(1)
    scores = rand(2, 6, device=device)
    noise = sample_gumbel(scores.shape, generator=generator(device), device=device, dtype=F64)
    y = gumbel_softmax(scores, 0.5, noise=noise)
    torch.testing.assert_close(y.sum(-1), torch.ones(2, dtype=F64, device=device))
    assert (y > 0).all()
    # τ → 0: the Gumbel-max one-hot sample of the same noise; τ → ∞: uniform
    cold = gumbel_softmax(scores, 1e-3, noise=noise)
    torch.testing.assert_close(cold, F.one_hot(gumbel_max(scores, noise=noise), 6).to(F64))
    torch.testing.assert_close(gumbel_softmax(scores, 1e6, noise=noise), torch.full_like(y, 1 / 6), atol=1e-5, rtol=0)
    # shifting every score by a constant changes nothing (the scores are log-probabilities up to a constant)
    torch.testing.assert_close(gumbel_softmax(scores + 3.0, 0.5, noise=noise), y)
    keep = torch.tensor([True, True, False, True, False, True], device=device)
    masked = gumbel_softmax(scores, 0.5, noise=noise, mask=keep)
    assert (masked[:, ~keep] == 0).all() and torch.allclose(masked.sum(-1), torch.ones(2, dtype=F64, device=device))
    assert gumbel_softmax(scores.float(), 0.5).dtype == torch.float32


def test_gumbel_softmax_rejects_noise_of_another_shape(device):
    with pytest.raises(ValueError, match=r"noise \(2, 3\) must have the shape of the scores \(2, 4\)"):
        gumbel_softmax(torch.zeros(2, 4, device=device), noise=torch.zeros(2, 3, device=device))


# ------------------------------------------------------------------------------ straight-through
def test_straight_through_is_one_hot_forward_and_soft_backward(device):
    torch.manual_seed(2)
    scores = rand(4, 5, device=device, requires_grad=True)
    noise = sample_gumbel(scores.shape, generator=generator(device), device=device, dtype=F64)
    hard = gumbel_softmax(scores, 0.7, noise=noise, hard=True)
    soft = gumbel_softmax(scores, 0.7, noise=noise)
    assert ((hard == 0) | (hard == 1)).all() and (hard.sum(-1) == 1).all(), "the forward value is exactly one-hot"
    assert torch.equal(hard.argmax(-1), soft.argmax(-1)) and torch.equal(hard.argmax(-1), gumbel_max(scores, noise=noise))
    upstream = rand(4, 5, device=device)
    grad_hard, = torch.autograd.grad((hard * upstream).sum(), scores)
    grad_soft, = torch.autograd.grad((soft * upstream).sum(), scores)
    torch.testing.assert_close(grad_hard, grad_soft)  # the backward pass is the soft one
    y = torch.tensor([[0.2, 0.5, 0.3]], device=device, requires_grad=True)
    out = straight_through(y)
    assert out.tolist() == [[0.0, 1.0, 0.0]]
    out.backward(torch.tensor([[1.0, 2.0, 3.0]], device=device))
    assert y.grad.tolist() == [[1.0, 2.0, 3.0]], "∂y_ST/∂y is the identity"


# ------------------------------------------------------------------------------ gradients in float64
def test_gradcheck(device):
    torch.manual_seed(3)
    scores = rand(2, 5, device=device, requires_grad=True)
    noise = sample_gumbel(scores.shape, generator=generator(device), device=device, dtype=F64)
    keep = torch.tensor([True, True, False, True, True], device=device)
    index = torch.tensor([0, 3], device=device)
    values = rand(2, 5, device=device)
    assert torch.autograd.gradcheck(lambda s: gumbel_softmax(s, 0.6, noise=noise, mask=keep), (scores,))
    assert torch.autograd.gradcheck(lambda s: categorical_log_prob(s, index, keep), (scores,))
    assert torch.autograd.gradcheck(lambda s: expected_value(s, values, keep), (scores,))
    assert torch.autograd.gradgradcheck(lambda s: expected_value(s, values), (scores,))


def test_exact_gradient_equals_autograd_of_the_enumerated_expectation(device):
    torch.manual_seed(4)
    scores, values = rand(3, 6, device=device, requires_grad=True), rand(3, 6, device=device)
    keep = torch.tensor([True, False, True, True, True, False], device=device)
    for mask in (None, keep):
        grad, = torch.autograd.grad(expected_value(scores, values, mask).sum(), scores)
        torch.testing.assert_close(exact_gradient(scores, values, mask), grad)
    # the score function: ∇ log α_z = e_z − α
    z = torch.tensor([2, 0, 5], device=device)
    grad, = torch.autograd.grad(categorical_log_prob(scores, z).sum(), scores)
    torch.testing.assert_close(grad, F.one_hot(z, 6).to(F64) - masked_softmax(scores))


# ------------------------------------------------------------------------------ the estimators
def test_reinforce_is_unbiased(device):
    """The mean of 200,000 score-function estimates equals the enumerated gradient within 5 standard errors of
    that mean in every component (|Z| > 5 has probability 6e-7 per component for a correct estimator). The
    same test rejects the Gumbel-softmax estimator at τ = 1, whose bias is a real one (measured: 290 s.e.; the three unbiased ones: 4.1, 0.2 and 1.2)."""
    scores, objective, f_hard = quadratic_problem(device)
    truth = exact_gradient(scores, f_hard)
    J = expected_value(scores, f_hard).item()
    S = 200_000
    for estimator, baseline, seed in (("reinforce", None, 5), ("reinforce_baseline", J, 6),
                                      ("reinforce_baseline", J + 3.0, 7)):  # any constant baseline is unbiased
        samples = gradient_samples(scores, objective, estimator, S, baseline=baseline, generator=generator(device, seed))
        se = samples.std(0) / math.sqrt(S)  # (K,)
        z = (samples.mean(0) - truth) / se
        assert z.abs().max() < 5, f"{estimator} (b = {baseline}): the mean is {z.abs().max():.1f} s.e. from the truth"
    samples = gradient_samples(scores, objective, "gumbel", S, temperature=1.0, generator=generator(device, 8))
    z = (samples.mean(0) - truth) / (samples.std(0) / math.sqrt(S))
    assert z.abs().max() > 10, "the Gumbel-softmax gradient is biased at τ = 1, and the test must see it"


def test_a_baseline_reduces_the_variance(device):
    scores, objective, f_hard = quadratic_problem(device)
    J = expected_value(scores, f_hard).item()
    plain = gradient_samples(scores, objective, "reinforce", 50_000, generator=generator(device, 9))
    based = gradient_samples(scores, objective, "reinforce_baseline", 50_000, baseline=J, generator=generator(device, 9))
    # the same noise, so the same z: only f − b changes. The exact variances are Σ_z α_z (f_z − b)² ‖e_z − α‖² − ‖∇J‖²
    alpha = masked_softmax(scores)
    eye = torch.eye(len(scores), dtype=F64, device=device)
    score_norm = (eye - alpha).square().sum(-1)  # (K,): ‖e_z − α‖²
    truth = exact_gradient(scores, f_hard)
    for samples, b in ((plain, 0.0), (based, J)):
        exact = (alpha * (f_hard - b).square() * score_norm).sum() - truth.square().sum()
        measured = estimator_statistics(samples, truth)["variance"]
        # 50,000 samples of a heavy-tailed quantity: 5% relative error is several standard errors
        assert abs(measured - exact.item()) < 0.05 * exact.item(), (b, measured, exact.item())
    assert estimator_statistics(based, truth)["variance"] < 0.5 * estimator_statistics(plain, truth)["variance"]


def test_gumbel_bias_shrinks_with_the_temperature_and_the_soft_gradient_has_no_variance(device):
    scores, objective, f_hard = quadratic_problem(device)
    truth = exact_gradient(scores, f_hard)
    stats = {tau: estimator_statistics(gradient_samples(scores, objective, "gumbel", 100_000, temperature=tau,
                                                        generator=generator(device, 10)), truth)
             for tau in (0.1, 1.0, 5.0)}
    # bias: ordered with τ (measured 0.027 ± 0.011, 0.263, 0.569), each gap many standard errors wide
    assert stats[0.1]["bias"] + 5 * stats[0.1]["bias_se"] < stats[1.0]["bias"] < stats[5.0]["bias"]
    assert stats[0.1]["variance"] > stats[1.0]["variance"] > stats[5.0]["variance"]
    soft = gradient_samples(scores, objective, "soft", 3)
    assert torch.equal(soft[0], soft[1]) and torch.equal(soft[0], soft[2])
    # equal samples: only the rounding of their mean is left (a + a + a)/3 ≠ a in float32 for some a
    assert estimator_statistics(soft, truth)["variance"] < 1e-24


def test_gradient_samples_follow_the_device_and_dtype(device):
    scores, objective, _ = quadratic_problem(device)
    for estimator in ESTIMATORS:
        out = gradient_samples(scores, objective, estimator, 4, baseline=0.0, generator=generator(device))
        assert out.shape == (4, 5) and out.dtype == F64 and out.device.type == device.type
    with pytest.raises(ValueError, match="estimator must be one of"):
        gradient_samples(scores, objective, "reinforced", 4)
    with pytest.raises(ValueError, match="needs a baseline"):
        gradient_samples(scores, objective, "reinforce_baseline", 4)
    with pytest.raises(ValueError, match=r"scores must be the \(K,\) scores of one query"):
        gradient_samples(scores[None], objective, "soft", 4)


def test_score_function_surrogate_detaches_the_loss_and_the_baseline(device):
    scores = rand(3, 4, device=device, requires_grad=True)
    z = torch.tensor([0, 1, 3], device=device)
    loss = rand(3, device=device, requires_grad=True)
    baseline = rand(3, device=device, requires_grad=True)
    surrogate = score_function_surrogate(categorical_log_prob(scores, z), loss, baseline)
    g_scores, g_loss, g_baseline = torch.autograd.grad(surrogate.sum(), (scores, loss, baseline), allow_unused=True)
    assert g_loss is None and g_baseline is None, "the loss and the baseline are constants of the surrogate"
    expected = (loss - baseline).detach()[:, None] * (F.one_hot(z, 4).to(F64) - masked_softmax(scores))
    torch.testing.assert_close(g_scores, expected)


def test_every_softmax_is_the_cores(device):
    scores, objective, f_hard = quadratic_problem(device)
    with _SoftmaxCallers() as spy:
        for estimator in ESTIMATORS:
            gradient_samples(scores, objective, estimator, 3, baseline=0.0)
        gumbel_softmax(scores, hard=True)
        categorical_log_prob(scores[None], torch.tensor([1], device=device))
        exact_gradient(scores, f_hard)
    core = (PACKAGE / "attention").resolve()
    assert (core / "masking.py") in spy.callers
    assert all(c is not None and c.parent == core for c in spy.callers), spy.callers


# ------------------------------------------------------------------------------ training a choice of glimpse
class SlotModel(torch.nn.Module):
    """A glimpse model in miniature: each example is K slots of D features; the scores come from the slots,
    the class from the weighted sum of the slots (the core's weighted_sum), the baseline from their mean."""

    def __init__(self, K=4, D=6, classes=3):
        super().__init__()
        self.where = torch.nn.Linear(D, 1)
        self.head = torch.nn.Linear(D, classes)
        self.value = torch.nn.Linear(D, 1)
        self.seen = None

    def location_logits(self, images):  # (B, K, D) -> (B, K)
        return self.where(images).squeeze(-1)

    def classify(self, images, weights):  # (B, K, D), (B, K) -> (B, C)
        self.seen = weights
        return self.head(weighted_sum(weights.unsqueeze(1), images).squeeze(1))

    def baseline(self, images):
        return self.value(images.mean(1).detach()).squeeze(-1)


def slot_task(n, seed, device, K=4, D=6, classes=3):
    """The class is written in the one slot whose feature 0 is 3; the other slots hold noise."""
    gen = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.randn(n, K, D, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    where = torch.randint(0, K, (n,), generator=gen)
    x[torch.arange(n), where, 0] = 3.0
    x[torch.arange(n), where, 1 + labels] += 3.0
    return SimpleNamespace(images=x.to(device), labels=labels.to(device))


@pytest.mark.parametrize("estimator", TRAINING_ESTIMATORS)
def test_each_estimator_reaches_the_right_parameters(device, estimator):
    torch.manual_seed(0)
    model = SlotModel().to(device)
    data = slot_task(16, 0, device)
    loss, extras = attention_estimator_loss(model, (data.images, data.labels), estimator)
    assert torch.isfinite(loss) and 0 <= extras["accuracy"] <= 1 and extras["size"] == 16
    loss.backward()
    assert model.where.weight.grad is not None and model.where.weight.grad.abs().sum() > 0, "the scores learn"
    assert model.head.weight.grad.abs().sum() > 0, "the classifier learns"
    learns_baseline = model.value.weight.grad is not None and model.value.weight.grad.abs().sum() > 0
    assert learns_baseline == (estimator == "reinforce_baseline"), "only REINFORCE with a baseline fits b"
    hard = estimator in ("reinforce", "reinforce_baseline", "straight_through")
    seen = model.seen.detach()
    assert (((seen == 0) | (seen == 1)).all() and (seen.sum(-1) == 1).all()) == hard, "hard choices are one-hot"


def test_reinforce_gradient_is_the_score_function_estimate(device):
    """The gradient that reaches the scores is −mean_b[(r_b − b_b)(e_ℓ − α)]: the cross-entropy sends none
    through a one-hot choice."""
    torch.manual_seed(1)
    model = SlotModel().to(device).double()
    data = slot_task(32, 1, device)
    images = data.images.double()
    scores = model.location_logits(images).detach().requires_grad_(True)  # (B, K): a leaf to differentiate by
    model.location_logits = lambda _: scores
    loss, _ = attention_estimator_loss(model, (images, data.labels), "reinforce_baseline")
    (grad,) = torch.autograd.grad(loss, scores)
    choice = model.seen.argmax(-1)
    reward = (model.classify(images, model.seen).argmax(-1) == data.labels).double()
    advantage = reward - model.baseline(images)
    expected = -(advantage[:, None] * (F.one_hot(choice, 4).double() - masked_softmax(scores))) / 32
    torch.testing.assert_close(grad, expected.detach())


def test_training_records_test_accuracy_and_soft_attention_learns_the_slot_task(device, one_thread):
    torch.manual_seed(2)
    pool = [slot_task(256, seed, device) for seed in range(6)]
    test = slot_task(500, 99, device)
    history = {}
    for estimator in ("soft", "reinforce_baseline"):
        torch.manual_seed(3)
        model = SlotModel().to(device)
        history[estimator] = train_attention_estimator(model, pool, (test.images, test.labels), estimator, lr=3e-2)
        assert len(history[estimator]) == 6 and all("test accuracy" in r for r in history[estimator])
    # chance is 1/3; the slot is easy to find by backpropagation: soft attention ends near 1 after 6 small epochs
    # (measured 0.998; 0.8 is far above chance on 500 test examples). REINFORCE learns far more slowly (measured
    # at chance after these 6 epochs), so only its record is checked here
    assert history["soft"][-1]["test accuracy"] > 0.8, history["soft"]
    assert 0 <= history["reinforce_baseline"][-1]["test accuracy"] <= 1
    with pytest.raises(ValueError, match="estimator must be one of"):
        train_attention_estimator(SlotModel().to(device), pool, (test.images, test.labels), "hard")


def test_training_softmaxes_are_the_cores(device):
    model = SlotModel().to(device)
    data = slot_task(8, 0, device)
    with _SoftmaxCallers() as spy:
        for estimator in TRAINING_ESTIMATORS:
            attention_estimator_loss(model, (data.images, data.labels), estimator)[0].backward()
        estimator_accuracy(model, data.images, data.labels, "soft")
    core = (PACKAGE / "attention").resolve()
    assert spy.callers and all(c is not None and c.parent == core for c in spy.callers), spy.callers

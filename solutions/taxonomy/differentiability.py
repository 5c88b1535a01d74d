"""Attention by differentiability: soft attention is trained by backpropagation, hard attention by sampling.

One query chooses among K candidates (glimpse locations, words, keys) with scores s ∈ R^K and weights
α = softmax(s) from the course's :func:`~solutions.attention.masked_softmax`. What differs is how the weights
enter the model and how a gradient reaches s.

* **Soft** (deterministic) attention feeds c = Σ_k α_k v_k forward (Xu et al. 2015, arXiv:1502.03044,
  Section 4.2; Bahdanau et al. 2014): the whole computation is differentiable and backpropagation gives the
  exact gradient of the loss f(α).
* **Hard** (stochastic) attention samples one candidate z ~ Categorical(α) and feeds v_z forward (Xu et al.
  2015, Section 4.1; Mnih et al. 2014, arXiv:1406.6247). The objective is the expectation
  J(s) = E_{z∼α}[f(e_z)] = Σ_k α_k f(e_k), and the sample has no derivative. The *score-function* (REINFORCE)
  estimator of Williams 1992 (Section 4, Theorem 1) is unbiased,

      ∇_s J = E_z[ (f(e_z) − b) ∇_s log α_z ],      ∇_s log α_z = e_z − α,

  for any baseline b that does not depend on z (the b = 0 case is plain REINFORCE; Mnih et al. 2014, eq. 2,
  learn b; Xu et al. 2015 use a moving average).
* **Gumbel-softmax** (Jang et al. 2017, arXiv:1611.01144; the Concrete distribution of Maddison et al. 2017,
  arXiv:1611.00712) writes the sample as a function of the scores and independent noise. With
  g_k = −log(−log u_k), u_k ~ U(0, 1) i.i.d.,

      z = one_hot(argmax_k (s_k + g_k))                   the Gumbel-max trick, Jang et al. eq. (1): z ∼ α exactly,
      y = softmax((s + g) / τ)                              the relaxation, Jang et al. eq. (2).

  ∇_s f(y) is a low-variance but *biased* estimate of ∇_s J; the bias vanishes as the temperature τ → 0, where
  the variance grows. The **straight-through** version (Jang et al., Section 2.2) feeds the one-hot z forward
  and passes the gradient of y backward: y_ST = z + y − stop_gradient(y).

The scores may be any real numbers: the softmax does not change when a constant is added to every score, so
s plays the role of log α (Jang et al.'s log π_k) up to that constant.

**Training a choice.** :func:`attention_estimator_loss` trains the location scores of a glimpse model (scores
over K locations, a classifier of any weight vector over them, a learned baseline — the glimpse classifier of
the chapter *Attention by region*) with each of the five: soft weights, hard choices with REINFORCE (reward 1 for
a right class, Mnih et al. 2014) with or without the baseline, Gumbel-softmax weights, straight-through choices.
:func:`train_attention_estimator` runs it through :func:`~solutions.train.fit_one_cycle` and scores the test set after
every epoch, with soft weights for soft attention and the most likely location for all the others.

Every softmax here is the core's :func:`~solutions.attention.masked_softmax` (a test checks it); a bool
``mask`` (True = may be chosen) removes candidates, as everywhere in the course.

Shape letters (see :mod:`solutions`): ... any leading dimensions (B, samples); here also K the candidates of
one query (the keys Tk of the core), S Monte Carlo samples, D features of a candidate.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..attention import masked_softmax
from ..train import evaluating, fit_one_cycle

__all__ = ["ESTIMATORS", "sample_gumbel", "gumbel_softmax", "straight_through", "gumbel_max",
           "categorical_log_prob", "score_function_surrogate", "expected_value", "exact_gradient",
           "gradient_samples", "estimator_statistics", "TRAINING_ESTIMATORS", "attention_estimator_loss",
           "glimpse_weights", "estimator_accuracy", "train_attention_estimator"]

#: The gradient estimators of :func:`gradient_samples`, from the unbiased to the deterministic.
ESTIMATORS = ("reinforce", "reinforce_baseline", "gumbel", "straight_through", "soft")


# ----------------------------------------------------------------------------------------- sampling
def sample_gumbel(shape: torch.Size | tuple[int, ...], *, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard Gumbel noise g = −log(−log u), u ~ U(0, 1), of the given shape (Jang et al. 2017, Section 2).

    ``generator`` draws the uniforms (it must live on ``device``); without one, torch's global generator.
    """
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)  # (...) in [0, 1)
    u = u.clamp_min(torch.finfo(u.dtype).tiny)  # u = 0 would give g = −inf
    return -torch.log(-torch.log(u))


def gumbel_softmax(scores: torch.Tensor, temperature: float = 1.0, *, noise: torch.Tensor | None = None,
                   hard: bool = False, mask: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """A Gumbel-softmax sample y = softmax((s + g) / τ) over the last dimension (Jang et al. 2017, eq. 2).

    Args:
        scores: (..., K) unnormalised log-probabilities s (the softmax removes any common shift).
        temperature: τ > 0; τ → 0 tends to the one-hot Gumbel-max sample, τ → ∞ to the uniform vector.
        noise: (..., K) Gumbel noise g; drawn by :func:`sample_gumbel` (from ``generator``) when None. Pass it
            to reuse the same noise, e.g. to compare with ``F.gumbel_softmax`` or between temperatures.
        hard: the straight-through version (Jang et al., Section 2.2): the forward value is the one-hot
            argmax of y, the gradient is that of y (:func:`straight_through`).
        mask: bool, broadcastable to ``scores``; True = may be chosen. Removed candidates get weight 0.

    Returns:
        (..., K) weights: on the simplex (soft) or one-hot (hard), differentiable in ``scores``.
    """
    if noise is None:
        noise = sample_gumbel(scores.shape, generator=generator, device=scores.device, dtype=scores.dtype)
    elif noise.shape != scores.shape:
        raise ValueError(f"noise {tuple(noise.shape)} must have the shape of the scores {tuple(scores.shape)}")
    y = masked_softmax(scores + noise, mask, temperature=temperature)  # (..., K): softmax((s + g) / τ)
    return straight_through(y) if hard else y


def straight_through(soft: torch.Tensor) -> torch.Tensor:
    """One-hot argmax of ``soft`` in the forward pass, the gradient of ``soft`` in the backward pass.

    y_ST = z + (y − stop_gradient(y)) with z = one_hot(argmax_k y_k): exactly z (the bracket is exactly 0,
    where PyTorch's ``z − y.detach() + y`` may round in the last digit), with ∂y_ST/∂y = I (Jang et al. 2017,
    Section 2.2; the straight-through estimator of Bengio et al. 2013). (..., K) → (..., K).
    """
    index = soft.argmax(-1, keepdim=True)  # (..., 1)
    one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)  # (..., K)
    return one_hot + (soft - soft.detach())


def gumbel_max(scores: torch.Tensor, *, noise: torch.Tensor | None = None, mask: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """An exact sample z ∼ Categorical(softmax(s)): the index argmax_k (s_k + g_k) (Jang et al. 2017, eq. 1).

    scores (..., K) → index (...) int64. ``noise`` and ``generator`` as in :func:`gumbel_softmax`; candidates
    removed by ``mask`` are never chosen (at least one per row must be kept).
    """
    if noise is None:
        noise = sample_gumbel(scores.shape, generator=generator, device=scores.device, dtype=scores.dtype)
    perturbed = scores.detach() + noise  # (..., K)
    if mask is not None:
        perturbed = perturbed.masked_fill(~mask, -torch.inf)
    return perturbed.argmax(-1)  # (...)


def categorical_log_prob(scores: torch.Tensor, index: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """log α_z for the chosen candidates: scores (..., K), index (...) → (...), differentiable in ``scores``.

    Its gradient is the score function ∇_s log α_z = e_z − α that REINFORCE multiplies by the reward.
    """
    weights = masked_softmax(scores, mask)  # (..., K): α
    chosen = weights.gather(-1, index.unsqueeze(-1)).squeeze(-1)  # (...): α_z
    return torch.log(chosen.clamp_min(torch.finfo(chosen.dtype).tiny))


def score_function_surrogate(log_prob: torch.Tensor, loss: torch.Tensor,
                             baseline: torch.Tensor | float | None = None) -> torch.Tensor:
    """The REINFORCE surrogate (f − b) · log α_z, whose gradient is the score-function estimate of ∇ E[f].

    ``loss`` f and ``baseline`` b are treated as constants (detached); neither may depend on the gradient's
    path through the sample. Minimising the surrogate's mean follows −E[(f − b) ∇ log α_z] = −∇ E[f]: it
    lowers the expected loss (Williams 1992's REINFORCE with reward r = −f; Mnih et al. 2014, eq. 2).
    Shapes: log_prob (...), loss (...), baseline broadcastable → (...).
    """
    advantage = loss.detach()
    if baseline is not None:
        advantage = advantage - (baseline.detach() if isinstance(baseline, torch.Tensor) else baseline)
    return advantage * log_prob


# ------------------------------------------------------------------------- the exact gradient
def expected_value(scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """J(s) = E_{z∼α}[f(e_z)] = Σ_k α_k f_k by enumeration: scores (..., K), values f (..., K) → (...)."""
    return (masked_softmax(scores, mask) * values).sum(-1)


def exact_gradient(scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """∇_s Σ_k α_k f_k = α ⊙ (f − Σ_k α_k f_k), the gradient of :func:`expected_value` in closed form.

    scores (..., K), values f (..., K) → (..., K). (Differentiate α_k = exp(s_k) / Σ_j exp(s_j): ∂α_k/∂s_j =
    α_k (δ_kj − α_j).)
    """
    weights = masked_softmax(scores, mask)  # (..., K)
    mean = (weights * values).sum(-1, keepdim=True)  # (..., 1): J
    return weights * (values - mean)


# ------------------------------------------------------------------------- the estimators, measured
def gradient_samples(scores: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor], estimator: str,
                     num_samples: int, *, temperature: float = 1.0, baseline: float | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``num_samples`` independent one-sample estimates of ∇_s E_{z∼softmax(s)}[objective(e_z)].

    Args:
        scores: (K,) the scores s of one query.
        objective: f, mapping weights (S, K) — one-hot samples, or relaxed ones on the simplex — to (S,),
            differentiable in the weights (it is evaluated at one-hot vectors for the hard estimators).
        estimator: one of :data:`ESTIMATORS`: ``"reinforce"`` f(e_z) ∇ log α_z; ``"reinforce_baseline"`` the
            same with f − ``baseline``; ``"gumbel"`` ∇_s f(y) with y from eq. (2); ``"straight_through"``
            ∇_s f(y_ST); ``"soft"`` ∇_s f(α), the deterministic gradient of soft attention.
        temperature: τ of the Gumbel estimators.
        baseline: b for ``"reinforce_baseline"`` (a number; e.g. J itself, the value a learned baseline tends to).

    Returns:
        (S, K): one gradient estimate per row. The hard estimators sample z by the Gumbel-max trick, so the
        four sampling estimators see the same kind of noise.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if scores.dim() != 1:
        raise ValueError(f"scores must be the (K,) scores of one query, got shape {tuple(scores.shape)}")
    if estimator == "reinforce_baseline" and baseline is None:
        raise ValueError("the 'reinforce_baseline' estimator needs a baseline")
    S, K = num_samples, scores.shape[0]
    s = scores.detach().expand(S, K).clone().requires_grad_(True)  # (S, K): one copy per sample
    noise = sample_gumbel((S, K), generator=generator, device=scores.device, dtype=scores.dtype)
    if estimator in ("reinforce", "reinforce_baseline"):
        z = gumbel_max(s, noise=noise)  # (S,)
        f = objective(F.one_hot(z, K).to(s.dtype))  # (S,): f(e_z)
        surrogate = score_function_surrogate(categorical_log_prob(s, z), f,
                                             baseline if estimator == "reinforce_baseline" else None)
    elif estimator == "soft":
        surrogate = objective(masked_softmax(s))  # (S,): every row the same
    else:
        surrogate = objective(gumbel_softmax(s, temperature, noise=noise, hard=estimator == "straight_through"))
    (gradient,) = torch.autograd.grad(surrogate.sum(), s)  # (S, K): row i depends on copy i only
    return gradient


def estimator_statistics(samples: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Bias and variance of a one-sample estimator from its samples (S, K) against the true gradient (K,).

    Returns ``bias`` ‖E ĝ − ∇J‖, ``bias_se`` (the standard error of that norm's components, ‖se‖),
    ``variance`` E‖ĝ − E ĝ‖² (the trace of the covariance) and ``mse`` E‖ĝ − ∇J‖² = bias² + variance,
    each as a Python float; an N-sample average has the same bias and variance / N.
    """
    mean = samples.mean(0)  # (K,)
    S = samples.shape[0]
    centred = samples - mean  # (S, K)
    variance = centred.square().sum(-1).mean()  # trace of the covariance
    bias_se = (centred.square().mean(0) / S).sum().sqrt()  # ‖standard error of the mean‖
    return {"bias": float((mean - truth).norm()), "bias_se": float(bias_se), "variance": float(variance),
            "mse": float((samples - truth).square().sum(-1).mean())}


# ------------------------------------------------------------------------- training a choice of glimpse
#: How :func:`attention_estimator_loss` trains the location scores of a glimpse model.
TRAINING_ESTIMATORS = ("soft", "reinforce", "reinforce_baseline", "gumbel", "straight_through")


def attention_estimator_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], estimator: str, *,
                             temperature: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch (images, labels) for :func:`~solutions.train.fit`, and numbers to report.

    ``model`` is a glimpse model with ``location_logits(images) -> e (B, K)``, ``classify(images, weights (B, K))
    -> class logits (B, C)`` and ``baseline(images) -> b (B,)`` (the glimpse classifier of the chapter
    *Attention by region*). The weights that form the glimpse, and the gradient that reaches e:

    * ``"soft"``: α = softmax(e); backpropagation (Xu et al. 2015, Section 4.2);
    * ``"reinforce"``: one-hot e_ℓ, ℓ ~ Categorical(α); cross-entropy for the classifier, and the score-function
      surrogate −r · log α_ℓ with reward r = 1 for a right class (Mnih et al. 2014, eq. 1);
    * ``"reinforce_baseline"``: the same with r − b(x) and b trained on (r − b)² (Mnih et al. 2014, eq. 2);
    * ``"gumbel"``: the Gumbel-softmax sample y (Jang et al. 2017, eq. 2); backpropagation through y;
    * ``"straight_through"``: the one-hot Gumbel-max choice forward, the gradient of y backward.
    """
    if estimator not in TRAINING_ESTIMATORS:
        raise ValueError(f"estimator must be one of {TRAINING_ESTIMATORS}, got {estimator!r}")
    images, labels = batch
    scores = model.location_logits(images)  # (B, K): e
    choice = None
    if estimator == "soft":
        weights = masked_softmax(scores)  # (B, K)
    elif estimator in ("gumbel", "straight_through"):
        weights = gumbel_softmax(scores, temperature, hard=estimator == "straight_through")  # (B, K)
    else:
        choice = gumbel_max(scores)  # (B,): ℓ ~ softmax(e)
        weights = F.one_hot(choice, scores.shape[-1]).to(scores.dtype)  # (B, K), no gradient to e
    logits = model.classify(images, weights)  # (B, C)
    loss = F.cross_entropy(logits, labels)
    reward = (logits.argmax(-1) == labels).to(scores.dtype)  # (B,): r
    extras = {"accuracy": reward.mean().item(), "size": len(labels)}
    if choice is not None:
        log_prob = categorical_log_prob(scores, choice)  # (B,): log α_ℓ
        baseline = model.baseline(images) if estimator == "reinforce_baseline" else None  # (B,): b(x)
        # the loss of a choice is −r, and its baseline −b: the surrogate is (−r + b) · log α_ℓ
        loss = loss + score_function_surrogate(log_prob, -reward, None if baseline is None else -baseline).mean()
        if baseline is not None:
            fit_baseline = (reward - baseline).square().mean()
            loss = loss + fit_baseline
            extras["baseline_loss"] = fit_baseline.item()
    return loss, extras


def glimpse_weights(model: torch.nn.Module, images: torch.Tensor, estimator: str) -> torch.Tensor:
    """The weights a model trained with ``estimator`` uses at test time: softmax(e) for ``"soft"``, the one-hot
    vector of the most likely location for every other estimator (the model then really reads one glimpse)."""
    scores = model.location_logits(images)  # (B, K)
    if estimator == "soft":
        return masked_softmax(scores)
    return F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)  # (B, K)


def estimator_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, estimator: str,
                       batch_size: int = 1024) -> float:
    """Test accuracy with the weights of :func:`glimpse_weights` (no sampling), in evaluation mode."""
    correct = 0
    with evaluating(model):
        for start in range(0, len(labels), batch_size):
            x, y = images[start:start + batch_size], labels[start:start + batch_size]
            correct += (model.classify(x, glimpse_weights(model, x, estimator)).argmax(-1) == y).sum().item()
    return correct / len(labels)


def train_attention_estimator(model: torch.nn.Module, pool: list, test: tuple[torch.Tensor, torch.Tensor],
                              estimator: str, *, temperature: float = 1.0, seed: int | None = None, batch_size: int = 32,
                              lr: float = 3e-3) -> list[dict[str, float]]:
    """Train a glimpse model's choice with one estimator, through :func:`~solutions.train.fit_one_cycle`.

    ``pool`` holds one set of canvases per epoch (each with ``images`` and ``labels``, e.g. fresh placements
    of the same digits); ``test`` is ``(images, labels)``, scored after every epoch with
    :func:`estimator_accuracy`. Adam with a one-cycle schedule; ``seed`` orders the batches (the caller seeds the
    model's initialisation and the sampling). Returns one record per epoch: loss, training accuracy (with the
    weights of training: samples, relaxed or soft) and ``test accuracy``.
    """
    if estimator not in TRAINING_ESTIMATORS:
        raise ValueError(f"estimator must be one of {TRAINING_ESTIMATORS}, got {estimator!r}")
    return fit_one_cycle(model, pool, lambda m, b: attention_estimator_loss(m, b, estimator, temperature=temperature),
                         lr=lr, seed=seed, batch_size=batch_size,
                         after_epoch=lambda epoch: {"test accuracy": estimator_accuracy(model, *test, estimator)},
                         desc=f"glimpses ({estimator})")

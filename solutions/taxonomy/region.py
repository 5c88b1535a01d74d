"""Attention by region: soft attention weighs every location, hard attention picks one, local attention
picks one and then weighs softly around it.

The task is the glimpse task of Mnih et al. 2014 ("Recurrent Models of Visual Attention", arXiv:1406.6247)
at small scale: a handwritten digit somewhere on a larger canvas strewn with fragments of other digits
(:func:`glimpse_canvases`). The canvas is cut into a grid of K overlapping square patches, the candidate
*glimpse locations* (:func:`extract_patches`). A :class:`GlimpseClassifier` scores the K locations from a
low-resolution view of the canvas (one number per f × f block, as the coarse scales of Mnih et al.'s
retina), turns the scores into a weight vector α over the locations, forms the glimpse as the weighted sum
of the patches' features, and classifies the glimpse:

    e = score(q(x̄), k_j(x̄)),  j = 1..K          scores of the locations ("logits over locations")
    α = softmax(e)                               soft:  Xu et al. 2015 eq. (5)-(6), z = Σ_j α_j a_j (Section 4.2)
    α = onehot(ℓ),  ℓ ~ Categorical(softmax(e))  hard:  Xu et al. 2015 eq. (8)-(9); Mnih et al.'s location policy
    α = softmax over {j : |j − ℓ| ≤ W} of e      local: a hard centre ℓ, soft weights in a window around it
                                                        (Luong et al. 2015 Section 3.2, on a 2-D grid)
    z = Σ_j α_j a_j,  y = W_y z                   the glimpse (a_j: features of patch j) and the class logits

Only α differs between the three, so any weight vector (B, K), such as chapter 9's Gumbel-softmax sample,
plugs into :meth:`GlimpseClassifier.classify`. Soft attention is trained by backpropagation; hard attention's
sampled location has no gradient, so its policy is trained by REINFORCE (Williams 1992; Mnih et al. 2014
eq. 1-2) with a learned baseline b(x̄):

    L = CE(y, label) − (r − b)·log π(ℓ | x̄) + (r − b)²,    r = 1[the class is right],  (r − b) held constant

(:func:`reinforce_terms`). The weights always come from the core's ``masked_softmax`` and the glimpse from
its ``weighted_sum``; the scores from one of its score modules (additive by default, Xu et al.'s f_att).

A soft glimpse reads every pixel of the canvas (every weight is positive); a hard one reads one patch, and a
local one the patches of its window, plus, for all three, the low-resolution view: :func:`pixels_seen`
counts them.

Shape letters (see :mod:`solutions`): B batch, C classes, S canvas side, P patch side, K glimpse locations
(G × G on a grid of side G), Pc side of a patch in the low-resolution view, Sc side of that view,
E feature size of the location network, N hidden size of the glimpse ("what") network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import make_score, masked_softmax, weighted_sum
from ..data.digits import DigitCanvases, make_digit_canvases
from ..train import compute_clock, evaluating, fit_one_cycle

__all__ = ["GLIMPSE_TASK", "MODES", "GlimpseConfig", "GlimpseOutput", "GlimpseClassifier", "FullImageClassifier",
           "glimpse_canvases", "extract_patches", "grid_side", "patch_centres", "grid_window_mask", "soft_weights",
           "hard_weights", "local_weights", "pixels_seen", "reinforce_terms", "glimpse_loss", "train_glimpses",
           "glimpse_accuracy"]

#: The chapter's task: a 12-pixel digit anywhere on a 28 × 28 canvas, with 4 fragments of other digits.
GLIMPSE_TASK = dict(distortion="T", canvas=28, digit_size=12, clutter=4, fragment=5)

#: How a :class:`GlimpseClassifier` turns its location scores into weights.
MODES = ("soft", "hard", "local")


def glimpse_canvases(indices: torch.Tensor | None = None, *, repeats: int = 1, seed: int | None = None,
                     device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                     **overrides) -> DigitCanvases:
    """Canvases for the glimpse task: :func:`~solutions.data.digits.make_digit_canvases` with
    :data:`GLIMPSE_TASK` (translated digits plus clutter; ``overrides`` change any of its settings).
    Deterministic given ``seed``."""
    return make_digit_canvases(indices, **{**GLIMPSE_TASK, **overrides}, repeats=repeats, seed=seed,
                               device=device, dtype=dtype)


# --------------------------------------------------------------------------- the grid of locations
def grid_side(canvas: int, patch: int, stride: int) -> int:
    """G, the number of patch positions along one side: (S − P) / stride + 1 (it must divide exactly)."""
    if patch > canvas or (canvas - patch) % stride:
        raise ValueError(f"patches of {patch} pixels with stride {stride} do not tile a canvas of {canvas}: "
                         f"need (canvas - patch) divisible by stride")
    return (canvas - patch) // stride + 1


def extract_patches(images: torch.Tensor, patch: int, stride: int) -> torch.Tensor:
    """The K = G² candidate glimpses of each canvas, row by row: images (B, 1, S, S) → patches (B, K, P²).

    Patch k = G·row + col has its top-left corner at (x, y) = (col · stride, row · stride).
    """
    if images.dim() != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be (B, 1, S, S), got shape {tuple(images.shape)}")
    grid_side(images.shape[-1], patch, stride)  # checks the tiling
    columns = F.unfold(images, kernel_size=patch, stride=stride)  # (B, P², K)
    return columns.transpose(1, 2)  # (B, K, P²)


def patch_centres(canvas: int, patch: int, stride: int) -> torch.Tensor:
    """Centre (x, y) in pixels of each of the K patches, in the order of :func:`extract_patches`: (K, 2)."""
    g = grid_side(canvas, patch, stride)
    offsets = torch.arange(g, dtype=torch.float32) * stride + patch / 2  # (G,)
    ys, xs = torch.meshgrid(offsets, offsets, indexing="ij")  # (G, G) each
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # (K, 2)


def grid_window_mask(centres: torch.Tensor, side: int, radius: int) -> torch.Tensor:
    """Locations within ``radius`` grid steps (in rows and in columns) of each centre: the local window.

    centres (B,) integer indices into the K = side² locations → bool (B, K), True inside the window. On a
    1-D grid this is Luong et al.'s window [p_t − D, p_t + D]; here it is a square of (2·radius + 1)².
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    k = torch.arange(side * side, device=centres.device)  # (K,)
    rows, cols = k // side, k % side  # (K,) each
    c_rows, c_cols = (centres // side).unsqueeze(-1), (centres % side).unsqueeze(-1)  # (B, 1) each
    return ((rows - c_rows).abs() <= radius) & ((cols - c_cols).abs() <= radius)  # (B, K)


# --------------------------------------------------------------------------- three ways to weigh the locations
def soft_weights(logits: torch.Tensor) -> torch.Tensor:
    """Soft attention: α = softmax(e) over all K locations (the core's ``masked_softmax``): (B, K) → (B, K)."""
    return masked_softmax(logits)


def hard_weights(logits: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard attention: one location ℓ, sampled from softmax(e) (``sample``) or the most likely one.

    logits (B, K) → ``(one-hot weights (B, K) in the logits' dtype, locations ℓ (B,) int64)``. The weights
    carry no gradient: the choice is not differentiable (REINFORCE trains it, :func:`reinforce_terms`).
    """
    if sample:
        probs = masked_softmax(logits.detach())  # (B, K)
        location = torch.multinomial(probs, 1).squeeze(-1)  # (B,)
    else:
        location = logits.argmax(-1)  # (B,)
    return F.one_hot(location, logits.shape[-1]).to(logits.dtype), location  # (B, K), (B,)


def local_weights(logits: torch.Tensor, centres: torch.Tensor, side: int, radius: int) -> torch.Tensor:
    """Local attention: softmax of the scores over the window of ``radius`` around each hard centre, 0 outside.

    logits (B, K), centres (B,) → weights (B, K), each row summing to 1 over its window. Differentiable in the
    logits (the weights inside the window), not in the choice of the centre.
    """
    return masked_softmax(logits, grid_window_mask(centres, side, radius))  # (B, K)


def pixels_seen(weights: torch.Tensor, canvas: int, patch: int, stride: int) -> torch.Tensor:
    """How many distinct canvas pixels a glimpse reads: those covered by a patch with a non-zero weight.

    weights (B, K) → counts (B,) int64. A soft glimpse reads the whole canvas (S² when the patches tile it),
    a hard one P², a local one the union of its window's patches.
    """
    b, k = weights.shape
    used = (weights != 0).to(torch.float32).unsqueeze(1).expand(b, patch * patch, k)  # (B, P², K)
    covered = F.fold(used, (canvas, canvas), kernel_size=patch, stride=stride)  # (B, 1, S, S): patches per pixel
    return (covered > 0).flatten(1).sum(-1)  # (B,)


# --------------------------------------------------------------------------- the model
@dataclass
class GlimpseConfig:
    canvas: int = 28  # S
    patch: int = 12  # P, the side of a glimpse
    stride: int = 4  # between neighbouring glimpse locations: K = ((S − P) / stride + 1)² = 25
    coarse: int = 4  # f: the low-resolution view averages f × f blocks (S/f × S/f numbers); divides P and stride
    features: int = 32  # E, the location network's query and key size (and the additive score's A)
    hidden: int = 128  # N, the glimpse network's hidden size
    classes: int = 10  # C
    score: str = "additive"  # the core's score between the query and the location keys
    radius: int = 1  # local attention's window: (2·radius + 1)² locations around the centre

    @classmethod
    def tiny(cls, **overrides) -> GlimpseConfig:
        """A tiny model for tests: 16 × 16 canvases, 8-pixel patches, K = 9."""
        return cls(**{"canvas": 16, "patch": 8, "stride": 4, "features": 8, "hidden": 16, **overrides})

    def __post_init__(self) -> None:
        grid_side(self.canvas, self.patch, self.stride)
        if self.canvas % self.coarse or self.patch % self.coarse or self.stride % self.coarse:
            raise ValueError(f"the coarse factor {self.coarse} must divide the canvas ({self.canvas}), the patch "
                             f"({self.patch}) and the stride ({self.stride})")

    @property
    def side(self) -> int:
        """G, locations along one side of the grid."""
        return grid_side(self.canvas, self.patch, self.stride)

    @property
    def locations(self) -> int:
        """K = G²."""
        return self.side ** 2

    @property
    def coarse_values(self) -> int:
        """How many numbers the low-resolution view holds: (S / f)²."""
        return (self.canvas // self.coarse) ** 2


class GlimpseOutput(NamedTuple):
    """What :meth:`GlimpseClassifier.forward` returns."""

    logits: torch.Tensor  # (B, C) class logits
    weights: torch.Tensor  # (B, K) the attention over the locations that formed the glimpse
    location_logits: torch.Tensor  # (B, K) the scores e
    location: torch.Tensor | None  # (B,) the hard centre ℓ (hard and local), else None
    log_prob: torch.Tensor | None  # (B,) log π(ℓ | x̄) (hard and local), else None


class GlimpseClassifier(nn.Module):
    """Where (scores over K locations from a low-resolution view) → weights → glimpse → what (patch features, read-out).

    * :meth:`location_logits` ``(images) -> e (B, K)``;
    * :meth:`classify` ``(images, weights (B, K)) -> class logits (B, C)``: any weights, soft or one-hot;
    * :meth:`forward` ``(images, mode, sample=None)`` → :class:`GlimpseOutput`, with ``mode`` in
      :data:`MODES`; ``sample`` (default: ``self.training``) draws the hard centre instead of taking the
      most likely one;
    * :meth:`baseline` ``(images) -> b (B,)``, REINFORCE's learned baseline (its input is detached);
    * :meth:`pixels_read` ``(weights) -> (B,)``: canvas pixels of the glimpse plus the low-resolution view.
    """

    def __init__(self, config: GlimpseConfig) -> None:
        super().__init__()
        self.config = c = config
        coarse_side, coarse_patch = c.canvas // c.coarse, c.patch // c.coarse
        # where: the query from the whole low-resolution view, a key per location from its part of that view
        self.query = nn.Sequential(nn.Linear(coarse_side ** 2, c.features), nn.Tanh())  # x̄ -> q (E)
        self.key = nn.Linear(coarse_patch ** 2, c.features)  # x̄ patch -> k_j (E)
        self.position = nn.Parameter(torch.zeros(c.locations, c.features))  # (K, E): where the location is
        self.score = make_score(c.score, c.features, c.features)  # e_j = score(q, k_j), a module of the core
        self.value = nn.Linear(c.features, 1)  # the baseline b(x̄), from the (detached) query
        # what: the glimpse network, features a_j of each patch, then the class read-out of z = Σ_j α_j a_j
        self.what = nn.Sequential(nn.Linear(c.patch ** 2, c.hidden), nn.ReLU())  # p_j (P²) -> a_j (N)
        self.head = nn.Linear(c.hidden, c.classes)

    # ---- where
    def coarse_view(self, images: torch.Tensor) -> torch.Tensor:
        """The low-resolution view x̄: images (B, 1, S, S) → (B, 1, S/f, S/f), means of f × f blocks."""
        return F.avg_pool2d(images, self.config.coarse)

    def location_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Scores e_j = score(q(x̄), k_j(x̄)) of the K locations: images (B, 1, S, S) → (B, K)."""
        c = self.config
        coarse = self.coarse_view(images)  # (B, 1, Sc, Sc)
        query = self.query(coarse.flatten(1)).unsqueeze(1)  # (B, 1, E)
        parts = extract_patches(coarse, c.patch // c.coarse, c.stride // c.coarse)  # (B, K, Pc²)
        keys = self.key(parts) + self.position  # (B, K, E)
        return self.score(query, keys).squeeze(1)  # (B, 1, K) -> (B, K)

    def baseline(self, images: torch.Tensor) -> torch.Tensor:
        """REINFORCE's baseline b(x̄), an estimate of the expected reward: (B, 1, S, S) → (B,)."""
        with torch.no_grad():
            query = self.query(self.coarse_view(images).flatten(1))  # (B, E), no gradient into the features
        return self.value(query).squeeze(-1)  # (B,)

    # ---- what
    def glimpse(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The glimpse z = Σ_j α_j a_j, a_j the features of patch j (Xu et al. 2015, Section 4.2, for soft α):
        images (B, 1, S, S), weights (B, K) → z (B, N).

        For simplicity every patch's features are computed; z depends only on the patches whose weight is
        not 0 (all of them for soft weights, one for hard ones), which is what :func:`pixels_seen` counts.
        """
        c = self.config
        if weights.shape != (images.shape[0], c.locations):
            raise ValueError(f"weights must be (B, K) = ({images.shape[0]}, {c.locations}), "
                             f"got {tuple(weights.shape)}")
        features = self.what(extract_patches(images, c.patch, c.stride))  # (B, K, P²) -> (B, K, N)
        return weighted_sum(weights.unsqueeze(1), features).squeeze(1)  # (B, 1, K) @ (B, K, N) -> (B, N)

    def classify(self, images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Class logits from the glimpse these weights form: images (B, 1, S, S), weights (B, K) → (B, C)."""
        return self.head(self.glimpse(images, weights))  # (B, C)

    # ---- both
    def forward(self, images: torch.Tensor, mode: str = "soft", sample: bool | None = None) -> GlimpseOutput:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        sample = self.training if sample is None else sample
        scores = self.location_logits(images)  # (B, K)
        location = log_prob = None
        if mode == "soft":
            weights = soft_weights(scores)  # (B, K)
        else:
            _, location = hard_weights(scores, sample)  # (B,)
            log_prob = masked_softmax(scores).gather(-1, location.unsqueeze(-1)).squeeze(-1).clamp_min(1e-12).log()
            if mode == "hard":
                weights = F.one_hot(location, scores.shape[-1]).to(scores.dtype)  # (B, K)
            else:
                weights = local_weights(scores, location, self.config.side, self.config.radius)  # (B, K)
        return GlimpseOutput(self.classify(images, weights), weights, scores, location, log_prob)

    def pixels_read(self, weights: torch.Tensor) -> torch.Tensor:
        """Canvas pixels the glimpse reads plus the numbers of the low-resolution view: (B, K) → (B,)."""
        c = self.config
        return pixels_seen(weights, c.canvas, c.patch, c.stride) + c.coarse_values


class FullImageClassifier(nn.Module):
    """The baseline without attention: a two-layer MLP on the whole canvas (Mnih et al.'s "FC" rows).

    ``forward(images)``: (B, 1, S, S) → class logits (B, C). It reads all S² pixels.
    """

    def __init__(self, canvas: int = 28, hidden: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.canvas = canvas
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(canvas * canvas, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)  # (B, C)


# --------------------------------------------------------------------------- training
def reinforce_terms(log_prob: torch.Tensor, reward: torch.Tensor,
                    baseline: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE with a baseline (Williams 1992; Mnih et al. 2014, eq. 2), as two losses to minimise.

    log_prob log π(ℓ | x) (B,), reward r (B,), baseline b (B,) → ``(policy loss, baseline loss)``:

        policy   = −mean[(r − b) · log π(ℓ | x)]     (r − b) held constant: its gradient is the
                                                     score-function estimate of −∇ E[r]
        baseline = mean[(r − b)²]                    b learns the expected reward, which lowers the variance
    """
    advantage = (reward - baseline).detach()  # (B,)
    return -(advantage * log_prob).mean(), (reward - baseline).square().mean()


def glimpse_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], mode: str = "soft"):
    """The loss of one batch (images, labels) for :func:`~solutions.train.fit`, with extras to report.

    ``mode="full"`` for a model without attention, such as a :class:`FullImageClassifier` or the course's
    :class:`~solutions.vision.ConvNet` (cross-entropy; of a tuple output, the first item is the logits).
    For a :class:`GlimpseClassifier`:
    soft — cross-entropy, by backprop through the weights; hard and local — cross-entropy for the glimpse
    network (and, for local, the weights inside the window) plus :func:`reinforce_terms` for the location
    policy, with reward 1 for a right class and 0 otherwise (Mnih et al.).
    """
    images, labels = batch
    if mode == "full":
        logits = _logits(model(images))
        return F.cross_entropy(logits, labels), {"accuracy": _hits(logits, labels).mean().item(), "size": len(labels)}
    out = model(images, mode)
    loss = F.cross_entropy(out.logits, labels)
    extras = {"accuracy": _hits(out.logits, labels).mean().item(), "size": len(labels)}
    if mode != "soft":
        reward = _hits(out.logits, labels)  # (B,)
        policy, fit_baseline = reinforce_terms(out.log_prob, reward, model.baseline(images))
        loss = loss + policy + fit_baseline
        extras["baseline_loss"] = fit_baseline.item()
    return loss, extras


def train_glimpses(model: nn.Module, pool: list[DigitCanvases], mode: str, *, seed: int | None = None, batch_size: int = 32,
                   lr: float = 3e-3) -> dict[str, float]:
    """Train ``model`` with :func:`~solutions.train.fit_one_cycle`, one epoch per set of canvases in ``pool`` (fresh
    placements every epoch), Adam with a one-cycle schedule. Returns the last epoch's record plus
    ``seconds`` of compute per epoch (:func:`~solutions.train.compute_clock`). ``seed`` orders the batches (the
    model's initialisation is the caller's)."""
    clock = compute_clock(next(model.parameters()).device)
    start = clock()
    history = fit_one_cycle(model, pool, lambda m, b: glimpse_loss(m, b, mode), lr=lr, seed=seed,
                            batch_size=batch_size, desc=f"glimpses ({mode})")
    return {**history[-1], "seconds": (clock() - start) / len(pool)}


def glimpse_accuracy(model: nn.Module, data: DigitCanvases, mode: str) -> tuple[float, float]:
    """Test accuracy and mean pixels read, the hard centres at their most likely location.

    ``mode="full"`` for a model without attention (it reads all S² pixels), as in :func:`glimpse_loss`."""
    with evaluating(model):
        if mode == "full":
            logits = _logits(model(data.images))
            return _hits(logits, data.labels).mean().item(), float(data.images.shape[-1] ** 2)
        out = model(data.images, mode, sample=False)
        return _hits(out.logits, data.labels).mean().item(), model.pixels_read(out.weights).float().mean().item()


def _logits(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # (B, C)


def _hits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == labels).to(logits.dtype)  # (B,)

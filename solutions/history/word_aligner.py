"""One direction of word alignment end to end: Model 1, then the HMM started from its lexical table.

Train both directions with :func:`train_direction` and combine their links with
:func:`solutions.history.symmetrization.symmetrize`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..data import Link, Pair, Vocab
from .hmm_alignment import HMMParams, hmm_e_step, hmm_viterbi, init_hmm, train_hmm
from .ibm_model1 import (Encoded, build_vocabularies, encode, model1_e_step, model1_viterbi, train_model1,
                         uniform_lexicon)
from .symmetrization import alignment_to_links


@dataclass
class AlignerConfig:
    """How to train one direction: Model 1 first, then the HMM started from its lexical table."""

    model1_iterations: int = 5   # EM iterations of IBM Model 1 (Vogel et al. used 10 on large corpora)
    hmm_iterations: int = 5      # EM iterations of the HMM (Vogel et al.: 5)
    null: bool = True            # an empty source word for target words that translate nothing
    p_null: float = 0.2          # HMM: probability of a jump to the empty word (Och & Ney 2003: p0 = 0.2)
    jump_mm_steps: int = 10      # minorize–maximize steps of the M-step for the jump weights s(d)

    def __post_init__(self) -> None:
        for name in ("model1_iterations", "hmm_iterations", "jump_mm_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if not 0.0 <= self.p_null < 1.0:
            raise ValueError(f"p_null must lie in [0, 1), got {self.p_null}")

    @classmethod
    def tiny(cls, **overrides) -> AlignerConfig:
        """A fast preset for tests."""
        return cls(**{**dict(model1_iterations=2, hmm_iterations=2, jump_mm_steps=3), **overrides})


# ----------------------------------------------------------------- one direction, end to end
@dataclass
class DirectionalAligner:
    """Model 1 and the HMM trained in one direction, with their vocabularies and learning curves."""

    reverse: bool               # False: generate the target side from the source side
    src_vocab: Vocab            # the conditioning side (with NULL)
    tgt_vocab: Vocab            # the generated side
    model1: torch.Tensor        # (Vf, Ve) Model 1's t(f | e)
    hmm: HMMParams
    null: bool = True
    model1_history: list[float] = field(default_factory=list)  # log-likelihood per word, per iteration
    hmm_history: list[float] = field(default_factory=list)

    def encode(self, pairs: Sequence[Pair]) -> Encoded:
        return encode(pairs, self.src_vocab, self.tgt_vocab, self.reverse, self.model1.device)

    def links(self, pairs: Sequence[Pair], model: str = "hmm") -> list[set[Link]]:
        """Viterbi links of each pair, as (source index, target index) of the pairs."""
        data = self.encode(pairs)
        if model == "model1":
            alignments = model1_viterbi(self.model1, data, self.null)
        elif model == "hmm":
            alignments = hmm_viterbi(self.hmm, data)[0]
        else:
            raise ValueError(f"model must be 'model1' or 'hmm', got {model!r}")
        return [alignment_to_links(a, self.reverse) for a in alignments]

    def link_posteriors(self, pair: Pair, model: str = "hmm") -> torch.Tensor:
        """P(source word i and target word j are linked), as a (target, source) matrix for plotting.

        In the forward direction each row (target word) sums to 1 minus its empty-word posterior; in the
        reverse direction the columns do.
        """
        data = self.encode([pair])
        if model == "model1":
            post = model1_e_step(self.model1, data, self.null)[0][0, :, int(self.null):]  # (J, I)
        elif model == "hmm":
            I = data.src.shape[1]
            post = hmm_e_step(self.hmm, data).gamma[0, :, :I]  # (J, I)
        else:
            raise ValueError(f"model must be 'model1' or 'hmm', got {model!r}")
        return post.T if self.reverse else post  # (target words, source words) of the pair


def train_direction(pairs: Sequence[Pair], config: AlignerConfig | None = None, reverse: bool = False,
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float64,
                    progress: bool | None = None) -> DirectionalAligner:
    """Train Model 1 and then the HMM (from Model 1's table) on ``pairs`` in one direction.

    ``reverse=False`` models Pr(target | source), each target word linked to one source word;
    ``reverse=True`` models Pr(source | target). Train both and :func:`symmetrize` their links.
    """
    config = config or AlignerConfig()
    src_vocab, tgt_vocab = build_vocabularies(pairs, reverse)
    data = encode(pairs, src_vocab, tgt_vocab, reverse, device)
    t = uniform_lexicon(src_vocab, tgt_vocab, device, dtype)
    t, history1 = train_model1(data, t, config.model1_iterations, config.null, progress)
    hmm = init_hmm(t, data.src.shape[1], config.null, config.p_null)
    hmm, history2 = train_hmm(data, hmm, config.hmm_iterations, config.jump_mm_steps, progress)
    return DirectionalAligner(reverse, src_vocab, tgt_vocab, t, hmm, config.null, history1, history2)

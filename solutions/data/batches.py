"""Translation pairs encoded once and served as padded batches for teacher forcing.

Shape letters: B batch, S source positions (tokens + EOS), T target positions (tokens + 1).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .pairs import Pair
from .vocab import Vocab, pad_batch
from ..seeding import or_default


@dataclass
class Batch:
    """Padded ids; ``tgt_in`` = BOS + tokens (teacher forcing), ``tgt_out`` = tokens + EOS."""

    src: torch.Tensor       # (B, S) source tokens + EOS
    src_lens: torch.Tensor  # (B,)
    tgt_in: torch.Tensor    # (B, T)
    tgt_out: torch.Tensor   # (B, T)
    tgt_lens: torch.Tensor  # (B,)   target tokens + 1
    pairs: list[Pair]       # the examples, for their gold alignments

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.src.to(device), self.src_lens.to(device), self.tgt_in.to(device),
                     self.tgt_out.to(device), self.tgt_lens.to(device), self.pairs)


def split(pairs: Sequence[Pair], fractions: Sequence[float] = (0.8, 0.1, 0.1),
          seed: int | None = None) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Shuffle with ``seed`` and cut into train/valid/test with the given fractions (summing to 1)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    order = list(range(len(pairs)))
    random.Random(or_default(seed)).shuffle(order)
    a = round(len(pairs) * fractions[0])
    b = round(len(pairs) * (fractions[0] + fractions[1]))
    parts = order[:a], order[a:b], order[b:]
    return tuple([pairs[i] for i in part] for part in parts)  # type: ignore[return-value]


class TranslationData:
    """Pairs with their vocabularies, encoded once, served as padded :class:`Batch` es.

    Without vocabularies given, they are built from ``pairs``: pass the training split only and hand
    its vocabularies to the validation and test sets (as :meth:`from_pairs` does), so that held-out
    tokens the model never saw become UNK instead of leaking into the vocabulary.
    """

    def __init__(self, pairs: Sequence[Pair], src_vocab: Vocab | None = None,
                 tgt_vocab: Vocab | None = None, min_freq: int = 1) -> None:
        self.pairs = list(pairs)
        self.src_vocab = src_vocab or Vocab.build([p.source for p in self.pairs], min_freq)
        self.tgt_vocab = tgt_vocab or Vocab.build([p.target for p in self.pairs], min_freq)
        self._encoded = self.encode_pairs(self.pairs)

    @classmethod
    def from_pairs(cls, pairs: Sequence[Pair], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int | None = None,
                   min_freq: int = 1) -> tuple[TranslationData, TranslationData, TranslationData]:
        """Train/valid/test sets from :func:`split`, all using vocabularies of the training split."""
        train, valid, test = split(pairs, fractions, seed)
        data = cls(train, min_freq=min_freq)
        return data, cls(valid, data.src_vocab, data.tgt_vocab), cls(test, data.src_vocab, data.tgt_vocab)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Pair:
        return self.pairs[index]

    def encode_pairs(self, pairs: Sequence[Pair]) -> list[tuple[list[int], list[int]]]:
        """(source ids + EOS, target ids + EOS) per pair; source position i is source token i."""
        return [(self.src_vocab.encode(p.source), self.tgt_vocab.encode(p.target)) for p in pairs]

    def collate(self, pairs: Sequence[Pair], encoded: Sequence[tuple[list[int], list[int]]] | None = None) -> Batch:
        """One :class:`Batch` of ``pairs`` (any pairs, e.g. a hand-made example)."""
        encoded = self.encode_pairs(pairs) if encoded is None else encoded
        src, src_lens = pad_batch([s for s, _ in encoded])                       # (B, S), (B,)
        tgt_out, tgt_lens = pad_batch([t for _, t in encoded])                   # (B, T), (B,)
        tgt_in, _ = pad_batch([[Vocab.bos_id] + t[:-1] for _, t in encoded])     # (B, T)
        return Batch(src, src_lens, tgt_in, tgt_out, tgt_lens, list(pairs))

    def batches(self, batch_size: int, shuffle: bool = False, seed: int | random.Random | None = None,
                drop_last: bool = False) -> Iterator[Batch]:
        """Batches in order, or shuffled by ``seed`` (an int, e.g. the epoch, or a ``random.Random``)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        order = list(range(len(self.pairs)))
        if shuffle:
            if seed is None:
                raise ValueError("shuffle=True needs a seed (an int such as the epoch, or a random.Random)")
            (seed if isinstance(seed, random.Random) else random.Random(seed)).shuffle(order)
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            if drop_last and len(idx) < batch_size:
                return
            yield self.collate([self.pairs[i] for i in idx], [self._encoded[i] for i in idx])

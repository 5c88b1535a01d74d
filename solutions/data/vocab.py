"""The course's one vocabulary and one padding function.

Shape letters: B batch, T positions (the longest sequence of the batch).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


class Vocab:
    """Token ↔ id map with the specials first: PAD=0, BOS=1, EOS=2, UNK=3, then tokens in sorted order.

    A model with other special tokens subclasses it and sets ``specials`` and their ids (BERT's
    ``[PAD] [CLS] [SEP] [MASK] [UNK]``); ``num_special`` ids come first, so "is special" is
    ``id < num_special``.
    """

    specials: tuple[str, ...] = SPECIALS
    num_special: int = len(SPECIALS)
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.num_special = len(cls.specials)

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        self._itos = list(self.specials) + [t for t in tokens if t not in self.specials]
        if len(set(self._itos)) != len(self._itos):
            raise ValueError("tokens contain duplicates")
        self._stoi = {t: i for i, t in enumerate(self._itos)}

    @classmethod
    def build(cls, sequences: Sequence[Sequence[str]], min_freq: int = 1) -> Vocab:
        """Vocabulary of the tokens occurring at least ``min_freq`` times in ``sequences``."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        counts = Counter(t for seq in sequences for t in seq)
        return cls(sorted(t for t, c in counts.items() if c >= min_freq))

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: str) -> bool:
        return token in self._stoi

    def token_to_id(self, token: str) -> int:
        return self._stoi.get(token, self.unk_id)

    def id_to_token(self, index: int) -> str:
        if not 0 <= index < len(self._itos):
            raise ValueError(f"id {index} is outside the vocabulary of {len(self._itos)} tokens")
        return self._itos[index]

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = True) -> list[int]:
        """Ids of ``tokens`` (UNK for unknown ones), BOS first if ``add_bos``, EOS last if ``add_eos``.

        A vocabulary without BOS or EOS (``bos_id``/``eos_id`` None, e.g. BERT's) must be asked for neither.
        """
        for wanted, name, index in ((add_bos, "BOS", self.bos_id), (add_eos, "EOS", self.eos_id)):
            if wanted and index is None:
                raise ValueError(f"{type(self).__name__} has no {name} token: encode with add_{name.lower()}=False")
        ids = [self._stoi.get(t, self.unk_id) for t in tokens]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: Sequence[int] | torch.Tensor, strip_special: bool = True) -> list[str]:
        """Tokens up to the first EOS (all of them without an EOS id); ``strip_special`` drops PAD, BOS and
        the EOS itself (other specials, such as BERT's [CLS] and [SEP], are kept)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        stripped = {i for i in (self.pad_id, self.bos_id) if i is not None} if strip_special else set()
        out = []
        for i in ids:
            if self.eos_id is not None and i == self.eos_id:
                return out if strip_special else out + [self.specials[self.eos_id]]
            if i not in stripped:
                out.append(self.id_to_token(int(i)))
        return out


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0,
              device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into a LongTensor (B, T) with T the longest length; also the lengths (B,)."""
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long, device=device)  # (B,)
    out = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long, device=device)  # (B, T)
    for b, s in enumerate(sequences):
        out[b, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out, lengths


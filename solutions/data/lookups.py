"""Synthetic lookup tasks for comparing where attention's queries come from and how many heads it has.

Each generator returns a :class:`TokenTask`: integer inputs, one class label per sequence and, where the
answer sits at known positions, those positions (to score the attention weights against the truth).
Every generator is deterministic given its seed and draws from its own ``torch.Generator``.

* :func:`contains_task` — does the sequence contain a given token? Answered by looking for one thing:
  a fixed query ("is the token 0 here?") suffices.
* :func:`repeat_task` — does some token occur twice? A relation *within* the input: the question each
  position has to ask ("is there another one like me?") depends on the position's own token.
* :func:`recall_task` — key–value items and a query key: name the value stored under the query key (found
  by content) *and* the value of the first item (found by position). One output gathers two things.

Shape letters: N examples, T positions, F fields per position (a position of :func:`recall_task` holds a
key and a value).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
from ..seeding import or_default

__all__ = ["TokenTask", "contains_task", "repeat_task", "recall_task"]


@dataclass
class TokenTask:
    """Inputs, labels and the truth about where the answer is.

    ``inputs`` is (N, T) token ids, or (N, T, F) with one id per field; field f takes ids in
    ``[0, vocab_sizes[f])``. ``labels`` is (N,) in ``[0, num_classes)``. ``where`` maps a name to an
    (N, ...) tensor of positions that hold the answer (-1 where there is none).
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    vocab_sizes: tuple[int, ...]
    num_classes: int
    where: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> TokenTask:
        return TokenTask(self.inputs[index], self.labels[index], self.vocab_sizes, self.num_classes,
                         {name: x[index] for name, x in self.where.items()})

    def split(self, n_first: int) -> tuple[TokenTask, TokenTask]:
        """The first ``n_first`` examples and the rest (the examples are drawn independently already)."""
        if not 0 < n_first < len(self):
            raise ValueError(f"n_first must be in (0, {len(self)}), got {n_first}")
        return self[:n_first], self[n_first:]

    def batches(self, batch_size: int, seed: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) in batches of ``batch_size``; shuffled with ``seed`` when one is given."""
        order = (torch.arange(len(self)) if seed is None
                 else torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)))
        for start in range(0, len(self), batch_size):
            index = order[start:start + batch_size]
            yield self.inputs[index], self.labels[index]


def _distinct(n: int, length: int, vocab: int, gen: torch.Generator) -> torch.Tensor:
    """(n, length) rows of distinct tokens from [0, vocab): the first ``length`` of a random permutation."""
    if length > vocab:
        raise ValueError(f"{length} distinct tokens need a vocabulary of at least {length}, got {vocab}")
    return torch.rand(n, vocab, generator=gen).argsort(dim=-1)[:, :length]  # (n, length)


def contains_task(n: int, length: int = 8, vocab: int = 32, target: int = 0, seed: int | None = None) -> TokenTask:
    """Sequences of ``length`` distinct tokens; label 1 when ``target`` is among them (half the examples).

    ``where["target"]`` is the position of the target token, -1 when absent.
    """
    if not 0 <= target < vocab:
        raise ValueError(f"target must be a token of the vocabulary [0, {vocab}), got {target}")
    gen = torch.Generator().manual_seed(or_default(seed))
    others = torch.tensor([t for t in range(vocab) if t != target])
    tokens = others[_distinct(n, length, vocab - 1, gen)]  # (N, T): distinct, never the target
    labels = torch.rand(n, generator=gen) < 0.5  # (N,)
    slot = torch.randint(length, (n,), generator=gen)  # (N,): where the target goes
    rows = torch.arange(n)
    tokens[rows[labels], slot[labels]] = target
    position = torch.where(labels, slot, torch.full_like(slot, -1))
    return TokenTask(tokens, labels.long(), (vocab,), 2, {"target": position})


def repeat_task(n: int, length: int = 8, vocab: int = 32, seed: int | None = None) -> TokenTask:
    """Sequences of ``length`` tokens; label 1 when one token occurs twice (half the examples), else all
    tokens are distinct. ``where["pair"]`` is (N, 2): the two positions of the repeated token, or -1, -1.
    """
    if length < 2:
        raise ValueError(f"a repeat needs at least 2 positions, got length={length}")
    gen = torch.Generator().manual_seed(or_default(seed))
    tokens = _distinct(n, length, vocab, gen)  # (N, T)
    labels = torch.rand(n, generator=gen) < 0.5  # (N,)
    pair = torch.rand(n, length, generator=gen).argsort(dim=-1)[:, :2].sort(dim=-1).values  # (N, 2): i < j
    rows = torch.arange(n)[labels]
    tokens[rows, pair[labels, 1]] = tokens[rows, pair[labels, 0]]  # copy token i to position j
    pair[~labels] = -1
    return TokenTask(tokens, labels.long(), (vocab,), 2, {"pair": pair})


def recall_task(n: int, num_items: int = 8, num_keys: int = 16, num_values: int = 8, seed: int | None = None) -> TokenTask:
    """Items (key, value) with distinct keys, then a query key; the answer is an ordered pair of values.

    Position t < ``num_items`` holds item t as the fields (key, value); the last position holds the query
    as (query key, ``num_values``), the value id ``num_values`` meaning "?". The query key is the key of
    one of the items 1, ..., num_items − 1 (never item 0). The label is

        label = value(item whose key is the query) · num_values + value(item 0),

    an ordered pair: the first value is found by content, the second by position.
    ``where["match"]`` is the position of the matching item; ``where["first"]`` is 0.
    """
    if num_items < 2:
        raise ValueError(f"recall needs at least 2 items, got num_items={num_items}")
    gen = torch.Generator().manual_seed(or_default(seed))
    keys = _distinct(n, num_items, num_keys, gen)  # (N, T - 1)
    values = torch.randint(num_values, (n, num_items), generator=gen)  # (N, T - 1)
    match = torch.randint(1, num_items, (n,), generator=gen)  # (N,): never item 0
    rows = torch.arange(n)
    query = torch.stack([keys[rows, match], torch.full((n,), num_values)], dim=-1)  # (N, 2)
    items = torch.stack([keys, values], dim=-1)  # (N, T - 1, 2)
    inputs = torch.cat([items, query.unsqueeze(1)], dim=1)  # (N, T, 2)
    labels = values[rows, match] * num_values + values[:, 0]  # (N,)
    where = {"match": match, "first": torch.zeros_like(match)}
    return TokenTask(inputs, labels, (num_keys, num_values + 1), num_values * num_values, where)

"""Synthetic documents in which one planted sentence decides the label, for hierarchical attention
(Yang et al. 2016): the sentence-level attention weights can be scored against the known planted sentence.

A document has S sentences of W words each (S and every W drawn at random). Every sentence holds one
*topic word* (a word of one of C topics) among filler words; one sentence, the *planted* one, also holds the
*marker* word. The label is the topic of the planted sentence. The other sentences' topics are drawn at
random, so counting topic words over the whole document finds the label only when the planted topic
happens to be the most frequent: a model must find the sentence with the marker and read the topic word
*of that sentence*.

Vocabulary (:func:`document_vocabulary`): id 0 is padding, id 1 the marker, then ``words_per_topic`` words
for each of the C topics, then the fillers.

Shape letters: N documents, S sentences (the longest document), W words (the longest sentence), C topics.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

import torch
from ..seeding import or_default

__all__ = ["PAD_ID", "MARKER_ID", "TOPICS", "PaddedDocuments", "DocumentData", "document_vocabulary", "make_planted_documents"]

PAD_ID, MARKER_ID = 0, 1
TOPICS = ("sport", "music", "food", "travel", "money", "weather", "health", "school")


class PaddedDocuments:
    """What every tuple of padded documents can do (:class:`DocumentData`, :class:`~solutions.data.mail.MailData`).

    Mixed into a ``NamedTuple`` of tensors whose first dimension is the document (N) and whose first two
    fields are ``words`` (N, S, W) and ``sentence_lengths`` (N, S). It comes first among the bases, so that its
    ``__len__`` (the number of documents) wins over the tuple's (the number of fields).
    """

    __slots__ = ()

    def __len__(self) -> int:
        return self.words.shape[0]

    @property
    def num_sentences(self) -> torch.Tensor:
        """(N,) the number of sentences of each document."""
        return (self.sentence_lengths > 0).sum(dim=-1)

    def subset(self, index):
        """The documents at ``index`` (an index, a slice, a bool mask or a tensor of indices), same type."""
        return type(self)(*(x[index] for x in self))

    def to(self, device: torch.device | str):
        return type(self)(*(x.to(device) for x in self))

    def batches(self, batch_size: int, seed: int | None = None) -> Iterator:
        """Batches in order, or shuffled by ``seed`` (e.g. the epoch number)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        order = torch.arange(len(self)) if seed is None else \
            torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(self), batch_size):
            yield self.subset(order[start:start + batch_size].to(self.words.device))


class _DocumentFields(NamedTuple):
    words: torch.Tensor             # (N, S, W) int64 word ids, 0 = padding
    sentence_lengths: torch.Tensor  # (N, S) int64 words per sentence, 0 for a padding sentence
    labels: torch.Tensor            # (N,) int64 topic of the planted sentence, in [0, C)
    planted: torch.Tensor           # (N,) int64 index of the planted sentence


class DocumentData(PaddedDocuments, _DocumentFields):
    """Padded documents with their labels and the index of the sentence that decides each label:
    ``words`` (N, S, W), ``sentence_lengths`` (N, S), ``labels`` (N,), ``planted`` (N,)."""

    __slots__ = ()


def document_vocabulary(vocab_size: int = 40, num_topics: int = 4, words_per_topic: int = 2) -> list[str]:
    """The words behind the ids: ``<pad>``, ``MARK``, the topic words (``sport0``, ``sport1``, ...), fillers ``w…``."""
    if num_topics > len(TOPICS):
        raise ValueError(f"at most {len(TOPICS)} topics, got {num_topics}")
    topic_words = [f"{TOPICS[c]}{k}" for c in range(num_topics) for k in range(words_per_topic)]
    fillers = vocab_size - 2 - len(topic_words)
    if fillers < 1:
        raise ValueError(f"a vocabulary of {vocab_size} leaves no filler words after padding, the marker and "
                         f"{len(topic_words)} topic words")
    return ["<pad>", "MARK"] + topic_words + [f"w{i}" for i in range(fillers)]


def make_planted_documents(num_documents: int, vocab_size: int = 40, num_topics: int = 4,
                           words_per_topic: int = 2, sentences: tuple[int, int] = (4, 8),
                           words: tuple[int, int] = (4, 8), seed: int | None = None) -> DocumentData:
    """``num_documents`` documents of ``sentences`` = (S_min, S_max) sentences of ``words`` = (W_min, W_max) words.

    Each sentence has one topic word (topic uniform over the C topics, word uniform over the topic's words)
    at a random place and filler words elsewhere; the planted sentence (uniform over the document's sentences)
    also has the marker at another random place. Deterministic given ``seed`` (a local generator).
    """
    (s_min, s_max), (w_min, w_max) = sentences, words
    if not 1 <= s_min <= s_max:
        raise ValueError(f"sentence counts must satisfy 1 <= S_min <= S_max, got {sentences}")
    if not 2 <= w_min <= w_max:
        raise ValueError(f"sentence lengths must satisfy 2 <= W_min <= W_max (a topic word and the marker), got {words}")
    if num_documents < 0:
        raise ValueError(f"num_documents must be >= 0, got {num_documents}")
    num_fillers = len(document_vocabulary(vocab_size, num_topics, words_per_topic)) - 2 - num_topics * words_per_topic
    first_filler = 2 + num_topics * words_per_topic
    gen = torch.Generator().manual_seed(or_default(seed))
    N, S, W = num_documents, s_max, w_max
    num_sentences = torch.randint(s_min, s_max + 1, (N,), generator=gen)  # (N,)
    lengths = torch.randint(w_min, w_max + 1, (N, S), generator=gen)  # (N, S)
    lengths = lengths * (torch.arange(S) < num_sentences[:, None])  # (N, S): 0 for padding sentences
    ids = first_filler + torch.randint(0, num_fillers, (N, S, W), generator=gen)  # (N, S, W): fillers
    topics = torch.randint(0, num_topics, (N, S), generator=gen)  # (N, S): the topic of every sentence
    which = torch.randint(0, words_per_topic, (N, S), generator=gen)  # (N, S)
    topic_word = 2 + topics * words_per_topic + which  # (N, S)
    # two distinct places in each sentence: the topic word's and the marker's
    places = ((1 + torch.rand(N, S, W, generator=gen)) * (torch.arange(W) < lengths[..., None])).argsort(-1, descending=True)
    topic_place, marker_place = places[..., 0], places[..., 1]  # (N, S) each, both < the sentence's length
    planted = (torch.rand(N, generator=gen) * num_sentences).long()  # (N,): uniform over the real sentences
    ids.scatter_(-1, topic_place[..., None], topic_word[..., None])
    is_planted = torch.arange(S) == planted[:, None]  # (N, S)
    marker = torch.where(is_planted, MARKER_ID, ids.gather(-1, marker_place[..., None])[..., 0])  # (N, S)
    ids.scatter_(-1, marker_place[..., None], marker[..., None])
    ids = ids * (torch.arange(W) < lengths[..., None])  # (N, S, W): padding is 0
    labels = topics.gather(1, planted[:, None])[:, 0]  # (N,)
    return DocumentData(ids, lengths, labels, planted)

"""Encoder–decoder machinery shared by the recurrent translation chapters (Bahdanau, Luong).

A translation model here is an ``nn.Module`` with two methods,

    state = model.encode(src, src_lens)                      # read the source once
    logits, weights, state = model.step(prev_tokens, state)   # one decoder step

where ``weights`` are the attention weights of that step over the source positions (or None for a
model without attention). Everything else — teacher forcing, the loss, training, greedy decoding
that stops at EOS, exact-match accuracy and the AER of the attention — is written once, here, on top
of that interface. :class:`RNNEncoder` is the bidirectional GRU encoder of Bahdanau et al. (2015,
Section 3.2, arXiv:1409.0473), which both chapters use so that their models differ only in the decoder.

Shape letters:
    B  batch            S  source positions (tokens + EOS)     T  target steps (tokens + EOS)
    E  embedding size   N  recurrent state size per direction   D  annotation size (2N when bidirectional)
    V  target vocabulary size
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..metrics import AlignmentScores, alignment_scores, links_from_attention
from ..data import Batch, Pair, TranslationData, Vocab
from ..train import EarlyStopping, compute_clock, evaluating, fit
from ..seeding import or_default

__all__ = [
    "RNNEncoder",
    "Translator",
    "teacher_forcing",
    "sequence_loss",
    "teacher_forced_scores",
    "teacher_forced_exact_match",
    "validation_epochs",
    "stopping_rule",
    "train_seq2seq",
    "Decoded",
    "greedy_decode",
    "Evaluation",
    "evaluate",
    "accuracy_by",
]


def _check_source(src: torch.Tensor, src_lens: torch.Tensor) -> None:
    if src.dim() != 2:
        raise ValueError(f"src must be (B, S) token ids, got shape {tuple(src.shape)}")
    if src_lens.shape != (src.shape[0],):
        raise ValueError(f"src_lens must be (B,) = ({src.shape[0]},), got shape {tuple(src_lens.shape)}")
    if src.shape[0] == 0:
        raise ValueError("the batch is empty")
    if int(src_lens.min()) < 1:
        raise ValueError("a source has length 0; every source holds at least its EOS token "
                         "(an empty sentence is encoded as [EOS])")
    if int(src_lens.max()) > src.shape[1]:
        raise ValueError(f"src_lens has a length of {int(src_lens.max())} but src has {src.shape[1]} positions")


class RNNEncoder(nn.Module):
    """Embedding + (bi)directional GRU: annotations ``h_j = [h→_j ; h←_j]`` of every source position.

    Bahdanau et al. 2015, Section 3.2 and Appendix A.2.1 (arXiv:1409.0473): the forward RNN reads the
    source left to right, the backward RNN right to left, and each annotation concatenates both, so
    it summarises the whole sentence with a focus on the words around position j.

    forward(src (B, S), src_lens (B,)) → annotations (B, S, D) with zeros at padding, and the final
    states (B, D): the last forward state and the first backward state, concatenated.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, bidirectional: bool = True,
                 dropout: float = 0.0, pad_id: int = Vocab.pad_id) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = nn.GRU(embed_dim, hidden_dim, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = hidden_dim * (2 if bidirectional else 1)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_source(src, src_lens)
        embedded = self.dropout(self.embedding(src))  # (B, S, E)
        packed = pack_padded_sequence(embedded, src_lens.cpu(), batch_first=True, enforce_sorted=False)
        outputs, final = self.rnn(packed)  # final: (directions, B, N)
        annotations, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])  # (B, S, D)
        final = final.transpose(0, 1).reshape(src.shape[0], -1)  # (directions, B, N) -> (B, D)
        return annotations, final


class Translator(Protocol):
    """What the helpers of this module need from a model."""

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> Any: ...

    def step(self, prev_tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]: ...


def teacher_forcing(model: Translator, src: torch.Tensor, src_lens: torch.Tensor,
                    tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the decoder on the gold previous tokens ``tgt_in`` (B, T) (BOS + target).

    Returns logits (B, T, V) and the attention weights (B, T, S) of every step (None without attention).
    """
    state = model.encode(src, src_lens)
    logits, weights = [], []
    for t in range(tgt_in.shape[1]):
        step_logits, step_weights, state = model.step(tgt_in[:, t], state)  # (B, V), (B, S)
        logits.append(step_logits)
        weights.append(step_weights)
    stacked = torch.stack(logits, dim=1)  # (B, T, V)
    if any(w is None for w in weights):
        return stacked, None
    return stacked, torch.stack(weights, dim=1)  # (B, T, S)


def sequence_loss(logits: torch.Tensor, tgt_out: torch.Tensor, pad_id: int = Vocab.pad_id) -> torch.Tensor:
    """Mean cross-entropy per target token, padding excluded. logits (B, T, V), tgt_out (B, T)."""
    if logits.shape[:2] != tgt_out.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(tgt_out.shape)} disagree on (B, T)")
    return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=pad_id)  # (B*T, V) vs (B*T,)


def teacher_forced_scores(model: nn.Module, data: TranslationData, batch_size: int = 256,
                          logits_of=None) -> tuple[float, float]:
    """(exact match, mean cross-entropy per target token) of one teacher-forced pass over ``data``.

    The exact match is the fraction of examples whose every target token (EOS included) is the argmax of
    the teacher-forced logits — the greedy exact match of :func:`evaluate`: greedy decoding feeds back its
    own argmax, so it writes the gold target exactly when each teacher-forced argmax is the gold token
    (barring exact ties between logits); a target with a word outside the vocabulary counts as wrong, as
    in :func:`evaluate`. ``logits_of(model, batch)`` returns logits (B, T, V); by default
    :func:`teacher_forcing`, step by step (a Transformer passes its parallel forward).
    """
    logits_of = logits_of or (lambda m, b: teacher_forcing(m, b.src, b.src_lens, b.tgt_in)[0])
    correct, loss, tokens = 0, 0.0, 0
    with evaluating(model):
        for batch in data.batches(batch_size):
            batch = batch.to(next(model.parameters()).device)
            logits = logits_of(model, batch)  # (B, T, V)
            right = (logits.argmax(-1) == batch.tgt_out) | (batch.tgt_out == Vocab.pad_id)  # (B, T)
            right &= batch.tgt_out != Vocab.unk_id  # a gold word outside the vocabulary cannot be written
            correct += int(right.all(dim=1).sum())
            real = int((batch.tgt_out != Vocab.pad_id).sum())
            loss += sequence_loss(logits, batch.tgt_out).item() * real
            tokens += real
    return correct / len(data), loss / tokens


def teacher_forced_exact_match(model: nn.Module, data: TranslationData, batch_size: int = 256,
                               logits_of=None) -> float:
    """The greedy exact match of :func:`evaluate` for the cost of one teacher-forced pass (see
    :func:`teacher_forced_scores`)."""
    return teacher_forced_scores(model, data, batch_size, logits_of)[0]


def validation_epochs(model: nn.Module, valid: TranslationData, logits_of=None) -> Callable[[int], dict[str, float]]:
    """An ``after_epoch`` for :func:`~solutions.train.fit`: after each epoch, ``valid_accuracy`` and
    ``valid_loss`` (exact match and cross-entropy per token on ``valid``, from :func:`teacher_forced_scores`)
    and ``train_seconds``, the compute time of training so far (:func:`~solutions.train.compute_clock`: CPU
    time on the CPU, so a busy machine does not inflate it), with the validation passes left out."""
    now = compute_clock(next(model.parameters()).device)
    clock = {"seconds": 0.0, "since": now()}

    def after_epoch(epoch: int) -> dict[str, float]:
        clock["seconds"] += now() - clock["since"]
        accuracy, loss = teacher_forced_scores(model, valid, logits_of=logits_of)
        clock["since"] = now()
        return {"valid_accuracy": accuracy, "valid_loss": loss, "train_seconds": clock["seconds"]}

    return after_epoch


def stopping_rule(patience: int | None, monitor: str = "valid_loss", min_delta: float = 0.0,
                  enough: float | None = None) -> EarlyStopping | None:
    """Early stopping on a record of :func:`validation_epochs`: ``monitor`` is ``"valid_loss"`` (lower is
    better) or ``"valid_accuracy"`` (higher is better); ``enough`` ends training at a best epoch whose
    validation exact match reaches it. None (no stopping) when ``patience`` is None."""
    if monitor not in ("valid_loss", "valid_accuracy"):
        raise ValueError(f"monitor must be 'valid_loss' or 'valid_accuracy', got {monitor!r}")
    if patience is None:
        return None
    return EarlyStopping(monitor, patience=patience, mode="min" if monitor == "valid_loss" else "max",
                         min_delta=min_delta, enough=None if enough is None else ("valid_accuracy", enough))


def train_seq2seq(model: nn.Module, data: TranslationData, epochs: int, batch_size: int = 64,
                  lr: float = 2e-3, clip: float = 1.0, seed: int | None = None, valid: TranslationData | None = None,
                  progress: bool | None = None, patience: int | None = None, monitor: str = "valid_loss",
                  min_delta: float = 0.0, enough: float | None = None) -> list[dict[str, float]]:
    """Train with Adam on teacher-forced cross-entropy; shuffled batches seeded by ``seed``.

    Returns one record per epoch: ``{"epoch", "loss"}`` (mean training loss), plus ``"valid_accuracy"``,
    ``"valid_loss"`` and ``"train_seconds"`` when ``valid`` is given (see :func:`validation_epochs`; the
    exact match is greedy decoding's, from one teacher-forced pass). With ``patience`` (``valid`` needed),
    ``epochs`` is a maximum: training stops once ``monitor`` (``"valid_loss"``, lower is better, or
    ``"valid_accuracy"``, higher is better) has not improved by more than ``min_delta`` for ``patience``
    epochs, or at a best epoch whose exact match reaches ``enough``, and the model keeps the weights of its
    best epoch (:func:`stopping_rule`). A tqdm bar shows progress unless ``progress=False`` or the
    environment sets ``COURSE_PROGRESS=0`` (as ``make`` does).
    """
    if len(data) == 0:
        raise ValueError("the training data are empty")
    device = next(model.parameters()).device
    order = random.Random(or_default(seed))

    def loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        batch = batch.to(device)
        logits, _ = teacher_forcing(model, batch.src, batch.src_lens, batch.tgt_in)  # (B, T, V)
        return sequence_loss(logits, batch.tgt_out), {"size": len(batch.pairs)}

    if patience is not None and valid is None:
        raise ValueError("early stopping (patience) needs validation data: pass valid=")
    return fit(model, lambda epoch: data.batches(batch_size, shuffle=True, seed=order), loss,
               torch.optim.Adam(model.parameters(), lr=lr), epochs=epochs, clip=clip,
               after_epoch=validation_epochs(model, valid) if valid is not None else None,
               early_stopping=stopping_rule(patience, monitor, min_delta, enough),
               steps_per_epoch=-(-len(data) // batch_size), progress=progress)


@dataclass
class Decoded:
    """Greedy translations of a batch, EOS removed, with each step's attention weights."""

    tokens: list[list[int]]  # per example, the ids before EOS
    weights: list[torch.Tensor | None]  # per example (steps, S_b): one row per step taken, EOS step included
    finished: list[bool]  # False when the example hit max_len before emitting EOS


def greedy_decode(model: Translator, src: torch.Tensor, src_lens: torch.Tensor, max_len: int,
                  bos_id: int = Vocab.bos_id, eos_id: int = Vocab.eos_id) -> Decoded:
    """Decode by always taking the most likely next token, from BOS until EOS or ``max_len`` tokens.

    An example stops at its first EOS (which is not part of its tokens); an example that has not
    produced EOS after ``max_len`` tokens returns those tokens with ``finished=False``. An empty
    sentence is a source holding only EOS (length 1) and decodes like any other; a source of
    length 0 is refused. Finished examples stop changing while the rest of the batch goes on.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    _check_source(src, src_lens)
    with evaluating(model):
        return _greedy(model, src, src_lens, max_len, bos_id, eos_id)


def _greedy(model: Translator, src: torch.Tensor, src_lens: torch.Tensor, max_len: int, bos_id: int,
            eos_id: int) -> Decoded:
    state = model.encode(src, src_lens)
    batch = src.shape[0]
    prev = torch.full((batch,), bos_id, dtype=torch.long, device=src.device)  # (B,)
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)  # (B,)
    outputs, rows = [], []
    for _ in range(max_len + 1):  # max_len tokens, then one more step in which EOS may come
        logits, weights, state = model.step(prev, state)  # (B, V), (B, S)
        prev = logits.argmax(dim=-1)  # (B,)
        outputs.append(prev)
        rows.append(weights)
        done = done | (prev == eos_id)
        if bool(done.all()):
            break
    tokens_tb = torch.stack(outputs, dim=1).tolist()  # (B, steps)
    tokens, finished, kept = [], [], []
    for b in range(batch):
        seq = tokens_tb[b]
        if eos_id in seq[:max_len + 1]:
            end = seq.index(eos_id)
            tokens.append(seq[:end])
            finished.append(end <= max_len)
            kept.append(end + 1)
        else:
            tokens.append(seq[:max_len])
            finished.append(False)
            kept.append(max_len)
    if any(w is None for w in rows):
        weights_out = [None] * batch
    else:
        stacked = torch.stack(rows, dim=1)  # (B, steps, S)
        weights_out = [stacked[b, :kept[b], :int(src_lens[b])].cpu() for b in range(batch)]
    return Decoded(tokens, weights_out, finished)


@dataclass
class Evaluation:
    """Greedy translations of a data set, scored."""

    pairs: list[Pair]
    predictions: list[tuple[str, ...]]
    correct: list[bool]  # exact match with the gold target
    accuracy: float  # fraction of exact matches
    alignment: AlignmentScores | None  # AER of the teacher-forced attention's argmax links, if it attends
    weights: list[torch.Tensor | None]  # greedy decoding's attention per example (steps, S)


def _attention_links(model: Translator, data: TranslationData, batch: Batch,
                     eos_as_null: bool = False) -> list[set[tuple[int, int]]]:
    """Argmax links of the attention while the decoder is fed the gold target (EOS row and column dropped).

    With ``eos_as_null`` a target word whose largest weight is on the source's EOS gets no link.
    """
    _, weights = teacher_forcing(model, batch.src, batch.src_lens, batch.tgt_in)  # (B, T, S)
    if weights is None:
        raise ValueError("the model returns no attention weights, so it has no alignment to score")
    return [links_from_attention(weights[b], source_len=len(p.source), target_len=len(p.target),
                                 null_column=len(p.source) if eos_as_null else None)
            for b, p in enumerate(batch.pairs)]


def evaluate(model: nn.Module, data: TranslationData, batch_size: int = 256, max_len: int | None = None,
             with_alignment: bool = True, eos_as_null: bool = False) -> Evaluation:
    """Exact-match accuracy of greedy decoding on ``data``, and the AER of the model's attention.

    ``max_len`` defaults to twice the longest gold target plus 2. The alignment is the argmax of
    the attention while the decoder reads the *gold* target, so every target word has a row even
    when the translation goes wrong; it is scored against the gold links (Och & Ney's AER). With
    ``eos_as_null`` a word whose largest weight is on the source's EOS gets no link, as the classical
    aligners give a word to the empty word; by default every word is linked to a source token.
    """
    if len(data) == 0:
        raise ValueError("the evaluation data are empty")
    device = next(model.parameters()).device
    max_len = max_len or 2 * max(len(p.target) for p in data.pairs) + 2
    predictions, weights, links = [], [], []
    attends = with_alignment
    with evaluating(model):
        for batch in data.batches(batch_size):
            batch = batch.to(device)
            decoded = greedy_decode(model, batch.src, batch.src_lens, max_len)
            predictions += [tuple(data.tgt_vocab.decode(ids)) for ids in decoded.tokens]
            weights += decoded.weights
            if attends and decoded.weights[0] is None:
                attends = False
            if attends:
                links += _attention_links(model, data, batch, eos_as_null)
    correct = [pred == pair.target for pred, pair in zip(predictions, data.pairs)]
    return Evaluation(
        pairs=list(data.pairs), predictions=predictions, correct=correct,
        accuracy=sum(correct) / len(correct),
        alignment=alignment_scores(links, data.pairs) if attends else None,
        weights=weights,
    )


def accuracy_by(evaluation: Evaluation, key=lambda pair: len(pair.source)) -> dict[Any, tuple[int, float]]:
    """Exact-match accuracy per group of examples, e.g. per source length: {key: (count, accuracy)}."""
    groups: dict[Any, list[bool]] = {}
    for pair, ok in zip(evaluation.pairs, evaluation.correct):
        groups.setdefault(key(pair), []).append(ok)
    return {k: (len(v), sum(v) / len(v)) for k, v in sorted(groups.items())}

"""BERT: a bidirectional Transformer encoder pre-trained with a masked LM and next-sentence prediction.

Devlin, Chang, Lee & Toutanova (2019), "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding", NAACL (arXiv:1810.04805). BERT's own contributions, written here from scratch:

* the **input representation** (Section 3, Figure 2): ``[CLS] A [SEP] B [SEP]`` with the sum of a token,
  a segment (A/B) and a learned position embedding, then LayerNorm and dropout — :class:`BertEmbeddings`;
* the **masked language model** (Section 3.1, Task #1; Appendix A.1): 15% of the ordinary tokens are
  chosen; of those 80% become ``[MASK]``, 10% a random token, 10% stay unchanged — :func:`mask_tokens`,
  :class:`BertMLMHead` (its output matrix is *tied* to the token embedding), :func:`mlm_loss`;
* **next-sentence prediction** (Section 3.1, Task #2): is B the sentence that follows A? — the pooler
  ``tanh(W h_[CLS] + b)`` and :class:`BertForPreTraining`'s NSP head, pairs from :func:`nsp_pairs`;
* **fine-tuning** (Section 3.2, Figure 1): the pre-trained encoder plus one classifier on the pooled
  ``[CLS]`` vector — :class:`BertForSequenceClassification`.

The encoder layers themselves are those of Vaswani et al. (2017, arXiv:1706.03762) in BERT's variant
(post-LayerNorm, GELU): ``nn.TransformerEncoderLayer(norm_first=False, activation="gelu",
batch_first=True)``. That layer does not return its attention weights, so :class:`BertEncoder` obtains
them, when asked, by running each layer's own ``self_attn`` once more on the same layer input with
``need_weights=True, average_attn_weights=False``. This costs one extra attention computation per layer
only when weights are requested, and keeps the layer itself PyTorch's (tested against an oracle
elsewhere). In training mode the re-run draws its own attention dropout, so read weights in ``eval()``.

Tokens are whole words of the course's toy grammar (:func:`solutions.data.generate_sentences`): BERT's
WordPiece vocabulary is not needed for a closed vocabulary. :class:`WordVocab` puts the five specials
first, so "is special" is ``id < WordVocab.num_special``.

MASK CONVENTION: ``attention_mask`` is a bool (B, T) tensor, ``True`` = a real token that may be attended
to (as in :mod:`solutions.attention.masking`); it is inverted into ``nn.MultiheadAttention``'s ``key_padding_mask``
(``True`` = ignore) inside :class:`BertEncoder`.

Shape letters:
    B batch     T positions ([CLS] A [SEP] B [SEP] + padding)     D hidden size
    H heads     V vocabulary size                                 C classes
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data import generate_sentences
from ..train import show_progress

__all__ = [
    "PAD", "CLS", "SEP", "MASK", "UNK", "SPECIALS", "IGNORE_INDEX", "IS_NEXT", "NOT_NEXT",
    "WordVocab", "BertConfig", "BertEmbeddings", "BertEncoder", "BertPooler", "BertModel", "BertOutput",
    "BertMLMHead", "BertForPreTraining", "BertForSequenceClassification",
    "mask_tokens", "mlm_loss", "subject_of", "generate_documents", "nsp_pairs", "encode_pair",
    "collate", "PretrainingBatch", "make_pretraining_batch", "pretrain", "evaluate_pretraining",
    "PretrainingEvaluation", "OBJECT_CLASSES", "object_class", "train_classifier", "classifier_accuracy",
]

PAD, CLS, SEP, MASK, UNK = "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"
SPECIALS = (PAD, CLS, SEP, MASK, UNK)
IGNORE_INDEX = -100  # label of a position the MLM loss skips (F.cross_entropy's default ignore_index)
IS_NEXT, NOT_NEXT = 0, 1  # NSP labels, as in the original code: 1 = B is a random sentence


# ------------------------------------------------------------------------------------ vocabulary
class WordVocab:
    """Word ↔ id map: [PAD]=0, [CLS]=1, [SEP]=2, [MASK]=3, [UNK]=4, then the words in sorted order."""

    pad_id, cls_id, sep_id, mask_id, unk_id = 0, 1, 2, 3, 4
    num_special = len(SPECIALS)

    def __init__(self, words: Sequence[str] = ()) -> None:
        self._itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        if len(set(self._itos)) != len(self._itos):
            raise ValueError("words contain duplicates")
        self._stoi = {w: i for i, w in enumerate(self._itos)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]]) -> WordVocab:
        """The vocabulary of every word in ``sentences`` (sequences of tokens)."""
        return cls(sorted({w for s in sentences for w in s}))

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, word: str) -> bool:
        return word in self._stoi

    def encode(self, words: Sequence[str]) -> list[int]:
        return [self._stoi.get(w, self.unk_id) for w in words]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        for i in ids:
            if not 0 <= i < len(self._itos):
                raise ValueError(f"id {i} is outside the vocabulary of {len(self._itos)} words")
        return [self._itos[i] for i in ids]


# ---------------------------------------------------------------------------------------- config
@dataclass
class BertConfig:
    """Hyper-parameters; the defaults are BERT-base (Devlin et al. 2019, Section 3, and Appendix A.2)."""

    vocab_size: int = 30522        # WordPiece vocabulary of BERT-base (uncased)
    hidden_size: int = 768         # D, "H" in the paper
    num_layers: int = 12           # "L"
    num_heads: int = 12            # "A"
    intermediate_size: int = 3072  # feed-forward size, 4H
    max_position: int = 512        # learned position embeddings, longest input
    type_vocab_size: int = 2       # segments A and B
    dropout: float = 0.1           # on embeddings, attention weights and every sub-layer output
    layer_norm_eps: float = 1e-12  # as in the released checkpoints
    initializer_range: float = 0.02  # std of the normal initialisation of weights

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position", "type_vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def tiny(cls, vocab_size: int = 50, **overrides) -> BertConfig:
        """A few thousand parameters, for tests."""
        values = dict(vocab_size=vocab_size, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                      max_position=32, dropout=0.0)
        return cls(**{**values, **overrides})

    @classmethod
    def small(cls, vocab_size: int, **overrides) -> BertConfig:
        """The chapter's model: pre-trains on the toy grammar in about a minute on two CPU cores."""
        values = dict(vocab_size=vocab_size, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=256,
                      max_position=64, dropout=0.1)
        return cls(**{**values, **overrides})


def _init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: weights N(0, std²), biases 0, LayerNorm (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.MultiheadAttention):
        nn.init.normal_(module.in_proj_weight, std=std)
        nn.init.zeros_(module.in_proj_bias)


# ------------------------------------------------------------------------------------ embeddings
class BertEmbeddings(nn.Module):
    """Input representation (Devlin et al. 2019, Section 3 "Input/Output Representations", Figure 2):

        e_t = LayerNorm(E_token[x_t] + E_segment[s_t] + E_position[t]),   then dropout.

    All three tables are learned; positions count from 0 at [CLS].
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.hidden_size)
        self.segment = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.max_position, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T), token_type_ids (B, T) or None (all segment A) → (B, T, D)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        T = input_ids.shape[1]
        if T > self.position.num_embeddings:
            raise ValueError(f"input has {T} positions but max_position is {self.position.num_embeddings}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif token_type_ids.shape != input_ids.shape:
            raise ValueError(f"token_type_ids {tuple(token_type_ids.shape)} must match input_ids "
                             f"{tuple(input_ids.shape)}")
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.token(input_ids) + self.segment(token_type_ids) + self.position(positions)  # (B, T, D)
        return self.dropout(self.norm(x))


# --------------------------------------------------------------------------------------- encoder
class BertEncoder(nn.Module):
    """A stack of post-LN Transformer encoder layers with GELU (BERT's Section 3 "Model Architecture").

    Attention weights: ``nn.TransformerEncoderLayer`` does not return them, so with
    ``return_attention=True`` each layer's ``self_attn`` is run a second time on that layer's input with
    ``need_weights=True, average_attn_weights=False``; the layer's output is untouched by the re-run.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                config.hidden_size, config.num_heads, config.intermediate_size, dropout=config.dropout,
                activation="gelu", layer_norm_eps=config.layer_norm_eps, batch_first=True, norm_first=False,
            )
            for _ in range(config.num_layers)
        )

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_attention: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, T, D), attention_mask bool (B, T) with True = real token → (B, T, D), [(B, H, T, T)] per layer.

        The list of weights is empty unless ``return_attention``; weights of padded keys are 0.
        """
        if attention_mask is not None:
            if attention_mask.dtype != torch.bool:
                raise TypeError(f"attention_mask must be bool (True = real token), got {attention_mask.dtype}")
            if attention_mask.shape != x.shape[:2]:
                raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must be (B, T) = {tuple(x.shape[:2])}")
            if not attention_mask.any(-1).all():
                raise ValueError("a sequence has no real token; every input holds at least [CLS]")
        padding = None if attention_mask is None else ~attention_mask  # (B, T), True = ignore (PyTorch's convention)
        weights = []
        for layer in self.layers:
            if return_attention:
                _, w = layer.self_attn(x, x, x, key_padding_mask=padding, need_weights=True,
                                       average_attn_weights=False)  # (B, H, T, T)
                weights.append(w)
            x = layer(x, src_key_padding_mask=padding)  # (B, T, D)
        return x, weights


class BertPooler(nn.Module):
    """The pooled sequence vector ``tanh(W h_[CLS] + b)`` fed to NSP and sentence classifiers."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, D) → (B, D), from position 0 ([CLS])."""
        return torch.tanh(self.dense(hidden[:, 0]))


class BertOutput(NamedTuple):
    hidden: torch.Tensor             # (B, T, D) final hidden vectors T_i (C at [CLS])
    pooled: torch.Tensor             # (B, D) tanh(W C + b)
    attentions: list[torch.Tensor]   # per layer (B, H, T, T), empty unless asked for


class BertModel(nn.Module):
    """Embeddings → encoder → pooler (Devlin et al. 2019, Figure 1 and Section 3)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)
        self.apply(lambda m: _init_weights(m, config.initializer_range))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, return_attention: bool = False) -> BertOutput:
        """input_ids, token_type_ids (B, T); attention_mask bool (B, T), True = real token."""
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, D)
        hidden, weights = self.encoder(x, attention_mask, return_attention)
        return BertOutput(hidden, self.pooler(hidden), weights)


# ------------------------------------------------------------------------------ pre-training heads
class BertMLMHead(nn.Module):
    """Masked-LM output: transform (dense + GELU + LayerNorm), then logits ``h Eᵀ + b``.

    ``E`` is the token embedding matrix itself (weight tying, as in the released BERT and in
    Vaswani et al. 2017, Section 3.4): ``self.decoder.weight`` IS ``token_embedding.weight``.
    """

    def __init__(self, config: BertConfig, token_embedding: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.decoder.weight = token_embedding.weight  # tied: one Parameter, two uses
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        _init_weights(self.dense, config.initializer_range)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, D) → logits (B, T, V)."""
        h = self.norm(F.gelu(self.dense(hidden)))  # (B, T, D)
        return self.decoder(h) + self.bias  # (B, T, V)


class BertForPreTraining(nn.Module):
    """BERT with both pre-training heads: masked LM on every position, NSP on the pooled [CLS] vector."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm_head = BertMLMHead(config, self.bert.embeddings.token)
        self.nsp_head = nn.Linear(config.hidden_size, 2)
        _init_weights(self.nsp_head, config.initializer_range)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """→ MLM logits (B, T, V), NSP logits (B, 2) (class 0 = IsNext), attention weights per layer."""
        out = self.bert(input_ids, token_type_ids, attention_mask, return_attention)
        return self.mlm_head(out.hidden), self.nsp_head(out.pooled), out.attentions


class BertForSequenceClassification(nn.Module):
    """Fine-tuning for a single-sentence task (Section 3.2, Figure 1): ``softmax(C Wᵀ)`` on the pooled [CLS].

    Only ``classifier`` is new; :meth:`from_pretrained` copies the encoder of a pre-trained model.
    """

    def __init__(self, config: BertConfig, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.config = config
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, num_classes)
        _init_weights(self.classifier, config.initializer_range)

    @classmethod
    def from_pretrained(cls, pretrained: BertForPreTraining, num_classes: int) -> BertForSequenceClassification:
        """A classifier whose encoder starts from a copy of ``pretrained.bert`` (the heads are dropped)."""
        model = cls(pretrained.config, num_classes)
        model.bert.load_state_dict(pretrained.bert.state_dict())
        return model.to(next(pretrained.parameters()).device)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """→ class logits (B, C)."""
        pooled = self.bert(input_ids, token_type_ids, attention_mask).pooled  # (B, D)
        return self.classifier(self.dropout(pooled))  # (B, C)


# ----------------------------------------------------------------------------- masked LM objective
def mask_tokens(input_ids: torch.Tensor, vocab_size: int, generator: torch.Generator,
                mask_id: int = WordVocab.mask_id, num_special: int = WordVocab.num_special,
                select_prob: float = 0.15, mask_prob: float = 0.8,
                random_prob: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking procedure (Section 3.1, Task #1; Appendix A.1).

    Each ordinary token (id ≥ ``num_special``; never [PAD], [CLS], [SEP], [MASK] or [UNK]) is *selected*
    independently with probability ``select_prob``. A selected token is replaced by [MASK] with probability
    ``mask_prob``, by a token drawn uniformly from the ordinary words with probability ``random_prob`` (it
    may be the same word, as in the paper), and kept otherwise.

    (The original code picks exactly round(15% × length) positions per sequence; independent draws
    give 15% on average also for the short sentences used here.) All draws come from ``generator``, on
    its own device, so the result depends only on the generator's state.

    Returns:
        masked_ids (B, T) — the input with the replacements; labels (B, T) — the original id at
        selected positions, ``IGNORE_INDEX`` elsewhere.
    """
    if input_ids.dtype != torch.long:
        raise TypeError(f"input_ids must be a LongTensor, got {input_ids.dtype}")
    if not (0 <= select_prob <= 1 and 0 <= mask_prob and 0 <= random_prob and mask_prob + random_prob <= 1):
        raise ValueError(f"bad probabilities: select {select_prob}, mask {mask_prob}, random {random_prob}")
    if vocab_size <= num_special:
        raise ValueError(f"vocab_size {vocab_size} leaves no ordinary word after {num_special} specials")
    gen_device = generator.device
    ordinary = input_ids >= num_special  # (B, T) never specials or padding
    u_select = torch.rand(input_ids.shape, generator=generator, device=gen_device).to(input_ids.device)
    u_kind = torch.rand(input_ids.shape, generator=generator, device=gen_device).to(input_ids.device)
    random_words = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator,
                                 device=gen_device).to(input_ids.device)
    selected = ordinary & (u_select < select_prob)  # (B, T)
    to_mask = selected & (u_kind < mask_prob)
    to_random = selected & (u_kind >= mask_prob) & (u_kind < mask_prob + random_prob)
    masked = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    masked = torch.where(to_random, random_words, masked)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the selected positions only: −(1/|M|) Σ_{t∈M} log p(x_t | x̃).

    logits (B, T, V), labels (B, T) with ``IGNORE_INDEX`` at unselected positions. With no position
    selected the loss is 0 (and still differentiable), not NaN.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be labels {tuple(labels.shape)} + (V,)")
    selected = labels != IGNORE_INDEX  # (B, T)
    if not selected.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[selected], labels[selected])  # (N, V) vs (N,)


# ------------------------------------------------------------------------- documents and NSP pairs
_DETERMINERS = {"the", "my", "your", "his", "her", "our", "their"}


def subject_of(sentence: Sequence[str]) -> tuple[str, ...]:
    """The subject of a toy-grammar sentence: a pronoun ("she") or determiner + noun ("my friend")."""
    if not sentence:
        raise ValueError("empty sentence")
    n = 2 if sentence[0].lower() in _DETERMINERS else 1
    return tuple(sentence[:n])


def generate_documents(n_sentences: int, sentences_per_doc: int = 4, seed: int = 0) -> list[list[tuple[str, ...]]]:
    """Toy "documents": runs of sentences about one subject.

    Draws ``n_sentences`` sentences from the grammar, groups them by subject (in order of drawing) and
    cuts each group into documents of ``sentences_per_doc`` sentences (a shorter remainder is dropped).
    A document is thus a few independent facts about the same person ("my friend likes tea", "my friend
    reads books every day", ...): consecutive sentences share their subject, random ones rarely do,
    which is what next-sentence prediction can learn here. Documents come in a seeded random order.
    """
    if sentences_per_doc < 2:
        raise ValueError(f"a document needs at least 2 sentences for NSP, got {sentences_per_doc}")
    groups: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for pair in generate_sentences(n_sentences, seed=seed):
        groups[subject_of(pair.source)].append(pair.source)
    docs = [g[k:k + sentences_per_doc] for g in groups.values()
            for k in range(0, len(g) - sentences_per_doc + 1, sentences_per_doc)]
    random.Random(seed).shuffle(docs)
    return docs


def nsp_pairs(documents: Sequence[Sequence[Sequence[str]]], seed: int = 0) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
    """(A, B, label) for every pair of consecutive sentences of every document (Section 3.1, Task #2).

    With probability 1/2 B is the actual next sentence (``IS_NEXT``); otherwise B is a random sentence
    of a random *other* document (``NOT_NEXT``).
    """
    if len(documents) < 2:
        raise ValueError("NotNext sentences come from another document: need at least 2 documents")
    rng, out = random.Random(seed), []
    for d, doc in enumerate(documents):
        for a, b in zip(doc[:-1], doc[1:]):
            if rng.random() < 0.5:
                out.append((tuple(a), tuple(b), IS_NEXT))
            else:
                other = rng.randrange(len(documents) - 1)
                other += other >= d  # any document but this one
                sentences = documents[other]
                out.append((tuple(a), tuple(sentences[rng.randrange(len(sentences))]), NOT_NEXT))
    return out


def encode_pair(vocab: WordVocab, a: Sequence[str], b: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """``[CLS] a [SEP]`` (+ ``b [SEP]``) ids and segment ids (0 for [CLS] a [SEP], 1 for b [SEP])."""
    ids = [vocab.cls_id] + vocab.encode(a) + [vocab.sep_id]
    segments = [0] * len(ids)
    if b is not None:
        ids += vocab.encode(b) + [vocab.sep_id]
        segments += [1] * (len(b) + 1)
    return ids, segments


def collate(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int = WordVocab.pad_id,
            device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad (ids, segments) lists → input_ids (B, T), token_type_ids (B, T), attention_mask bool (B, T)."""
    if not encoded:
        raise ValueError("collate needs at least one example")
    T = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), T), pad_id, dtype=torch.long)  # (B, T)
    segments = torch.zeros((len(encoded), T), dtype=torch.long)  # (B, T)
    for i, (ids, seg) in enumerate(encoded):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        segments[i, :len(seg)] = torch.tensor(seg)
    lengths = torch.tensor([len(ids) for ids, _ in encoded])  # (B,)
    mask = torch.arange(T) < lengths[:, None]  # (B, T)
    return input_ids.to(device), segments.to(device), mask.to(device)


@dataclass
class PretrainingBatch:
    input_ids: torch.Tensor       # (B, T) after masking
    token_type_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T) bool, True = real token
    mlm_labels: torch.Tensor      # (B, T) original id at selected positions, IGNORE_INDEX elsewhere
    nsp_labels: torch.Tensor      # (B,) IS_NEXT / NOT_NEXT


def make_pretraining_batch(pairs: Sequence[tuple[Sequence[str], Sequence[str], int]], vocab: WordVocab,
                           generator: torch.Generator, device: torch.device | str | None = None,
                           **mask_kwargs) -> PretrainingBatch:
    """Encode NSP pairs, pad them and mask them with :func:`mask_tokens` (fresh masks at every call)."""
    ids, segments, attention_mask = collate([encode_pair(vocab, a, b) for a, b, _ in pairs], vocab.pad_id, device)
    masked, labels = mask_tokens(ids, len(vocab), generator, vocab.mask_id, vocab.num_special, **mask_kwargs)
    nsp = torch.tensor([label for _, _, label in pairs], dtype=torch.long, device=device)  # (B,)
    return PretrainingBatch(masked, segments, attention_mask, labels, nsp)


def _warmup_linear(step: int, total: int, warmup: int) -> float:
    """BERT's schedule: linear warm-up to the peak rate, then linear decay to 0 (Appendix A.2)."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def pretrain(model: BertForPreTraining, pairs: Sequence[tuple[Sequence[str], Sequence[str], int]],
             vocab: WordVocab, steps: int, batch_size: int = 64, lr: float = 1e-3, warmup: int = 100,
             weight_decay: float = 0.01, seed: int = 0, log_every: int = 50,
             progress: bool | None = None) -> list[dict[str, float]]:
    """Minimise MLM loss + NSP loss with AdamW and warm-up/linear decay; masks are drawn afresh per batch.

    Returns one record per ``log_every`` steps: the step and the mean MLM loss, NSP loss, MLM accuracy
    (over selected positions) and NSP accuracy since the previous record.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_linear(s, steps, warmup))
    order: list[int] = []
    history, sums = [], defaultdict(float)
    model.train()
    for step in tqdm(range(steps), disable=not show_progress(progress), desc="pre-training", leave=False):
        if len(order) < batch_size:
            more = list(range(len(pairs)))
            rng.shuffle(more)
            order += more
        idx, order = order[:batch_size], order[batch_size:]
        batch = make_pretraining_batch([pairs[i] for i in idx], vocab, generator, device)
        mlm_logits, nsp_logits, _ = model(batch.input_ids, batch.token_type_ids, batch.attention_mask)
        loss_mlm = mlm_loss(mlm_logits, batch.mlm_labels)
        loss_nsp = F.cross_entropy(nsp_logits, batch.nsp_labels)
        optimizer.zero_grad(set_to_none=True)
        (loss_mlm + loss_nsp).backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            selected = batch.mlm_labels != IGNORE_INDEX
            sums["mlm_loss"] += loss_mlm.item()
            sums["nsp_loss"] += loss_nsp.item()
            sums["mlm_correct"] += (mlm_logits.argmax(-1)[selected] == batch.mlm_labels[selected]).sum().item()
            sums["mlm_total"] += selected.sum().item()
            sums["nsp_accuracy"] += (nsp_logits.argmax(-1) == batch.nsp_labels).float().mean().item()
            sums["n"] += 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            n = sums["n"]
            history.append({"step": step + 1, "mlm_loss": sums["mlm_loss"] / n, "nsp_loss": sums["nsp_loss"] / n,
                            "mlm_accuracy": sums["mlm_correct"] / max(1.0, sums["mlm_total"]),
                            "nsp_accuracy": sums["nsp_accuracy"] / n})
            sums = defaultdict(float)
    model.eval()
    return history


@dataclass
class PretrainingEvaluation:
    mlm_accuracy: float          # over all selected positions
    nsp_accuracy: float
    targets: torch.Tensor        # (N,) original ids at the selected positions
    predictions: torch.Tensor    # (N,) argmax of the MLM logits there
    kinds: list[str] = field(default_factory=list)  # per position: "mask", "random" or "unchanged"


@torch.no_grad()
def evaluate_pretraining(model: BertForPreTraining, pairs: Sequence[tuple[Sequence[str], Sequence[str], int]],
                         vocab: WordVocab, seed: int = 0, batch_size: int = 256, **mask_kwargs) -> PretrainingEvaluation:
    """MLM accuracy on freshly masked held-out pairs (masks from ``seed``), and NSP accuracy.

    ``kinds`` says what the input showed at each selected position: [MASK], a random word, or the
    unchanged word (a random draw that hit the same word counts as unchanged).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    targets, predictions, kinds, nsp_correct = [], [], [], 0
    for k in range(0, len(pairs), batch_size):
        chunk = pairs[k:k + batch_size]
        batch = make_pretraining_batch(chunk, vocab, generator, device, **mask_kwargs)
        mlm_logits, nsp_logits, _ = model(batch.input_ids, batch.token_type_ids, batch.attention_mask)
        selected = batch.mlm_labels != IGNORE_INDEX  # (B, T)
        target, shown = batch.mlm_labels[selected], batch.input_ids[selected]  # (N,)
        targets.append(target.cpu())
        predictions.append(mlm_logits.argmax(-1)[selected].cpu())
        kinds += ["mask" if s == vocab.mask_id else "unchanged" if s == t else "random"
                  for s, t in zip(shown.tolist(), target.tolist())]
        nsp_correct += (nsp_logits.argmax(-1) == batch.nsp_labels).sum().item()
    model.train(was_training)
    targets_t, predictions_t = torch.cat(targets), torch.cat(predictions)
    accuracy = (targets_t == predictions_t).float().mean().item() if len(targets_t) else float("nan")
    return PretrainingEvaluation(accuracy, nsp_correct / len(pairs), targets_t, predictions_t, kinds)


# ---------------------------------------------------------------------- a sentence classification task
OBJECT_CLASSES: dict[str, str] = {
    **{w: "reading" for w in ("book", "books", "letter", "letters", "newspaper", "newspapers")},
    **{w: "food" for w in ("apple", "apples", "rice", "noodles")},
    **{w: "drink" for w in ("coffee", "tea", "water")},
    **{w: "subject" for w in ("learning", "mathematics", "history", "Chinese", "music")},
}
"""Object noun → class, for the toy grammar's objects that are read, eaten, drunk or studied."""


def object_class(sentence: Sequence[str]) -> str | None:
    """The class of the sentence's object noun ("reading", "food", "drink", "subject"), or None."""
    found = {OBJECT_CLASSES[w] for w in sentence if w in OBJECT_CLASSES}
    if len(found) > 1:
        raise ValueError(f"{' '.join(sentence)!r} has objects of several classes: {sorted(found)}")
    return found.pop() if found else None


def train_classifier(model: BertForSequenceClassification, sentences: Sequence[Sequence[str]],
                     labels: Sequence[int], vocab: WordVocab, epochs: int = 30, batch_size: int = 16,
                     lr: float = 5e-4, warmup_fraction: float = 0.1, seed: int = 0) -> list[float]:
    """Fine-tune all weights with cross-entropy on [CLS] (Section 3.2/4.1); the mean loss per epoch."""
    if len(sentences) != len(labels) or not sentences:
        raise ValueError(f"{len(sentences)} sentences but {len(labels)} labels")
    device = next(model.parameters()).device
    encoded = [encode_pair(vocab, s) for s in sentences]
    steps = epochs * -(-len(encoded) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, int(warmup_fraction * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_linear(s, steps, warmup))
    rng, losses = random.Random(seed), []
    torch.manual_seed(seed)  # dropout
    model.train()
    for _ in range(epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        total = 0.0
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            ids, segments, mask = collate([encoded[i] for i in idx], vocab.pad_id, device)
            y = torch.tensor([labels[i] for i in idx], device=device)
            loss = F.cross_entropy(model(ids, segments, mask), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
        losses.append(total / len(encoded))
    model.eval()
    return losses


@torch.no_grad()
def classifier_accuracy(model: BertForSequenceClassification, sentences: Sequence[Sequence[str]],
                        labels: Sequence[int], vocab: WordVocab, batch_size: int = 512) -> float:
    """Fraction of ``sentences`` whose arg-max class equals its label."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for k in range(0, len(sentences), batch_size):
        ids, segments, mask = collate([encode_pair(vocab, s) for s in sentences[k:k + batch_size]],
                                      vocab.pad_id, device)
        y = torch.tensor(labels[k:k + batch_size], device=device)
        correct += (model(ids, segments, mask).argmax(-1) == y).sum().item()
    model.train(was_training)
    return correct / len(sentences)

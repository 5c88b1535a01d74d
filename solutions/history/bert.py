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

The encoder layers are the course's own :class:`solutions.history.transformer.EncoderLayer` (Vaswani et al.
2017, arXiv:1706.03762, Section 3.1) in BERT's variant, post-LayerNorm with a GELU feed-forward network
(Hendrycks & Gimpel 2016, arXiv:1606.08415):

    H' = LayerNorm(H + MultiHead(H)),    H_out = LayerNorm(H' + FFN(H')),    FFN(x) = GELU(x W_1 + b_1) W_2 + b_2.

Each layer returns the attention weights of the one pass it computes, so the weights :class:`BertEncoder`
hands back are those that produced the hidden states, in training mode too (the softmax weights, before
attention dropout, as ``nn.MultiheadAttention`` returns them). With ``BertConfig.fused`` and no weights asked
for, the layers run PyTorch's fused attention kernel instead (same output, faster).

Tokens are whole words of the course's toy grammar (:func:`solutions.data.generate_sentences`): BERT's
WordPiece vocabulary is not needed for a closed vocabulary. :class:`BertVocab` is the course's
:class:`solutions.data.Vocab` with BERT's five specials first, so "is special" is ``id < BertVocab.num_special``.

MASK CONVENTION: ``attention_mask`` is a bool (B, T) tensor, ``True`` = a real token that may be attended
to, the course's convention (:mod:`solutions.attention.masking`); it goes unchanged to each layer's
``key_padding_mask``.

Shape letters (the paper calls the hidden size H and the number of heads A):
    B  batch        T  positions ([CLS] A [SEP] B [SEP] + padding)        D  hidden size
    H  heads        Dh head size D / H        F  feed-forward size (intermediate_size)
    V  vocabulary size        C  classes
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import lengths_to_mask
from ..data import Vocab, generate_sentences, grammar, pad_batch
from ..train import evaluating, fit
from .transformer import EncoderLayer
from ..seeding import or_default

__all__ = [
    "PAD", "CLS", "SEP", "MASK", "UNK", "SPECIALS", "IGNORE_INDEX", "IS_NEXT", "NOT_NEXT",
    "BertVocab", "BertConfig", "BertEmbeddings", "BertEncoder", "BertPooler", "BertModel", "BertOutput",
    "BertMLMHead", "BertForPreTraining", "BertForSequenceClassification",
    "mask_tokens", "mlm_loss", "subject_of", "generate_documents", "nsp_pairs", "encode_pair",
    "collate", "PretrainingBatch", "make_pretraining_batch", "pretrain", "evaluate_pretraining",
    "PretrainingEvaluation", "CLASS_TOPICS", "OBJECT_TOPICS", "object_class", "train_classifier", "classifier_accuracy",
]

PAD, CLS, SEP, MASK, UNK = "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"
SPECIALS = (PAD, CLS, SEP, MASK, UNK)
IGNORE_INDEX = -100  # label of a position the MLM loss skips (F.cross_entropy's default ignore_index)
IS_NEXT, NOT_NEXT = 0, 1  # NSP labels, as in the original code: 1 = B is a random sentence


# ------------------------------------------------------------------------------------ vocabulary
class BertVocab(Vocab):
    """Word ↔ id map: [PAD]=0, [CLS]=1, [SEP]=2, [MASK]=3, [UNK]=4, then the words in sorted order.

    The course's :class:`solutions.data.Vocab` with BERT's specials; there is no BOS or EOS ([CLS] and
    [SEP] take their places), so encode with ``add_eos=False``.
    """

    specials = SPECIALS
    pad_id, cls_id, sep_id, mask_id, unk_id = 0, 1, 2, 3, 4
    bos_id = eos_id = None


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
    fused: bool = False            # attention on PyTorch's fused kernel when no weights are asked for

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position", "type_vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def tiny(cls, **overrides) -> BertConfig:
        """A few thousand parameters, for tests: V = 50, D = 16, two layers of H = 2 heads, F = 32, no dropout."""
        values = dict(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                      max_position=32, dropout=0.0)
        return cls(**{**values, **overrides})

    @classmethod
    def small(cls, vocab_size: int, **overrides) -> BertConfig:
        """The chapter's model: D = 64, two layers of H = 4 heads, F = 256, dropout 0.1, up to 64 positions."""
        values = dict(vocab_size=vocab_size, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=256,
                      max_position=64, dropout=0.1)
        return cls(**{**values, **overrides})


def _init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: weights N(0, std²), biases 0, LayerNorm (1, 0).

    Every weight matrix is an ``nn.Linear`` or ``nn.Embedding``, the attention's W^Q, W^K, W^V, W^O included.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


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

    The layers are :class:`solutions.history.transformer.EncoderLayer`; each returns its per-head weights
    from the same pass that computes its output.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(config.hidden_size, config.num_heads, config.intermediate_size, config.dropout,
                         norm_first=False, eps=config.layer_norm_eps, activation="gelu", fused=config.fused)
            for _ in range(config.num_layers)
        )

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_attention: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, T, D), attention_mask bool (B, T) with True = real token → (B, T, D), [(B, H, T, T)] per layer.

        The list of weights is empty unless ``return_attention``; weights of padded keys are 0.
        """
        _check_attention_mask(x, attention_mask)
        weights = []
        for layer in self.layers:
            x, w = layer(x, key_padding_mask=attention_mask, need_weights=return_attention)  # (B, T, D), (B, H, T, T)
            if return_attention:
                weights.append(w)
        return x, weights


def _check_attention_mask(x: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
    if attention_mask is None:
        return
    if attention_mask.dtype != torch.bool:
        raise TypeError(f"attention_mask must be bool (True = real token), got {attention_mask.dtype}")
    if attention_mask.shape != x.shape[:2]:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must be (B, T) = {tuple(x.shape[:2])}")
    if not attention_mask.any(-1).all():
        raise ValueError("a sequence has no real token; every input holds at least [CLS]")


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
                mask_id: int = BertVocab.mask_id, num_special: int = BertVocab.num_special,
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


def generate_documents(n_sentences: int, sentences_per_doc: int = 4, seed: int | None = None) -> list[list[tuple[str, ...]]]:
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
    random.Random(or_default(seed)).shuffle(docs)
    return docs


def nsp_pairs(documents: Sequence[Sequence[Sequence[str]]], seed: int | None = None) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
    """(A, B, label) for every pair of consecutive sentences of every document (Section 3.1, Task #2).

    With probability 1/2 B is the actual next sentence (``IS_NEXT``); otherwise B is a random sentence
    of a random *other* document (``NOT_NEXT``).
    """
    if len(documents) < 2:
        raise ValueError("NotNext sentences come from another document: need at least 2 documents")
    rng, out = random.Random(or_default(seed)), []
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


def encode_pair(vocab: BertVocab, a: Sequence[str], b: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """``[CLS] a [SEP]`` (+ ``b [SEP]``) ids and segment ids (0 for [CLS] a [SEP], 1 for b [SEP])."""
    ids = [vocab.cls_id] + vocab.encode(a, add_eos=False) + [vocab.sep_id]
    segments = [0] * len(ids)
    if b is not None:
        ids += vocab.encode(b, add_eos=False) + [vocab.sep_id]
        segments += [1] * (len(b) + 1)
    return ids, segments


def collate(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int = BertVocab.pad_id,
            device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad (ids, segments) lists → input_ids (B, T), token_type_ids (B, T), attention_mask bool (B, T)."""
    if not encoded:
        raise ValueError("collate needs at least one example")
    for ids, segments in encoded:
        if len(ids) != len(segments):
            raise ValueError(f"an example has {len(ids)} ids but {len(segments)} segment ids")
    input_ids, lengths = pad_batch([ids for ids, _ in encoded], pad_id, device)  # (B, T), (B,)
    token_type_ids, _ = pad_batch([segments for _, segments in encoded], 0, device)  # (B, T), padding in segment A
    return input_ids, token_type_ids, lengths_to_mask(lengths, input_ids.shape[1])  # mask (B, T)


@dataclass
class PretrainingBatch:
    input_ids: torch.Tensor       # (B, T) after masking
    token_type_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T) bool, True = real token
    mlm_labels: torch.Tensor      # (B, T) original id at selected positions, IGNORE_INDEX elsewhere
    nsp_labels: torch.Tensor      # (B,) IS_NEXT / NOT_NEXT


def make_pretraining_batch(pairs: Sequence[tuple[Sequence[str], Sequence[str], int]], vocab: BertVocab,
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


def _shuffled_batches(n: int, batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    """Endless batches of the indices 0 … n−1: shuffled passes, a batch may run from one pass into the next."""
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            more = list(range(n))
            rng.shuffle(more)
            order += more
        batch, order = order[:batch_size], order[batch_size:]
        yield batch


def pretrain(model: BertForPreTraining, pairs: Sequence[tuple[Sequence[str], Sequence[str], int]],
             vocab: BertVocab, steps: int, batch_size: int = 64, lr: float = 1e-3, warmup: int = 100,
             weight_decay: float = 0.01, seed: int | None = None, log_every: int = 50,
             progress: bool | None = None) -> list[dict[str, float]]:
    """Minimise L = L_MLM + L_NSP (Section 3.1) with AdamW and warm-up/linear decay; masks drawn afresh per batch.

    Trains with :func:`solutions.train.fit`, one "epoch" of ``log_every`` steps per record (the last one is
    shorter when ``log_every`` does not divide ``steps``). ``seed`` fixes the order of the pairs and the
    masks; dropout draws from the global generator, which the caller seeds. Returns one record per
    ``log_every`` steps: the step and the mean MLM loss, NSP loss, MLM accuracy (over the selected
    positions) and NSP accuracy since the previous record. Leaves the model in evaluation mode.
    """
    if steps < 1 or batch_size < 1 or log_every < 1:
        raise ValueError(f"steps, batch_size and log_every must be positive, got {steps}, {batch_size}, {log_every}")
    if not pairs:
        raise ValueError("no sentence pairs to pre-train on")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(or_default(seed))  # the masks
    indices = _shuffled_batches(len(pairs), batch_size, random.Random(or_default(seed)))

    def batches(epoch: int) -> Iterator[PretrainingBatch]:
        for _ in range(min(log_every, steps - (epoch - 1) * log_every)):
            yield make_pretraining_batch([pairs[i] for i in next(indices)], vocab, generator, device)

    def loss(model: BertForPreTraining, batch: PretrainingBatch) -> tuple[torch.Tensor, dict[str, float]]:
        mlm_logits, nsp_logits, _ = model(batch.input_ids, batch.token_type_ids, batch.attention_mask)
        loss_mlm = mlm_loss(mlm_logits, batch.mlm_labels)  # L_MLM over the selected positions
        loss_nsp = F.cross_entropy(nsp_logits, batch.nsp_labels)  # L_NSP, (B, 2) vs (B,)
        selected = batch.mlm_labels != IGNORE_INDEX  # (B, T)
        return loss_mlm + loss_nsp, {
            "mlm_loss": loss_mlm.item(), "nsp_loss": loss_nsp.item(),
            "mlm_correct": (mlm_logits.argmax(-1)[selected] == batch.mlm_labels[selected]).sum().item(),
            "mlm_selected": selected.sum().item(),
            "nsp_accuracy": (nsp_logits.argmax(-1) == batch.nsp_labels).float().mean().item(),
        }

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_linear(s, steps, warmup))
    records = fit(model, batches, loss, optimizer, epochs=-(-steps // log_every), scheduler=scheduler,
                  steps_per_epoch=log_every, progress=progress, desc="pre-training")
    model.eval()
    return [{"step": min(r["epoch"] * log_every, steps), "mlm_loss": r["mlm_loss"], "nsp_loss": r["nsp_loss"],
             "mlm_accuracy": r["mlm_correct"] / max(1.0, r["mlm_selected"]),  # correct / selected, pooled
             "nsp_accuracy": r["nsp_accuracy"]} for r in records]


@dataclass
class PretrainingEvaluation:
    mlm_accuracy: float          # over all selected positions
    nsp_accuracy: float
    targets: torch.Tensor        # (N,) original ids at the selected positions
    predictions: torch.Tensor    # (N,) argmax of the MLM logits there
    kinds: list[str] = field(default_factory=list)  # per position: "mask", "random" or "unchanged"


def evaluate_pretraining(model: BertForPreTraining, pairs: Sequence[tuple[Sequence[str], Sequence[str], int]],
                         vocab: BertVocab, seed: int | None = None, batch_size: int = 256, **mask_kwargs) -> PretrainingEvaluation:
    """MLM accuracy on freshly masked held-out pairs (masks from ``seed``), and NSP accuracy.

    ``kinds`` says what the input showed at each selected position: [MASK], a random word, or the
    unchanged word (a random draw that hit the same word counts as unchanged).
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(or_default(seed))
    targets, predictions, kinds, nsp_correct = [], [], [], 0
    with evaluating(model):
        for k in range(0, len(pairs), batch_size):
            batch = make_pretraining_batch(pairs[k:k + batch_size], vocab, generator, device, **mask_kwargs)
            mlm_logits, nsp_logits, _ = model(batch.input_ids, batch.token_type_ids, batch.attention_mask)
            selected = batch.mlm_labels != IGNORE_INDEX  # (B, T)
            target, shown = batch.mlm_labels[selected], batch.input_ids[selected]  # (N,)
            targets.append(target.cpu())
            predictions.append(mlm_logits.argmax(-1)[selected].cpu())
            kinds += ["mask" if s == vocab.mask_id else "unchanged" if s == t else "random"
                      for s, t in zip(shown.tolist(), target.tolist())]
            nsp_correct += (nsp_logits.argmax(-1) == batch.nsp_labels).sum().item()
    targets_t, predictions_t = torch.cat(targets), torch.cat(predictions)
    accuracy = (targets_t == predictions_t).float().mean().item() if len(targets_t) else float("nan")
    return PretrainingEvaluation(accuracy, nsp_correct / len(pairs), targets_t, predictions_t, kinds)


# ---------------------------------------------------------------------- a sentence classification task
CLASS_TOPICS: dict[str, str] = {"book": "reading", "letter": "reading", "paper": "reading",
                                "food": "food", "drink": "drink", "subject": "subject"}
"""The grammar's object classes (:data:`solutions.data.grammar.OBJECT_CLASSES`) → the classifier's topics:
things read, eaten, drunk or studied. The grammar's other classes ("movie", "thing", "code") have none."""

OBJECT_TOPICS: dict[str, str] = {word: CLASS_TOPICS[cls] for word, cls in grammar.OBJECT_CLASSES.items()
                                 if cls in CLASS_TOPICS}
"""Object noun (head word, singular and plural) → its topic: "books" → "reading", "tea" → "drink", …"""


def object_class(sentence: Sequence[str]) -> str | None:
    """The topic of the sentence's object noun ("reading", "food", "drink", "subject"), or None."""
    found = {OBJECT_TOPICS[w] for w in sentence if w in OBJECT_TOPICS}
    if len(found) > 1:
        raise ValueError(f"{' '.join(sentence)!r} has objects of several topics: {sorted(found)}")
    return found.pop() if found else None


def train_classifier(model: BertForSequenceClassification, sentences: Sequence[Sequence[str]],
                     labels: Sequence[int], vocab: BertVocab, epochs: int = 30, batch_size: int = 16,
                     lr: float = 5e-4, warmup_fraction: float = 0.1, seed: int | None = None,
                     progress: bool | None = None) -> list[float]:
    """Fine-tune all weights with cross-entropy on [CLS] (Section 3.2/4.1); the mean loss per epoch.

    AdamW with warm-up and linear decay, through :func:`solutions.train.fit`. ``seed`` shuffles the
    sentences; dropout draws from the global generator, which the caller seeds. Leaves the model in
    evaluation mode.
    """
    if len(sentences) != len(labels) or not sentences:
        raise ValueError(f"{len(sentences)} sentences but {len(labels)} labels")
    device = next(model.parameters()).device
    encoded = [encode_pair(vocab, s) for s in sentences]
    rng = random.Random(or_default(seed))

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            ids, segments, mask = collate([encoded[i] for i in idx], vocab.pad_id, device)  # (B, T) each
            yield ids, segments, mask, torch.tensor([labels[i] for i in idx], device=device)  # labels (B,)

    def loss(model: BertForSequenceClassification,
             batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, float]]:
        ids, segments, mask, y = batch
        return F.cross_entropy(model(ids, segments, mask), y), {"size": len(y)}  # (B, C) vs (B,)

    steps_per_epoch = -(-len(encoded) // batch_size)
    steps = epochs * steps_per_epoch
    warmup = max(1, int(warmup_fraction * steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_linear(s, steps, warmup))
    history = fit(model, batches, loss, optimizer, epochs=epochs, scheduler=scheduler,
                  steps_per_epoch=steps_per_epoch, progress=progress, desc="fine-tuning")
    model.eval()
    return [record["loss"] for record in history]


def classifier_accuracy(model: BertForSequenceClassification, sentences: Sequence[Sequence[str]],
                        labels: Sequence[int], vocab: BertVocab, batch_size: int = 512) -> float:
    """Fraction of ``sentences`` whose arg-max class equals its label."""
    device = next(model.parameters()).device
    correct = 0
    with evaluating(model):
        for k in range(0, len(sentences), batch_size):
            ids, segments, mask = collate([encode_pair(vocab, s) for s in sentences[k:k + batch_size]],
                                          vocab.pad_id, device)  # (B, T) each
            y = torch.tensor(labels[k:k + batch_size], device=device)  # (B,)
            correct += (model(ids, segments, mask).argmax(-1) == y).sum().item()
    return correct / len(sentences)

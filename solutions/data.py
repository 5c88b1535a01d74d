"""Toy translation data with gold word alignments: dates, and a small English→Chinese grammar.

* :func:`generate_dates` renders a calendar date with Babel's CLDR patterns in several Latin-script
  locales and widths ("Wednesday, November 25, 2026", "25.11.26", "25 nov. 2026") and pairs it with the
  Chinese date "2026年11月25日星期三". The date is rendered field by field, so the generator knows which
  source token is the year, month, day or weekday and links it to the Chinese tokens of the same field.
* :func:`generate_sentences` draws sentences from a small grammar with a bilingual lexicon
  ("I love machine learning" → "我 爱 机器 学习"), including constructions where Chinese reorders
  English: "the book on the table" → "桌子 上 的 书", "I read books every day" → "我 每天 读 书".

Gold links follow Och & Ney (2003) [och2003]: *sure* links S and *possible* links P ⊇ S, given as
(source index, target index), 0-based over the tokens without BOS/EOS. :class:`Vocab`,
:func:`pad_batch` and :class:`TranslationData` turn pairs into padded LongTensor batches.
Everything is deterministic given a seed; no function reads or changes global RNG state.

Shape letters: B batch, S source positions (tokens + EOS), T target positions (tokens + 1).
"""
from __future__ import annotations

import functools
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterator, Sequence

import torch
from babel import Locale, UnknownLocaleError
from babel.dates import DateTimeFormat, get_date_format, tokenize_pattern

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
Link = tuple[int, int]


@dataclass(frozen=True)
class Pair:
    """One source/target example with gold sure links ``alignment`` ⊆ ``possible`` links."""

    source: tuple[str, ...]
    target: tuple[str, ...]
    alignment: frozenset[Link]
    possible: frozenset[Link]
    source_text: str
    target_text: str

    def __post_init__(self) -> None:
        for i, j in self.possible:
            if not (0 <= i < len(self.source) and 0 <= j < len(self.target)):
                raise ValueError(f"link {(i, j)} out of range for {len(self.source)} source and "
                                 f"{len(self.target)} target tokens")
        if not self.alignment <= self.possible:
            raise ValueError(f"sure links {sorted(self.alignment - self.possible)} are not possible links")


def _collect(n: int, draw, unique: bool) -> list[Pair]:
    """``n`` pairs from ``draw()``; with ``unique``, a pair whose source was drawn before is drawn again."""
    pairs, seen = [], set()
    while len(pairs) < n:
        pair = draw()
        if unique:
            if pair.source in seen:
                continue
            seen.add(pair.source)
        pairs.append(pair)
    return pairs


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")


# ----------------------------------------------------------------------------------------- dates
DATE_FORMATS: tuple[tuple[str, str], ...] = (
    ("en_US", "full"),    # Wednesday, November 25, 2026
    ("en_US", "medium"),  # Nov 25, 2026
    ("en_US", "short"),   # 11/25/26      the only numeric format with "/"
    ("en_GB", "long"),    # 25 November 2026
    ("fr_FR", "full"),    # mercredi 25 novembre 2026
    ("fr_FR", "medium"),  # 25 nov. 2026
    ("de_DE", "full"),    # Mittwoch, 25. November 2026
    ("de_DE", "long"),    # 25. November 2026
    ("de_DE", "short"),   # 25.11.26      the only numeric format with "."
    ("es_ES", "long"),    # 25 de noviembre de 2026
    ("it_IT", "full"),    # mercoledì 25 novembre 2026
    ("sv_SE", "short"),   # 2026-11-25    the only numeric format with "-"
)
"""(locale, width) pairs used by :func:`generate_dates`: each source string determines its date."""
TARGET_LOCALE, TARGET_WIDTH = "zh", "full"  # 2026年11月25日星期三
WIDTHS = ("full", "long", "medium", "short")
_FIELD_KIND = {"y": "year", "M": "month", "L": "month", "d": "day", "E": "weekday", "c": "weekday",
               "e": "weekday"}
# A representative date per field kind, so that rendered fields are cached per value, not per date.
_CANONICAL = {"year": lambda d: date(d.year, 1, 1), "month": lambda d: date(2000, d.month, 1),
              "day": lambda d: date(2000, 1, d.day), "weekday": lambda d: date(2024, 1, 1 + d.weekday())}
_LITERAL = re.compile(r"[^\W\d_]+|\d+|\S")  # words, numbers, then single punctuation marks


@functools.lru_cache(maxsize=None)
def _pattern(locale: str, width: str) -> tuple[tuple[str, str], ...]:
    """The CLDR date pattern of (locale, width) as ("chars", text) and ("field", "MMMM") items."""
    if width not in WIDTHS:
        raise ValueError(f"unknown width {width!r}; expected one of {WIDTHS}")
    try:
        pattern = get_date_format(width, locale=Locale.parse(locale)).pattern
    except (UnknownLocaleError, ValueError, TypeError) as err:
        raise ValueError(f"unknown locale {locale!r}") from err
    items = []
    for kind, value in tokenize_pattern(pattern):
        if kind == "field":
            char, num = value
            if char not in _FIELD_KIND:
                raise ValueError(f"{locale} {width} pattern {pattern!r} uses field {char * num!r}; "
                                 "only year, month, day and weekday fields are supported")
            value = char * num
        items.append((kind, value))
    return tuple(items)


@functools.lru_cache(maxsize=None)
def _field_text(locale: str, field: str, value: date) -> str:
    return DateTimeFormat(value, Locale.parse(locale))[field]


def _render(d: date, locale: str, width: str, attach: bool) -> tuple[list[str], list[str | None], str]:
    """Tokens, the field kind of each token (None for literals) and the surface string.

    With ``attach`` a literal takes the kind of the field before it (Chinese 年, 月, 日 units).
    """
    tokens: list[str] = []
    kinds: list[str | None] = []
    text: list[str] = []
    last: str | None = None
    for kind, value in _pattern(locale, width):
        if kind == "chars":
            pieces, label = _LITERAL.findall(value), (last if attach else None)
        else:
            last = _FIELD_KIND[value[0]]
            value = _field_text(locale, value, _CANONICAL[last](d))
            pieces, label = value.split(), last
        text.append(value)
        tokens += pieces
        kinds += [label] * len(pieces)
    return tokens, kinds, "".join(text)


def render_date(d: date, locale: str = "en_US", width: str = "full") -> Pair:
    """The pair (``d`` in ``locale``/``width``, ``d`` in Chinese) with field-to-field sure links.

    A source field token links to every target token of the same field (month "November" → "11", "月");
    punctuation and literal words ("de") stay unlinked, and so does the Chinese weekday when the source
    has none. Any Babel locale whose pattern uses only year/month/day/weekday fields is accepted.
    """
    if not isinstance(d, date):
        raise ValueError(f"expected a datetime.date, got {type(d).__name__}")
    src, src_kinds, src_text = _render(d, locale, width, attach=False)
    tgt, tgt_kinds, tgt_text = _render(d, TARGET_LOCALE, TARGET_WIDTH, attach=True)
    links = frozenset((i, j) for i, a in enumerate(src_kinds) if a
                      for j, b in enumerate(tgt_kinds) if a == b)
    return Pair(tuple(src), tuple(tgt), links, links, src_text, tgt_text)


def generate_dates(n: int, seed: int = 0, start: date = date(1950, 1, 1), end: date = date(2049, 12, 31),
                   formats: Sequence[tuple[str, str]] = DATE_FORMATS, unique: bool = False) -> list[Pair]:
    """``n`` pairs of uniformly drawn dates in [start, end], each in a uniformly drawn format.

    Two-digit years ("25.11.26") identify the year only within a span of at most 100 years, so such
    formats require ``end.year - start.year < 100``. With ``unique`` no source string repeats.
    """
    _check_n(n)
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    if not formats:
        raise ValueError("formats is empty")
    for locale, width in formats:
        if ("field", "yy") in _pattern(locale, width) and end.year - start.year >= 100:
            raise ValueError(f"{locale} {width} writes two-digit years, which are ambiguous over "
                             f"{start.year}–{end.year}; use a range of at most 100 years")
    span = (end - start).days + 1
    if unique and n > span * len(formats):
        raise ValueError(f"asked for {n} unique dates but only {span * len(formats)} exist")
    formats = tuple(dict.fromkeys(formats))  # a repeated format would only repeat pairs
    rng = random.Random(seed)

    def draw() -> Pair:
        day = start + timedelta(days=rng.randrange(span))
        return render_date(day, *formats[rng.randrange(len(formats))])

    return _collect(n, draw, unique)


# ------------------------------------------------------------------------------------- sentences
@dataclass(frozen=True)
class _Chunk:
    """A phrase in both languages with its sure links and possible-only (``maybe``) links."""

    en: tuple[str, ...]
    zh: tuple[str, ...]
    sure: frozenset[Link] = frozenset()
    maybe: frozenset[Link] = frozenset()


def _chunk(en: str, zh: str, links: str | None = None) -> _Chunk:
    """Phrase from space-separated words; ``links`` like "0-1 1?0" (``-`` sure, ``?`` possible).

    Without ``links``: one-to-one in order when both sides have as many words, otherwise every word
    of the longer side links to the single word of the other ("every day" → "每天", "my" → "我 的").
    """
    e, z = tuple(en.split()), tuple(zh.split())
    if links is None:
        if len(e) == len(z):
            return _Chunk(e, z, frozenset((k, k) for k in range(len(e))))
        assert 1 in (len(e), len(z)), f"give the links of {en!r} → {zh!r}"
        return _Chunk(e, z, frozenset((i, j) for i in range(len(e)) for j in range(len(z))))
    sure = {tuple(map(int, s.split("-"))) for s in links.split() if "-" in s}
    maybe = {tuple(map(int, s.split("?"))) for s in links.split() if "?" in s}
    return _Chunk(e, z, frozenset(sure), frozenset(maybe))


def _concat(parts: Sequence[_Chunk], zh_order: Sequence[int] | None = None) -> _Chunk:
    """Parts in English order; Chinese puts them in ``zh_order`` (indices into ``parts``)."""
    zh_order = range(len(parts)) if zh_order is None else zh_order
    zh_at, j = {}, 0
    for k in zh_order:
        zh_at[k], j = j, j + len(parts[k].zh)
    en, sure, maybe, i = [], set(), set(), 0
    for k, p in enumerate(parts):
        sure |= {(i + a, zh_at[k] + b) for a, b in p.sure}
        maybe |= {(i + a, zh_at[k] + b) for a, b in p.maybe}
        en, i = en + list(p.en), i + len(p.en)
    zh = tuple(w for k in zh_order for w in parts[k].zh)
    return _Chunk(tuple(en), zh, frozenset(sure), frozenset(maybe))


def _the(noun: _Chunk) -> _Chunk:
    """English "the" + noun phrase; Chinese has no article, so "the" is a possible link to the head
    noun (the Chinese words linked to the last English word)."""
    out = _concat([_Chunk(("the",), ()), noun])
    head = {(0, j) for i, j in out.sure if i == len(out.en) - 1}
    return _Chunk(out.en, out.zh, out.sure, out.maybe | head)


_POSSESSIVES = [_chunk(e, z) for e, z in [("my", "我 的"), ("your", "你 的"), ("his", "他 的"),
                                          ("her", "她 的"), ("our", "我们 的"), ("their", "他们 的")]]
_ADJECTIVES = {a: _chunk(a, z, "0-0 0?1" if " " in z else None)  # 的 after a two-syllable colour
               for a, z in [("red", "红色 的"), ("blue", "蓝色 的"), ("green", "绿色 的"), ("new", "新"),
                            ("old", "旧"), ("big", "大")]}
# Objects: singular, plural (or the mass noun), Chinese, class, adjectives, forms ("poss", "pp").
_NOUNS = [
    ("book", "books", "书", "book", "red blue new old", "poss pp"),
    ("letter", "letters", "信", "letter", "new old", "poss pp"),
    ("newspaper", "newspapers", "报纸", "paper", "new old", "poss pp"),
    ("apple", "apples", "苹果", "food", "red green big", "pp"),
    ("computer", "computers", "电脑", "thing", "new old big", "poss pp"),
    ("flower", "flowers", "花", "thing", "red blue", "pp"),
    ("movie", "movies", "电影", "movie", "new old", ""),
    (None, "machine learning", "机器 学习", "subject", "", ""),
    (None, "mathematics", "数学", "subject", "", ""),
    (None, "history", "历史", "subject", "", ""),
    (None, "Chinese", "中文", "subject", "", ""),
    (None, "music", "音乐", "subject", "", ""),
    (None, "coffee", "咖啡", "drink", "", ""),
    (None, "tea", "茶", "drink", "", ""),
    (None, "water", "水", "drink", "", ""),
    (None, "rice", "米饭", "food", "", ""),
    (None, "noodles", "面条", "food", "", ""),
    (None, "code", "代码", "code", "", ""),
]
# Locative postpositions: English "on the table" → Chinese "桌子 上 (的)".
_PREPOSITIONS = {"on": ("上", "table desk shelf bed"), "under": ("下", "table desk bed"),
                 "in": ("里", "box bag"), "near": ("旁边", "window door")}
_PLACE_NOUNS = {"table": "桌子", "desk": "书桌", "shelf": "书架", "bed": "床", "box": "盒子", "bag": "包",
                "window": "窗户", "door": "门"}
# Verbs: base, third person singular, Chinese, object classes, action (takes time/place adverbials).
_VERBS = [
    ("love", "loves", "爱", "book letter paper food drink thing movie subject code", False),
    ("like", "likes", "喜欢", "book letter paper food drink thing movie subject code", False),
    ("need", "needs", "需要", "book paper food drink thing", False),
    ("read", "reads", "读", "book letter paper", True),
    ("write", "writes", "写", "book letter code", True),
    ("study", "studies", "学习", "subject", True),
    ("teach", "teaches", "教", "subject", True),
    ("buy", "buys", "买", "book paper food drink thing", True),
    ("eat", "eats", "吃", "food", True),
    ("drink", "drinks", "喝", "drink", True),
    ("watch", "watches", "看", "movie", True),
]
_PLACES = [_chunk(*p) for p in [("in the library", "在 图书馆", "0-0 1?1 2-1"), ("at home", "在 家"),
                                ("at school", "在 学校"), ("in the park", "在 公园", "0-0 1?1 2-1"),
                                ("in the office", "在 办公室", "0-0 1?1 2-1"),
                                ("in the classroom", "在 教室", "0-0 1?1 2-1"),
                                ("at the cafe", "在 咖啡馆", "0-0 1?1 2-1")]]
_TIMES = [_chunk(*t) for t in [("every day", "每天"), ("every week", "每周"), ("every morning", "每天 早上"),
                               ("every evening", "每天 晚上"), ("on weekends", "周末", "0?0 1-0"),
                               ("in the afternoon", "下午", "0?0 1?0 2-0"), ("today", "今天")]]


def _build_subjects() -> dict[tuple[str, ...], tuple[_Chunk, str]]:
    """English subject → (chunk, person) with person in {"1s", "2", "3s", "pl"}."""
    out = [(_chunk(e, z), p) for e, z, p in [("I", "我", "1s"), ("you", "你", "2"), ("he", "他", "3s"),
                                              ("she", "她", "3s"), ("we", "我们", "pl"),
                                              ("they", "他们", "pl")]]
    out += [(_the(_chunk(e, z)), p) for e, z, p in [("teacher", "老师", "3s"), ("student", "学生", "3s"),
                                                    ("doctor", "医生", "3s"), ("children", "孩子们", "pl"),
                                                    ("students", "学生们", "pl")]]
    out += [(_concat([poss, _chunk(e, z)]), p) for poss in _POSSESSIVES
            for e, z, p in [("friend", "朋友", "3s"), ("friends", "朋友们", "pl"), ("mother", "妈妈", "3s"),
                            ("father", "爸爸", "3s"), ("teacher", "老师", "3s")]]
    return {c.en: (c, p) for c, p in out}


def _build_objects() -> dict[str, dict[str, list[_Chunk]]]:
    """Object noun → form ("plain", "poss", "adj", "pp") → noun phrases."""
    out: dict[str, dict[str, list[_Chunk]]] = {}
    for sg, pl, zh, _, adjs, forms in _NOUNS:
        n_pl = _chunk(pl, zh)
        if sg is None:  # mass noun or subject of study: bare only
            out[pl] = {"plain": [n_pl]}
            continue
        n_sg = _chunk(sg, zh)
        f = {"plain": [n_pl, _the(n_sg), _the(n_pl)]}
        f["adj"] = [np for a in adjs.split() for np in (_concat([_ADJECTIVES[a], n_pl]),
                                                       _the(_concat([_ADJECTIVES[a], n_sg])),
                                                       _the(_concat([_ADJECTIVES[a], n_pl])))]
        if "poss" in forms:
            f["poss"] = [_concat([p, n]) for p in _POSSESSIVES for n in (n_sg, n_pl)]
        if "pp" in forms:  # the N P the L → L P 的 N
            pps = [_concat([_chunk(p, f"{post} 的", "0-0 0?1"), _the(_chunk(loc, _PLACE_NOUNS[loc]))], [1, 0])
                   for p, (post, locs) in _PREPOSITIONS.items() for loc in locs.split()]
            f["pp"] = [_concat([_the(n), pp], [1, 0]) for n in (n_sg, n_pl) for pp in pps]
        out[pl] = f
    return out


_SUBJECTS = _build_subjects()
_OBJECTS = _build_objects()
_CLASS = {pl: cls for _, pl, _, cls, _, _ in _NOUNS}
_OBJECT_INDEX = {np.en: (noun, form, np) for noun, forms in _OBJECTS.items()
                 for form, nps in forms.items() for np in nps}
_VERB_INDEX: dict[tuple[str, ...], list[tuple[tuple, bool, frozenset[str]]]] = {}
for _v in _VERBS:
    for _en, _persons, _neg in [(_v[1], "3s", False), (_v[0], "1s 2 pl", False),
                                (f"does not {_v[0]}", "3s", True), (f"do not {_v[0]}", "1s 2 pl", True)]:
        _VERB_INDEX.setdefault(tuple(_en.split()), []).append((_v, _neg, frozenset(_persons.split())))


def _verb_chunk(verb: tuple, person: str, negated: bool) -> _Chunk:
    base, third, zh = verb[0], verb[1], verb[2]
    if negated:  # "does not like" → "不 喜欢": not–不, does/do a possible link to 不
        return _chunk(f"{'does' if person == '3s' else 'do'} not {base}", f"不 {zh}", "0?0 1-0 2-1")
    return _chunk(third if person == "3s" else base, zh)


def _sentence(subject: tuple[_Chunk, str], verb: tuple, negated: bool, obj: _Chunk,
              place: _Chunk | None, time: _Chunk | None) -> Pair:
    """English S V O [place] [time] → Chinese S [time] [在 place] V O."""
    parts = [subject[0], _verb_chunk(verb, subject[1], negated), obj]
    extras = [c for c in (place, time) if c is not None]
    order = [0] + list(range(len(parts) + len(extras) - 1, len(parts) - 1, -1)) + [1, 2]
    return _to_pair(_concat(parts + extras, order))


def _to_pair(c: _Chunk) -> Pair:
    return Pair(c.en, c.zh, c.sure, c.sure | c.maybe, " ".join(c.en), "".join(c.zh))


def _objects_for(verb: tuple) -> list[str]:
    return [noun for noun in _OBJECTS if _CLASS[noun] in verb[3].split()]


def generate_sentences(n: int, seed: int = 0, unique: bool = False) -> list[Pair]:
    """``n`` sentences from the grammar: subject, verb, noun, noun form and phrase drawn uniformly.

    Action verbs take a place adverbial (not with a prepositional object, which would make the
    attachment ambiguous) and a time adverbial with probability 0.4 each; 15% of clauses are negated
    (then without adverbials). With ``unique`` no sentence repeats.
    """
    _check_n(n)
    if unique and n > count_sentences():
        raise ValueError(f"asked for {n} unique sentences but the grammar has {count_sentences()}")
    rng, subjects = random.Random(seed), list(_SUBJECTS.values())

    def draw() -> Pair:
        subject, verb = subjects[rng.randrange(len(subjects))], _VERBS[rng.randrange(len(_VERBS))]
        nouns = _objects_for(verb)
        forms = _OBJECTS[nouns[rng.randrange(len(nouns))]]
        form = sorted(forms)[rng.randrange(len(forms))]
        obj = forms[form][rng.randrange(len(forms[form]))]
        negated, place, time = rng.random() < 0.15, None, None
        if verb[4] and not negated:
            if form != "pp" and rng.random() < 0.4:
                place = _PLACES[rng.randrange(len(_PLACES))]
            if rng.random() < 0.4:
                time = _TIMES[rng.randrange(len(_TIMES))]
        return _sentence(subject, verb, negated, obj, place, time)

    return _collect(n, draw, unique)


def count_sentences(verb: str | None = None) -> int:
    """How many distinct sentences the grammar produces (only those with ``verb``, given its base form)."""
    total = 0
    for v in _VERBS:
        if verb is not None and v[0] != verb:
            continue
        for noun in _objects_for(v):
            for form, nps in _OBJECTS[noun].items():
                positive = (len(_TIMES) + 1) * (1 if form == "pp" else len(_PLACES) + 1) if v[4] else 1
                total += len(nps) * (positive + 1)  # + the negated clause
    return total * len(_SUBJECTS)


def _parses(words: tuple[str, ...]) -> list[Pair]:
    """Every derivation of ``words`` as a sentence of the grammar (one, by design, or none)."""
    places = {p.en: p for p in _PLACES}
    times = {t.en: t for t in _TIMES}
    out = []
    for a in range(1, len(words)):
        subject = _SUBJECTS.get(words[:a])
        for b in range(a + 1, len(words)) if subject else ():
            for verb, negated, persons in _VERB_INDEX.get(words[a:b], []):
                if subject[1] not in persons:
                    continue
                for c in range(b + 1, len(words) + 1):
                    noun, form, obj = _OBJECT_INDEX.get(words[b:c], (None, None, None))
                    if obj is None or _CLASS[noun] not in verb[3].split():
                        continue
                    rest = words[c:]
                    for k in range(len(rest) + 1):
                        place = places.get(rest[:k]) if k else None
                        time = times.get(rest[k:]) if k < len(rest) else None
                        if (k and place is None) or (k < len(rest) and time is None):
                            continue
                        adverbial = place is not None or time is not None
                        if adverbial and (negated or not verb[4]) or (place is not None and form == "pp"):
                            continue
                        out.append(_sentence(subject, verb, negated, obj, place, time))
    return out


def sentence_pair(sentence: str | Sequence[str]) -> Pair:
    """The gold pair of an English sentence (or noun phrase) the grammar produces.

    >>> sentence_pair("the book on the table").target
    ('桌子', '上', '的', '书')
    """
    words = tuple(sentence.split()) if isinstance(sentence, str) else tuple(sentence)
    candidates = [words]
    if words and words[0] not in ("I", "Chinese"):  # allow a capital at the start of a sentence
        candidates.append((words[0].lower(),) + words[1:])
    for w in candidates:
        parses = _parses(w)
        if len(parses) > 1:
            raise ValueError(f"{' '.join(w)!r} has {len(parses)} derivations in the grammar")
        if parses:
            return parses[0]
        if w in _OBJECT_INDEX or w in _SUBJECTS:
            return _to_pair(_OBJECT_INDEX[w][2] if w in _OBJECT_INDEX else _SUBJECTS[w][0])
    raise ValueError(f"{' '.join(words)!r} is not a sentence or noun phrase of the toy grammar")


def lexicon_links() -> frozenset[tuple[str, str]]:
    """Every (English word, Chinese word) sure link the lexicon allows."""
    chunks = [c for c, _ in _SUBJECTS.values()] + [np for _, _, np in _OBJECT_INDEX.values()]
    chunks += _PLACES + _TIMES + [_verb_chunk(v, p, neg) for v in _VERBS for p in ("1s", "3s")
                                  for neg in (False, True)]
    return frozenset((c.en[i], c.zh[j]) for c in chunks for i, j in c.sure)


# ------------------------------------------------------------------------ vocabulary and batches
class Vocab:
    """Token ↔ id map with the specials first: PAD=0, BOS=1, EOS=2, UNK=3, then tokens in sorted order."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        self._itos = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
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
        ids = [self._stoi.get(t, self.unk_id) for t in tokens]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: Sequence[int] | torch.Tensor, strip_special: bool = True) -> list[str]:
        """Tokens up to the first EOS; ``strip_special`` drops PAD, BOS and the EOS itself."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        out = []
        for i in ids:
            if i == self.eos_id:
                return out if strip_special else out + [EOS]
            if not (strip_special and i in (self.pad_id, self.bos_id)):
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
          seed: int = 0) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Shuffle with ``seed`` and cut into train/valid/test with the given fractions (summing to 1)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
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
    def from_pairs(cls, pairs: Sequence[Pair], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
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

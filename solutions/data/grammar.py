"""Toy English→Chinese sentences from a small grammar and bilingual lexicon, with gold alignments.

:func:`generate_sentences` draws sentences ("I love machine learning" → "我 爱 机器 学习"), including
constructions where Chinese reorders English: "the book on the table" → "桌子 上 的 书", "I read books
every day" → "我 每天 读 书". Deterministic given a seed; no global RNG state is touched.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from .pairs import Pair, check_count, collect_pairs
from ..seeding import or_default

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
OBJECT_CLASSES: dict[str, str] = {form.split()[-1]: cls for sg, pl, _, cls, _, _ in _NOUNS
                                  for form in (sg, pl) if form is not None}
"""The grammar's object nouns (the head word, singular and plural) → their class, which says which verbs
take them: "book"/"books" → "book", "tea" → "drink", "learning" (machine learning) → "subject"."""
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


def generate_sentences(n: int, seed: int | None = None, unique: bool = False) -> list[Pair]:
    """``n`` sentences from the grammar: subject, verb, noun, noun form and phrase drawn uniformly.

    Action verbs take a place adverbial (not with a prepositional object, which would make the
    attachment ambiguous) and a time adverbial with probability 0.4 each; 15% of clauses are negated
    (then without adverbials). With ``unique`` no sentence repeats.
    """
    check_count(n)
    if unique and n > count_sentences():
        raise ValueError(f"asked for {n} unique sentences but the grammar has {count_sentences()}")
    rng, subjects = random.Random(or_default(seed)), list(_SUBJECTS.values())

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

    return collect_pairs(n, draw, unique)


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

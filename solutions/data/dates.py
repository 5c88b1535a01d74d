"""Dates: one calendar date rendered by Babel's CLDR patterns, paired with the Chinese date.

:func:`generate_dates` renders a date in several Latin-script locales and widths ("Wednesday, November
25, 2026", "25.11.26", "25 nov. 2026") and pairs it with "2026年11月25日星期三". The date is rendered
field by field, so the generator knows which source token is the year, month, day or weekday and links
it to the Chinese tokens of the same field. Deterministic given a seed; no global RNG state is touched.
"""
from __future__ import annotations

import functools
import random
import re
from datetime import date, timedelta
from typing import Sequence

from babel import Locale, UnknownLocaleError
from babel.dates import DateTimeFormat, get_date_format, tokenize_pattern

from .pairs import Pair, check_count, collect_pairs

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
    check_count(n)
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

    return collect_pairs(n, draw, unique)

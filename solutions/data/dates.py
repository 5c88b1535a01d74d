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
from ..seeding import or_default

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


def _render(d: date, locale: str, width: str, attach: bool, weekday: bool = True
            ) -> tuple[list[str], list[str | None], str]:
    """Tokens, the field kind of each token (None for literals) and the surface string.

    With ``attach`` a literal takes the kind of the field before it (Chinese 年, 月, 日 units). Without
    ``weekday`` the weekday field is left out, and so are the literals attached to it.
    """
    tokens: list[str] = []
    kinds: list[str | None] = []
    text: list[str] = []
    last: str | None = None
    for kind, value in _pattern(locale, width):
        if kind == "chars":
            pieces, label = _LITERAL.findall(value), (last if attach else None)
            if label == "weekday" and not weekday:
                continue
        else:
            last = _FIELD_KIND[value[0]]
            if last == "weekday" and not weekday:
                continue
            value = _field_text(locale, value, _CANONICAL[last](d))
            pieces, label = value.split(), last
        text.append(value)
        tokens += pieces
        kinds += [label] * len(pieces)
    return tokens, kinds, "".join(text)


def render_date(d: date, locale: str = "en_US", width: str = "full", weekday: bool = True) -> Pair:
    """The pair (``d`` in ``locale``/``width``, ``d`` in Chinese) with field-to-field sure links.

    A source field token links to every target token of the same field (month "November" → "11", "月");
    punctuation and literal words ("de") stay unlinked, and so does the Chinese weekday when the source
    has none. Any Babel locale whose pattern uses only year/month/day/weekday fields is accepted.
    With ``weekday=False`` the Chinese target ends at 日 ("2026年11月25日"): nothing in it has to be
    computed from the calendar, and a weekday the source names ("Wednesday") stays unlinked.
    """
    if not isinstance(d, date):
        raise ValueError(f"expected a datetime.date, got {type(d).__name__}")
    src, src_kinds, src_text = _render(d, locale, width, attach=False)
    tgt, tgt_kinds, tgt_text = _render(d, TARGET_LOCALE, TARGET_WIDTH, attach=True, weekday=weekday)
    links = frozenset((i, j) for i, a in enumerate(src_kinds) if a
                      for j, b in enumerate(tgt_kinds) if a == b)
    return Pair(tuple(src), tuple(tgt), links, links, src_text, tgt_text)


def generate_dates(n: int, seed: int | None = None, start: date = date(1950, 1, 1), end: date = date(2049, 12, 31),
                   formats: Sequence[tuple[str, str]] = DATE_FORMATS, unique: bool = False,
                   weekday: bool = True) -> list[Pair]:
    """``n`` pairs of uniformly drawn dates in [start, end], each in a uniformly drawn format.

    Two-digit years ("25.11.26") identify the year only within a span of at most 100 years, so such
    formats require ``end.year - start.year < 100``. With ``unique`` no source string repeats. With
    ``weekday=False`` the targets leave out the weekday (see :func:`render_date`), which most of the
    default formats do not name and a model would otherwise have to compute from the calendar.
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
    rng = random.Random(or_default(seed))

    def draw() -> Pair:
        day = start + timedelta(days=rng.randrange(span))
        return render_date(day, *formats[rng.randrange(len(formats))], weekday=weekday)

    return collect_pairs(n, draw, unique)


def generate_date_lists(n: int, length: int, seed: int | None = None, weekday: bool = False,
                        reverse: bool = False, **options) -> list[Pair]:
    """``n`` pairs of ``length`` dates each, joined by ";" in the source and by "，" in the target.

    The dates are those of ``generate_dates(n * length, seed, weekday=weekday, **options)``, taken
    ``length`` at a time; each is rendered as in :func:`render_date` and its links are shifted to its place.
    With ``reverse`` the target lists the dates in the opposite order, so that the first target date is
    linked to the last source date: a reordering across the whole sequence.
    """
    check_count(n)
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    if options.get("unique"):
        raise ValueError("unique is not supported for date lists")
    singles = generate_dates(n * length, seed, weekday=weekday, **options)
    pairs = []
    for k in range(0, len(singles), length):
        group = singles[k:k + length]
        src_starts, src = [], []
        for p in group:
            src += [";"] if src else []
            src_starts.append(len(src))
            src += p.source
        tgt_starts, tgt = {}, []
        for index in (reversed(range(length)) if reverse else range(length)):
            tgt += ["，"] if tgt else []
            tgt_starts[index] = len(tgt)
            tgt += group[index].target
        shift = lambda links, i: frozenset((a + src_starts[i], b + tgt_starts[i]) for a, b in links)
        sure = frozenset().union(*(shift(p.alignment, i) for i, p in enumerate(group)))
        possible = frozenset().union(*(shift(p.possible, i) for i, p in enumerate(group)))
        order = reversed(group) if reverse else group
        pairs.append(Pair(tuple(src), tuple(tgt), sure, possible, "; ".join(p.source_text for p in group),
                          "，".join(p.target_text for p in order)))
    return pairs

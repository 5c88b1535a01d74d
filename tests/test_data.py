"""The datasets of solutions.data: hand-checked examples, gold alignments, determinism, batching."""
import random
from datetime import date

import pytest
import torch

from solutions.data import (DATE_FORMATS, Pair, TranslationData, Vocab, count_sentences, generate_dates, generate_sentences, lexicon_links, pad_batch, render_date, sentence_pair, split)

WEDNESDAY = date(2026, 11, 25)


def links_of(pair: Pair, source_words, target_words=None) -> set[tuple[str, str]]:
    """The sure links of ``pair`` as (source token, target token), restricted to the given source words."""
    return {(pair.source[i], pair.target[j]) for i, j in pair.alignment
            if pair.source[i] in source_words and (target_words is None or pair.target[j] in target_words)}


# ----------------------------------------------------------------------------------------- dates
def test_the_course_date_in_us_english():
    pair = render_date(WEDNESDAY, "en_US", "full")
    assert pair.source_text == "Wednesday, November 25, 2026"
    assert pair.target_text == "2026年11月25日星期三"
    assert pair.source == ("Wednesday", ",", "November", "25", ",", "2026")
    assert pair.target == ("2026", "年", "11", "月", "25", "日", "星期三")
    # November -> 11 月, 25 -> 25 日, 2026 -> 2026 年, Wednesday -> 星期三; commas stay unlinked.
    assert pair.alignment == {(2, 2), (2, 3), (3, 4), (3, 5), (5, 0), (5, 1), (0, 6)}
    assert links_of(pair, {"November"}) == {("November", "11"), ("November", "月")}
    assert pair.possible == pair.alignment


@pytest.mark.parametrize("locale, width, text, tokens", [
    ("de_DE", "short", "25.11.26", ("25", ".", "11", ".", "26")),
    ("fr_FR", "medium", "25 nov. 2026", ("25", "nov.", "2026")),
    ("en_GB", "long", "25 November 2026", ("25", "November", "2026")),
    ("sv_SE", "short", "2026-11-25", ("2026", "-", "11", "-", "25")),
    ("es_ES", "long", "25 de noviembre de 2026", ("25", "de", "noviembre", "de", "2026")),
])
def test_other_locales_reorder_day_month_year(locale, width, text, tokens):
    pair = render_date(WEDNESDAY, locale, width)
    assert pair.source_text == text and pair.source == tokens
    assert pair.target_text.startswith("2026年11月25日")
    day = tokens.index("25")
    assert {j for i, j in pair.alignment if i == day} == {4, 5}, "the day links to 25 日"
    assert all(pair.source[i] not in (".", "-", "de") for i, _ in pair.alignment), "literals stay unlinked"
    assert not any(j == 6 for _, j in pair.alignment), "no weekday in the source, so 星期三 is unlinked"


def test_dates_without_the_weekday():
    pair = render_date(WEDNESDAY, "en_US", "full", weekday=False)
    assert pair.source_text == "Wednesday, November 25, 2026", "the source is unchanged"
    assert pair.target_text == "2026年11月25日" and pair.target == ("2026", "年", "11", "月", "25", "日")
    assert pair.alignment == {(2, 2), (2, 3), (3, 4), (3, 5), (5, 0), (5, 1)}, "Wednesday stays unlinked"
    with_weekday = generate_dates(300, seed=4)
    without = generate_dates(300, seed=4, weekday=False)
    assert [p.source for p in without] == [p.source for p in with_weekday], "the same dates in the same formats"
    assert all(p.target == q.target[:6] and len(q.target) == 7 for p, q in zip(without, with_weekday))
    assert all(j < 6 for p in without for _, j in p.alignment)


def test_date_lists_join_dates_and_shift_their_links():
    from solutions.data.dates import generate_date_lists
    singles = generate_dates(6, seed=5, weekday=False)
    pairs = generate_date_lists(2, 3, seed=5)
    assert len(pairs) == 2
    first = pairs[0]
    assert first.source == singles[0].source + (";",) + singles[1].source + (";",) + singles[2].source
    assert first.target == singles[0].target + ("，",) + singles[1].target + ("，",) + singles[2].target
    assert first.source_text == "; ".join(p.source_text for p in singles[:3])
    assert first.target_text == "，".join(p.target_text for p in singles[:3])
    for i, j in first.alignment:  # every link joins a source token and a target token of the same date
        assert first.source[:i].count(";") == first.target[:j].count("，"), (i, j)
    assert len(first.alignment) == sum(len(p.alignment) for p in singles[:3])
    reversed_ = generate_date_lists(2, 3, seed=5, reverse=True)[0]
    assert reversed_.source == first.source
    assert reversed_.target == singles[2].target + ("，",) + singles[1].target + ("，",) + singles[0].target
    for i, j in reversed_.alignment:  # source date k is target date 2 - k
        assert reversed_.source[:i].count(";") == 2 - reversed_.target[:j].count("，"), (i, j)
    with pytest.raises(ValueError, match="length"):
        generate_date_lists(2, 0)
    with pytest.raises(ValueError, match="unique"):
        generate_date_lists(2, 2, unique=True)


def test_every_format_links_year_month_and_day():
    for locale, width in DATE_FORMATS:
        pair = render_date(date(1987, 3, 9), locale, width)
        linked_targets = {j for _, j in pair.alignment}
        assert {0, 1, 2, 3, 4, 5} <= linked_targets, (locale, width, pair)


def test_dates_are_deterministic_and_leave_global_random_state_alone():
    random.seed(123)
    torch.manual_seed(123)
    state, torch_state = random.getstate(), torch.get_rng_state()
    first = generate_dates(200, seed=7)
    assert generate_dates(200, seed=7) == first
    assert generate_dates(200, seed=8) != first
    assert random.getstate() == state and torch.equal(torch.get_rng_state(), torch_state)


def test_unique_dates_never_repeat_a_source():
    pairs = generate_dates(2000, seed=0, unique=True)
    assert len({p.source for p in pairs}) == 2000


def test_date_arguments_are_checked():
    with pytest.raises(ValueError, match="non-negative"):
        generate_dates(-1)
    with pytest.raises(ValueError, match="after"):
        generate_dates(5, start=date(2020, 1, 2), end=date(2020, 1, 1))
    with pytest.raises(ValueError, match="two-digit years"):
        generate_dates(5, start=date(1900, 1, 1), end=date(2049, 12, 31))
    with pytest.raises(ValueError, match="unique"):
        generate_dates(30, start=date(2020, 1, 1), end=date(2020, 1, 2), formats=[("en_US", "full")], unique=True)
    with pytest.raises(ValueError, match="unknown locale"):
        render_date(WEDNESDAY, "xx_NOPE", "full")
    with pytest.raises(ValueError, match="unknown width"):
        render_date(WEDNESDAY, "en_US", "tiny")


# ------------------------------------------------------------------------------------- sentences
def test_i_love_machine_learning():
    pair = sentence_pair("I love machine learning")
    assert pair.target == ("我", "爱", "机器", "学习") and pair.target_text == "我爱机器学习"
    assert pair.alignment == {(0, 0), (1, 1), (2, 2), (3, 3)}
    # "machine learning" links to "机器 学习" and to nothing else, in both directions.
    phrase = {(i, j) for i, j in pair.possible if i in (2, 3) or j in (2, 3)}
    assert phrase and all(i in (2, 3) and j in (2, 3) for i, j in phrase)


def test_the_book_on_the_table_reorders():
    pair = sentence_pair("the book on the table")
    assert pair.target == ("桌子", "上", "的", "书")
    assert links_of(pair, {"book", "on", "table"}) == {("book", "书"), ("on", "上"), ("table", "桌子")}
    assert (2, 2) in pair.possible and (2, 2) not in pair.alignment, "的 is only a possible link of 'on'"
    assert pair.alignment <= pair.possible


def test_time_adverbial_moves_before_the_verb():
    pair = sentence_pair("I read books every day")
    assert pair.target == ("我", "每天", "读", "书")
    assert links_of(pair, {"every", "day"}) == {("every", "每天"), ("day", "每天")}


def test_ungrammatical_sentences_are_rejected():
    with pytest.raises(ValueError, match="not a sentence"):
        sentence_pair("machine learning loves me")


def test_generated_sentences_are_deterministic_parsable_and_linked():
    pairs = generate_sentences(300, seed=3)
    assert generate_sentences(300, seed=3) == pairs and generate_sentences(300, seed=4) != pairs
    allowed = lexicon_links()
    for pair in pairs[:100]:
        assert sentence_pair(pair.source) == pair, "the generator and the parser agree"
    for pair in pairs:
        assert all((pair.source[i], pair.target[j]) in allowed for i, j in pair.alignment)
        assert {j for _, j in pair.possible} == set(range(len(pair.target))), "every Chinese word is linked"


def test_unique_sentences_and_the_size_of_the_grammar():
    assert count_sentences() > 100_000
    assert count_sentences("love") < count_sentences()
    pairs = generate_sentences(3000, seed=0, unique=True)
    assert len({p.source for p in pairs}) == 3000


@pytest.mark.parametrize("generate", [generate_dates, generate_sentences])
def test_ten_thousand_pairs_are_generated_deterministically(generate):
    """The size the chapters train on; how fast it is made is measured by benchmarks/data_generation.py."""
    pairs = generate(10_000, seed=11)
    assert len(pairs) == 10_000 and all(isinstance(p, Pair) and p.source and p.target for p in pairs)
    assert generate(10_000, seed=11) == pairs, "the same seed gives the same 10,000 pairs"


# ------------------------------------------------------------------------ vocabulary and batches
def test_vocab_round_trip_and_unknown_tokens():
    vocab = Vocab.build([("b", "a"), ("a", "c")])
    assert len(vocab) == 4 + 3 and vocab.token_to_id("a") == 4
    ids = vocab.encode(["a", "zzz", "c"], add_bos=True)
    assert ids == [vocab.bos_id, 4, vocab.unk_id, 6, vocab.eos_id]
    assert vocab.decode(ids) == ["a", "<unk>", "c"]
    assert vocab.decode([5, vocab.eos_id, 4]) == ["b"], "decoding stops at EOS"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.id_to_token(99)
    assert Vocab.build([("x",), ("x",), ("y",)], min_freq=2).token_to_id("y") == Vocab.unk_id


def test_pad_batch():
    padded, lengths = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert padded.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    assert padded.dtype == torch.long
    with pytest.raises(ValueError):
        pad_batch([])


def test_split_is_a_seeded_partition():
    pairs = generate_sentences(100, seed=0)
    train, valid, test = split(pairs, (0.8, 0.1, 0.1), seed=1)
    assert (len(train), len(valid), len(test)) == (80, 10, 10)
    assert sorted(map(id, train + valid + test)) == sorted(map(id, pairs))
    assert split(pairs, seed=1) == (train, valid, test)
    with pytest.raises(ValueError, match="summing to 1"):
        split(pairs, (0.5, 0.2, 0.2))


def test_translation_batches(device):
    train, valid, _ = TranslationData.from_pairs(generate_dates(500, seed=2), seed=0)
    assert valid.src_vocab is train.src_vocab, "held-out data use the training vocabularies"
    batch = next(train.batches(16, shuffle=True, seed=0)).to(device)
    b, s = batch.src.shape
    assert b == 16 and batch.src.device.type == device.type
    assert int(batch.src_lens.max()) == s and batch.tgt_in.shape == batch.tgt_out.shape
    assert torch.all(batch.tgt_in[:, 0] == Vocab.bos_id), "teacher forcing starts from BOS"
    for k in range(b):
        n_src, n_tgt = int(batch.src_lens[k]), int(batch.tgt_lens[k])
        assert batch.src[k, n_src - 1] == Vocab.eos_id and torch.all(batch.src[k, n_src:] == Vocab.pad_id)
        assert batch.tgt_out[k, n_tgt - 1] == Vocab.eos_id
        assert torch.equal(batch.tgt_in[k, 1:n_tgt], batch.tgt_out[k, :n_tgt - 1]), "targets shift by one"
        assert train.tgt_vocab.decode(batch.tgt_out[k]) == list(batch.pairs[k].target)
    sizes = [len(x.pairs) for x in train.batches(64)]
    assert sum(sizes) == len(train) and sizes[-1] == len(train) % 64
    assert all(len(x.pairs) == 64 for x in train.batches(64, drop_last=True))
    with pytest.raises(ValueError, match="seed"):
        next(train.batches(8, shuffle=True))
